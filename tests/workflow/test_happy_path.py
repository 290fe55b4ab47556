from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlmodel import select

from domain.stages import Stage
from domain.workflow_dto import ActionInput, ReasonedActionInput, ReassignmentState, SignInput
from models import Assignment, AssignmentSource, ReassignmentRequest
from tests.workflow.conftest import state_of, wait_stage
from tests.workflow.test_signing_e2e import current_agreement


def _owners(sessions, customers):
    with sessions() as s:
        rows = s.exec(select(Assignment).where(Assignment.customer_id.in_(customers))).all()
        return rows


async def test_full_lifecycle_approve_sign_effective_protection_completed(harness):
    org = harness.org
    moved = org.customers_a1[:2]
    handle = await harness.submit_and_start(requester=org.manager_a, from_id=org.sales_a1,
                                            to_id=org.sales_a2, customers=moved)
    state = await wait_stage(handle, Stage.PENDING_APPROVAL, level=1)
    # requester (manager_a) is skipped: director, then the CEO (director above), then HR
    assert [lv.approver_id for lv in state.levels] == [org.director, org.ceo, org.hr_head]
    for level in state.levels:
        await wait_stage(handle, Stage.PENDING_APPROVAL, level=level.level)
        await handle.execute_update("approve", ActionInput(actor_id=level.approver_id),
                                    result_type=ReassignmentState)
    state = await wait_stage(handle, Stage.COMMUNICATION)
    # ownership has not moved yet
    assert {a.employee_id for a in _owners(harness.sessions, moved) if a.end_at is None} == {
        org.sales_a1}
    document = (await current_agreement(handle)).agreement_sha256
    await handle.execute_update("sign", SignInput(actor_id=org.sales_a1, typed_name="Li Sales",
                                                  document_hash=document),
                                result_type=ReassignmentState)
    await harness.env.sleep(timedelta(minutes=11))
    state = await wait_stage(handle, Stage.PROTECTION)
    assert state.effective_at is not None and state.protection_end is not None
    rows = _owners(harness.sessions, moved)
    open_rows = [a for a in rows if a.end_at is None]
    closed_rows = [a for a in rows if a.end_at is not None]
    assert {a.employee_id for a in open_rows} == {org.sales_a2}
    assert all(a.source == AssignmentSource.REASSIGNMENT and a.start_at == state.effective_at
               for a in open_rows)
    assert {a.employee_id for a in closed_rows} == {org.sales_a1}
    assert all(a.end_at == state.effective_at for a in closed_rows)
    final = await handle.result()
    assert final.stage == Stage.COMPLETED
    with harness.sessions() as s:
        request = s.get(ReassignmentRequest, final.request_id)
        assert request.stage == Stage.COMPLETED and request.closed_at is not None
        assert request.protection_end == final.protection_end
    assert [h.event for h in (await state_of(handle)).history][-3:] == [
        "OWNERSHIP_TRANSFERRED", "PROTECTION_STARTED", "PROTECTION_ENDED"]


async def test_receiver_hears_of_every_stage_but_never_signs(harness):
    from models import NotificationRecord

    org = harness.org
    handle = await harness.submit_and_start(requester=org.manager_a, from_id=org.sales_a1,
                                            to_id=org.sales_a2, customers=org.customers_a1[:1])
    state = await wait_stage(handle, Stage.PENDING_APPROVAL, level=1)
    for level in state.levels:
        await wait_stage(handle, Stage.PENDING_APPROVAL, level=level.level)
        await handle.execute_update("approve", ActionInput(actor_id=level.approver_id))
    await wait_stage(handle, Stage.COMMUNICATION)
    await harness.env.sleep(timedelta(minutes=11))
    document = (await wait_stage(handle, Stage.AWAITING_SIGNATURE)).agreement_sha256
    await handle.execute_update("sign", SignInput(actor_id=org.sales_a1, typed_name="Li",
                                                  document_hash=document))
    final = await handle.result()
    assert final.stage == Stage.COMPLETED
    with harness.sessions() as s:
        kinds = [n.kind for n in s.exec(select(NotificationRecord).where(
            NotificationRecord.recipient_id == org.sales_a2,
            NotificationRecord.request_id == final.request_id).order_by(NotificationRecord.id))]
    assert kinds == ["STAGE_CHANGED", "STAGE_CHANGED", "STAGE_CHANGED", "OWNERSHIP_TRANSFERRED",
                     "STAGE_CHANGED", "COMPLETED"]


async def test_communication_window_renders_the_personal_report(harness):
    """Issue 4, acceptance 4: the report PDF comes out of a real workflow run."""
    from models import Customer, RequestDocument
    from tests.test_report import pdf_text

    org = harness.org
    moved = org.customers_a1[:2]
    handle = await harness.submit_and_start(requester=org.manager_a, from_id=org.sales_a1,
                                            to_id=org.sales_a2, customers=moved)
    state = await wait_stage(handle, Stage.PENDING_APPROVAL, level=1)
    for level in state.levels:
        await wait_stage(handle, Stage.PENDING_APPROVAL, level=level.level)
        await handle.execute_update("approve", ActionInput(actor_id=level.approver_id))
    state = await wait_stage(handle, Stage.COMMUNICATION)
    state = await wait_until_report(handle)
    with harness.sessions() as s:
        [doc] = s.exec(select(RequestDocument).where(
            RequestDocument.request_id == state.request_id)).all()
        names = [s.get(Customer, c).name for c in moved]
    assert doc.kind == "REPORT" and doc.language == "zh-CN"
    assert doc.sha256 == state.report_sha256
    text = pdf_text(doc.pdf)
    for name in names:
        assert name.replace(" ", "") in text
    window_end = state.stage_deadline.astimezone(ZoneInfo("Asia/Shanghai"))
    assert f"{window_end.year}年{window_end.month}月{window_end.day}日" in text
    await handle.execute_update("withdraw", ReasonedActionInput(actor_id=org.manager_a,
                                                                reason="test done"))
    # let the agreement rendering that started with the window finish while the worker runs:
    # an activity left pending on the shared time-skipping server stops time for later tests
    assert (await handle.result()).stage == Stage.WITHDRAWN


async def wait_until_report(handle):
    from tests.workflow.conftest import wait_until

    return await wait_until(handle, lambda s: s.report_sha256 is not None)
