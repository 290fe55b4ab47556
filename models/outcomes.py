"""The facts behind the post-reassignment report (domain/outcomes.py does the arithmetic).

A case is a request that took effect (effective_at set; stage EFFECTIVE, PROTECTION or
COMPLETED). Its team is the org unit of the salesperson who lost the customers. Its revenue
threshold is the one of the policy version it ran under (as every rule of a request is).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from domain.outcomes import (
    MAX_MONTHS,
    CaseFacts,
    CaseOutcome,
    GroupOutcome,
    OrderFact,
    ScoreFact,
    ScoreKind,
    add_months,
    aggregate,
    case_outcome,
)
from domain.policy import PolicyRules
from domain.stages import Stage
from models.customer import Assignment, Order, OrderKind
from models.org import Employee, EmploymentStatus, OrgUnit
from models.policy import PolicyVersion
from models.reassignment import ReassignmentRequest, RequestCustomer
from models.satisfaction import SatisfactionScore

CASE_STAGES = (Stage.EFFECTIVE, Stage.PROTECTION, Stage.COMPLETED)
DEFAULT_THRESHOLD_BP = PolicyRules.model_fields["revenue_drop_flag_bp"].default


@dataclass(frozen=True)
class OutcomeReport:
    months: int
    now: datetime
    cases: list[CaseOutcome]
    by_team: list[GroupOutcome]
    by_reason: list[GroupOutcome]
    overall: GroupOutcome | None
    team_names: dict[int, str]
    employee_names: dict[int, str]


class _Owners:
    """Who owned each customer when: the assignment history, searchable by time."""

    def __init__(self, rows: Iterable[Assignment]) -> None:
        self._by_customer: dict[int, list[Assignment]] = {}
        for a in sorted(rows, key=lambda a: a.start_at):
            self._by_customer.setdefault(a.customer_id, []).append(a)
        self._starts = {c: [a.start_at for a in rows_]
                        for c, rows_ in self._by_customer.items()}

    def at(self, customer_id: int, moment: datetime) -> int | None:
        rows = self._by_customer.get(customer_id, [])
        i = bisect.bisect_right(self._starts.get(customer_id, []), moment) - 1
        if i < 0:
            return None
        a = rows[i]
        return a.employee_id if a.end_at is None or moment < a.end_at else None


def _orders(session: Session, customer_ids: set[int], since: datetime, owners: _Owners
            ) -> list[OrderFact]:
    if not customer_ids:
        return []
    rows = session.exec(select(Order.customer_id, Order.booked_at, Order.amount_fen, Order.kind)
                        .where(col(Order.customer_id).in_(customer_ids),
                               col(Order.booked_at) >= since)).all()
    return [OrderFact(c, at, int(amount), OrderKind(kind) == OrderKind.ORDER, owners.at(c, at))
            for c, at, amount, kind in rows]


def case_requests(session: Session, *, scope: Any | None, team_id: int | None = None,
                  reason: str | None = None) -> list[ReassignmentRequest]:
    R = ReassignmentRequest
    query = select(R).where(col(R.effective_at).is_not(None),
                            col(R.stage).in_([s.value for s in CASE_STAGES]))
    if scope is not None:
        query = query.where(scope)
    if reason:
        query = query.where(R.reason == reason)
    if team_id is not None:
        query = query.where(col(R.from_employee_id).in_(
            select(Employee.id).where(Employee.org_unit_id == team_id)))
    return list(session.exec(query.order_by(col(R.effective_at), col(R.id))).all())


def case_facts(session: Session, requests: list[ReassignmentRequest], months: int,
               timezone: str) -> list[CaseFacts]:
    if not requests:
        return []
    request_ids = [r.id for r in requests]
    customers: dict[int, list[int]] = {}
    for rid, cid in session.exec(select(RequestCustomer.request_id, RequestCustomer.customer_id)
                                 .where(col(RequestCustomer.request_id).in_(request_ids))).all():
        customers.setdefault(rid, []).append(cid)
    for r in requests:  # requests stored before request_customer rows existed
        customers.setdefault(r.id or 0, list(r.customer_ids))
    moved = {c for ids in customers.values() for c in ids}
    receivers = {r.to_employee_id for r in requests}
    receiver_customers = set(session.exec(select(Assignment.customer_id).where(
        col(Assignment.employee_id).in_(receivers))).all())
    since = min(add_months(r.effective_at, -months, timezone) for r in requests
                if r.effective_at is not None)
    every = moved | receiver_customers
    owners = _Owners(session.exec(select(Assignment).where(
        col(Assignment.customer_id).in_(every))).all())
    orders = _orders(session, every, since, owners)
    orders_by_customer: dict[int, list[OrderFact]] = {}
    for o in orders:
        orders_by_customer.setdefault(o.customer_id, []).append(o)
    scores: dict[int, list[ScoreFact]] = {}
    for s in session.exec(select(SatisfactionScore).where(
            col(SatisfactionScore.customer_id).in_(moved))).all():
        scores.setdefault(s.customer_id, []).append(
            ScoreFact(s.customer_id, s.scored_on, ScoreKind(s.kind), s.score))
    people = {e.id: e for e in session.exec(select(Employee).where(
        col(Employee.id).in_({r.from_employee_id for r in requests}))).all()}
    thresholds = _thresholds(session, {r.policy_version_id for r in requests})

    facts = []
    for r in requests:
        assert r.id is not None and r.effective_at is not None
        ids = tuple(customers[r.id])
        owner = people[r.from_employee_id]
        facts.append(CaseFacts(
            request_id=r.id, reason=r.reason, stage=Stage(r.stage).value,
            from_employee_id=r.from_employee_id, to_employee_id=r.to_employee_id,
            team_id=owner.org_unit_id, effective_at=r.effective_at, customer_ids=ids,
            orders=tuple(o for c in ids for o in orders_by_customer.get(c, [])),
            receiver_orders=tuple(o for o in orders if o.owner_id == r.to_employee_id),
            scores=tuple(s for c in ids for s in scores.get(c, [])),
            from_left=owner.status == EmploymentStatus.LEFT, from_leave_date=owner.leave_date,
            revenue_drop_threshold_bp=thresholds.get(r.policy_version_id,
                                                     DEFAULT_THRESHOLD_BP)))
    return facts


def _thresholds(session: Session, version_ids: set[int]) -> dict[int, int]:
    found = {}
    for v in session.exec(select(PolicyVersion).where(col(PolicyVersion.id).in_(version_ids))):
        assert v.id is not None
        found[v.id] = v.parsed_rules().revenue_drop_flag_bp
    return found


def outcome_report(session: Session, *, scope: Any | None, months: int, timezone: str,
                   now: datetime, team_id: int | None = None, reason: str | None = None,
                   flagged_only: bool = False) -> OutcomeReport:
    """Every case in scope (filtered), then the aggregates over the cases shown."""
    if not 1 <= months <= MAX_MONTHS:
        raise ValueError(f"months must be between 1 and {MAX_MONTHS}")
    requests = case_requests(session, scope=scope, team_id=team_id, reason=reason)
    cases = [case_outcome(f, months, timezone, now)
             for f in case_facts(session, requests, months, timezone)]
    if flagged_only:
        cases = [c for c in cases if c.flagged]
    teams = {c.facts.team_id for c in cases}
    team_names = {u.id: u.name for u in session.exec(
        select(OrgUnit).where(col(OrgUnit.id).in_(teams))).all() if u.id is not None}
    people = {c.facts.from_employee_id for c in cases} | {c.facts.to_employee_id for c in cases}
    names = {e.id: e.name for e in session.exec(
        select(Employee).where(col(Employee.id).in_(people))).all() if e.id is not None}
    overall = aggregate(cases, lambda _c: "all")
    return OutcomeReport(
        months=months, now=now, cases=cases,
        by_team=aggregate(cases, lambda c: str(c.facts.team_id)),
        by_reason=aggregate(cases, lambda c: c.facts.reason),
        overall=overall[0] if overall else None, team_names=team_names, employee_names=names)
