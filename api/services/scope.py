"""Data scope: which records a caller may see. Every list and detail query goes through here.

The permission table (domain/permissions.py) says whether a role may attempt an action at all;
this module narrows the records:
- a salesperson sees their own customers, requests, reports, statements and signatures;
- a manager or director sees their org-unit subtree;
- HR, legal and finance see everything within their function (HR and legal: requests and their
  documents; HR and finance: statements);
- admin manages accounts and settings, and sees business records only through other roles.

Each method returns a SQL condition (None: no limit), so lists filter in the database and a
detail read is "the list filtered to one id". A record outside the scope therefore answers
404 exactly like one that does not exist.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_
from sqlmodel import Session, col, select

from api.problems import Problem
from api.security import Actor
from domain.stages import Role
from models.customer import Assignment, Customer
from models.delegation import active_delegators
from models.org import Employee, OrgUnit
from models.policy import PolicyStatus, PolicyVersion
from models.reassignment import ApprovalStep, ReassignmentRequest
from settings import get_settings

REQUESTS_ALL = (Role.HR, Role.LEGAL, Role.FINANCE)
DOCUMENTS_ALL = (Role.HR, Role.LEGAL)  # the personal report is not finance's business
STATEMENTS_ALL = (Role.HR, Role.FINANCE)
PLANS_ALL = (Role.HR, Role.FINANCE, Role.ADMIN)
EMPLOYEES_ALL = (Role.HR, Role.LEGAL, Role.FINANCE, Role.ADMIN)
CUSTOMERS_ALL = (Role.HR, Role.LEGAL, Role.FINANCE)
TEAM = (Role.MANAGER, Role.DIRECTOR)
DRAFT_POLICIES = (Role.HR, Role.LEGAL, Role.ADMIN)
# who needs contact details unmasked: HR and admin reach employees; sales work customers
EMPLOYEE_CONTACTS = (Role.HR, Role.ADMIN)
CUSTOMER_CONTACTS = (Role.SALES, Role.MANAGER, Role.DIRECTOR)
SUBMIT_ANYWHERE = (Role.HR,)
OUTCOMES_ALL = (Role.HR,)


def unit_subtree(session: Session, root_unit_id: int) -> set[int]:
    parents = dict(session.exec(select(OrgUnit.id, OrgUnit.parent_id)).all())
    children: dict[int | None, list[int]] = {}
    for unit_id, parent_id in parents.items():
        if unit_id is None:
            continue
        children.setdefault(parent_id, []).append(unit_id)
    found: set[int] = set()
    stack = [root_unit_id]
    while stack:  # iterative, and the `found` check survives a cycle in bad data
        unit = stack.pop()
        if unit in found:
            continue
        found.add(unit)
        stack.extend(children.get(unit, []))
    return found


class Scope:
    """One caller's view of the data, for one database session."""

    def __init__(self, session: Session, actor: Actor, today: date | None = None) -> None:
        self.session = session
        self.actor = actor
        # delegations run by the office calendar
        self.today = today or org_today(get_settings().org_timezone)

    # --- who is in my team ---------------------------------------------------------------

    @cached_property
    def team_ids(self) -> frozenset[int]:
        """The employees of the caller's org-unit subtree; empty unless manager or director."""
        if not self.actor.has_any(*TEAM):
            return frozenset()
        me = self.session.get(Employee, self.actor.employee_id)
        if me is None:
            return frozenset()
        units = unit_subtree(self.session, me.org_unit_id)
        rows = self.session.exec(
            select(Employee.id).where(col(Employee.org_unit_id).in_(units))).all()
        return frozenset(r for r in rows if r is not None)

    @cached_property
    def delegators(self) -> list[int]:
        """Approvers the caller stands in for today."""
        return active_delegators(self.session, self.actor.employee_id, self.today)

    def in_team(self, employee_id: int) -> bool:
        return employee_id in self.team_ids

    # --- reassignment requests and their documents ---------------------------------------

    def _request_clauses(self, *, include_receiver: bool) -> list[Any]:
        me = self.actor.employee_id
        R = ReassignmentRequest
        approvers = [me, *self.delegators]
        clauses: list[Any] = [
            R.requester_id == me,
            R.from_employee_id == me,
            # an approver (or their delegate) sees what they are asked to decide
            col(R.id).in_(select(ApprovalStep.request_id).where(
                col(ApprovalStep.approver_id).in_(approvers))),
        ]
        if include_receiver:
            clauses.append(R.to_employee_id == me)
        if self.team_ids:
            clauses.append(col(R.from_employee_id).in_(self.team_ids))
            if include_receiver:
                clauses.append(col(R.to_employee_id).in_(self.team_ids))
        return clauses

    def requests(self) -> Any | None:
        if self.actor.has_any(*REQUESTS_ALL):
            return None
        return or_(*self._request_clauses(include_receiver=True))

    def notification_deliveries(self) -> Any | None:
        """A condition on ReassignmentRequest for notification delivery rows: HR and admin keep
        the mail and robot setup working, so both see every row (ids, kinds, addresses,
        errors; never a message); anyone else what their request scope holds."""
        if self.actor.has_any(Role.HR, Role.ADMIN):
            return None
        return self.requests()

    def documents(self) -> Any | None:
        """The personal report and agreement concern the salesperson who loses customers:
        not the receiver, who sees the request but not the other's income analysis."""
        if self.actor.has_any(*DOCUMENTS_ALL):
            return None
        return or_(*self._request_clauses(include_receiver=False))

    def request(self, request_id: int, *, documents: bool = False) -> ReassignmentRequest:
        """The request, or 404 both when it does not exist and when it is out of scope."""
        clause = self.documents() if documents else self.requests()
        query = select(ReassignmentRequest).where(ReassignmentRequest.id == request_id)
        if clause is not None:
            query = query.where(clause)
        found = self.session.exec(query).first()
        if found is None:
            raise request_not_found(request_id)
        return found

    def outcome_cases(self) -> Any | None:
        """A condition on ReassignmentRequest for the post-reassignment report: HR sees every
        case, a manager or director the cases that moved customers away from their subtree."""
        if self.actor.has_any(*OUTCOMES_ALL):
            return None
        return col(ReassignmentRequest.from_employee_id).in_(self.team_ids or {-1})

    # --- people, customers, money ------------------------------------------------------

    def employees(self) -> Any | None:
        """A condition on Employee.id."""
        if self.actor.has_any(*EMPLOYEES_ALL):
            return None
        return col(Employee.id).in_(self.team_ids | {self.actor.employee_id})

    def statement_employees(self) -> Any | None:
        """A condition on an employee id column's values: whose statements I may read."""
        if self.actor.has_any(*STATEMENTS_ALL):
            return None
        return self.team_ids | {self.actor.employee_id}

    def plan_employees(self) -> set[int] | None:
        if self.actor.has_any(*PLANS_ALL):
            return None
        return {self.actor.employee_id}

    def customer_owners(self) -> frozenset[int] | None:
        """Whose current customers I see (me and my team); None: everyone's."""
        if self.actor.has_any(*CUSTOMERS_ALL):
            return None
        return self.team_ids | {self.actor.employee_id}

    def customers(self) -> Any | None:
        """A condition on Customer.id: customers now owned by me or my team."""
        owners = self.customer_owners()
        if owners is None:
            return None
        return col(Customer.id).in_(select(Assignment.customer_id).where(
            col(Assignment.employee_id).in_(owners), col(Assignment.end_at).is_(None)))

    def policies(self) -> Any | None:
        if self.actor.has_any(*DRAFT_POLICIES):
            return None
        return PolicyVersion.status != PolicyStatus.DRAFT

    @property
    def sees_employee_contacts(self) -> bool:
        return self.actor.has_any(*EMPLOYEE_CONTACTS)

    @property
    def sees_customer_contacts(self) -> bool:
        return self.actor.has_any(*CUSTOMER_CONTACTS)

    # --- who may start a request about whom ----------------------------------------------

    def may_submit_for(self, from_employee_id: int) -> bool:
        """HR anywhere; a manager or director only for salespeople in their subtree."""
        return self.actor.has_any(*SUBMIT_ANYWHERE) or self.in_team(from_employee_id)


def org_today(timezone: str, now: datetime | None = None) -> date:
    """Today in the organisation's zone: delegations run by the office calendar."""
    return (now or datetime.now(UTC)).astimezone(ZoneInfo(timezone)).date()


def request_not_found(request_id: int) -> Problem:
    return Problem(404, "request-not-found", "Request not found",
                   f"There is no reassignment request {request_id} that you may see. Check the "
                   "id, or list your requests at GET /api/v1/reassignments.")
