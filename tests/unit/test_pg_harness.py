"""The PostgreSQL test harness (tests/pg.py) cleans up after itself, also on failure."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import _selected_backends
from tests.pg import find_bin_dir, fresh_database, temporary_postgres

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif("postgres" not in _selected_backends(),
                       reason="BATON_TEST_BACKENDS excludes postgres"),
]


def _conninfo(url: str, database: str | None = None) -> str:
    u = make_url(url).set(drivername="postgresql")
    return (u.set(database=database) if database else u).render_as_string(hide_password=False)


def _databases(base_url: str) -> set[str]:
    with psycopg.connect(_conninfo(base_url, "postgres")) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_fresh_database_is_dropped_even_when_the_block_fails(postgres_server: str) -> None:
    leftover: psycopg.Connection | None = None
    with pytest.raises(RuntimeError, match="boom"), fresh_database(postgres_server) as url:
        name = make_url(url).database
        assert name is not None and name.startswith("t_")
        assert name in _databases(postgres_server)
        leftover = psycopg.connect(_conninfo(url))  # still open at exit: FORCE ends it
        raise RuntimeError("boom")
    try:
        assert name not in _databases(postgres_server)
    finally:
        assert leftover is not None
        leftover.close()


def test_temporary_server_is_stopped_and_removed_even_when_the_block_fails() -> None:
    if find_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries not found")
    with pytest.raises(RuntimeError, match="boom"), temporary_postgres() as url:
        port = make_url(url).port
        assert port is not None
        with psycopg.connect(_conninfo(url, "postgres")) as conn:
            row = conn.execute("SHOW data_directory").fetchone()
            assert row is not None
            data_dir = Path(row[0])
            for setting in ("fsync", "full_page_writes", "synchronous_commit"):
                assert conn.execute(f"SHOW {setting}").fetchone() == ("off",)
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert data_dir.is_dir() and _port_open(port)
        raise RuntimeError("boom")
    assert not data_dir.parent.exists()
    assert not _port_open(port)
