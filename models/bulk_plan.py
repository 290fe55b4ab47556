"""Plan a bulk reorganisation: look the file's references up, validate every row, group the
moves into requests and assess each group as a submit would. Reads only, except `store`.

The dry run is `plan_rows` (or `plan_rule`) and nothing else; starting one adds `store`, which
writes the reorganisation and its rows in the caller's transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from domain.bulk import (
    ImpactTotals,
    MoveGroup,
    Ref,
    ResolvedRow,
    RowError,
    RowOutcome,
    SplitRule,
    UploadedRow,
    batch_errors,
    group_moves,
    impact_totals,
    split_rule,
    validate_rows,
)
from domain.impact import Assessment
from domain.impact import assess as assess_values
from domain.policy import EmployeeFacts, PolicyRules, default_terms
from domain.stages import Reason, Role
from models.assessment import customer_values
from models.audit import audit
from models.bulk import Reorganisation, ReorganisationRow, RowStatus
from models.customer import Assignment, Customer, Order
from models.facts import customer_facts
from models.org import Employee, EmploymentStatus, UserAccount
from models.policy import PolicyStatus, PolicyVersion
from models.submission import VALUE_WINDOW


class NoPolicyError(LookupError):
    pass


@dataclass
class Plan:
    policy_version_id: int
    rules: PolicyRules
    reason: Reason
    outcomes: list[RowOutcome]
    unreadable: list[RowError]  # rows the parser could not read at all
    batch_errors: list[str]
    groups: list[MoveGroup]
    totals: ImpactTotals
    assessments: dict[int, Assessment] = field(default_factory=dict)

    @property
    def row_errors(self) -> list[RowError]:
        errors = [*self.unreadable, *(e for o in self.outcomes for e in o.errors)]
        return sorted(errors, key=lambda e: e.row_number)

    @property
    def ok(self) -> bool:
        return not self.batch_errors and not self.row_errors and bool(self.groups)


def newest_policy(session: Session) -> PolicyVersion:
    policy = session.exec(
        select(PolicyVersion).where(PolicyVersion.status == PolicyStatus.PUBLISHED)
        .order_by(col(PolicyVersion.published_at).desc(), col(PolicyVersion.id).desc())
    ).first()
    if policy is None or policy.id is None:
        raise NoPolicyError("no reassignment policy is published")
    return policy


def _lookup(session: Session, refs: Iterable[Ref], id_col: object, code_col: object
            ) -> dict[Ref, int]:
    """Ref -> database id, in two queries (one for ids, one for codes)."""
    refs = set(refs)
    ids = {r.id for r in refs if r.id is not None}
    codes = {r.code for r in refs if r.code is not None}
    found: dict[Ref, int] = {}
    if ids:
        for (i,) in session.execute(select(id_col).where(col(id_col).in_(ids))):  # type: ignore[call-overload]
            found[Ref(id=i)] = i
    if codes:
        for i, code in session.execute(select(id_col, code_col)  # type: ignore[call-overload]
                                       .where(col(code_col).in_(codes))):
            found[Ref(code=code)] = i
    return found


def resolve_rows(session: Session, rows: list[UploadedRow]) -> list[ResolvedRow]:
    customers = _lookup(session, (r.customer for r in rows), Customer.id, Customer.code)
    employees = _lookup(session, [*(r.new_owner for r in rows),
                                  *(r.expected_owner for r in rows if r.expected_owner)],
                        Employee.id, Employee.employee_no)
    return [ResolvedRow(
        row_number=r.row_number, customer_ref=str(r.customer), new_owner_ref=str(r.new_owner),
        customer_id=customers.get(r.customer), to_employee_id=employees.get(r.new_owner),
        expected_owner_ref=str(r.expected_owner) if r.expected_owner else None,
        expected_owner_id=employees.get(r.expected_owner) if r.expected_owner else None,
        note=r.note) for r in rows]


def employee_facts_many(session: Session, ids: Iterable[int]) -> dict[int, EmployeeFacts]:
    """employee_facts for many at once: two queries, not two per employee."""
    wanted = set(ids)
    if not wanted:
        return {}
    accounts = dict(session.exec(select(UserAccount.employee_id, UserAccount.roles).where(
        col(UserAccount.employee_id).in_(wanted))).all())
    out = {}
    for e in session.exec(select(Employee).where(col(Employee.id).in_(wanted))).all():
        assert e.id is not None
        names = {e.role, *accounts.get(e.id, [])}
        out[e.id] = EmployeeFacts(
            id=e.id, active=e.status == EmploymentStatus.EMPLOYED,
            roles=frozenset(Role(r) for r in names if r in Role._value2member_map_),
            leave_date=e.leave_date)
    return out


def plan_rows(session: Session, rows: list[ResolvedRow], *, reason: Reason, now: datetime,
              unreadable: list[RowError] | None = None, assess: bool = True) -> Plan:
    """Validate every row and, when `assess`, value each group as its submit would."""
    policy = newest_policy(session)
    assert policy.id is not None
    rules = policy.parsed_rules()
    facts = customer_facts(session, [r.customer_id for r in rows if r.customer_id is not None])
    people = {f.current_owner_id for f in facts.values() if f.current_owner_id is not None}
    people |= {r.to_employee_id for r in rows if r.to_employee_id is not None}
    employees = employee_facts_many(session, people)
    outcomes = validate_rows(rows, rules=rules, reason=reason, customers=facts,
                             employees=employees, now=now)
    groups = group_moves(outcomes)
    assessments = assess_groups(session, groups, rules, now) if assess else {}
    unreadable = unreadable or []
    totals = impact_totals(len(rows) + len(unreadable), outcomes, groups, assessments)
    return Plan(policy_version_id=policy.id, rules=rules, reason=reason, outcomes=outcomes,
                unreadable=unreadable, batch_errors=batch_errors(rules, reason), groups=groups,
                totals=totals, assessments=assessments)


def assess_groups(session: Session, groups: list[MoveGroup], rules: PolicyRules,
                  now: datetime) -> dict[int, Assessment]:
    """Each group's assessment exactly as its submit would make it (models.assessment), with
    the customers' values read once per losing salesperson rather than once per group."""
    terms = default_terms(rules)
    by_owner: dict[int, list[MoveGroup]] = defaultdict(list)
    for g in groups:
        by_owner[g.from_employee_id].append(g)
    out = {}
    for owner, owned in by_owner.items():
        values = {v.customer_id: v for v in customer_values(
            session, owner_id=owner, customer_ids=[c for g in owned for c in g.customer_ids],
            as_of=now, horizon_months=rules.valuation_horizon_months)}
        for g in owned:
            out[g.group_no] = assess_values([values[c] for c in g.customer_ids], rules, terms)
    return out


def rule_rows(session: Session, *, from_employee_id: int, to_employee_ids: list[int],
              rule: SplitRule, now: datetime) -> list[ResolvedRow]:
    """"Move all customers of A to B, C, ..." as rows, numbered 1.. in customer id order."""
    owned = list(session.exec(select(Assignment.customer_id).where(
        Assignment.employee_id == from_employee_id, col(Assignment.end_at).is_(None))).all())
    values = dict(session.exec(
        select(Order.customer_id, func.coalesce(func.sum(Order.amount_fen), 0))
        .where(col(Order.customer_id).in_(owned), col(Order.booked_at) >= now - VALUE_WINDOW,
               col(Order.booked_at) <= now)
        .group_by(col(Order.customer_id))).all()) if owned else {}
    targets = split_rule([(c, int(values.get(c, 0))) for c in owned], to_employee_ids, rule)
    return [ResolvedRow(row_number=n, customer_ref=str(cid), new_owner_ref=str(targets[cid]),
                        customer_id=cid, to_employee_id=targets[cid],
                        expected_owner_ref=str(from_employee_id),
                        expected_owner_id=from_employee_id)
            for n, cid in enumerate(sorted(owned), start=1)]


def store(session: Session, plan: Plan, *, created_by_id: int, key: str, note: str | None,
          source: str, file_name: str | None, file_sha256: str | None,
          now: datetime) -> Reorganisation:
    """Write a valid plan as a RUNNING reorganisation with its rows, audited; flushes."""
    assert plan.ok
    reorganisation = Reorganisation(
        idempotency_key=key, created_by_id=created_by_id, created_at=now,
        reason=plan.reason.value, note=note, source=source, file_name=file_name,
        file_sha256=file_sha256, policy_version_id=plan.policy_version_id,
        total_rows=plan.totals.valid_rows, total_groups=len(plan.groups),
        totals=plan.totals.model_dump(mode="json"))
    session.add(reorganisation)
    session.flush()
    assert reorganisation.id is not None
    reorganisation.workflow_id = f"reorganisation-{reorganisation.id}"
    by_row = {o.row_number: o for o in plan.outcomes}
    session.add_all(
        ReorganisationRow(reorganisation_id=reorganisation.id, row_number=n, group_no=g.group_no,
                          customer_id=cid, from_employee_id=g.from_employee_id,
                          to_employee_id=g.to_employee_id, note=by_row[n].note,
                          status=RowStatus.PLANNED.value)
        for g in plan.groups for n, cid in zip(g.row_numbers, g.customer_ids, strict=True))
    audit(session, "REORGANISATION_STARTED", actor_id=created_by_id,
          entity=("reorganisation", reorganisation.id), reason=plan.reason.value,
          after={"rows": plan.totals.valid_rows, "groups": len(plan.groups),
                 "customers": plan.totals.customers, "source": source,
                 "policy_version_id": plan.policy_version_id, "file_sha256": file_sha256},
          occurred_at=now)
    session.flush()
    return reorganisation
