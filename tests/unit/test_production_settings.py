"""BATON_ENV=production refuses the development defaults, naming each one and its fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from settings import DEV_JWT_SECRET, ProductionSettingsError, Settings

ROOT = Path(__file__).resolve().parents[2]
JWT_SECRET = "9f1c2e7a4b5d6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9"
PAYLOAD_KEYS = "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
DATABASE_URL = "postgresql+psycopg://baton:s3cret-Random-42@db.internal:5432/baton"


@pytest.fixture(autouse=True)
def _no_baton_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("BATON_"):
            monkeypatch.delenv(name)


@pytest.fixture
def seal_file(tmp_path: Path) -> Path:
    path = tmp_path / "seal.p12"
    path.write_bytes(b"PKCS#12 placeholder: only its presence is checked here")
    return path


def production(seal_file: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        env="production", jwt_secret=JWT_SECRET, payload_keys=SecretStr(PAYLOAD_KEYS),
        seal_pkcs12_path=seal_file, seal_pkcs12_password=SecretStr("p12-password"),
        database_url=DATABASE_URL, webauthn_rp_id="baton.example.com",
        webauthn_origin="https://baton.example.com")
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def refusal(seal_file: Path, **overrides: Any) -> str:
    with pytest.raises(ProductionSettingsError) as caught:
        production(seal_file, **overrides)
    return str(caught.value)


def test_development_is_the_default_and_accepts_every_development_value() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.env == "development"
    assert settings.jwt_secret == DEV_JWT_SECRET
    assert len(settings.production_problems()) == 6  # known, and allowed in development


def test_production_with_real_values_starts(seal_file: Path) -> None:
    settings = production(seal_file)
    assert settings.env == "production"
    assert settings.production_problems() == []
    # a subdomain of the relying party id is a valid origin too
    assert production(seal_file, webauthn_origin="https://sign.baton.example.com:8443")


@pytest.mark.parametrize(("overrides", "variable", "advice"), [
    ({"jwt_secret": DEV_JWT_SECRET}, "BATON_JWT_SECRET", "openssl rand -hex 32"),
    ({"payload_keys": None}, "BATON_PAYLOAD_KEYS", "payload-key new"),
    ({"payload_keys": SecretStr("  ")}, "BATON_PAYLOAD_KEYS", "payload-key new"),
    ({"seal_pkcs12_path": None}, "BATON_SEAL_PKCS12_PATH", "licensed CA"),
    ({"seal_pkcs12_path": Path("/nonexistent/seal.p12")}, "BATON_SEAL_PKCS12_PATH",
     "is not a file"),
    ({"database_url": "sqlite:////srv/baton/baton.db"}, "BATON_DATABASE_URL", "PostgreSQL"),
    ({"database_url": "postgresql+psycopg://baton:baton@postgres:5432/baton"},
     "BATON_DATABASE_URL", "APP_DB_PASSWORD"),
    ({"database_url": "not a url"}, "BATON_DATABASE_URL", "postgresql+psycopg://"),
    ({"webauthn_rp_id": "localhost", "webauthn_origin": "https://localhost"},
     "BATON_WEBAUTHN_RP_ID", "site's domain"),
    ({"webauthn_origin": "http://baton.example.com"}, "BATON_WEBAUTHN_ORIGIN", "https"),
    ({"webauthn_origin": "https://baton.other.org"}, "BATON_WEBAUTHN_ORIGIN",
     "same site"),
])
def test_production_refuses_each_development_value(
        seal_file: Path, overrides: dict[str, Any], variable: str, advice: str) -> None:
    message = refusal(seal_file, **overrides)
    problems = [line for line in message.splitlines() if line.startswith("  - ")]
    assert len(problems) == 1, message
    assert variable in problems[0] and advice in problems[0]


def test_every_problem_is_listed_at_once_and_no_secret_is_quoted(seal_file: Path) -> None:
    message = refusal(seal_file, jwt_secret=DEV_JWT_SECRET, payload_keys=None,
                      seal_pkcs12_path=None,
                      database_url="postgresql+psycopg://baton:baton@postgres/baton",
                      webauthn_rp_id="localhost", webauthn_origin="http://localhost:8000")
    for variable in ("BATON_JWT_SECRET", "BATON_PAYLOAD_KEYS", "BATON_SEAL_PKCS12_PATH",
                     "BATON_DATABASE_URL", "BATON_WEBAUTHN_RP_ID", "BATON_WEBAUTHN_ORIGIN"):
        assert variable in message
    assert DEV_JWT_SECRET not in message
    assert "baton:baton@" not in message
    # a secret that is fine is never echoed either, whatever else is wrong
    other = refusal(seal_file, webauthn_origin="http://baton.example.com")
    assert JWT_SECRET not in other and PAYLOAD_KEYS not in other
    assert "s3cret-Random-42" not in other and "p12-password" not in other


def test_the_environment_selects_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_ENV", "production")
    with pytest.raises(ProductionSettingsError):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("BATON_ENV", "staging")
    with pytest.raises(ValueError, match="development"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_the_cli_prints_what_to_fix_and_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    env.update(BATON_ENV="production", BATON_DATA_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "cli.py", "migrate"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: BATON_ENV=production")
    assert "Traceback" not in done.stderr
    assert "BATON_JWT_SECRET" in done.stderr and "BATON_DATABASE_URL" in done.stderr
