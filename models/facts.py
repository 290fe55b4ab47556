"""Read the facts that domain checks need, as plain domain snapshots."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from domain.approval_chain import OrgPerson, OrgSnapshot, OrgUnitNode
from domain.policy import CustomerFacts, EmployeeFacts
from domain.stages import PRE_EFFECTIVE_STAGES, TERMINAL_STAGES, Role, Stage
from models.customer import Assignment, Customer, Order
from models.org import Employee, EmploymentStatus, OrgUnit, UserAccount
from models.reassignment import ReassignmentRequest, RequestCustomer

_NOT_COUNTED_FOR_COOLING_OFF = {
    Stage.REJECTED, Stage.WITHDRAWN, Stage.CANCELLED, Stage.DECLINED, Stage.EXPIRED_NO_CONSENT,
}


def employee_roles(session: Session, employee: Employee) -> frozenset[Role]:
    roles = {Role(employee.role)} if employee.role in Role._value2member_map_ else set()
    account = session.exec(
        select(UserAccount).where(UserAccount.employee_id == employee.id)
    ).first()
    if account is not None:
        roles |= {Role(r) for r in account.roles if r in Role._value2member_map_}
    return frozenset(roles)


def employee_facts(session: Session, employee_id: int) -> EmployeeFacts | None:
    employee = session.get(Employee, employee_id)
    if employee is None:
        return None
    return EmployeeFacts(
        id=employee_id,
        active=employee.status == EmploymentStatus.EMPLOYED,
        roles=employee_roles(session, employee),
        leave_date=employee.leave_date,
    )


def customer_facts(
    session: Session, customer_ids: Iterable[int], *, exclude_request_id: int | None = None
) -> dict[int, CustomerFacts]:
    ids = list(dict.fromkeys(customer_ids))
    if not ids:
        return {}
    known = set(session.exec(select(Customer.id).where(col(Customer.id).in_(ids))).all())
    owners = dict(
        session.exec(
            select(Assignment.customer_id, Assignment.employee_id).where(
                col(Assignment.customer_id).in_(ids), col(Assignment.end_at).is_(None)
            )
        ).all()
    )
    reassignments: dict[int, list[datetime]] = {cid: [] for cid in ids}
    protection: dict[int, datetime] = {}
    open_requests: dict[int, list[int]] = {cid: [] for cid in ids}
    rows = session.exec(
        select(RequestCustomer.customer_id, ReassignmentRequest)
        .join(ReassignmentRequest, col(ReassignmentRequest.id) == RequestCustomer.request_id)
        .where(col(RequestCustomer.customer_id).in_(ids))
    ).all()
    for customer_id, request in rows:
        if request.id == exclude_request_id or request.stage in _NOT_COUNTED_FOR_COOLING_OFF:
            continue
        reassignments[customer_id].append(request.created_at)
        if request.stage in PRE_EFFECTIVE_STAGES and request.id is not None:
            open_requests[customer_id].append(request.id)
        if request.protection_end is not None and request.stage not in TERMINAL_STAGES:
            protection[customer_id] = max(protection.get(customer_id, request.protection_end),
                                          request.protection_end)
    return {
        cid: CustomerFacts(
            id=cid,
            current_owner_id=owners.get(cid),
            recent_reassignments=tuple(reassignments[cid]),
            protection_ends_at=protection.get(cid),
            open_request_ids=tuple(open_requests[cid]),
        )
        for cid in ids
        if cid in known
    }


def org_snapshot(session: Session) -> OrgSnapshot:
    accounts = {a.employee_id: a for a in session.exec(select(UserAccount)).all()}
    people: dict[int, OrgPerson] = {}
    for e in session.exec(select(Employee)).all():
        assert e.id is not None
        roles = {e.role} | set(accounts[e.id].roles if e.id in accounts else [])
        people[e.id] = OrgPerson(
            id=e.id,
            manager_id=e.manager_id,
            org_unit_id=e.org_unit_id,
            roles=frozenset(Role(r) for r in roles if r in Role._value2member_map_),
            active=e.status == EmploymentStatus.EMPLOYED,
        )
    units = {
        u.id: OrgUnitNode(id=u.id, parent_id=u.parent_id, function=u.function,
                          head_id=u.head_employee_id)
        for u in session.exec(select(OrgUnit)).all()
        if u.id is not None
    }
    return OrgSnapshot(people=people, units=units)


def trailing_revenue_fen(session: Session, customer_ids: list[int], since: datetime) -> int:
    """Revenue of the customers since `since`; the value that sets the legal threshold."""
    if not customer_ids:
        return 0
    total = session.exec(
        select(func.coalesce(func.sum(Order.amount_fen), 0)).where(
            col(Order.customer_id).in_(customer_ids), col(Order.booked_at) >= since
        )
    ).one()
    return int(total)
