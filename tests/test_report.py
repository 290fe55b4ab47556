"""The personal analysis report: rendering in both languages, what the PDF says, and the
activity that stores it (idempotently)."""

from __future__ import annotations

import hashlib
import io
import re
import string
from datetime import UTC, datetime, timedelta

import pytest
from pypdf import PdfReader
from sqlmodel import func, select

from activities.documents import (
    REPORT_GENERATED,
    DocumentActivities,
    history_periods,
    monthly_history,
    report_language,
)
from documents import MissingGlyphsError, ReportCustomer, render_html, render_report
from documents.formatting import moment, money, percent_bp
from documents.messages import LANGUAGES, MESSAGES
from documents.report import protection_schedule
from domain.policy import Terms
from models import AuditEvent, Customer, ReassignmentRequest, RequestDocument
from models.audit import verify_chain
from tests.report_fixtures import (
    CUSTOMERS,
    DB_CUSTOMER_NAMES,
    PERIODS,
    WINDOW_END,
    make_report_request,
    report_data,
)

TZ = "Asia/Shanghai"


def pdf_text(pdf: bytes) -> str:
    """All text of the PDF with whitespace removed (line breaks fall anywhere in CJK text)."""
    reader = PdfReader(io.BytesIO(pdf))
    return re.sub(r"\s+", "", "".join(page.extract_text() or "" for page in reader.pages))


def pdf_fonts(pdf: bytes) -> set[str]:
    """The /BaseFont names of every font the pages use."""
    names = set()
    for page in PdfReader(io.BytesIO(pdf)).pages:
        fonts = page["/Resources"].get_object().get("/Font", {})
        for ref in fonts.values():
            names.add(str(ref.get_object()["/BaseFont"]))
    return names


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


# --- the catalog and the formats --------------------------------------------------------------


def test_both_languages_have_every_message_with_the_same_placeholders():
    fields = string.Formatter()
    for key, texts in MESSAGES.items():
        assert set(texts) == set(LANGUAGES), key
        placeholders = {lang: {f for _, f, _, _ in fields.parse(texts[lang]) if f}
                        for lang in LANGUAGES}
        assert placeholders["zh-CN"] == placeholders["en"], key


def test_money_is_exact_from_fen():
    assert money(123_456) == "¥1,234.56"
    assert money(5) == "¥0.05"
    assert money(-100_001) == "-¥1,000.01"
    assert money(123_456_789_012_345_678) == "¥1,234,567,890,123,456.78"
    assert percent_bp(5_000) == "50%" and percent_bp(325) == "3.25%"


def test_times_are_shown_in_the_org_timezone():
    at = datetime(2026, 2, 28, 17, 30, tzinfo=UTC)
    assert moment(at, "zh-CN", TZ) == "2026年3月1日 01:30（中国标准时间）"
    assert moment(at, "en", TZ) == "March 1, 2026, 01:30 (China Standard Time)"


# --- the protection period in money -------------------------------------------------------------


def test_protection_schedule_adds_up_to_the_assessment():
    data = report_data()
    assert data.assessment is not None
    schedule = protection_schedule(data.assessment, data.terms, WINDOW_END)
    assert schedule is not None
    assert schedule.kept_fen == data.assessment.kept_through_protection_fen
    assert sum(r.kept_fen for r in schedule.rows) == schedule.kept_fen
    assert sum(r.without_move_fen for r in schedule.rows) == schedule.without_move_fen
    assert len(schedule.rows) == 6  # 180 days: five full average months and 0.91 of one
    assert [r.months for r in schedule.rows[:5]] == [1] * 5
    assert 0.91 < schedule.rows[-1].months < 0.92
    assert schedule.rows[0].start == WINDOW_END and not schedule.beyond_horizon


def test_protection_longer_than_the_horizon_stops_at_the_horizon():
    data = report_data()
    assert data.assessment is not None
    terms = data.terms.model_copy(update={"protection_period": timedelta(days=800)})
    schedule = protection_schedule(data.assessment, terms, WINDOW_END)
    assert schedule is not None and schedule.beyond_horizon and len(schedule.rows) == 12
    assert schedule.without_move_fen == data.assessment.projected_commission_fen


def test_no_protection_has_no_schedule():
    data = report_data()
    assert data.assessment is not None
    terms = Terms(protection_period=timedelta(0), protection_share_bp=5_000, inherited_rate_bp=200)
    assert protection_schedule(data.assessment, terms, WINDOW_END) is None


# --- rendering ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered():
    return {lang: render_report(report_data(), lang) for lang in LANGUAGES}


@pytest.mark.parametrize("language", LANGUAGES)
def test_pdf_names_the_customers_figures_and_appeal_deadline(rendered, language):
    doc = rendered[language]
    assert doc.pdf.startswith(b"%PDF-")
    assert doc.sha256 == hashlib.sha256(doc.pdf).hexdigest()
    text = pdf_text(doc.pdf)
    data = report_data()
    a = data.assessment
    assert a is not None
    for customer in CUSTOMERS:  # Chinese names too: the CJK font has the glyphs and a ToUnicode
        assert squash(customer.name) in text, customer.name
        assert customer.code in text
    for fen in (a.projected_loss_fen, a.projected_commission_fen, a.kept_through_protection_fen,
                data.terms.compensation_fen, a.total_expected_revenue_fen,
                *(o.remaining_loss_fen for o in a.alternatives)):
        assert money(fen) in text, money(fen)
    schedule = protection_schedule(a, data.terms, WINDOW_END)
    assert schedule is not None
    for row in schedule.rows:  # the month-by-month table
        assert money(row.kept_fen) in text
    # the history: 12-month totals per customer
    assert money(sum(m.revenue_fen for m in CUSTOMERS[0].history)) in text
    assert squash(moment(WINDOW_END, language, TZ)) in text  # the appeal deadline
    assert squash(data.salesperson.name) in text and squash(data.receiver.name) in text
    assert "/api/v1/policies/3" in text and "/api/v1/reassignments/42/appeal" in text
    if language == "zh-CN":
        assert "申诉截止" in text and "每月订单数" in text and "每月收入" in text
        assert "2026年3月16日18:00" in text
    else:
        assert "Appealdeadline" in text and "Orderspermonth" in text
        assert "March16,2026,18:00" in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_html_is_standalone_with_inline_svg_charts(rendered, language):
    html = rendered[language].html
    assert html.startswith("<!doctype html>") and f'<html lang="{language}">' in html
    assert html.count("<svg") == 2 * len(CUSTOMERS)  # revenue and orders per customer
    assert "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert 'name="viewport"' in html  # readable on a phone


def test_the_chinese_report_embeds_the_simplified_chinese_font(rendered):
    fonts = pdf_fonts(rendered["zh-CN"].pdf)
    assert any("CJK-SC" in f for f in fonts), fonts
    assert not any("CJK-JP" in f for f in fonts), "CJK text fell back to Japanese glyphs"


def test_rendering_is_deterministic(rendered):
    again = render_report(report_data(), "zh-CN")
    assert again.sha256 == rendered["zh-CN"].sha256 and again.html == rendered["zh-CN"].html


def test_pending_assessment_renders_without_the_impact_figures():
    doc = render_report(report_data(with_assessment=False), "zh-CN")
    text = pdf_text(doc.pdf)
    assert "收入影响与补偿评估尚未完成" in text
    assert squash(CUSTOMERS[0].name) in text and "2026年3月16日18:00" in text
    assert "可选方案" not in text
    english = pdf_text(render_report(report_data(with_assessment=False), "en").pdf)
    assert "stillpending" in english


def test_text_from_the_database_is_escaped():
    evil = ReportCustomer(id=99, code="X-1", name='<script>alert("x")</script>',
                          history=CUSTOMERS[0].history)
    html = render_html(report_data(customers=[evil], note="<b>bold</b>"), "en")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<b>bold</b>" not in html


def test_a_character_no_font_has_fails_instead_of_drawing_boxes():
    odd = ReportCustomer(id=98, code="X-2", name="Plane 16 \U0010fffd",
                         history=CUSTOMERS[0].history)
    with pytest.raises(MissingGlyphsError, match="fonts-noto-cjk"):
        render_report(report_data(customers=[odd]), "en")


def test_unknown_language_is_refused():
    with pytest.raises(ValueError, match="language"):
        render_html(report_data(), "fr")  # type: ignore[arg-type]


def test_report_language_follows_the_locale():
    assert report_language("en") == report_language("en-US") == report_language("en_GB") == "en"
    assert report_language("zh-CN") == report_language(None) == report_language("") == "zh-CN"


# --- the activity -----------------------------------------------------------------------------


def count(sessions, model, *where) -> int:
    with sessions() as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


def test_history_is_the_twelve_full_months_before_submission():
    assert history_periods(datetime(2026, 3, 2, 1, 30, tzinfo=UTC), TZ) == PERIODS
    # 2026-02-28T17:30Z is already March in Shanghai: February is the last full month
    assert history_periods(datetime(2026, 2, 28, 17, 30, tzinfo=UTC), TZ)[-1] == "2026-02"


def test_monthly_history_groups_orders_and_nets_refunds(sessions, org):
    make_report_request(sessions, org)
    first = org.customers_a1[0]
    with sessions() as s:
        history = monthly_history(s, org.customers_a1[:2], PERIODS)
    months = {m.period: m for m in history[first]}
    assert [m.period for m in history[first]] == PERIODS
    # customer 0 skips months 3, 7 and 11; month 5 (2025-08) had a refund of ¥1,000
    assert months["2025-06"].orders == 0 and months["2025-06"].revenue_fen == 0
    assert months["2025-03"].orders == 1 and months["2025-03"].revenue_fen == 1_234_567
    assert months["2025-08"].orders == 1
    assert months["2025-08"].revenue_fen == 1_234_567 + 5 * 10_001 - 100_000
    # the factory's order of 2025-12-02 is in December too
    assert months["2025-12"].orders == 2


def test_activity_stores_one_report_and_a_retry_stores_none(sessions, org):
    request_id = make_report_request(sessions, org)
    acts = DocumentActivities(sessions, TZ)
    window_end = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)
    sha = acts.render_personal_report(request_id, window_end)
    assert acts.render_personal_report(request_id, window_end) == sha  # the retry
    assert count(sessions, RequestDocument, RequestDocument.request_id == request_id) == 1
    assert count(sessions, AuditEvent, AuditEvent.event_type == REPORT_GENERATED) == 1
    with sessions() as s:
        doc = s.exec(select(RequestDocument).where(RequestDocument.request_id == request_id)
                     ).one()
        request = s.get(ReassignmentRequest, request_id)
        codes = [s.get(Customer, cid).code for cid in request.customer_ids]
        assert verify_chain(s)[0]
    assert (doc.kind, doc.version, doc.language, doc.sha256) == ("REPORT", 1, "zh-CN", sha)
    assert hashlib.sha256(doc.pdf).hexdigest() == sha
    text = pdf_text(doc.pdf)
    for name in DB_CUSTOMER_NAMES:
        assert name in text
    for code in codes:
        assert code in text
    assert squash(moment(window_end, "zh-CN", TZ)) in text  # the appeal deadline
    assert money(request.assessment["projected_loss_fen"]) in text
    assert money(request.terms["compensation_fen"]) in text
    assert "宁波海曙五金制品厂" in doc.html


def test_changed_terms_store_the_next_version(sessions, org):
    request_id = make_report_request(sessions, org)
    acts = DocumentActivities(sessions, TZ)
    window_end = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)
    first = acts.render_personal_report(request_id, window_end)
    with sessions() as s:  # HR amends the terms after an appeal
        request = s.get(ReassignmentRequest, request_id)
        request.terms = {**request.terms, "compensation_fen": 999_999}
    second = acts.render_personal_report(request_id, window_end)
    assert second != first
    with sessions() as s:
        docs = s.exec(select(RequestDocument).where(RequestDocument.request_id == request_id)
                      .order_by(RequestDocument.version)).all()
    assert [(d.version, d.sha256) for d in docs] == [(1, first), (2, second)]
    assert "¥9,999.99" in pdf_text(docs[1].pdf)
    assert acts.render_personal_report(request_id, window_end) == second  # retry: nothing new
    assert count(sessions, RequestDocument, RequestDocument.request_id == request_id) == 2


def test_activity_renders_in_the_salespersons_language_and_without_assessment(sessions, org):
    request_id = make_report_request(sessions, org, locale="en-US", with_assessment=False)
    acts = DocumentActivities(sessions, TZ)
    acts.render_personal_report(request_id, datetime(2026, 3, 9, 10, 0, tzinfo=UTC))
    with sessions() as s:
        doc = s.exec(select(RequestDocument).where(RequestDocument.request_id == request_id)
                     ).one()
    assert doc.language == "en"
    text = pdf_text(doc.pdf)
    assert "stillpending" in text and DB_CUSTOMER_NAMES[0] in text


def test_activity_runs_in_an_activity_context(sessions, org):
    from temporalio.testing import ActivityEnvironment

    request_id = make_report_request(sessions, org)
    acts = DocumentActivities(sessions, TZ)
    window_end = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)
    sha = ActivityEnvironment().run(acts.render_personal_report, request_id, window_end)
    assert sha == acts.render_personal_report(request_id, window_end)
    assert count(sessions, RequestDocument, RequestDocument.request_id == request_id) == 1


def test_activity_refuses_an_unknown_request(sessions, org):
    from temporalio.exceptions import ApplicationError

    with pytest.raises(ApplicationError) as err:
        DocumentActivities(sessions, TZ).render_personal_report(
            987_654, datetime(2026, 3, 9, tzinfo=UTC))
    assert err.value.non_retryable and err.value.type == "REQUEST_NOT_FOUND"
