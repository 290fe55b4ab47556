"""BulkReassignmentWorkflow on the time-skipping server with the real activities: continue-as-new
with a small batch size, children that outlive it, and HR's cancel."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest_asyncio
from sqlmodel import col, select
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from api.security import Actor
from api.services import reorganisations as service
from api.services.reorganisations import Upload, create
from domain.bulk import BulkCancelInput, BulkInput, BulkProgress, BulkStatus
from domain.stages import Reason, Role, Stage
from domain.workflow_dto import (
    ActionInput,
    ReasonedActionInput,
    ReassignmentState,
    SignInput,
    workflow_id_for,
)
from models import Customer, Employee, ReassignmentRequest, Reorganisation, ReorganisationRow
from models.bulk import RowStatus
from models.db import SessionFactory
from models.policy import PolicyStatus, PolicyVersion
from settings import Settings
from temporal_client import register_search_attributes
from tests.conftest import binary
from tests.factories import T0, SmallOrg, fast_policy_rules
from tests.payload_keys import TEST_DATA_CONVERTER
from tests.workflow.conftest import Harness, state_of, wait_stage
from worker import build_worker


@pytest_asyncio.fixture
async def harness(sessions: SessionFactory, org: SmallOrg) -> AsyncIterator[Harness]:
    """Its own time-skipping server: children that outlive the bulk workflow (ABANDON) left
    the shared server unable to skip time for later tests (env.sleep timed out)."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"),
        data_converter=TEST_DATA_CONVERTER)
    try:
        await register_search_attributes(env.client, "default")
        task_queue = f"tq-{uuid.uuid4().hex[:8]}"
        async with build_worker(env.client, sessions, task_queue):
            yield Harness(env, env.client, sessions, org, task_queue)
    finally:
        await env.shutdown()


def _code(harness: Harness, ids: list[int]) -> list[str]:
    with harness.sessions() as s:
        by_id = {c.id: c.code for c in s.exec(select(Customer).where(col(Customer.id).in_(ids)))}
    return [by_id[i] for i in ids]


def _employee_no(harness: Harness, employee_id: int) -> str:
    with harness.sessions() as s:
        employee = s.get(Employee, employee_id)
        assert employee is not None
        return employee.employee_no


def three_group_csv(harness: Harness) -> str:
    """A1's four customers: two to A2, two to B1; A2's two to B1. Groups in (from, to) order."""
    org = harness.org
    a1, a2 = _code(harness, org.customers_a1), _code(harness, org.customers_a2)
    no = {e: _employee_no(harness, e) for e in (org.sales_a1, org.sales_a2, org.sales_b1)}
    lines = ["customer_code,new_owner_employee_no,expected_owner_employee_no"]
    lines += [f"{c},{no[org.sales_a2]},{no[org.sales_a1]}" for c in a1[:2]]
    lines += [f"{c},{no[org.sales_b1]}," for c in a1[2:]]
    lines += [f"{c},{no[org.sales_b1]},{no[org.sales_a2]}" for c in a2]
    return "\n".join(lines) + "\n"


def start_reorganisation(harness: Harness, csv_text: str) -> Reorganisation:
    hr = Actor(user_id=0, employee_id=harness.org.hr_staff, username="e201",
               roles=frozenset({Role.HR}))
    upload = Upload(reason=Reason.TERRITORY_REALIGNMENT, note="test", csv_text=csv_text)
    created = create(harness.sessions, hr, upload, key=f"k-{harness.task_queue}")
    return created.reorganisation


async def start_bulk(harness: Harness, reorganisation: Reorganisation, **options: int
                     ) -> WorkflowHandle:
    assert reorganisation.id is not None and reorganisation.workflow_id is not None
    workflow_id = reorganisation.workflow_id
    return await harness.client.start_workflow(
        "BulkReassignmentWorkflow",
        BulkInput(reorganisation_id=reorganisation.id, total_groups=reorganisation.total_groups,
                  total_rows=reorganisation.total_rows, **options),
        id=workflow_id, task_queue=harness.task_queue, result_type=BulkProgress)


async def poll(handle: WorkflowHandle, predicate: Callable[[BulkProgress], bool],
               timeout: float = 30.0) -> BulkProgress:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        progress = await handle.query("progress", result_type=BulkProgress)
        if predicate(progress):
            return progress
        assert asyncio.get_running_loop().time() < deadline, progress
        await asyncio.sleep(0.05)


def requests_of(harness: Harness, reorganisation_id: int) -> list[ReassignmentRequest]:
    with harness.sessions() as s:
        ids = set(s.exec(select(ReorganisationRow.request_id).where(
            ReorganisationRow.reorganisation_id == reorganisation_id)).all()) - {None}
        return list(s.exec(select(ReassignmentRequest).where(
            col(ReassignmentRequest.id).in_(ids)).order_by(col(ReassignmentRequest.id))))


async def track_children(harness: Harness, reorganisation_id: int) -> list[WorkflowHandle]:
    """The children outlive the bulk workflow: the harness ends them after the test."""
    handles = [harness.client.get_workflow_handle(workflow_id_for(r.id or 0))
               for r in requests_of(harness, reorganisation_id)]
    harness.started.extend(handles)
    return handles


async def test_continue_as_new_every_group_and_children_live_on(harness: Harness) -> None:
    reorganisation = start_reorganisation(harness, three_group_csv(harness))
    assert reorganisation.total_groups == 3 and reorganisation.total_rows == 6
    handle = await start_bulk(harness, reorganisation, groups_per_run=1, starts_per_second=5)
    harness.started.append(handle)
    result = await handle.result()
    assert result.status == BulkStatus.COMPLETED
    assert (result.started_groups, result.failed_groups) == (3, 0)
    assert (result.started_rows, result.failed_rows) == (6, 0)
    assert result.runs == 3  # one group per run: continued as new twice, counters carried

    requests = requests_of(harness, reorganisation.id or 0)
    org = harness.org
    assert [(r.from_employee_id, r.to_employee_id, len(r.customer_ids)) for r in requests] == [
        (org.sales_a1, org.sales_a2, 2), (org.sales_a1, org.sales_b1, 2),
        (org.sales_a2, org.sales_b1, 2)]
    assert all(r.requester_id == org.hr_staff for r in requests)
    children = await track_children(harness, reorganisation.id or 0)
    for request, child in zip(requests, children, strict=True):
        # abandoned by the closed parent, the child runs on (its search attributes are
        # checked on the dev server: this server cannot describe them)
        state = await wait_stage(child, Stage.PENDING_APPROVAL)
        assert state.request_id == request.id and state.customer_ids == request.customer_ids
    with harness.sessions() as s:
        rows = s.exec(select(ReorganisationRow).where(
            ReorganisationRow.reorganisation_id == reorganisation.id)).all()
        assert {r.status for r in rows} == {RowStatus.STARTED.value}
        stored = s.get(Reorganisation, reorganisation.id)
        assert stored is not None and stored.status == "COMPLETED"
        assert (stored.started_groups, stored.started_rows) == (3, 6)
    # end the children, so that no SLA timer of theirs stops time for later tests on the
    # shared time-skipping server (as the delegation tests do)
    for child in children:
        await child.execute_update("cancel", ReasonedActionInput(
            actor_id=org.hr_head, actor_roles=[Role.HR], reason="test over"))
        await wait_stage(child, Stage.CANCELLED)


async def test_cancel_stops_starting_and_cancels_children_not_in_effect(
        harness: Harness) -> None:
    reorganisation = start_reorganisation(harness, three_group_csv(harness))
    # one start per second: the cancel arrives while the later groups wait their turn
    handle = await start_bulk(harness, reorganisation, starts_per_second=1, groups_per_run=2)
    harness.started.append(handle)
    await poll(handle, lambda p: p.started_groups >= 1)
    not_hr = BulkCancelInput(actor_id=harness.org.manager_a, actor_roles=[Role.MANAGER],
                             reason="no")
    try:
        await handle.execute_update("cancel", not_hr, result_type=BulkProgress)
        raise AssertionError("a manager cancelled a reorganisation")
    except Exception as err:  # the validator refuses before anything is written
        assert "only HR" in str(getattr(err, "cause", err)), err
    cancel = BulkCancelInput(actor_id=harness.org.hr_head, actor_roles=[Role.HR],
                             reason="the reorganisation was called off")
    accepted = await handle.execute_update("cancel", cancel, result_type=BulkProgress)
    assert accepted.status == BulkStatus.CANCELLING
    result = await handle.result()
    await track_children(harness, reorganisation.id or 0)

    assert result.status == BulkStatus.CANCELLED
    assert result.started_groups < 3  # the last group never started
    requests = requests_of(harness, reorganisation.id or 0)
    assert len(requests) == result.started_groups
    assert result.cancelled_requests == [r.id for r in requests]
    assert all(r.stage == Stage.CANCELLED for r in requests)
    with harness.sessions() as s:
        rows = s.exec(select(ReorganisationRow).where(
            ReorganisationRow.reorganisation_id == reorganisation.id)).all()
        statuses = {r.row_number: r.status for r in rows}
        assert RowStatus.NOT_STARTED.value in statuses.values()
        assert set(statuses.values()) <= {RowStatus.CANCELLED.value,
                                          RowStatus.NOT_STARTED.value}
        stored = s.get(Reorganisation, reorganisation.id)
        assert stored is not None and stored.status == "CANCELLED"
        assert stored.cancelled_by_id == harness.org.hr_head


async def test_cancel_after_every_group_started_leaves_the_request_in_effect_alone(
        harness: Harness) -> None:
    org = harness.org
    # no communication window: the signature is asked for at once, and no skipped time
    # (which the shared time-skipping server does not always grant) is needed
    with harness.sessions() as s:
        s.add(PolicyVersion(name="default", version=2, status=PolicyStatus.PUBLISHED,
                            rules=fast_policy_rules(communication_window=timedelta(0))
                            .model_dump(mode="json"), published_at=T0 + timedelta(days=1)))
    reorganisation = start_reorganisation(harness, three_group_csv(harness))
    handle = await start_bulk(harness, reorganisation, starts_per_second=10)
    harness.started.append(handle)
    assert (await handle.result()).status == BulkStatus.COMPLETED
    first, *others = children = await track_children(harness, reorganisation.id or 0)
    # the first request goes all the way: three approvals, the signature, in effect
    state = await wait_stage(first, Stage.PENDING_APPROVAL, level=1)
    for level in state.levels:
        await wait_stage(first, Stage.PENDING_APPROVAL, level=level.level)
        await first.execute_update("approve", ActionInput(actor_id=level.approver_id),
                                   result_type=ReassignmentState)
    document = (await wait_stage(first, Stage.AWAITING_SIGNATURE)).agreement_sha256
    await first.execute_update("sign", SignInput(actor_id=org.sales_a1, typed_name="Li Sales",
                                                 document_hash=document),
                               result_type=ReassignmentState)
    await wait_stage(first, Stage.PROTECTION)

    # the bulk workflow has closed: the cancel is a new run that only cancels
    hr = Actor(user_id=0, employee_id=org.hr_head, username="e200", roles=frozenset({Role.HR}))
    await service.cancel(harness.sessions, harness.client,
                         Settings(task_queue=harness.task_queue), hr, reorganisation.id or 0,
                         "territories stay as they are")
    result = await harness.client.get_workflow_handle(
        handle.id, result_type=BulkProgress).result()
    requests = requests_of(harness, reorganisation.id or 0)
    assert result.status == BulkStatus.CANCELLED
    assert result.left_in_effect_requests == [requests[0].id]
    assert result.cancelled_requests == [r.id for r in requests[1:]]
    assert (result.started_groups, result.started_rows) == (3, 6)  # carried from the database
    for child in others:
        assert (await wait_stage(child, Stage.CANCELLED)).stage == Stage.CANCELLED
    # in effect and untouched (its protection may have ended while the cancel run skipped time)
    assert (await state_of(first)).stage in (Stage.PROTECTION, Stage.COMPLETED)
    with harness.sessions() as s:
        rows = s.exec(select(ReorganisationRow).where(
            ReorganisationRow.reorganisation_id == reorganisation.id)).all()
        by_request = {r.request_id: r.status for r in rows}
        assert by_request == {requests[0].id: RowStatus.STARTED.value,
                              requests[1].id: RowStatus.CANCELLED.value,
                              requests[2].id: RowStatus.CANCELLED.value}
        history = s.exec(select(ReassignmentRequest).where(
            ReassignmentRequest.id == requests[1].id)).one()
        assert history.stage == Stage.CANCELLED
    del children
