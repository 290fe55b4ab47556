"""An employee's own data, for export (PIPL art. 45: the right to a copy).

Everything Baton holds about the employee as a person or as a party to a request, as plain
JSON; secrets (password hash, passkey public keys, one-time codes) are left out, and other
people's personal data is referred to by id only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, SQLModel, col, select

from models.audit import AuditEvent
from models.commission import CommissionLine, CommissionPlan, Statement
from models.customer import Assignment
from models.delegation import ApprovalDelegation
from models.org import Employee, UserAccount
from models.policy import PolicyAcknowledgement
from models.reassignment import (
    Appeal,
    ApprovalStep,
    NotificationRecord,
    ReassignmentRequest,
    SignatureRecord,
)
from models.signing import PasskeyCredential

FORMAT_VERSION = 1
SECRET_FIELDS = {"password_hash", "public_key", "token_hash", "code_hash"}


def _rows(rows: Sequence[SQLModel]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.model_dump(mode="json").items() if k not in SECRET_FIELDS}
            for row in rows]


def export_personal_data(session: Session, employee_id: int) -> dict[str, Any]:
    employee = session.get(Employee, employee_id)
    if employee is None:
        raise LookupError(employee_id)
    account = session.exec(select(UserAccount).where(UserAccount.employee_id == employee_id)).all()
    requests = session.exec(select(ReassignmentRequest).where(or_(
        ReassignmentRequest.from_employee_id == employee_id,
        ReassignmentRequest.to_employee_id == employee_id,
        ReassignmentRequest.requester_id == employee_id,
    )).order_by(col(ReassignmentRequest.id))).all()
    return {
        "format_version": FORMAT_VERSION,
        "employee": _rows([employee])[0],
        "account": _rows(account),
        "customer_assignments": _rows(session.exec(select(Assignment).where(
            Assignment.employee_id == employee_id).order_by(col(Assignment.id))).all()),
        "commission_plans": _rows(session.exec(select(CommissionPlan).where(
            CommissionPlan.employee_id == employee_id).order_by(col(CommissionPlan.id))).all()),
        "statements": _rows(session.exec(select(Statement).where(
            Statement.employee_id == employee_id).order_by(col(Statement.period))).all()),
        "commission_lines": _rows(session.exec(select(CommissionLine).where(
            CommissionLine.employee_id == employee_id).order_by(col(CommissionLine.id))).all()),
        "reassignment_requests": _rows(requests),
        "approval_decisions": _rows(session.exec(select(ApprovalStep).where(or_(
            ApprovalStep.approver_id == employee_id, ApprovalStep.decided_by_id == employee_id,
        )).order_by(col(ApprovalStep.id))).all()),
        "appeals": _rows(session.exec(select(Appeal).where(
            Appeal.appellant_id == employee_id).order_by(col(Appeal.id))).all()),
        "signatures": _rows(session.exec(select(SignatureRecord).where(
            SignatureRecord.signer_id == employee_id).order_by(col(SignatureRecord.id))).all()),
        "notifications": _rows(session.exec(select(NotificationRecord).where(
            NotificationRecord.recipient_id == employee_id)
            .order_by(col(NotificationRecord.id))).all()),
        "policy_acknowledgements": _rows(session.exec(select(PolicyAcknowledgement).where(
            PolicyAcknowledgement.employee_id == employee_id)
            .order_by(col(PolicyAcknowledgement.id))).all()),
        "passkeys": _rows(session.exec(select(PasskeyCredential).where(
            PasskeyCredential.employee_id == employee_id)
            .order_by(col(PasskeyCredential.id))).all()),
        "delegations": _rows(session.exec(select(ApprovalDelegation).where(or_(
            ApprovalDelegation.delegator_id == employee_id,
            ApprovalDelegation.delegate_id == employee_id,
        )).order_by(col(ApprovalDelegation.id))).all()),
        "audit_events_as_actor": _rows(session.exec(select(AuditEvent).where(
            AuditEvent.actor_id == employee_id).order_by(col(AuditEvent.chain_index))).all()),
    }
