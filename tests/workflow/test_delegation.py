"""Approvals under delegation ("on behalf of") and HR handing a level to another approver."""

from __future__ import annotations

from sqlmodel import select

from domain.stages import Role, Stage
from domain.workflow_dto import (
    ActionInput,
    ReasonedActionInput,
    ReassignApprovalInput,
    ReassignmentState,
)
from models import ApprovalStep, AuditEvent
from tests.workflow.conftest import wait_stage
from tests.workflow.test_paths import (
    approve_rest,
    audit_count,
    notices,
    rejected_with,
    start_default,
    wait_for,
)

HR = [Role.HR]


async def finish(handle, requester: int) -> None:
    """End the workflow, so no timer of it runs on in the shared time-skipping server."""
    await handle.execute_update("withdraw", ReasonedActionInput(actor_id=requester,
                                                                reason="test finished"),
                                result_type=ReassignmentState)
    assert (await handle.result()).stage == Stage.WITHDRAWN


async def level_settled(h, request_id: int) -> None:
    """The open level's notice goes out after its audit row is written, so once it is there
    nothing of the level is in flight and the audit count only moves with the test's actions
    (without this wait the count raced the level-1 audit row on a loaded machine)."""
    await wait_for(lambda: notices(h, request_id, "APPROVAL_REQUESTED"))


def steps_of(h, request_id: int) -> list[ApprovalStep]:
    with h.sessions() as s:
        return list(s.exec(select(ApprovalStep).where(ApprovalStep.request_id == request_id)
                           .order_by(ApprovalStep.level)).all())


def events_of(h, request_id: int, event_type: str) -> list[AuditEvent]:
    with h.sessions() as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.request_id == request_id,
                                                    AuditEvent.event_type == event_type)).all())


async def test_a_delegate_approves_on_behalf_of_the_approver(harness):
    h, org = harness, harness.org
    handle = await start_default(h)
    state = await wait_stage(handle, Stage.PENDING_APPROVAL, level=1)
    approver = state.levels[0].approver_id
    delegate = org.manager_b  # the API passes on_behalf_of only after checking the delegation
    state = await handle.execute_update(
        "approve", ActionInput(actor_id=delegate, on_behalf_of=approver, comment="for Ma"),
        result_type=ReassignmentState)
    level = state.levels[0]
    assert (level.decided_by, level.decided_for) == (delegate, approver)
    await wait_stage(handle, Stage.PENDING_APPROVAL, level=2)
    [event] = events_of(h, state.request_id, "APPROVED")
    assert (event.actor_id, event.on_behalf_of) == (delegate, approver)
    step = steps_of(h, state.request_id)[0]
    assert (step.decided_by_id, step.decided_on_behalf_of_id) == (delegate, approver)
    await finish(handle, org.manager_a)


async def test_delegation_keeps_the_four_eyes_rules(harness):
    h, org = harness, harness.org
    handle = await start_default(h)
    state = await wait_stage(handle, Stage.PENDING_APPROVAL, level=1)
    level1, level2 = state.levels[0].approver_id, state.levels[1].approver_id
    await level_settled(h, state.request_id)
    before = audit_count(h)
    # standing in for someone who is not the approver of the open level
    cause = await rejected_with(handle, "approve",
                                ActionInput(actor_id=org.manager_b, on_behalf_of=level2))
    assert cause.type == "WRONG_ACTOR" and "stand in" in cause.message
    # the requester cannot approve their own request by standing in for the approver
    cause = await rejected_with(handle, "approve",
                                ActionInput(actor_id=org.manager_a, on_behalf_of=level1))
    assert cause.type == "FOUR_EYES"
    assert audit_count(h) == before
    # the approver of level 1 delegates; the delegate then cannot also decide level 2 for
    # the level-2 approver, and the level-1 approver cannot decide level 2 either
    await handle.execute_update("approve", ActionInput(actor_id=org.manager_b,
                                                       on_behalf_of=level1),
                                result_type=ReassignmentState)
    await wait_stage(handle, Stage.PENDING_APPROVAL, level=2)
    cause = await rejected_with(handle, "approve",
                                ActionInput(actor_id=org.manager_b, on_behalf_of=level2))
    assert cause.type == "FOUR_EYES"
    cause = await rejected_with(handle, "approve", ActionInput(actor_id=level1))
    assert cause.type in ("FOUR_EYES", "WRONG_ACTOR")
    await approve_rest(handle)
    await wait_stage(handle, Stage.COMMUNICATION)
    await finish(handle, org.manager_a)


async def test_hr_hands_a_pending_level_to_another_approver(harness):
    h, org = harness, harness.org
    handle = await start_default(h)
    state = await wait_stage(handle, Stage.PENDING_APPROVAL, level=1)
    original = state.levels[0].approver_id
    substitute = org.director if original != org.director else org.ceo
    await level_settled(h, state.request_id)
    before = audit_count(h)
    # only HR; not to a party of the request; and only the open level
    cause = await rejected_with(handle, "reassign_approval", ReassignApprovalInput(
        actor_id=org.manager_b, new_approver_id=substitute, reason="away"))
    assert cause.type == "WRONG_ACTOR"
    cause = await rejected_with(handle, "reassign_approval", ReassignApprovalInput(
        actor_id=org.hr_staff, actor_roles=HR, new_approver_id=org.sales_a1, reason="away"))
    assert cause.type == "FOUR_EYES"
    cause = await rejected_with(handle, "reassign_approval", ReassignApprovalInput(
        actor_id=org.hr_staff, actor_roles=HR, new_approver_id=substitute, level=2,
        reason="away"))
    assert cause.type == "WRONG_STAGE"
    assert audit_count(h) == before

    state = await handle.execute_update("reassign_approval", ReassignApprovalInput(
        actor_id=org.hr_staff, actor_roles=HR, new_approver_id=substitute, level=1,
        reason="approver on sick leave"), result_type=ReassignmentState)
    assert state.levels[0].approver_id == substitute
    assert state.pending_approvers[0] == substitute
    [event] = events_of(h, state.request_id, "APPROVAL_REASSIGNED")
    assert event.actor_id == org.hr_staff
    assert event.detail["from_approver_id"] == original
    assert event.detail["to_approver_id"] == substitute
    assert steps_of(h, state.request_id)[0].approver_id == substitute
    assert any(n.recipient_id == substitute
               for n in notices(h, state.request_id, "APPROVAL_REQUESTED"))
    # the previous approver may no longer decide; the new one may
    cause = await rejected_with(handle, "approve", ActionInput(actor_id=original))
    assert cause.type == "WRONG_ACTOR"
    await handle.execute_update("approve", ActionInput(actor_id=substitute),
                                result_type=ReassignmentState)
    await wait_stage(handle, Stage.PENDING_APPROVAL, level=2)
    await finish(handle, org.manager_a)
