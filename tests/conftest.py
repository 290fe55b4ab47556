"""Shared fixtures: a fresh, migrated database per test, on SQLite and on PostgreSQL.

Every test that uses `db_url` (or `engine`, `sessions`, `org`) runs once per backend, with ids
`[sqlite]` and `[postgres]`. Environment:
- BATON_TEST_BACKENDS: comma list of backends to run, default "sqlite,postgres".
- BATON_TEST_POSTGRES_URL: use this PostgreSQL server (base URL, superuser or CREATEDB) instead
  of starting a temporary one from the local server binaries (see tests/pg.py).
- CI: when set, missing PostgreSQL binaries fail the postgres tests instead of skipping them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from models.db import SessionFactory, engine_for, make_engine, migrate, session_factory
from tests.factories import SmallOrg, build_small_org
from tests.pg import (
    database_url,
    find_bin_dir,
    fresh_database,
    sigterm_as_interrupt,
    temporary_postgres,
)

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


BACKENDS = ("sqlite", "postgres")


def _selected_backends() -> list[str]:
    raw = os.environ.get("BATON_TEST_BACKENDS", ",".join(BACKENDS))
    chosen = [b.strip().lower() for b in raw.split(",") if b.strip()]
    unknown = sorted(set(chosen) - set(BACKENDS))
    if unknown or not chosen:
        raise pytest.UsageError(
            f"BATON_TEST_BACKENDS={raw!r}: choose one or more of {', '.join(BACKENDS)}"
        )
    return [b for b in BACKENDS if b in chosen]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Base URL of a PostgreSQL server for this test session, ending in "/".

    A temporary cluster from the local PostgreSQL 15 binaries, unless BATON_TEST_POSTGRES_URL
    names a server. Without binaries: skip, or fail when CI is set.
    """
    external = os.environ.get("BATON_TEST_POSTGRES_URL")
    if external:
        yield database_url(external, "").rstrip("/") + "/"
        return
    bin_dir = find_bin_dir()
    if bin_dir is None:
        reason = ("PostgreSQL server binaries not found (looked in $BATON_PG_BIN, "
                  "/usr/lib/postgresql/15/bin and PATH); install postgresql-15, set "
                  "BATON_TEST_POSTGRES_URL, or run with BATON_TEST_BACKENDS=sqlite")
        if _in_ci():
            pytest.fail(f"{reason}. CI is set, so this fails instead of skipping.",
                        pytrace=False)
        pytest.skip(reason)
    with sigterm_as_interrupt(), temporary_postgres(bin_dir) as url:
        yield url


@pytest.fixture(
    params=[
        pytest.param(b, id=b, marks=[pytest.mark.postgres] if b == "postgres" else [])
        for b in _selected_backends()
    ]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database: a SQLite file, or a new PostgreSQL database per test."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'baton.db'}"
        migrate(url)
        yield url
        return
    server = request.getfixturevalue("postgres_server")
    with fresh_database(server) as url:
        try:
            migrate(url)
            yield url
        finally:
            engine_for(url).dispose()  # the cached engine, if code under test used one


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
