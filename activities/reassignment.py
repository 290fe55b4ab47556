"""Activities of the reassignment workflow: thin, idempotent, the only DB writers it has.

Every write is keyed by (workflow id, transition seq) or by another natural key, so an
at-least-once retry writes nothing twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics
from domain.approval_chain import NoApproverError, escalation_approver, resolve_chain
from domain.impact import legal_review_needed
from domain.policy import Terms, check_request
from domain.stages import TERMINAL_STAGES, Reason, Role
from domain.workflow_dto import (
    EscalationRequest,
    EscalationResult,
    Notification,
    OwnershipTransfer,
    ReassignmentInput,
    RequestContext,
    TransitionRecord,
    ViolationOut,
)
from models import (
    Appeal,
    ApprovalStep,
    Assignment,
    AssignmentSource,
    AuditEvent,
    Employee,
    EmploymentStatus,
    NotificationRecord,
    PolicyVersion,
    ReassignmentRequest,
    SignatureRecord,
    UserAccount,
)
from models.assessment import reassess
from models.audit import append_audit_event
from models.commission_engine import recompute_for_customers_since
from models.db import SessionFactory
from models.facts import customer_facts, employee_facts, org_snapshot

OWNERSHIP_CHANGED = "OWNERSHIP_CHANGED"
ENTITY_REQUEST = "reassignment_request"
REQUEST_NOT_FOUND = "REQUEST_NOT_FOUND"


class ReassignmentActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    # --- read --------------------------------------------------------------------------

    @activity.defn(name="assess_request")
    def assess_request(self, inp: ReassignmentInput) -> RequestContext:
        """Re-check the policy at start and resolve the approval chain. Reads only."""
        with self._sessions() as session:
            request = session.get(ReassignmentRequest, inp.request_id)
            if request is None:
                raise ApplicationError(f"request {inp.request_id} does not exist",
                                       type=REQUEST_NOT_FOUND, non_retryable=True)
            policy = session.get(PolicyVersion, request.policy_version_id)
            assert policy is not None  # foreign key
            rules = policy.parsed_rules()
            now = datetime.now(UTC)
            from_facts = employee_facts(session, request.from_employee_id)
            violations = check_request(
                rules=rules,
                reason=Reason(request.reason),
                from_employee=from_facts,
                to_employee=employee_facts(session, request.to_employee_id),
                customer_ids=list(request.customer_ids),
                customers=customer_facts(session, request.customer_ids,
                                         exclude_request_id=request.id),
                now=now,
            )
            out = [ViolationOut(code=v.code, message=v.message, field=v.field)
                   for v in violations]
            org = org_snapshot(session)
            chain = []
            try:
                assessment = request.assessment or {}
                chain = resolve_chain(
                    rules=rules, org=org, from_employee_id=request.from_employee_id,
                    requester_id=request.requester_id, value_fen=request.value_fen,
                    needs_legal=legal_review_needed(
                        rules, value_fen=request.value_fen,
                        top_tier=assessment.get("top_tier"),
                        projected_loss_fen=assessment.get("projected_loss_fen")))
            except NoApproverError as exc:
                out.append(ViolationOut(code="NO_APPROVER", message=str(exc)))
            hr_ids = sorted(p.id for p in org.people.values() if p.active and Role.HR in p.roles)
            departure_at = None
            if request.reason == Reason.EMPLOYEE_DEPARTURE and from_facts is not None:
                departure_at = from_facts.leave_date
            return RequestContext(
                request_id=request.id or inp.request_id,
                workflow_id=request.workflow_id or "",
                requester_id=request.requester_id,
                from_employee_id=request.from_employee_id,
                to_employee_id=request.to_employee_id,
                customer_ids=list(request.customer_ids),
                reason=Reason(request.reason),
                policy_version_id=request.policy_version_id,
                rules=rules,
                terms=Terms.model_validate(request.terms),
                chain=chain,
                value_fen=request.value_fen,
                violations=out,
                hr_ids=hr_ids,
                departure_effective_at=departure_at,
            )

    # --- write -------------------------------------------------------------------------

    @activity.defn(name="record_transition")
    def record_transition(self, rec: TransitionRecord) -> bool:
        """Write one lifecycle step and its audit event in one transaction.

        Returns False when (workflow_id, seq) was already written: a retry.
        """
        written = self._write_transition(rec)
        if written:  # committed just now, not found done by a retry: count it once
            metrics.stage_entered(rec.to_stage)
            if rec.signature is not None:
                metrics.signature_recorded(rec.signature.decision)
        return written

    def _write_transition(self, rec: TransitionRecord) -> bool:
        try:
            with self._sessions() as session:
                if _already_written(session, rec.workflow_id, rec.seq):
                    return False
                request = _locked_request(session, rec.request_id)
                before = _request_view(request)
                if rec.seq > request.last_transition_seq:
                    request.stage = rec.to_stage
                    request.stage_deadline = rec.stage_deadline
                    request.last_transition_seq = rec.seq
                if rec.terms is not None:
                    request.terms = rec.terms.model_dump(mode="json")
                    if request.assessment:  # the figures follow the amended terms
                        policy = session.get(PolicyVersion, request.policy_version_id)
                        assert policy is not None
                        request.assessment = reassess(
                            request.assessment, policy.parsed_rules(), rec.terms,
                        ).model_dump(mode="json")
                if rec.effective_at is not None:
                    request.effective_at = rec.effective_at
                if rec.protection_end is not None:
                    request.protection_end = rec.protection_end
                    request.protection_share_bp = Terms.model_validate(
                        request.terms).protection_share_bp
                if rec.to_stage in TERMINAL_STAGES:
                    request.closed_at = rec.at
                request.updated_at = rec.at
                session.add(request)
                for plan in rec.approval_plan:
                    _upsert_step(session, rec, plan)
                if rec.approval is not None:
                    _upsert_step(session, rec, rec.approval)
                if rec.appeal is not None:
                    _upsert_appeal(session, rec)
                if rec.signature is not None:
                    _insert_signature(session, rec)
                if rec.ownership_transfer is not None:
                    _transfer_ownership(session, rec.ownership_transfer)
                session.flush()
                if request.effective_at is not None and (
                        rec.ownership_transfer is not None or rec.protection_end is not None):
                    # orders already booked since effective_at now pay B (and A's share)
                    recompute_for_customers_since(session, list(request.customer_ids),
                                                  request.effective_at)
                after = _request_view(request)
                if rec.ownership_transfer is not None:
                    after["ownership"] = rec.ownership_transfer.model_dump(mode="json")
                append_audit_event(session, AuditEvent(
                    occurred_at=rec.at, event_type=rec.event, request_id=rec.request_id,
                    workflow_id=rec.workflow_id, transition_seq=rec.seq, actor_id=rec.actor_id,
                    on_behalf_of=rec.on_behalf_of, from_stage=rec.from_stage.value,
                    to_stage=rec.to_stage.value, detail=dict(rec.detail),
                    entity_type=ENTITY_REQUEST, entity_id=str(rec.request_id),
                    before=before, after=after, reason=_transition_reason(rec),
                    chain_index=0, prev_hash="", hash="",
                ))
                return True
        except IntegrityError:
            # a concurrent attempt of this same activity won the race; it wrote everything
            with self._sessions() as session:
                if _already_written(session, rec.workflow_id, rec.seq):
                    return False
            raise

    @activity.defn(name="escalate_approval")
    def escalate_approval(self, req: EscalationRequest) -> EscalationResult:
        """At SLA breach: add the escalation approver to the level and notify them."""
        with self._sessions() as session:
            written = session.exec(
                select(AuditEvent).where(AuditEvent.workflow_id == req.workflow_id,
                                         AuditEvent.transition_seq == req.seq)
            ).first()
            if written is not None:
                return EscalationResult(
                    escalation_approver_id=written.detail.get("escalation_approver_id"))
            approver = escalation_approver(org_snapshot(session), req.pending_approver_id,
                                           set(req.excluded_ids))
            step = session.exec(select(ApprovalStep).where(
                ApprovalStep.request_id == req.request_id, ApprovalStep.level == req.level)).one()
            escalated_before = list(step.escalated_to)
            if approver is not None and approver not in step.escalated_to:
                step.escalated_to = [*step.escalated_to, approver]
                session.add(step)
                session.add(NotificationRecord(
                    workflow_id=req.workflow_id, key=f"escalation-{req.seq}",
                    request_id=req.request_id, recipient_id=approver, kind="APPROVAL_ESCALATED",
                    message=f"Approval level {req.level} of request {req.request_id} is overdue "
                            "and has been escalated to you.", created_at=req.at))
            request = _locked_request(session, req.request_id)
            append_audit_event(session, AuditEvent(
                occurred_at=req.at, event_type="APPROVAL_ESCALATED", request_id=req.request_id,
                workflow_id=req.workflow_id, transition_seq=req.seq, actor_id=None,
                from_stage=request.stage.value, to_stage=request.stage.value,
                detail={"level": req.level, "pending_approver_id": req.pending_approver_id,
                        "escalation_approver_id": approver},
                entity_type="approval_step", entity_id=str(step.id),
                before={"level": req.level, "escalated_to": escalated_before},
                after={"level": req.level, "escalated_to": list(step.escalated_to)},
                reason=f"approval level {req.level} passed its SLA",
                chain_index=0, prev_hash="", hash="",
            ))
            return EscalationResult(escalation_approver_id=approver)

    @activity.defn(name="notify")
    def notify(self, notice: Notification) -> int:
        """Record a notice per recipient; email delivery comes later. Returns how many are new."""
        with self._sessions() as session:
            recipients = set(notice.recipient_ids)
            if notice.recipient_role is not None:
                recipients |= _employees_with_role(session, notice.recipient_role)
            existing = set(session.exec(select(NotificationRecord.recipient_id).where(
                NotificationRecord.workflow_id == notice.workflow_id,
                NotificationRecord.key == notice.key)).all())
            new = sorted(recipients - existing)
            for recipient in new:
                session.add(NotificationRecord(
                    workflow_id=notice.workflow_id, key=notice.key, request_id=notice.request_id,
                    recipient_id=recipient, kind=notice.kind, message=notice.message))
            return len(new)


# --- helpers ---------------------------------------------------------------------------------


def _already_written(session: Session, workflow_id: str, seq: int) -> bool:
    found = session.exec(select(AuditEvent.id).where(
        AuditEvent.workflow_id == workflow_id, AuditEvent.transition_seq == seq)).first()
    return found is not None


def _locked_request(session: Session, request_id: int) -> ReassignmentRequest:
    request = session.exec(select(ReassignmentRequest).where(
        ReassignmentRequest.id == request_id).with_for_update()).first()
    if request is None:
        raise ApplicationError(f"request {request_id} does not exist", type=REQUEST_NOT_FOUND,
                               non_retryable=True)
    return request


def _request_view(request: ReassignmentRequest) -> dict[str, Any]:
    return {"stage": request.stage.value if request.stage else None,
            "stage_deadline": _iso(request.stage_deadline),
            "terms": dict(request.terms),
            "effective_at": _iso(request.effective_at),
            "protection_end": _iso(request.protection_end)}


def _transition_reason(rec: TransitionRecord) -> str | None:
    """Why the step happened, in the actor's words: the reason given with a reject, withdraw,
    cancel or decline, an approver's comment, an appeal's grounds or HR's resolution."""
    reason = rec.detail.get("reason")
    if isinstance(reason, str) and reason:
        return reason
    if rec.approval is not None and rec.approval.comment:
        return rec.approval.comment
    if rec.appeal is not None:
        return rec.appeal.comment if rec.appeal.outcome is not None else rec.appeal.reason
    if rec.signature is not None and rec.signature.reason:
        return rec.signature.reason
    return None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _upsert_step(session: Session, rec: TransitionRecord, write: Any) -> None:
    step = session.exec(select(ApprovalStep).where(
        ApprovalStep.request_id == rec.request_id, ApprovalStep.level == write.level)).first()
    if step is None:
        step = ApprovalStep(request_id=rec.request_id, level=write.level, role=write.role.value,
                            approver_id=write.approver_id)
    step.status = write.status.value
    step.approver_id = write.approver_id  # HR may have handed the level to someone else
    if write.due_at is not None:
        step.due_at = write.due_at
    if write.escalated_to:
        step.escalated_to = list(write.escalated_to)
    if write.decided_by is not None:
        step.decided_by_id = write.decided_by
        step.decided_on_behalf_of_id = write.decided_for
        step.decided_at = rec.at
        step.comment = write.comment
    session.add(step)


def _upsert_appeal(session: Session, rec: TransitionRecord) -> None:
    write = rec.appeal
    assert write is not None
    appeal = session.exec(select(Appeal).where(
        Appeal.request_id == rec.request_id, Appeal.number == write.number)).first()
    if appeal is None:
        appeal = Appeal(request_id=rec.request_id, number=write.number,
                        appellant_id=write.appellant_id, reason=write.reason, opened_at=rec.at)
    if write.outcome is not None:
        appeal.status = write.outcome.value
        appeal.resolved_by_id = write.resolved_by
        appeal.resolved_at = rec.at
        appeal.resolution_comment = write.comment
    session.add(appeal)


def _insert_signature(session: Session, rec: TransitionRecord) -> None:
    sig = rec.signature
    assert sig is not None
    session.add(SignatureRecord(
        request_id=rec.request_id, signer_id=sig.signer_id, decision=sig.decision, at=rec.at,
        typed_name=sig.typed_name, reason=sig.reason, method=sig.method, ip=sig.ip,
        user_agent=sig.user_agent, document_hash=sig.document_hash,
        credential_id=sig.credential_id))


def _transfer_ownership(session: Session, transfer: OwnershipTransfer) -> None:
    """Close A's assignment and open B's at effective_at. Refuses if A no longer owns."""
    if session.exec(select(Assignment.id).where(
            Assignment.request_id == transfer.request_id)).first() is not None:
        return
    for customer_id in transfer.customer_ids:
        current = session.exec(select(Assignment).where(
            Assignment.customer_id == customer_id, col(Assignment.end_at).is_(None),
        ).with_for_update()).first()
        if current is None or current.employee_id != transfer.from_employee_id:
            raise ApplicationError(
                f"customer {customer_id} is no longer owned by employee "
                f"{transfer.from_employee_id}; ownership was not moved",
                type=OWNERSHIP_CHANGED, non_retryable=True)
        current.end_at = transfer.effective_at
        session.add(current)
        session.add(Assignment(customer_id=customer_id, employee_id=transfer.to_employee_id,
                               start_at=transfer.effective_at,
                               source=AssignmentSource.REASSIGNMENT,
                               request_id=transfer.request_id))


def _employees_with_role(session: Session, role: Role) -> set[int]:
    ids = set(session.exec(select(Employee.id).where(
        Employee.role == role.value, Employee.status == EmploymentStatus.EMPLOYED)).all())
    for account in session.exec(select(UserAccount).where(UserAccount.is_active)).all():
        if role.value in account.roles:
            employee = session.get(Employee, account.employee_id)
            if employee is not None and employee.status == EmploymentStatus.EMPLOYED:
                ids.add(account.employee_id)
    return {i for i in ids if i is not None}

