"""Every notice kind renders in both languages, with its link; robots get ids only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from jinja2 import UndefinedError

from notifications.rendering import (
    KINDS,
    LANGUAGES,
    TEMPLATES,
    language_of,
    prepare,
    render_email,
    render_robot,
)

LINK = "https://baton.example.test/app/requests/42"
NAMES = {"recipient_name": "Li Sales", "requester_name": "Ma Manager",
         "from_name": "Li Sales", "to_name": "Wang Sales", "customer_count": 3}
PARAMS = {"level": 2, "due_at": "2026-03-01T10:00:00+00:00",
          "deadline": "2026-03-02T10:00:00+00:00", "window_end": "2026-02-28T10:00:00+00:00",
          "protection_end": "2026-09-01T10:00:00+00:00", "stage": "AWAITING_SIGNATURE",
          "outcome": "AMEND", "reason": "Territory <b>merge</b> & more"}


def _context(language: str, **extra: object) -> dict[str, object]:
    return {**prepare({**PARAMS, **extra}, language, "Asia/Shanghai"), **NAMES,
            "request_id": 42, "link": LINK}


def _has_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_both_languages_have_every_kind():
    for language in LANGUAGES:
        names = {p.stem for p in (TEMPLATES / language).glob("*.j2")
                 if not p.stem.startswith("_")}
        assert names == {k.lower() for k in KINDS}, language


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_email_in_the_readers_language_with_the_link(kind: str, language: str):
    message = render_email(kind, language, _context(language))
    assert "#42" in message.subject and "\n" not in message.subject
    for part in (message.subject, message.text):
        assert _has_chinese(part) is (language == "zh-CN"), (kind, part)
    assert message.text.startswith("Li Sales，您好" if language == "zh-CN" else "Dear Li Sales,")
    assert LINK in message.text and f'href="{LINK}"' in message.html
    assert f'<html lang="{language}">' in message.html
    # user text is escaped in the HTML part, never markup
    assert "<b>merge</b>" not in message.html
    assert "{{" not in message.text and "{%" not in message.text


def test_times_are_in_the_office_zone_and_language():
    zh = render_email("SIGNATURE_REQUESTED", "zh-CN", _context("zh-CN"))
    en = render_email("SIGNATURE_REQUESTED", "en", _context("en"))
    assert "2026年3月2日 18:00（中国标准时间）" in zh.text  # 10:00 UTC is 18:00 in Shanghai
    assert "March 2, 2026, 18:00 (China Standard Time)" in en.text


def test_reasons_and_outcomes_reach_the_email():
    declined = render_email("DECLINED", "en", _context("en"))
    assert "Reason: Territory <b>merge</b> & more" in declined.text
    assert "Territory &lt;b&gt;merge&lt;/b&gt; &amp; more" in declined.html
    upheld = render_email("APPEAL_RESOLVED", "zh-CN", _context("zh-CN", outcome="UPHOLD"))
    amended = render_email("APPEAL_RESOLVED", "zh-CN", _context("zh-CN"))
    assert "维持原申请" in upheld.text and "修改调整条款" in amended.text
    policy = render_email("REJECTED", "en", {**_context("en"), "reason": None})
    assert "broke the reassignment policy" in policy.text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_robot_messages_need_ids_only(kind: str, language: str):
    """The subjects render from ids and links alone (StrictUndefined would fail on a name)."""
    robot = render_robot(kind, language, _context(language))
    assert "#42" in robot.title and robot.link == LINK
    for name in ("Li Sales", "Wang Sales", "Ma Manager", "Territory"):
        assert name not in robot.title + robot.action


def test_a_subject_naming_a_person_fails_for_robots(tmp_path, monkeypatch):
    from notifications import rendering

    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "leaky.j2").write_text(
        "{% block subject %}#{{ request_id }} for {{ from_name }}{% endblock %}"
        "{% block body %}x{% endblock %}{% block action %}y{% endblock %}")
    monkeypatch.setattr(rendering, "TEMPLATES", tmp_path)
    rendering._env.cache_clear()
    try:
        with pytest.raises(UndefinedError):
            rendering.render_robot("LEAKY", "en", _context("en"))
    finally:
        monkeypatch.undo()
        rendering._env.cache_clear()


@pytest.mark.parametrize(("locale", "language"), [
    ("zh-CN", "zh-CN"), ("zh_CN", "zh-CN"), ("en", "en"), ("en-US", "en"), ("EN_gb", "en"),
    (None, "zh-CN"), ("", "zh-CN"), ("fr", "zh-CN")])
def test_language_of_an_employee_locale(locale, language):
    assert language_of(locale) == language


def test_prepare_accepts_datetimes_and_iso_strings():
    at = datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert prepare({"due_at": at}, "en", "UTC")["due_at"] == \
        prepare({"due_at": at.isoformat()}, "en", "UTC")["due_at"]
