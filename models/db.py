"""The engine, sessions and schema migration. The only place that builds an engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

ROOT = Path(__file__).resolve().parent.parent

SessionFactory = Callable[[], AbstractContextManager[Session]]
# the execution option that marks a read-only session's connections (and the factory's twin)
READ_ONLY_OPTION = "baton_read_only"


def make_engine(url: str, **kwargs: Any) -> Engine:
    # hide_parameters: a database error's message (and so a logged traceback) leaves out the
    # statement's values, which may be names, phone numbers or e-mail addresses
    if url.startswith("sqlite"):
        path = make_url(url).database  # None or "" or ":memory:" for an in-memory database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            if "poolclass" not in kwargs:
                # a connection for each of the API's 40 worker threads (anyio's default): with
                # the default 5 + 10, requests under load waited for a pooled connection and
                # failed after 30 s (bench/api_load.py); SQLite connections are file handles
                kwargs = {"pool_size": 10, "max_overflow": 30, **kwargs}
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30},
            hide_parameters=True, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        # BEGIN IMMEDIATE: take the write lock at the start, so concurrent writers queue
        # instead of failing with "database is locked" halfway through a transaction.
        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        # A read-only session (session_factory(read_only=True)) begins DEFERRED instead: under
        # WAL it reads a snapshot beside the writer, so reads neither queue for the write lock
        # nor hold it (bench/api_load.py: every request waited behind every other one).
        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            deferred = conn.get_execution_options().get(READ_ONLY_OPTION)
            conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")

        return engine
    if "poolclass" not in kwargs:
        # a connection for each of the API's 40 worker threads, as on SQLite: with 30, 12 of
        # 4,255 requests under 100 clients got 503 database-unavailable after about 30 s,
        # the pool timeout (bench/api_load.py, load average 16)
        kwargs = {"pool_size": 10, "max_overflow": 30, **kwargs}
    return create_engine(url, pool_pre_ping=True, hide_parameters=True, **kwargs)


def session_factory(engine: Engine, *, read_only: bool = False) -> SessionFactory:
    """A factory of transactional sessions: commit on success, roll back on error.

    read_only: for work that only reads (see read_only_sessions): on SQLite the transaction
    begins deferred rather than taking the write lock; a flush of any change raises.
    """
    bind = engine.execution_options(**{READ_ONLY_OPTION: True}) if read_only else engine

    @contextmanager
    def _session() -> Iterator[Session]:
        with Session(bind, expire_on_commit=False) as session:
            if read_only:
                event.listen(session, "before_flush", _refuse_writes)
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    if not read_only:
        setattr(_session, READ_ONLY_OPTION, session_factory(engine, read_only=True))
    return _session


def read_only_sessions(sessions: SessionFactory) -> SessionFactory:
    """The read-only twin of a factory made by session_factory; any other factory (a test's
    own) is returned unchanged, so it keeps working, with the write lock on SQLite."""
    twin: SessionFactory = getattr(sessions, READ_ONLY_OPTION, sessions)
    return twin


def _refuse_writes(session: Session, _context: Any, _instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("a read-only session was asked to write; use a session from "
                           "session_factory(engine) for this work")


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def autogenerate_filter(dialect: str) -> Any:
    """Alembic's `include_object`: leaves out the indexes declared for another database only
    (`Index(...).ddl_if(dialect=...)`, e.g. PostgreSQL's trigram indexes), which neither
    create_all nor the migrations build there."""
    def include(obj: Any, _name: str | None, type_: str, reflected: bool,
                _compare_to: Any) -> bool:
        if type_ == "index" and not reflected:
            only = getattr(getattr(obj, "_ddl_if", None), "dialect", None)
            return only is None or only == dialect
        return True
    return include


def migrate(url: str) -> None:
    """Bring the schema to the newest Alembic revision."""
    from alembic import command

    make_engine(url).dispose()  # creates the SQLite directory when needed
    command.upgrade(alembic_config(url), "head")


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    return make_engine(url)
