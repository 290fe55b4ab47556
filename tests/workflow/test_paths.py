"""One test per lifecycle path, on the time-skipping server with real activities."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlmodel import func, select
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from domain.policy import Terms
from domain.stages import Reason, Role, Stage
from domain.workflow_dto import (
    ActionInput,
    AppealOutcome,
    ReasonedActionInput,
    ReassignmentState,
    ResolveAppealInput,
    SignInput,
)
from models import (
    Appeal,
    ApprovalStep,
    Assignment,
    AuditEvent,
    Employee,
    NotificationRecord,
    ReassignmentRequest,
    SignatureRecord,
)
from tests.workflow.conftest import Harness, state_of, wait_stage
from tests.workflow.test_signing_e2e import current_agreement

HR = [Role.HR]


def open_owner(h: Harness, customer_id: int) -> int:
    with h.sessions() as s:
        return s.exec(select(Assignment.employee_id).where(
            Assignment.customer_id == customer_id, Assignment.end_at.is_(None))).one()


def db_request(h: Harness, request_id: int) -> ReassignmentRequest:
    with h.sessions() as s:
        return s.get(ReassignmentRequest, request_id)


def notices(h: Harness, request_id: int, kind: str) -> list[NotificationRecord]:
    with h.sessions() as s:
        return list(s.exec(select(NotificationRecord).where(
            NotificationRecord.request_id == request_id, NotificationRecord.kind == kind)).all())


async def wait_for(condition, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def audit_count(h: Harness) -> int:
    with h.sessions() as s:
        return s.exec(select(func.count()).select_from(AuditEvent)).one()


async def start_default(h: Harness) -> WorkflowHandle:
    org = h.org
    return await h.submit_and_start(requester=org.manager_a, from_id=org.sales_a1,
                                    to_id=org.sales_a2, customers=org.customers_a1[:2])


async def approve_all(h: Harness, handle: WorkflowHandle) -> ReassignmentState:
    state = await wait_stage(handle, Stage.PENDING_APPROVAL, level=1)
    for level in state.levels:
        await wait_stage(handle, Stage.PENDING_APPROVAL, level=level.level)
        await handle.execute_update("approve", ActionInput(actor_id=level.approver_id),
                                    result_type=ReassignmentState)
    return await wait_stage(handle, Stage.COMMUNICATION)


async def rejected_with(handle: WorkflowHandle, name: str, arg: object) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update(name, arg, result_type=ReassignmentState)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


async def test_reject_at_level_two(harness):
    h, org = harness, harness.org
    handle = await start_default(h)
    state = await wait_stage(handle, Stage.PENDING_APPROVAL, level=1)
    await handle.execute_update("approve", ActionInput(actor_id=state.levels[0].approver_id),
                                result_type=ReassignmentState)
    await wait_stage(handle, Stage.PENDING_APPROVAL, level=2)
    await handle.execute_update(
        "reject", ReasonedActionInput(actor_id=state.levels[1].approver_id,
                                      reason="territory plan not final"),
        result_type=ReassignmentState)
    final = await handle.result()
    assert final.stage == Stage.REJECTED
    assert db_request(h, final.request_id).stage == Stage.REJECTED
    with h.sessions() as s:
        steps = s.exec(select(ApprovalStep).where(ApprovalStep.request_id == final.request_id)
                       .order_by(ApprovalStep.level)).all()
    assert [st.status for st in steps] == ["APPROVED", "REJECTED", "WAITING"]
    assert steps[1].comment == "territory plan not final"
    assert all(open_owner(h, c) == org.sales_a1 for c in org.customers_a1[:2])
    assert notices(h, final.request_id, "REJECTED")


async def test_sla_breach_reminds_then_escalates(harness):
    h, org = harness, harness.org
    handle = await start_default(h)
    state = await wait_stage(handle, Stage.PENDING_APPROVAL, level=1)
    first = state.levels[0].approver_id
    assert first == org.director
    await h.env.sleep(timedelta(minutes=2, seconds=30))  # past the 2-minute reminder
    state = await state_of(handle)
    assert state.levels[0].reminded and not state.levels[0].escalated_to
    reminders = notices(h, state.request_id, "APPROVAL_REMINDER")
    assert [n.recipient_id for n in reminders] == [first]
    await h.env.sleep(timedelta(minutes=2))  # past the 4-minute SLA
    state = await state_of(handle)
    # the director's manager (the CEO) approves level 2, so HR is next; HR head is level 3
    assert state.levels[0].escalated_to == [org.hr_staff]
    assert set(state.pending_approvers) == {first, org.hr_staff}
    escalations = notices(h, state.request_id, "APPROVAL_ESCALATED")
    assert [n.recipient_id for n in escalations] == [org.hr_staff]
    with h.sessions() as s:
        step = s.exec(select(ApprovalStep).where(ApprovalStep.request_id == state.request_id,
                                                 ApprovalStep.level == 1)).one()
        assert step.escalated_to == [org.hr_staff]
    # the escalation approver may act; the original approver could too
    await handle.execute_update("approve", ActionInput(actor_id=org.hr_staff),
                                result_type=ReassignmentState)
    state = await wait_stage(handle, Stage.PENDING_APPROVAL, level=2)
    assert state.levels[0].decided_by == org.hr_staff
    await handle.execute_update("withdraw", ReasonedActionInput(actor_id=org.manager_a,
                                                                reason="done testing"))


async def test_appeal_amend_terms_then_sign(harness):
    h, org = harness, harness.org
    handle = await start_default(h)
    await approve_all(h, handle)
    await h.env.sleep(timedelta(minutes=4))
    await handle.execute_update("appeal", ReasonedActionInput(
        actor_id=org.sales_a1, reason="I built these accounts over three years"))
    state = await wait_stage(handle, Stage.APPEAL_REVIEW)
    assert set(state.pending_approvers) == {org.hr_head, org.hr_staff}
    # the window is paused during review: a long review does not eat the window
    await h.env.sleep(timedelta(minutes=30))
    assert (await state_of(handle)).stage == Stage.APPEAL_REVIEW
    amended = Terms(protection_period=timedelta(minutes=60), protection_share_bp=7_000,
                    inherited_rate_bp=200, compensation_fen=500_000)
    state = await handle.execute_update("resolve_appeal", ResolveAppealInput(
        actor_id=org.hr_head, actor_roles=HR, outcome=AppealOutcome.AMEND,
        amended_terms=amended, comment="longer protection"), result_type=ReassignmentState)
    assert state.stage == Stage.COMMUNICATION and state.terms == amended
    await handle.execute_update("sign", SignInput(actor_id=org.sales_a1, typed_name="Li",
                                                  document_hash=state.agreement_sha256))
    await h.env.sleep(timedelta(minutes=7))  # the 6 minutes left in the window, and then some
    state = await wait_stage(handle, Stage.PROTECTION)
    assert state.protection_end - state.effective_at == timedelta(minutes=60)
    request = db_request(h, state.request_id)
    assert Terms.model_validate(request.terms) == amended
    with h.sessions() as s:
        appeal = s.exec(select(Appeal).where(Appeal.request_id == state.request_id)).one()
        assert appeal.status == "AMEND" and appeal.resolved_by_id == org.hr_head
    assert all(open_owner(h, c) == org.sales_a2 for c in org.customers_a1[:2])
    assert (await handle.result()).stage == Stage.COMPLETED


async def test_decline_leaves_ownership_and_notifies_hr(harness):
    h, org = harness, harness.org
    handle = await start_default(h)
    await approve_all(h, handle)
    await h.env.sleep(timedelta(minutes=11))
    await wait_stage(handle, Stage.AWAITING_SIGNATURE)
    await handle.execute_update("decline", ReasonedActionInput(
        actor_id=org.sales_a1, reason="the compensation is too low"))
    final = await handle.result()
    assert final.stage == Stage.DECLINED
    assert all(open_owner(h, c) == org.sales_a1 for c in org.customers_a1[:2])
    with h.sessions() as s:
        sig = s.exec(select(SignatureRecord).where(
            SignatureRecord.request_id == final.request_id)).one()
        assert sig.decision == "DECLINED" and sig.reason == "the compensation is too low"
    assert {n.recipient_id for n in notices(h, final.request_id, "DECLINED")} >= {
        org.hr_head, org.hr_staff}


async def test_signature_deadline_expires_without_consent(harness):
    h, org = harness, harness.org
    handle = await start_default(h)
    await approve_all(h, handle)
    final = await handle.result()  # time skips through the window and the deadline
    assert final.stage == Stage.EXPIRED_NO_CONSENT
    assert db_request(h, final.request_id).stage == Stage.EXPIRED_NO_CONSENT
    assert all(open_owner(h, c) == org.sales_a1 for c in org.customers_a1[:2])
    with h.sessions() as s:
        moved = s.exec(select(Assignment).where(
            Assignment.request_id == final.request_id)).all()
    assert moved == []
    assert len(notices(h, final.request_id, "SIGNATURE_REMINDER")) == 2
    assert org.hr_head in {n.recipient_id for n in notices(h, final.request_id,
                                                            "EXPIRED_NO_CONSENT")}


async def test_withdraw_by_requester(harness):
    h, org = harness, harness.org
    handle = await start_default(h)
    await wait_stage(handle, Stage.PENDING_APPROVAL, level=1)
    await handle.execute_update("withdraw", ReasonedActionInput(
        actor_id=org.manager_a, reason="customer asked to stay"))
    final = await handle.result()
    assert final.stage == Stage.WITHDRAWN
    assert db_request(h, final.request_id).closed_at is not None


async def test_cancel_by_hr_during_communication(harness):
    h, org = harness, harness.org
    handle = await start_default(h)
    await approve_all(h, handle)
    await handle.execute_update("cancel", ReasonedActionInput(
        actor_id=org.hr_head, actor_roles=HR, reason="policy review"))
    final = await handle.result()
    assert final.stage == Stage.CANCELLED
    assert all(open_owner(h, c) == org.sales_a1 for c in org.customers_a1[:2])


async def test_validator_rejections_write_nothing(harness):
    h, org = harness, harness.org
    handle = await start_default(h)
    state = await wait_stage(handle, Stage.PENDING_APPROVAL, level=1)
    level1 = state.levels[0].approver_id
    # the level's notice goes out after its audit row is written: nothing is in flight now
    await wait_for(lambda: notices(h, state.request_id, "APPROVAL_REQUESTED"))
    before = audit_count(h)

    cause = await rejected_with(handle, "approve", ActionInput(actor_id=org.sales_b1))
    assert cause.type == "WRONG_ACTOR"
    cause = await rejected_with(handle, "approve", ActionInput(actor_id=org.manager_a))
    assert cause.type == "FOUR_EYES" and "requester" in cause.message
    cause = await rejected_with(handle, "sign", SignInput(actor_id=org.sales_a1, typed_name="x"))
    assert cause.type == "WRONG_STAGE"
    cause = await rejected_with(handle, "sign", SignInput(actor_id=org.sales_a2, typed_name="x"))
    assert cause.type == "WRONG_ACTOR"
    cause = await rejected_with(handle, "cancel", ReasonedActionInput(
        actor_id=org.manager_b, reason="x"))
    assert cause.type == "WRONG_ACTOR"
    cause = await rejected_with(handle, "withdraw", ReasonedActionInput(
        actor_id=org.sales_a1, reason="x"))
    assert cause.type == "WRONG_ACTOR"
    cause = await rejected_with(handle, "resolve_appeal", ResolveAppealInput(
        actor_id=org.hr_head, actor_roles=HR, outcome=AppealOutcome.UPHOLD))
    assert cause.type == "WRONG_STAGE"
    assert audit_count(h) == before

    await handle.execute_update("approve", ActionInput(actor_id=level1))
    await wait_stage(handle, Stage.PENDING_APPROVAL, level=2)
    after_approval = audit_count(h)
    cause = await rejected_with(handle, "approve", ActionInput(actor_id=level1))
    assert cause.type == "FOUR_EYES" and "at most one level" in cause.message
    await approve_rest(handle)
    await wait_stage(handle, Stage.COMMUNICATION)
    document = (await current_agreement(handle)).agreement_sha256
    await handle.execute_update("sign", SignInput(actor_id=org.sales_a1, typed_name="Li",
                                                  document_hash=document))
    signed_count = audit_count(h)
    cause = await rejected_with(handle, "sign", SignInput(actor_id=org.sales_a1, typed_name="Li",
                                                          document_hash=document))
    assert cause.type == "ALREADY_DONE"
    cause = await rejected_with(handle, "appeal", ReasonedActionInput(
        actor_id=org.sales_a1, reason="too late"))
    assert cause.type == "WRONG_STAGE"
    assert audit_count(h) == signed_count > after_approval
    await handle.result()


async def approve_rest(handle: WorkflowHandle) -> None:
    state = await state_of(handle)
    for level in state.levels[1:]:
        await wait_stage(handle, Stage.PENDING_APPROVAL, level=level.level)
        await handle.execute_update("approve", ActionInput(actor_id=level.approver_id))


async def test_policy_violation_at_start_rejects(harness):
    h, org = harness, harness.org
    # sales_a1 does not own sales_b1's customer; the API would refuse, the workflow re-checks
    handle = await h.submit_and_start(requester=org.manager_a, from_id=org.sales_a1,
                                      to_id=org.sales_a2, customers=[org.customers_b1[0]])
    final = await handle.result()
    assert final.stage == Stage.REJECTED
    assert final.history[-1].event == "POLICY_VIOLATION"
    assert final.history[-1].detail["violations"][0]["code"] == "NOT_OWNER"


async def test_departure_handover_takes_effect_on_leave_date_without_signature(harness):
    h, org = harness, harness.org
    # the session's time-skipping clock runs ahead of the wall clock
    server_now = await h.env.get_current_time()
    with h.sessions() as s:
        leaver = s.get(Employee, org.sales_a1)
        leaver.leave_date = server_now + timedelta(days=3)
        s.add(leaver)
    handle = await h.submit_and_start(requester=org.manager_a, from_id=org.sales_a1,
                                      to_id=org.sales_a2, customers=org.customers_a1,
                                      reason=Reason.EMPLOYEE_DEPARTURE)
    state = await wait_stage(handle, Stage.PENDING_APPROVAL, level=1)
    for level in state.levels:
        await wait_stage(handle, Stage.PENDING_APPROVAL, level=level.level)
        await handle.execute_update("approve", ActionInput(actor_id=level.approver_id))
    state = await wait_stage(handle, Stage.SCHEDULED)
    assert all(open_owner(h, c) == org.sales_a1 for c in org.customers_a1)
    final = await handle.result()
    assert final.stage == Stage.COMPLETED and final.protection_end is None
    assert final.effective_at >= state.stage_deadline
    assert "SIGNATURE_REQUESTED" not in [e.event for e in final.history]
    assert all(open_owner(h, c) == org.sales_a2 for c in org.customers_a1)
