"""Time-skipping Temporal server plus a real worker with real activities on a test database."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from domain.policy import PolicyRules, default_terms
from domain.stages import Reason, Stage
from domain.workflow_dto import (
    ActionInput,
    ReassignmentInput,
    ReassignmentState,
    workflow_id_for,
)
from models import PolicyVersion, ReassignmentRequest, RequestCustomer
from models.db import SessionFactory
from models.facts import trailing_revenue_fen
from models.types import utcnow
from temporal_client import register_search_attributes
from tests.conftest import binary
from tests.factories import SmallOrg
from tests.payload_keys import TEST_DATA_CONVERTER
from worker import build_worker
from workflows import search_attributes as sa

_REQUEST_IDS = itertools.count(random.randint(10_000, 10_000_000))


@pytest_asyncio.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """One time-skipping server per test. A shared one let a single failed test lock the
    server's clock (or take the server down) for every later test: CI once saw 20 tests in
    a row fail that way, then time out."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"),
        data_converter=TEST_DATA_CONVERTER,
    )
    await register_search_attributes(env.client, "default")
    yield env
    await env.shutdown()


@dataclass
class Harness:
    env: WorkflowEnvironment
    client: Client
    sessions: SessionFactory
    org: SmallOrg
    task_queue: str

    def submit(self, *, requester: int, from_id: int, to_id: int, customers: list[int],
               reason: Reason = Reason.TERRITORY_REALIGNMENT) -> int:
        """Write a request as the API would (validated there), returning its id."""
        with self.sessions() as session:
            policy = session.get(PolicyVersion, self.org.policy_version_id)
            assert policy is not None
            rules = PolicyRules.model_validate(policy.rules)
            request = ReassignmentRequest(
                # ids unique across the session: the time-skipping server outlives each test's
                # database, and a workflow left open by an earlier test must not collide
                id=next(_REQUEST_IDS),
                idempotency_key=str(uuid.uuid4()), payload_hash="0" * 64,
                requester_id=requester, from_employee_id=from_id, to_employee_id=to_id,
                customer_ids=customers, reason=reason.value, policy_version_id=policy.id,
                terms=default_terms(rules).model_dump(mode="json"),
                value_fen=trailing_revenue_fen(session, customers, utcnow().replace(year=2020)),
            )
            session.add(request)
            session.flush()
            assert request.id is not None
            request.workflow_id = workflow_id_for(request.id)
            for c in customers:
                session.add(RequestCustomer(request_id=request.id, customer_id=c))
            return request.id

    started: list[WorkflowHandle] = field(default_factory=list)

    async def start(self, request_id: int, from_id: int, to_id: int,
                    customers: list[int]) -> WorkflowHandle:
        handle = await self.client.start_workflow(
            "ReassignmentWorkflow", ReassignmentInput(request_id=request_id),
            id=workflow_id_for(request_id), task_queue=self.task_queue,
            search_attributes=sa.initial(request_id=request_id, customer_ids=customers,
                                         from_employee_id=from_id, to_employee_id=to_id),
            result_type=ReassignmentState,
        )
        self.started.append(handle)
        return handle

    async def terminate_leftovers(self) -> None:
        """A test that failed midway leaves its workflow waiting on this worker's activities;
        on the shared time-skipping server that would stop time for every later test.
        Terminating a workflow that is about to complete locks that server's clock for good
        too (seen when an Update closed it and it still ran its notification deliveries), so
        such a workflow is given a moment to complete first."""
        for handle in self.started:
            with contextlib.suppress(Exception):
                await _let_closing_workflow_finish(handle)
            with contextlib.suppress(Exception):
                if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                    await handle.terminate("test finished")

    async def submit_and_start(self, **kwargs) -> WorkflowHandle:
        request_id = self.submit(**kwargs)
        return await self.start(request_id, kwargs["from_id"], kwargs["to_id"],
                                kwargs["customers"])


async def _let_closing_workflow_finish(handle: WorkflowHandle, timeout: float = 10.0) -> None:
    """A workflow closed by an Update (withdraw, cancel, reject, decline) still finishes its
    notification deliveries before it completes; let it, rather than terminate it then."""
    state = await handle.query("get_state", result_type=ReassignmentState)
    if state.stage.is_terminal:
        await asyncio.wait_for(handle.result(), timeout)


async def state_of(handle: WorkflowHandle, attempts: int = 5) -> ReassignmentState:
    """The query, asked again when a loaded 2-core machine lets the server time it out."""
    for attempt in range(attempts):
        try:
            return await handle.query("get_state", result_type=ReassignmentState)
        except RPCError as err:
            if "Timeout" not in str(err) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


async def wait_until(handle: WorkflowHandle, predicate: Callable[[ReassignmentState], bool],
                     timeout: float = 20.0) -> ReassignmentState:
    """Poll the query in real time (time does not skip while we poll)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            state = await state_of(handle)
        except RPCError as err:  # a loaded 2-core machine can time a query out; poll again
            if "Timeout" not in str(err) or asyncio.get_running_loop().time() > deadline:
                raise
            continue
        if predicate(state):
            return state
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met; last state {state.stage}: {state}")
        await asyncio.sleep(0.05)


async def wait_stage(handle: WorkflowHandle, stage: Stage, timeout: float = 20.0,
                     level: int | None = None) -> ReassignmentState:
    return await wait_until(
        handle,
        lambda s: s.stage == stage and (level is None or (
            s.current_level == level and s.levels[level - 1].status == "PENDING"
            and bool(s.history) and s.history[-1].event != "APPROVED")),
        timeout,
    )


async def approve_all_levels(handle: WorkflowHandle) -> ReassignmentState:
    """Each level's approver approves as soon as the level is open; the state after the last."""
    state = await wait_stage(handle, Stage.PENDING_APPROVAL, level=1)
    for level in state.levels:
        await wait_stage(handle, Stage.PENDING_APPROVAL, level=level.level)
        state = await handle.execute_update("approve", ActionInput(actor_id=level.approver_id),
                                            result_type=ReassignmentState)
    return state


@pytest_asyncio.fixture
async def harness(time_env: WorkflowEnvironment, sessions: SessionFactory,
                  org: SmallOrg) -> AsyncIterator[Harness]:
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    worker = build_worker(time_env.client, sessions, task_queue)
    async with worker:
        harness = Harness(time_env, time_env.client, sessions, org, task_queue)
        try:
            yield harness
        finally:
            await harness.terminate_leftovers()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
