"""BulkReassignmentWorkflow on the time-skipping server with the real activities: continue-as-new
with a small batch size, children that outlive it, and HR's cancel."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from sqlalchemy import text
from sqlmodel import col, select
from temporalio.client import WorkflowHandle

from api.security import Actor
from api.services.reorganisations import Upload, create
from domain.bulk import BulkCancelInput, BulkInput, BulkProgress, BulkStatus
from domain.stages import Reason, Role, Stage
from domain.workflow_dto import workflow_id_for
from models import Customer, Employee, ReassignmentRequest, Reorganisation, ReorganisationRow
from models.bulk import RowStatus
from tests.workflow.conftest import Harness, wait_stage


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


def advance_request_ids(harness: Harness) -> None:
    """Request ids make workflow ids, and the time-skipping server outlives each test's
    database: start this test's ids at a random height (a closed placeholder request)."""
    base = random.randint(20_000_000, 2_000_000_000)
    with harness.sessions() as s:
        s.add(ReassignmentRequest(
            id=base, idempotency_key=f"placeholder-{base}", payload_hash="0" * 64,
            requester_id=harness.org.hr_staff, from_employee_id=harness.org.sales_a1,
            to_employee_id=harness.org.sales_a2, customer_ids=[], reason="PERFORMANCE",
            stage=Stage.WITHDRAWN, policy_version_id=harness.org.policy_version_id, terms={}))
        s.flush()
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SELECT setval(pg_get_serial_sequence('reassignment_request', "
                           "'id'), :base)"), {"base": base})


def start_reorganisation(harness: Harness, csv_text: str) -> Reorganisation:
    advance_request_ids(harness)
    hr = Actor(user_id=0, employee_id=harness.org.hr_staff, username="e201",
               roles=frozenset({Role.HR}))
    upload = Upload(reason=Reason.TERRITORY_REALIGNMENT, note="test", csv_text=csv_text)
    created = create(harness.sessions, hr, upload, key=f"k-{harness.task_queue}")
    return created.reorganisation


async def start_bulk(harness: Harness, reorganisation: Reorganisation, **options: int
                     ) -> WorkflowHandle:
    assert reorganisation.id is not None and reorganisation.workflow_id is not None
    return await harness.client.start_workflow(
        "BulkReassignmentWorkflow",
        BulkInput(reorganisation_id=reorganisation.id, total_groups=reorganisation.total_groups,
                  total_rows=reorganisation.total_rows, **options),
        # the time-skipping server outlives each test's database: a unique id per test
        id=f"{reorganisation.workflow_id}-{harness.task_queue}", task_queue=harness.task_queue,
        result_type=BulkProgress)


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
