"""Tampering with the audit table as someone with DDL rights could: switch the append-only
triggers off (PostgreSQL: ALTER TABLE ... DISABLE TRIGGER, as the superuser the tests connect
as; SQLite: drop them), change rows, and switch them on again, all in one transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

PG_TRIGGERS = ("audit_event_no_update_delete", "audit_event_no_truncate")


def tamper(engine: Engine, sql: str, **params: Any) -> int:
    """Run `sql` on audit_event with its triggers off; return the number of rows it hit."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            for name in PG_TRIGGERS:
                conn.exec_driver_sql(f"ALTER TABLE audit_event DISABLE TRIGGER {name}")
            count = conn.execute(text(sql), params).rowcount
            for name in PG_TRIGGERS:
                conn.exec_driver_sql(f"ALTER TABLE audit_event ENABLE TRIGGER {name}")
            return count
        triggers = conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
            "AND tbl_name = 'audit_event'").all()
        for name, _ in triggers:
            conn.exec_driver_sql(f"DROP TRIGGER {name}")
        count = conn.execute(text(sql), params).rowcount
        for _, create in triggers:
            conn.exec_driver_sql(create)
        return count
