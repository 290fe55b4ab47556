"""deploy/postgres/10-roles.sh, run as the PostgreSQL image runs it on a fresh volume, against
the tests' temporary PostgreSQL 15: Baton's and Temporal's roles, neither a superuser."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "postgres" / "10-roles.sh"

pytestmark = pytest.mark.postgres


def _conninfo(server: str, user: str, database: str) -> str:
    url = make_url(server)
    return f"host={url.host} port={url.port} user={user} dbname={database}"


def test_init_script_creates_unprivileged_roles(postgres_server: str) -> None:
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed")
    url = make_url(postgres_server)
    env = {**os.environ, "PGHOST": str(url.host), "PGPORT": str(url.port),
           "POSTGRES_USER": str(url.username), "APP_DB_PASSWORD": "app-pw-'quoted'",
           "TEMPORAL_DB_PASSWORD": "temporal-pw"}
    superuser = _conninfo(postgres_server, str(url.username), "postgres")
    try:
        done = subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        with psycopg.connect(superuser) as conn:
            roles = {name: flags for name, *flags in conn.execute(
                "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles "
                "WHERE rolname IN ('baton', 'temporal')").fetchall()}
            owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database "
                                 "WHERE datname = 'baton'").fetchone()
        assert roles == {"baton": [False, False, False], "temporal": [False, True, False]}
        assert owner == ("baton",)
        # Baton builds its schema in its own database (PostgreSQL 15: public belongs to it)
        with psycopg.connect(_conninfo(postgres_server, "baton", "baton")) as conn:
            conn.execute("CREATE TABLE probe (id int)")
        # Temporal creates its databases (temporal-sql-tool create); Baton cannot
        with psycopg.connect(_conninfo(postgres_server, "temporal", "postgres"),
                             autocommit=True) as conn:
            conn.execute("CREATE DATABASE temporal_probe")
        with psycopg.connect(_conninfo(postgres_server, "baton", "postgres"),
                             autocommit=True) as conn, \
                pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE DATABASE baton_probe")
    finally:
        with psycopg.connect(superuser, autocommit=True) as conn:
            for statement in ("DROP DATABASE IF EXISTS temporal_probe WITH (FORCE)",
                              "DROP DATABASE IF EXISTS baton WITH (FORCE)",
                              "DROP ROLE IF EXISTS temporal", "DROP ROLE IF EXISTS baton"):
                conn.execute(statement)  # type: ignore[arg-type]
