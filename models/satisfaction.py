"""Customer satisfaction scores (CSAT 1-5, NPS 0-10) from surveys, for the monitoring report.

One row per (customer, date, kind, source): posting the same score again is a no-op, so a
survey tool can resend a whole batch. A batch is all-or-nothing: every item is checked, every
bad item is reported, and only a batch without errors is written (with one audit event).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, Session, SQLModel, col, select

from domain.outcomes import SCORE_RANGE, ScoreKind
from models.audit import audit
from models.customer import Customer
from models.types import UTCDateTime, utcnow

EVENT_INGESTED = "SATISFACTION_POSTED"
MAX_BATCH = 1_000
CONFLICT = "SCORE_CONFLICT"


class SatisfactionScore(SQLModel, table=True):
    __tablename__ = "satisfaction_score"
    __table_args__ = (UniqueConstraint("customer_id", "scored_on", "kind", "source"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    scored_on: date = Field(description="the survey date in the organisation's calendar")
    kind: str = Field(max_length=4, description="CSAT or NPS (domain.outcomes.ScoreKind)")
    score: int
    source: str = Field(max_length=100, description="survey or system that produced the score")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by_id: int | None = Field(default=None, foreign_key="employee.id")


@dataclass(frozen=True)
class ScoreIn:
    customer_id: int
    scored_on: date
    kind: ScoreKind
    score: int
    source: str

    @property
    def key(self) -> tuple[int, date, str, str]:
        return (self.customer_id, self.scored_on, self.kind.value, self.source)


@dataclass(frozen=True)
class ItemError:
    index: int
    field: str | None
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "code": self.code,
                "message": self.message}


@dataclass
class IngestResult:
    created: int = 0
    duplicates: int = 0
    errors: list[ItemError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def only_conflicts(self) -> bool:
        return bool(self.errors) and all(e.code == CONFLICT for e in self.errors)


def check_scores(session: Session, items: list[ScoreIn], today: date) -> list[ItemError]:
    """Every reason an item cannot be stored: range, known customer, no future date, and no
    other score stored (or earlier in the batch) under the same key."""
    errors: list[ItemError] = []
    ids = {i.customer_id for i in items}
    known = set(session.exec(select(Customer.id).where(col(Customer.id).in_(ids))).all())
    stored = _stored(session, items)
    seen: dict[tuple[int, date, str, str], int] = {}
    for n, item in enumerate(items):
        low, high = SCORE_RANGE[item.kind]
        if not low <= item.score <= high:
            errors.append(ItemError(n, "score", "SCORE_OUT_OF_RANGE",
                                    f"A {item.kind.value} score is between {low} and {high}; "
                                    f"item {n} has {item.score}."))
        if item.customer_id not in known:
            errors.append(ItemError(n, "customer_id", "UNKNOWN_CUSTOMER",
                                    f"There is no customer {item.customer_id}; check the id "
                                    "(GET /api/v1/customers lists them)."))
        if item.scored_on > today:
            errors.append(ItemError(n, "scored_on", "DATE_IN_FUTURE",
                                    f"{item.scored_on.isoformat()} is after today "
                                    f"({today.isoformat()} in the organisation's timezone); "
                                    "send the date the customer answered."))
        if errors and errors[-1].index == n:
            continue  # a conflict with an invalid item would only add noise
        earlier = stored.get(item.key, seen.get(item.key))
        if earlier is not None and earlier != item.score:
            errors.append(ItemError(n, "score", CONFLICT,
                                    f"Customer {item.customer_id} already has a {item.kind.value} "
                                    f"score of {earlier} on {item.scored_on.isoformat()} from "
                                    f"{item.source!r}; one source scores a customer once a day. "
                                    "Send the stored score, or use another date or source."))
        seen.setdefault(item.key, item.score)
    return errors


def _stored(session: Session, items: list[ScoreIn]) -> dict[tuple[int, date, str, str], int]:
    if not items:
        return {}
    s = SatisfactionScore
    rows = session.exec(select(s).where(
        col(s.customer_id).in_({i.customer_id for i in items}),
        col(s.scored_on).in_({i.scored_on for i in items}))).all()
    return {(r.customer_id, r.scored_on, ScoreKind(r.kind).value, r.source): r.score
            for r in rows}


def ingest_scores(session: Session, items: list[ScoreIn], *, today: date,
                  actor_id: int | None) -> IngestResult:
    """Check the batch; when every item is fine, store the new ones and audit the batch."""
    errors = check_scores(session, items, today)
    if errors:
        return IngestResult(errors=errors)
    stored = _stored(session, items)
    result = IngestResult()
    new: dict[tuple[int, date, str, str], ScoreIn] = {}
    for item in items:
        if item.key in stored or item.key in new:
            result.duplicates += 1
        else:
            new[item.key] = item
    for item in new.values():
        session.add(SatisfactionScore(customer_id=item.customer_id, scored_on=item.scored_on,
                                      kind=item.kind.value, score=item.score, source=item.source,
                                      created_by_id=actor_id))
    result.created = len(new)
    if new:
        session.flush()
        audit(session, EVENT_INGESTED, actor_id=actor_id,
              entity=("satisfaction_score", None),
              after={"created": result.created, "duplicates": result.duplicates},
              detail={"customer_ids": sorted({i.customer_id for i in new.values()})})
    return result
