"""Shared fixtures: a migrated database per test (SQLite by default, PostgreSQL on request)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from models.db import SessionFactory, make_engine, migrate, session_factory
from tests.factories import SmallOrg, build_small_org

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"


def binary(name: str) -> str:
    """Path of a Temporal binary installed by pip into the project's venv (never downloaded)."""
    import shutil

    path = VENV_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found; run `make install` (pip package provides it)")
    return found


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh, migrated database. BATON_TEST_DATABASE=postgres switches to PostgreSQL."""
    url = f"sqlite:///{tmp_path / 'baton.db'}"
    if os.environ.get("BATON_TEST_DATABASE_URL"):
        url = os.environ["BATON_TEST_DATABASE_URL"]
    migrate(url)
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: Engine) -> SessionFactory:
    return session_factory(engine)


@pytest.fixture
def org(sessions: SessionFactory) -> SmallOrg:
    with sessions() as session:
        return build_small_org(session)
