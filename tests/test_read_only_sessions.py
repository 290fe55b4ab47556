"""Read-only sessions (models.db.read_only_sessions): reads do not queue for SQLite's write lock,
and a read-only session refuses to write."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from models import OrgUnit
from models.db import SessionFactory, read_only_sessions


def test_a_read_only_session_reads_while_a_writer_holds_the_lock(
        engine: Engine, sessions: SessionFactory) -> None:
    with sessions() as session:
        session.add(OrgUnit(name="Before", function="company"))
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with sessions() as session:  # BEGIN IMMEDIATE on SQLite: the write lock
            session.add(OrgUnit(name="Uncommitted", function="company"))
            session.flush()
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        with read_only_sessions(sessions)() as session:
            names = session.execute(text("SELECT name FROM org_unit")).scalars().all()
        waited = time.monotonic() - started
    finally:
        release.set()
        thread.join()
    assert names == ["Before"]  # the committed snapshot, not the writer's row
    # a write-lock session would wait for the writer (up to busy_timeout, 30 s)
    assert waited < 5


def test_a_read_only_session_refuses_to_write(sessions: SessionFactory) -> None:
    with pytest.raises(RuntimeError, match="read-only session"), \
            read_only_sessions(sessions)() as session:
        session.add(OrgUnit(name="Nope", function="company"))
        session.flush()
    with sessions() as session:
        assert session.execute(text("SELECT count(*) FROM org_unit")).scalar_one() == 0


def test_a_factory_without_a_twin_is_used_as_it_is() -> None:
    def own_factory() -> None:  # a test's own factory: no read-only twin
        raise AssertionError("not called")

    assert read_only_sessions(own_factory) is own_factory  # type: ignore[arg-type, comparison-overlap]
