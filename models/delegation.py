"""Approval delegation: an approver lets a colleague decide for them over a date range.

The API checks the delegation when the colleague acts and passes `on_behalf_of` to the
workflow; the audit event and the approval step then record both people.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Date, or_
from sqlmodel import Field, Session, SQLModel, col, select

from domain.permissions import APPROVERS
from models.audit import AuditEvent, append_audit_event
from models.facts import employee_roles
from models.org import Employee, EmploymentStatus
from models.types import UTCDateTime, utcnow

MAX_DELEGATION_DAYS = 92  # a quarter: longer absences are a reorganisation, not a delegation


class ApprovalDelegation(SQLModel, table=True):
    __tablename__ = "approval_delegation"

    id: int | None = Field(default=None, primary_key=True)
    delegator_id: int = Field(foreign_key="employee.id", index=True)
    delegate_id: int = Field(foreign_key="employee.id", index=True)
    starts_on: date = Field(sa_type=Date)  # both days included, in the organisation's zone
    ends_on: date = Field(sa_type=Date)
    reason: str = Field(max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


@dataclass(frozen=True)
class DelegationError(Exception):
    field: str
    code: str
    message: str


def create_delegation(session: Session, *, delegator_id: int, delegate_id: int,
                      starts_on: date, ends_on: date, reason: str,
                      today: date) -> ApprovalDelegation:
    if delegate_id == delegator_id:
        raise DelegationError("delegate_id", "self", "You cannot delegate to yourself.")
    delegate = session.get(Employee, delegate_id)
    if delegate is None or delegate.status != EmploymentStatus.EMPLOYED:
        raise DelegationError("delegate_id", "unknown",
                              f"Employee {delegate_id} does not exist or has left.")
    if not employee_roles(session, delegate) & APPROVERS:
        raise DelegationError("delegate_id", "not-an-approver",
                              f"Employee {delegate_id} holds no approver role (manager, "
                              "director, HR or legal), so cannot stand in for you.")
    if ends_on < starts_on:
        raise DelegationError("ends_on", "before-start", "ends_on must not be before starts_on.")
    if ends_on < today:
        raise DelegationError("ends_on", "in-the-past", "The delegation would end in the past.")
    if (ends_on - starts_on).days + 1 > MAX_DELEGATION_DAYS:
        raise DelegationError("ends_on", "too-long",
                              f"A delegation lasts at most {MAX_DELEGATION_DAYS} days; for a "
                              "longer absence ask HR to reassign the approvals.")
    delegation = ApprovalDelegation(delegator_id=delegator_id, delegate_id=delegate_id,
                                    starts_on=starts_on, ends_on=ends_on, reason=reason.strip())
    session.add(delegation)
    session.flush()
    append_audit_event(session, AuditEvent(
        occurred_at=utcnow(), event_type="DELEGATION_CREATED", actor_id=delegator_id,
        detail={"delegation_id": delegation.id, "delegate_id": delegate_id,
                "starts_on": starts_on.isoformat(), "ends_on": ends_on.isoformat(),
                "reason": delegation.reason},
        chain_index=0, prev_hash="", hash=""))
    return delegation


def revoke_delegation(session: Session, delegation: ApprovalDelegation, actor_id: int) -> None:
    if delegation.revoked_at is not None:
        return  # a repeated revoke changes nothing and writes nothing
    delegation.revoked_at = utcnow()
    session.add(delegation)
    append_audit_event(session, AuditEvent(
        occurred_at=utcnow(), event_type="DELEGATION_REVOKED", actor_id=actor_id,
        detail={"delegation_id": delegation.id, "delegate_id": delegation.delegate_id},
        chain_index=0, prev_hash="", hash=""))


def active_delegators(session: Session, delegate_id: int, on: date) -> list[int]:
    """Whom `delegate_id` stands in for on `on`."""
    rows = session.exec(select(ApprovalDelegation.delegator_id).where(
        ApprovalDelegation.delegate_id == delegate_id,
        col(ApprovalDelegation.revoked_at).is_(None),
        col(ApprovalDelegation.starts_on) <= on, col(ApprovalDelegation.ends_on) >= on,
    )).all()
    return sorted(set(rows))


def delegations_of(session: Session, employee_id: int) -> list[ApprovalDelegation]:
    """Delegations given or received by `employee_id`, newest first."""
    return list(session.exec(select(ApprovalDelegation).where(or_(
        ApprovalDelegation.delegator_id == employee_id,
        ApprovalDelegation.delegate_id == employee_id,
    )).order_by(col(ApprovalDelegation.id).desc())).all())
