"""Commission plans: effective-dated rates per employee, appended and never rewritten.

A new plan starts at `effective_from` and closes the employee's plan that is open at that time
(`effective_to = effective_from`). A plan may only start after the start of the employee's
latest plan: history is appended, not rewritten, so statements already computed from an old
plan stay explainable. Shared by the API; nothing here knows about HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from models.audit import AuditEvent, append_audit_event
from models.commission import CommissionPlan
from models.commission_engine import recompute_since
from models.org import Employee
from models.types import utcnow

EVENT_PLAN_CREATED = "PLAN_CREATED"
MAX_RATE_BP = 10_000


class PlanError(ValueError):
    """A plan that cannot be created. `kind` is "invalid" (422) or "conflict" (409)."""

    def __init__(self, kind: str, code: str, field: str | None, message: str) -> None:
        super().__init__(message)
        self.kind, self.code, self.field, self.message = kind, code, field, message


@dataclass(frozen=True)
class PlanCreated:
    plan: CommissionPlan
    closed_plan: CommissionPlan | None
    recomputed_lines: int  # commission lines rewritten from effective_from on


def create_plan(
    session: Session,
    *,
    employee_id: int,
    effective_from: datetime,
    base_rate_bp: int,
    inherited_rate_bp: int,
    created_by: int | None,
) -> PlanCreated:
    """Append a plan in the caller's transaction, recompute commission since its start, audit."""
    if effective_from.tzinfo is None or effective_from.utcoffset() is None:
        raise PlanError("invalid", "NAIVE_DATETIME", "effective_from",
                        "effective_from has no UTC offset; send e.g. 2026-04-01T00:00:00+08:00.")
    for name, rate in (("base_rate_bp", base_rate_bp), ("inherited_rate_bp", inherited_rate_bp)):
        if not 0 <= rate <= MAX_RATE_BP:
            raise PlanError("invalid", "RATE_OUT_OF_RANGE", name,
                            f"{name} is in basis points, 0 to {MAX_RATE_BP}; got {rate}.")
    effective_from = effective_from.astimezone(UTC)
    # Lock the employee row: plan changes for one employee queue up (PostgreSQL), so two
    # concurrent appends cannot both pass the "after the latest plan" check.
    employee = session.exec(
        select(Employee).where(Employee.id == employee_id).with_for_update()
    ).first()
    if employee is None:
        raise PlanError("invalid", "UNKNOWN_EMPLOYEE", "employee_id",
                        f"No employee has the id {employee_id}.")
    latest = session.exec(
        select(CommissionPlan)
        .where(CommissionPlan.employee_id == employee_id)
        .order_by(col(CommissionPlan.effective_from).desc(), col(CommissionPlan.id).desc())
        .limit(1)
    ).first()
    if latest is not None and effective_from <= latest.effective_from:
        raise PlanError(
            "conflict", "PLAN_NOT_AFTER_LATEST", "effective_from",
            f"Employee {employee_id}'s latest plan (id {latest.id}) starts at "
            f"{latest.effective_from.isoformat()}; a new plan must start after that. Plans are "
            "appended and history is not rewritten: to change the rates from some time on, "
            "add a plan starting then.")
    closed: CommissionPlan | None = None
    closed_was: datetime | None = None
    if latest is not None and (latest.effective_to is None
                               or latest.effective_to > effective_from):
        closed_was = latest.effective_to
        latest.effective_to = effective_from
        session.add(latest)
        closed = latest
    plan = CommissionPlan(employee_id=employee_id, effective_from=effective_from,
                          base_rate_bp=base_rate_bp, inherited_rate_bp=inherited_rate_bp,
                          created_by=created_by)
    session.add(plan)
    session.flush()
    assert plan.id is not None

    recomputed = int(recompute_since(session, since=effective_from))
    detail: dict[str, int] = {"plan_id": plan.id, "employee_id": employee_id}
    if closed is not None and closed.id is not None:
        detail["closed_plan_id"] = closed.id
    after: dict[str, Any] = {"employee_id": employee_id,
                             "effective_from": effective_from.isoformat(),
                             "base_rate_bp": base_rate_bp,
                             "inherited_rate_bp": inherited_rate_bp,
                             "recomputed_lines": recomputed}
    before: dict[str, Any] | None = None
    if closed is not None:  # the plan it replaces now ends where this one starts
        before = {"closed_plan_id": closed.id,
                  "effective_to": closed_was.isoformat() if closed_was else None}
        after["closed_plan_effective_to"] = effective_from.isoformat()
    append_audit_event(session, AuditEvent(
        occurred_at=utcnow(), event_type=EVENT_PLAN_CREATED, actor_id=created_by, detail=detail,
        entity_type="commission_plan", entity_id=str(plan.id), before=before, after=after,
        chain_index=0, prev_hash="", hash=""))
    session.flush()
    return PlanCreated(plan=plan, closed_plan=closed, recomputed_lines=recomputed)


def list_plans(
    session: Session, *, employee_id: int | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[CommissionPlan], int]:
    """Plans (optionally one employee's), newest start first; and the total count."""
    query = select(CommissionPlan)
    count = select(func.count()).select_from(CommissionPlan)
    if employee_id is not None:
        query = query.where(CommissionPlan.employee_id == employee_id)
        count = count.where(CommissionPlan.employee_id == employee_id)
    items = session.exec(
        query.order_by(col(CommissionPlan.effective_from).desc(), col(CommissionPlan.id).desc())
        .limit(limit).offset(offset)
    ).all()
    return list(items), int(session.exec(count).one())
