"""Data scope by org unit (DESIGN.md, "Security").

A manager or director acts within the org-unit subtree they belong to; HR (and legal, admin,
directors for reading) see everything; a salesperson sees requests about themselves.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from api.security import Actor
from domain.stages import Role
from models.org import Employee, OrgUnit
from models.reassignment import ApprovalStep, ReassignmentRequest

SEE_ALL_ROLES = (Role.HR, Role.LEGAL, Role.ADMIN, Role.DIRECTOR)
SUBMIT_ROLES = (Role.MANAGER, Role.DIRECTOR, Role.HR)


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


def subtree_employee_ids(session: Session, actor: Actor) -> set[int]:
    """Everyone in the org-unit subtree of the actor's own unit."""
    me = session.get(Employee, actor.employee_id)
    if me is None:
        return set()
    units = unit_subtree(session, me.org_unit_id)
    rows = session.exec(select(Employee.id).where(col(Employee.org_unit_id).in_(units))).all()
    return {r for r in rows if r is not None}


def may_submit_for(session: Session, actor: Actor, from_employee_id: int) -> bool:
    """HR anywhere; a manager or director only for salespeople in their subtree."""
    if actor.has_any(Role.HR):
        return True
    if actor.has_any(Role.MANAGER, Role.DIRECTOR):
        return from_employee_id in subtree_employee_ids(session, actor)
    return False


def visibility_clause(session: Session, actor: Actor) -> Any | None:
    """A WHERE clause limiting requests to the actor's scope; None means no limit."""
    if actor.has_any(*SEE_ALL_ROLES):
        return None
    me = actor.employee_id
    clauses: list[Any] = [
        ReassignmentRequest.requester_id == me,
        ReassignmentRequest.from_employee_id == me,
        ReassignmentRequest.to_employee_id == me,
        # an approver sees what they are asked to approve, wherever it comes from
        col(ReassignmentRequest.id).in_(
            select(ApprovalStep.request_id).where(ApprovalStep.approver_id == me)
        ),
    ]
    if actor.has_any(Role.MANAGER):
        team = subtree_employee_ids(session, actor)
        clauses += [col(ReassignmentRequest.from_employee_id).in_(team),
                    col(ReassignmentRequest.to_employee_id).in_(team)]
    return or_(*clauses)


def can_see(session: Session, actor: Actor, request: ReassignmentRequest) -> bool:
    if actor.has_any(*SEE_ALL_ROLES):
        return True
    me = actor.employee_id
    if me in (request.requester_id, request.from_employee_id, request.to_employee_id):
        return True
    steps = session.exec(
        select(ApprovalStep).where(ApprovalStep.request_id == request.id)
    ).all()
    if any(me == s.approver_id or me in (s.escalated_to or []) for s in steps):
        return True
    if actor.has_any(Role.MANAGER):
        team = subtree_employee_ids(session, actor)
        return request.from_employee_id in team or request.to_employee_id in team
    return False
