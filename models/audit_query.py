"""Searching and exporting the audit log: one filter, a page for the API, batches for CSV.

Pages use limit/offset; the export walks the chain by chain_index (keyset) in short
transactions, so a long download neither holds a transaction open (on SQLite that is the
write lock) nor keeps the whole result in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func
from sqlalchemy import select as core_select
from sqlalchemy.engine import RowMapping
from sqlmodel import Session, col, select

from models.audit import AuditEvent
from models.db import SessionFactory

EXPORT_BATCH = 1000


@dataclass(frozen=True)
class AuditFilter:
    """All given conditions must hold. The time range is half-open: [occurred_from,
    occurred_to)."""

    event_types: tuple[str, ...] = ()
    request_id: int | None = None
    actor_id: int | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.event_types:
            out.append(col(AuditEvent.event_type).in_(self.event_types))
        if self.request_id is not None:
            out.append(col(AuditEvent.request_id) == self.request_id)
        if self.actor_id is not None:
            out.append(col(AuditEvent.actor_id) == self.actor_id)
        if self.entity_type is not None:
            out.append(col(AuditEvent.entity_type) == self.entity_type)
        if self.entity_id is not None:
            out.append(col(AuditEvent.entity_id) == self.entity_id)
        if self.occurred_from is not None:
            out.append(col(AuditEvent.occurred_at) >= self.occurred_from)
        if self.occurred_to is not None:
            out.append(col(AuditEvent.occurred_at) < self.occurred_to)
        return out

    def as_json(self) -> dict[str, Any]:
        """The filters that were set, JSON-ready (for the AUDIT_EXPORTED event)."""
        values: dict[str, Any] = {
            "event_type": list(self.event_types) or None, "request_id": self.request_id,
            "actor_id": self.actor_id, "entity_type": self.entity_type,
            "entity_id": self.entity_id,
            "occurred_from": self.occurred_from.isoformat() if self.occurred_from else None,
            "occurred_to": self.occurred_to.isoformat() if self.occurred_to else None,
        }
        return {k: v for k, v in values.items() if v is not None}


def search(session: Session, flt: AuditFilter, *, newest_first: bool, limit: int,
           offset: int) -> tuple[list[AuditEvent], int]:
    """One page of matching events, newest first or in chain order; and how many match."""
    clauses = flt.clauses()
    order = col(AuditEvent.chain_index).desc() if newest_first else col(AuditEvent.chain_index)
    items = session.exec(select(AuditEvent).where(*clauses).order_by(order)
                         .limit(limit).offset(offset)).all()
    total = session.exec(select(func.count()).select_from(AuditEvent).where(*clauses)).one()
    return list(items), int(total)


def export_batches(sessions: SessionFactory, flt: AuditFilter, *, newest_first: bool,
                   through_index: int, batch: int = EXPORT_BATCH) -> Iterator[list[RowMapping]]:
    """Matching events with chain_index <= through_index, batch by batch, each batch read in
    its own short transaction (keyset on chain_index)."""
    table = AuditEvent.__table__  # type: ignore[attr-defined]
    chain_index = table.c.chain_index
    clauses = flt.clauses()
    cursor: int | None = None
    while True:
        query = core_select(table).where(chain_index <= through_index, *clauses)
        if cursor is not None:
            query = query.where(chain_index < cursor if newest_first else chain_index > cursor)
        query = query.order_by(chain_index.desc() if newest_first else chain_index).limit(batch)
        with sessions() as session:
            rows = list(session.connection().execute(query).mappings())
        if not rows:
            return
        yield rows
        if len(rows) < batch:
            return
        cursor = int(rows[-1]["chain_index"])
