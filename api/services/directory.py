"""Scoped employee and customer lists: the queries behind GET /employees, GET /customers and
the web pages that list or pick people and customers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from api.services.scope import Scope
from domain.stages import TERMINAL_STAGES
from models.customer import Assignment, Customer, Order
from models.org import Employee, EmploymentStatus
from models.reassignment import ReassignmentRequest, RequestCustomer
from models.valuation_queries import latest_snapshots

YEAR = timedelta(days=365)


def employee_rows(
    session: Session, scope: Scope, *, q: str | None = None,
    status: EmploymentStatus | None = None, role: str | None = None,
    limit: int = 100, offset: int = 0,
) -> tuple[list[Employee], int]:
    """Employees within the scope, by employee number: (page, total)."""
    conditions = []
    clause = scope.employees()
    if clause is not None:
        conditions.append(clause)
    if q:
        conditions.append(or_(col(Employee.name).contains(q),
                              col(Employee.employee_no).contains(q)))
    if status is not None:
        conditions.append(Employee.status == status)
    if role is not None:
        conditions.append(Employee.role == role)
    total = session.exec(select(func.count()).select_from(Employee).where(*conditions)).one()
    rows = session.exec(select(Employee).where(*conditions).order_by(col(Employee.employee_no))
                        .limit(limit).offset(offset)).all()
    return list(rows), int(total)


def customer_rows(
    session: Session, scope: Scope, *, q: str | None = None,
    owner_employee_id: int | None = None, ids: list[int] | None = None, limit: int = 100,
    offset: int = 0,
) -> tuple[list[tuple[Customer, int | None]], int]:
    """Customers within the scope (a salesperson: their own; a manager: their team's), by
    code, each with its current owner's id: (page, total). `ids` narrows to those customers
    (the ones outside the scope are simply missing)."""
    owner = (select(Assignment.customer_id, Assignment.employee_id)
             .where(col(Assignment.end_at).is_(None)).subquery())
    conditions = []
    if owner_employee_id is not None:
        # The owner's current customers are in scope exactly when the owner is one of the
        # owners the scope admits, so the scope's IN list (a manager's team: every customer of
        # the team) is left out; the planners then walk only this owner's assignments.
        owners = scope.customer_owners()
        if owners is not None and owner_employee_id not in owners:
            return [], 0
        conditions.append(col(Customer.id).in_(
            select(Assignment.customer_id).where(Assignment.employee_id == owner_employee_id,
                                                 col(Assignment.end_at).is_(None))))
    else:
        clause = scope.customers()
        if clause is not None:
            conditions.append(clause)
    if q:
        conditions.append(or_(col(Customer.name).contains(q), col(Customer.code).contains(q)))
    if ids is not None:
        conditions.append(col(Customer.id).in_(ids))
    base = select(Customer, owner.c.employee_id).outerjoin(
        owner, owner.c.customer_id == Customer.id).where(*conditions)
    # one open assignment per customer, so the owner join adds no rows: count without it
    total = session.exec(select(func.count()).select_from(Customer).where(*conditions)).one()
    rows = session.exec(base.order_by(col(Customer.code)).limit(limit).offset(offset)).all()
    return [(c, o) for c, o in rows], int(total)


@dataclass(frozen=True)
class CustomerFigures:
    """What a list can show about a customer's value, cheaply: the trailing-12-month revenue
    from the orders, and the latest valuation's tier and expected revenue when one exists."""

    t12m_revenue_fen: int
    tier: str | None = None
    expected_revenue_fen: int | None = None
    method: str | None = None


def customer_figures(session: Session, customer_ids: list[int],
                     as_of: datetime) -> dict[int, CustomerFigures]:
    """Figures for the given customers (one aggregate query plus the snapshot lookup); the
    caller has scoped the ids. The revenue is counted like a request's value (orders since
    a year before `as_of`, refunds included)."""
    if not customer_ids:
        return {}
    revenue = dict(session.exec(
        select(Order.customer_id, func.sum(Order.amount_fen))
        .where(col(Order.customer_id).in_(customer_ids), Order.booked_at >= as_of - YEAR)
        .group_by(Order.customer_id)).all())
    snapshots = latest_snapshots(session, customer_ids)
    figures = {}
    for cid in customer_ids:
        snap = snapshots.get(cid)
        figures[cid] = CustomerFigures(
            t12m_revenue_fen=int(revenue.get(cid) or 0),
            tier=snap.tier if snap else None,
            expected_revenue_fen=snap.expected_revenue_fen if snap else None,
            method=snap.method if snap else None)
    return figures


def open_requests(session: Session, customer_ids: list[int]) -> dict[int, int]:
    """The open (not yet closed) request each customer is in, if any: customer id -> request
    id. A new request cannot include these (the OPEN_REQUEST policy check)."""
    if not customer_ids:
        return {}
    rows = session.exec(
        select(RequestCustomer.customer_id, ReassignmentRequest.id)
        .join(ReassignmentRequest, col(ReassignmentRequest.id) == RequestCustomer.request_id)
        .where(col(RequestCustomer.customer_id).in_(customer_ids),
               col(ReassignmentRequest.stage).not_in([s.value for s in TERMINAL_STAGES]))
    ).all()
    return {int(cid): int(rid) for cid, rid in rows if rid is not None}


def employees_by_id(session: Session, ids: set[int] | list[int]) -> dict[int, Employee]:
    """The named employees (no scope: for labelling people already shown by id, such as a
    visible request's parties and approvers)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.exec(select(Employee).where(col(Employee.id).in_(wanted))).all()
    return {e.id: e for e in rows if e.id is not None}
