""".env.example documents every setting, with its true default, and asks for exactly what a
production deployment must provide."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from settings import Settings
from tests.deploy.compose import MissingVariable, load
from tests.deploy.test_compose import COMPOSE_FILE, settings_env_names

ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = ROOT / ".env.example"
_ACTIVE = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$", re.M)
_COMMENTED = re.compile(r"^# (?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$", re.M)
_PROBLEM_VARIABLE = re.compile(r"\bBATON_[A-Z0-9_]+")


def entries(pattern: re.Pattern[str]) -> dict[str, str]:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    return {m.group("name"): m.group("value") for m in pattern.finditer(text)}


def required_by_compose() -> set[str]:
    return set(re.findall(r"\$\{(\w+):?\?", COMPOSE_FILE.read_text(encoding="utf-8")))


@pytest.fixture(autouse=True)
def _no_baton_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("BATON_") or name == "PROMETHEUS_MULTIPROC_DIR":
            monkeypatch.delenv(name)


def test_every_setting_is_documented() -> None:
    documented = set(entries(_ACTIVE)) | set(entries(_COMMENTED))
    missing = settings_env_names() - documented
    assert not missing, f"add these settings to .env.example: {sorted(missing)}"


def test_no_setting_in_it_is_unknown() -> None:
    named = {n for n in set(entries(_ACTIVE)) | set(entries(_COMMENTED)) if n.startswith("BATON_")}
    unknown = named - settings_env_names()
    assert not unknown, f".env.example names settings that settings.py lacks: {sorted(unknown)}"


def test_the_defaults_it_shows_are_the_real_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    shown = {n: v for n, v in entries(_COMMENTED).items()
             if v and n.startswith("BATON_") and n != "BATON_ENV"}
    assert len(shown) >= 20
    for name, value in shown.items():
        field = name.removeprefix("BATON_").lower()
        monkeypatch.setenv(name, value)
        assert getattr(Settings(_env_file=None), field) == getattr(defaults, field), name  # type: ignore[call-arg]
        monkeypatch.delenv(name)


def test_it_asks_for_exactly_what_compose_requires() -> None:
    """The uncommented lines are the values an operator must fill in: docker compose refuses
    to start while any of them is empty."""
    active = entries(_ACTIVE)
    assert set(active) == required_by_compose()
    assert all(value == "" for value in active.values()), "no secret belongs in the example"
    with pytest.raises(MissingVariable):
        load(COMPOSE_FILE, active)


def test_production_requirements_are_asked_for_or_set_by_compose() -> None:
    """Every setting that BATON_ENV=production refuses at its default is either filled in from
    .env (required by compose) or fixed by docker-compose.yml itself."""
    problems = Settings(_env_file=None).production_problems()  # type: ignore[call-arg]
    refused = {m.group(0) for p in problems for m in _PROBLEM_VARIABLE.finditer(p)}
    assert {"BATON_JWT_SECRET", "BATON_PAYLOAD_KEYS", "BATON_DATABASE_URL",
            "BATON_SEAL_PKCS12_PATH", "BATON_WEBAUTHN_RP_ID", "BATON_WEBAUTHN_ORIGIN"} <= refused
    model, _ = load(COMPOSE_FILE, {name: "x" for name in required_by_compose()})
    set_by_compose = set(model["services"]["api"]["environment"])
    for name in refused:
        assert name in required_by_compose() or name in set_by_compose, name
