"""The append-only, hash-chained audit trail.

Each event stores the previous event's hash and the SHA-256 of its own canonical JSON, so a
changed or deleted row breaks the chain where it happened.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime

GENESIS_HASH = "0" * 64


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (UniqueConstraint("workflow_id", "transition_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    chain_index: int = Field(unique=True)
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    event_type: str = Field(max_length=60, index=True)
    request_id: int | None = Field(default=None, index=True)
    workflow_id: str | None = Field(default=None, max_length=100)
    transition_seq: int | None = None
    actor_id: int | None = None
    on_behalf_of: int | None = None
    from_stage: str | None = Field(default=None, max_length=30)
    to_stage: str | None = Field(default=None, max_length=30)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)

    def canonical_body(self) -> dict[str, Any]:
        return {
            "chain_index": self.chain_index,
            "occurred_at": self.occurred_at.isoformat(),
            "event_type": self.event_type,
            "request_id": self.request_id,
            "workflow_id": self.workflow_id,
            "transition_seq": self.transition_seq,
            "actor_id": self.actor_id,
            "on_behalf_of": self.on_behalf_of,
            "from_stage": self.from_stage,
            "to_stage": self.to_stage,
            "detail": self.detail,
            "prev_hash": self.prev_hash,
        }

    def compute_hash(self) -> str:
        canonical = json.dumps(
            self.canonical_body(), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
            default=str,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class AuditChainHead(SQLModel, table=True):
    """A single row locked while appending, so concurrent writers cannot fork the chain."""

    __tablename__ = "audit_chain_head"

    id: int = Field(default=1, primary_key=True)
    last_index: int = 0
    last_hash: str = Field(default=GENESIS_HASH, max_length=64)


def append_audit_event(session: Any, event: AuditEvent) -> AuditEvent:
    """Link `event` to the chain inside the caller's transaction.

    Locks the chain head row (FOR UPDATE on PostgreSQL; SQLite serialises writers anyway).
    """
    from sqlmodel import select

    head = session.exec(
        select(AuditChainHead).where(AuditChainHead.id == 1).with_for_update()
    ).first()
    if head is None:
        head = AuditChainHead(id=1)
        session.add(head)
        session.flush()
    event.chain_index = head.last_index + 1
    event.prev_hash = head.last_hash
    event.occurred_at = event.occurred_at.astimezone(UTC)
    event.hash = event.compute_hash()
    head.last_index = event.chain_index
    head.last_hash = event.hash
    session.add(event)
    session.add(head)
    return event


def verify_chain(session: Any) -> tuple[bool, int | None, str]:
    """Recompute the chain. Returns (ok, first broken chain_index, message)."""
    from sqlmodel import select

    expected_prev = GENESIS_HASH
    expected_index = 1
    for event in session.exec(select(AuditEvent).order_by(AuditEvent.chain_index)):  # type: ignore[arg-type]
        if event.chain_index != expected_index:
            return False, expected_index, f"event {expected_index} is missing"
        if event.prev_hash != expected_prev:
            return False, event.chain_index, "prev_hash does not match the previous event"
        if event.compute_hash() != event.hash:
            return False, event.chain_index, "the event's content does not match its hash"
        expected_prev = event.hash
        expected_index += 1
    head = session.get(AuditChainHead, 1)
    if head is not None and head.last_index != expected_index - 1:
        return False, expected_index, "events after the last one found were removed"
    return True, None, f"{expected_index - 1} events verified"
