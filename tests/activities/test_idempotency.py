"""Every writing activity, run twice with the same input, leaves exactly one record."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import func, select
from temporalio.exceptions import ApplicationError

from activities.reassignment import OWNERSHIP_CHANGED, ReassignmentActivities
from domain.policy import default_terms
from domain.stages import Reason, Role, Stage
from domain.workflow_dto import (
    AppealWrite,
    ApprovalWrite,
    EscalationRequest,
    LevelStatus,
    Notification,
    OwnershipTransfer,
    ReassignmentInput,
    SignatureWrite,
    TransitionRecord,
)
from models import (
    Appeal,
    ApprovalStep,
    Assignment,
    AuditEvent,
    NotificationRecord,
    PolicyVersion,
    ReassignmentRequest,
    SignatureRecord,
)
from models.audit import verify_chain
from tests.factories import fast_policy_rules

AT = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def acts(sessions):
    return ReassignmentActivities(sessions)


@pytest.fixture
def request_id(sessions, org):
    with sessions() as s:
        policy = s.get(PolicyVersion, org.policy_version_id)
        req = ReassignmentRequest(
            idempotency_key=str(uuid.uuid4()), payload_hash="0" * 64, requester_id=org.manager_a,
            from_employee_id=org.sales_a1, to_employee_id=org.sales_a2,
            customer_ids=org.customers_a1[:2], reason=Reason.TERRITORY_REALIGNMENT.value,
            policy_version_id=policy.id,
            terms=default_terms(fast_policy_rules()).model_dump(mode="json"),
            workflow_id="reassignment-test")
        s.add(req)
        s.flush()
        return req.id


def count(sessions, model, *where) -> int:
    with sessions() as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


def rec(request_id: int, seq: int, **fields) -> TransitionRecord:
    base = dict(workflow_id="reassignment-test", seq=seq, request_id=request_id, at=AT,
                event="TEST", from_stage=Stage.SUBMITTED, to_stage=Stage.PENDING_APPROVAL)
    base.update(fields)
    return TransitionRecord(**base)


def test_record_transition_twice_writes_one_audit_event_and_stage(acts, sessions, request_id):
    r = rec(request_id, 1, approval_plan=[
        ApprovalWrite(level=1, role=Role.MANAGER, approver_id=1, status=LevelStatus.WAITING)])
    assert acts.record_transition(r) is True
    assert acts.record_transition(r) is False
    assert count(sessions, AuditEvent, AuditEvent.request_id == request_id) == 1
    assert count(sessions, ApprovalStep, ApprovalStep.request_id == request_id) == 1
    with sessions() as s:
        assert s.get(ReassignmentRequest, request_id).stage == Stage.PENDING_APPROVAL
        assert verify_chain(s)[0]


def test_late_older_transition_does_not_overwrite_newer_stage(acts, sessions, request_id):
    acts.record_transition(rec(request_id, 2, from_stage=Stage.PENDING_APPROVAL,
                               to_stage=Stage.CANCELLED))
    acts.record_transition(rec(request_id, 1, to_stage=Stage.COMMUNICATION))
    with sessions() as s:
        assert s.get(ReassignmentRequest, request_id).stage == Stage.CANCELLED
    assert count(sessions, AuditEvent, AuditEvent.request_id == request_id) == 2


def test_approval_decision_twice_is_one_decision(acts, sessions, request_id):
    decision = rec(request_id, 3, from_stage=Stage.PENDING_APPROVAL, actor_id=1,
                   approval=ApprovalWrite(level=1, role=Role.MANAGER, approver_id=1,
                                          status=LevelStatus.APPROVED, decided_by=1))
    acts.record_transition(decision)
    acts.record_transition(decision)
    with sessions() as s:
        step = s.exec(select(ApprovalStep).where(ApprovalStep.request_id == request_id)).one()
        assert step.status == "APPROVED" and step.decided_by_id == 1


def test_appeal_and_signature_twice_are_single_rows(acts, sessions, request_id, org):
    appeal = rec(request_id, 4, to_stage=Stage.APPEAL_REVIEW, appeal=AppealWrite(
        number=1, appellant_id=org.sales_a1, reason="unfair"))
    sign = rec(request_id, 5, to_stage=Stage.COMMUNICATION, signature=SignatureWrite(
        signer_id=org.sales_a1, decision="SIGNED", typed_name="Li"))
    for r in (appeal, appeal, sign, sign):
        acts.record_transition(r)
    assert count(sessions, Appeal, Appeal.request_id == request_id) == 1
    assert count(sessions, SignatureRecord, SignatureRecord.request_id == request_id) == 1


def test_ownership_transfer_twice_moves_once(acts, sessions, request_id, org):
    moved = org.customers_a1[:2]
    transfer = OwnershipTransfer(workflow_id="reassignment-test", request_id=request_id,
                                 from_employee_id=org.sales_a1, to_employee_id=org.sales_a2,
                                 customer_ids=moved, effective_at=AT)
    r = rec(request_id, 6, to_stage=Stage.EFFECTIVE, effective_at=AT, ownership_transfer=transfer)
    acts.record_transition(r)
    acts.record_transition(r)
    # even a fresh seq (a replayed step) must not move the customers a second time
    acts.record_transition(rec(request_id, 7, to_stage=Stage.EFFECTIVE,
                               ownership_transfer=transfer))
    with sessions() as s:
        rows = s.exec(select(Assignment).where(Assignment.customer_id.in_(moved))).all()
    assert len(rows) == 4
    assert sorted((a.employee_id, a.end_at is None) for a in rows) == sorted(
        [(org.sales_a1, False)] * 2 + [(org.sales_a2, True)] * 2)


def test_transfer_refuses_when_owner_changed_and_writes_nothing(acts, sessions, request_id, org):
    transfer = OwnershipTransfer(workflow_id="reassignment-test", request_id=request_id,
                                 from_employee_id=org.sales_a1, to_employee_id=org.sales_a2,
                                 customer_ids=[org.customers_a1[0], org.customers_b1[0]],
                                 effective_at=AT)
    with pytest.raises(ApplicationError) as info:
        acts.record_transition(rec(request_id, 8, to_stage=Stage.EFFECTIVE,
                                   ownership_transfer=transfer))
    assert info.value.type == OWNERSHIP_CHANGED and info.value.non_retryable
    assert count(sessions, AuditEvent, AuditEvent.request_id == request_id) == 0
    assert count(sessions, Assignment, Assignment.request_id == request_id) == 0
    with sessions() as s:
        assert s.get(ReassignmentRequest, request_id).stage == Stage.SUBMITTED


def test_escalation_twice_adds_one_approver_and_one_notice(acts, sessions, request_id, org):
    acts.record_transition(rec(request_id, 1, approval_plan=[
        ApprovalWrite(level=1, role=Role.MANAGER, approver_id=org.manager_a,
                      status=LevelStatus.PENDING)]))
    req = EscalationRequest(workflow_id="reassignment-test", seq=2, request_id=request_id, at=AT,
                            level=1, pending_approver_id=org.manager_a,
                            excluded_ids=[org.manager_a, org.sales_a1])
    first = acts.escalate_approval(req)
    second = acts.escalate_approval(req)
    assert first.escalation_approver_id == second.escalation_approver_id == org.director
    with sessions() as s:
        step = s.exec(select(ApprovalStep).where(ApprovalStep.request_id == request_id)).one()
        assert step.escalated_to == [org.director]
    assert count(sessions, NotificationRecord, NotificationRecord.kind == "APPROVAL_ESCALATED") == 1
    assert count(sessions, AuditEvent, AuditEvent.event_type == "APPROVAL_ESCALATED") == 1


def test_notify_twice_writes_one_notice_per_recipient(acts, sessions, request_id, org):
    notice = Notification(workflow_id="reassignment-test", key="7-DECLINED",
                          request_id=request_id, kind="DECLINED", message="declined",
                          recipient_ids=[org.manager_a], recipient_role=Role.HR)
    assert acts.notify(notice) == 3  # the requester and both HR employees
    assert acts.notify(notice) == 0
    assert count(sessions, NotificationRecord, NotificationRecord.key == "7-DECLINED") == 3


def test_assess_request_reads_policy_and_resolves_chain(acts, request_id, org):
    ctx = acts.assess_request(ReassignmentInput(request_id=request_id))
    assert ctx.violations == []
    assert [lv.approver_id for lv in ctx.chain] == [org.director, org.ceo, org.hr_head]
    assert ctx.rules == fast_policy_rules()
    assert ctx.hr_ids == sorted([org.hr_head, org.hr_staff])
    assert ctx.chain[0].sla == timedelta(minutes=4)


def test_assess_unknown_request_is_non_retryable(acts):
    with pytest.raises(ApplicationError) as info:
        acts.assess_request(ReassignmentInput(request_id=999_999))
    assert info.value.non_retryable
