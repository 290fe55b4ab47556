"""The append-only, hash-chained audit trail.

Each event stores the previous event's hash and the SHA-256 of its own canonical JSON, so a
changed or deleted row breaks the chain where it happened. The head row records the last
index and hash, so cutting events off the end shows too. The database refuses UPDATE, DELETE
and TRUNCATE on the table (triggers, migration 0005); the chain catches whoever bypasses them.

An event says who (actor_id, on_behalf_of), when (occurred_at), what (event_type, entity_type
and entity_id, request_id), before and after (JSON views of what changed) and why (reason).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint, func, select
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow

GENESIS_HASH = "0" * 64
VERIFY_BATCH = 2000  # rows fetched per round trip while verifying; memory stays constant

# Fields added by migration 0005. They enter the canonical JSON only when set (see
# canonical_body), so events written before 0005 keep the hashes they were written with.
OPTIONAL_FIELDS = ("entity_type", "entity_id", "before", "after", "reason")
LEGACY_FIELDS = ("chain_index", "occurred_at", "event_type", "request_id", "workflow_id",
                 "transition_seq", "actor_id", "on_behalf_of", "from_stage", "to_stage",
                 "detail", "prev_hash")


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (
        UniqueConstraint("workflow_id", "transition_seq"),
        Index("ix_audit_event_entity", "entity_type", "entity_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    chain_index: int = Field(unique=True)
    occurred_at: datetime = Field(sa_type=UTCDateTime, index=True)
    event_type: str = Field(max_length=60, index=True)
    request_id: int | None = Field(default=None, index=True)
    workflow_id: str | None = Field(default=None, max_length=100)
    transition_seq: int | None = None
    actor_id: int | None = Field(default=None, index=True)
    on_behalf_of: int | None = None
    from_stage: str | None = Field(default=None, max_length=30)
    to_stage: str | None = Field(default=None, max_length=30)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # what the event is about, e.g. ("policy_version", "12"); ids of composite keys joined by ":"
    entity_type: str | None = Field(default=None, max_length=40)
    entity_id: str | None = Field(default=None, max_length=100)
    # the entity as it was and as it is; None for "did not exist" (creation, removal)
    before: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True))
    after: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True))
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)

    def canonical_body(self) -> dict[str, Any]:
        return canonical_body({name: getattr(self, name)
                               for name in (*LEGACY_FIELDS, *OPTIONAL_FIELDS)})

    def compute_hash(self) -> str:
        return hash_body(self.canonical_body())


def canonical_body(values: Mapping[str, Any]) -> dict[str, Any]:
    """The hashed body of an event, from its row (a mapping of column values).

    The 12 fields of the original format are always present. The fields added in 0005 are
    present only when not None: rows written before 0005 hash exactly as they did, while a
    value set later on such a row (or cleared on a newer one) changes the hash.
    """
    body = {name: values[name] for name in LEGACY_FIELDS}
    body["occurred_at"] = values["occurred_at"].isoformat()
    for name in OPTIONAL_FIELDS:
        if values.get(name) is not None:
            body[name] = values[name]
    return body


def hash_body(body: Mapping[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class AuditChainHead(SQLModel, table=True):
    """A single row locked while appending, so concurrent writers cannot fork the chain."""

    __tablename__ = "audit_chain_head"

    id: int = Field(default=1, primary_key=True)
    last_index: int = 0
    last_hash: str = Field(default=GENESIS_HASH, max_length=64)


def _as_stored(value: Any) -> Any:
    """`value` as the JSON column hands it back, so the hash covers exactly what is stored
    (tuples become lists, integer keys strings, datetimes ISO strings)."""
    if value is None:
        return None
    return json.loads(json.dumps(value, default=_json_default, ensure_ascii=False))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    return str(value)


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
    event.detail = _as_stored(event.detail) or {}
    event.before = _as_stored(event.before)
    event.after = _as_stored(event.after)
    event.hash = event.compute_hash()
    head.last_index = event.chain_index
    head.last_hash = event.hash
    session.add(event)
    session.add(head)
    return event


def audit(session: Any, event_type: str, *, actor_id: int | None = None,
          entity: tuple[str, int | str | None] | None = None,
          before: Mapping[str, Any] | None = None, after: Mapping[str, Any] | None = None,
          reason: str | None = None, request_id: int | None = None,
          detail: Mapping[str, Any] | None = None, occurred_at: datetime | None = None,
          **fields: Any) -> AuditEvent:
    """Append one event: who (actor_id), what (event_type, entity = (type, id)), before and
    after, why (reason). `fields` are further AuditEvent columns (workflow_id, ...)."""
    entity_type, entity_id = entity if entity is not None else (None, None)
    return append_audit_event(session, AuditEvent(
        occurred_at=occurred_at or utcnow(), event_type=event_type, actor_id=actor_id,
        request_id=request_id, entity_type=entity_type,
        entity_id=None if entity_id is None else str(entity_id),
        before=dict(before) if before is not None else None,
        after=dict(after) if after is not None else None,
        reason=reason, detail=dict(detail or {}), chain_index=0, prev_hash="", hash="",
        **fields))


# --- verification ----------------------------------------------------------------------------


class BreakKind(StrEnum):
    CONTENT_CHANGED = "content_changed"  # the row no longer hashes to its stored hash
    PREV_HASH_MISMATCH = "prev_hash_mismatch"  # an earlier event was replaced or rehashed
    MISSING = "missing"  # a gap in chain_index: events were deleted
    TAIL_TRUNCATED = "tail_truncated"  # the head row says there were more events
    HEAD_MISMATCH = "head_mismatch"  # the last event is not the one the head row recorded
    UNLINKED = "unlinked"  # rows past the head row: inserted around append_audit_event
    HEAD_MISSING = "head_missing"  # events but no head row


@dataclass(frozen=True)
class BrokenLink:
    kind: BreakKind
    chain_index: int  # the event that is wrong, or the first one missing
    row_id: int | None  # the row found there (for a gap: the first row after it)
    message: str
    missing_through: int | None = None  # for a gap or a cut tail: the last missing index


@dataclass(frozen=True)
class ChainVerification:
    """The outcome of `verify_chain`. Unpacks like the (ok, index, message) tuple it was."""

    ok: bool
    events_checked: int
    head_index: int  # the last index the head row records (0: no head row)
    first_broken: BrokenLink | None
    message: str

    @property
    def broken_index(self) -> int | None:
        return self.first_broken.chain_index if self.first_broken else None

    def as_tuple(self) -> tuple[bool, int | None, str]:
        return self.ok, self.broken_index, self.message

    def __iter__(self) -> Iterator[Any]:
        return iter(self.as_tuple())

    def __getitem__(self, index: int) -> Any:
        return self.as_tuple()[index]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.first_broken is not None:
            data["first_broken"]["kind"] = self.first_broken.kind.value
        return data


def _span(first: int, last: int) -> str:
    return f"event {first} is" if first == last else f"events {first}-{last} are"


def _head(conn: Any) -> tuple[int, str] | None:
    table = AuditChainHead.__table__  # type: ignore[attr-defined]
    row = conn.execute(select(table.c.last_index, table.c.last_hash)
                       .where(table.c.id == 1)).first()
    return (int(row[0]), str(row[1])) if row is not None else None


def verify_chain(session: Any, *, batch_size: int = VERIFY_BATCH) -> ChainVerification:
    """Recompute the chain in chain_index order, streaming, and report the first broken link.

    The head row is read first and only events up to its index are checked, so events
    appended while this runs are not mistaken for tampering; rows beyond the head that no
    append accounts for are checked separately at the end.
    """
    conn = session.connection()
    table = AuditEvent.__table__  # type: ignore[attr-defined]
    head = _head(conn)
    head_index = head[0] if head else 0
    query = select(table).order_by(table.c.chain_index)
    if head is not None:
        query = query.where(table.c.chain_index <= head_index)

    def broken(link: BrokenLink, checked: int) -> ChainVerification:
        return ChainVerification(False, checked, head_index, link, link.message)

    expected_index, expected_prev, checked = 1, GENESIS_HASH, 0
    last_id: int | None = None
    # yield_per: a server-side cursor on PostgreSQL, fetched batch by batch on SQLite
    for row in conn.execute(query.execution_options(yield_per=batch_size)).mappings():
        checked += 1
        index, row_id = int(row["chain_index"]), int(row["id"])
        if index != expected_index:
            where = (f"between {expected_index - 1} and {index}" if expected_index > 1
                     else f"before {index}, the first event found")
            return broken(BrokenLink(
                BreakKind.MISSING, expected_index, row_id,
                f"{_span(expected_index, index - 1)} missing ({where})",
                missing_through=index - 1), checked)
        if hash_body(canonical_body(row)) != row["hash"]:
            return broken(BrokenLink(
                BreakKind.CONTENT_CHANGED, index, row_id,
                f"event {index} (row id {row_id}, {row['event_type']}) was changed: its "
                "content no longer matches its hash"), checked)
        if row["prev_hash"] != expected_prev:
            return broken(BrokenLink(
                BreakKind.PREV_HASH_MISMATCH, index, row_id,
                f"event {index} (row id {row_id}) does not link to event {index - 1}: its "
                f"prev_hash differs from event {index - 1}'s hash, so event {index - 1} "
                "was replaced or rehashed" if index > 1 else
                f"event 1 (row id {row_id}) does not start the chain: its prev_hash is not "
                "the genesis hash"), checked)
        expected_prev, last_id = row["hash"], row_id
        expected_index += 1

    last = expected_index - 1
    if head is None:
        if checked:
            return broken(BrokenLink(
                BreakKind.HEAD_MISSING, last, last_id,
                f"the chain head row is missing although {checked} events exist; the end "
                "of the chain cannot be confirmed"), checked)
        return ChainVerification(True, 0, 0, None, "no audit events yet")
    if last < head_index:
        return broken(BrokenLink(
            BreakKind.TAIL_TRUNCATED, last + 1, None,
            f"{_span(last + 1, head_index)} missing at the end: the head row says the chain "
            f"ends at event {head_index}, the last event found is {last or 'none'}",
            missing_through=head_index), checked)
    if head_index and expected_prev != head[1]:
        return broken(BrokenLink(
            BreakKind.HEAD_MISMATCH, last, last_id,
            f"event {last} (row id {last_id}) is not the event the head row recorded: its "
            "hash differs from the head's last hash, so the last event was replaced"), checked)
    # Read the highest index before the head again: a committed append has moved the head
    # at least that far, so only rows written around append_audit_event remain beyond it.
    highest = conn.execute(select(func.max(table.c.chain_index))).scalar()
    head_now = _head(conn)
    if highest is not None and highest > (head_now[0] if head_now else 0):
        first = (head_now[0] if head_now else 0) + 1
        return broken(BrokenLink(
            BreakKind.UNLINKED, first, None,
            f"events up to {highest} exist past the head row's last event "
            f"{first - 1}: they were inserted without being linked into the chain"), checked)
    if not checked:
        return ChainVerification(True, 0, head_index, None, "no audit events yet")
    return ChainVerification(True, checked, head_index, None,
                             f"{checked} events verified, chain intact through event {last}")
