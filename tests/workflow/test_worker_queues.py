"""worker.build_worker: one object over two temporalio workers, the workflows and database
activities on the task queue and the renders and seals on `<queue>-documents`."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import uuid

import pytest
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from domain.stages import Stage
from models import RequestDocument
from models.db import SessionFactory
from tests.factories import SmallOrg
from tests.workflow.conftest import Harness, approve_all_levels
from tests.workflow.test_signing_e2e import current_agreement
from worker import BatonWorker, build_worker
from workflows.reassignment import documents_task_queue


async def test_both_workers_run_and_stop_together(time_env: WorkflowEnvironment,
                                                  sessions: SessionFactory) -> None:
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    worker = build_worker(time_env.client, sessions, task_queue, document_slots=1)
    assert worker.task_queue == task_queue
    assert worker.documents.task_queue == documents_task_queue(task_queue) != task_queue
    async with worker:
        await started(worker)
    assert worker.main.is_shutdown and worker.documents.is_shutdown

    # run() / shutdown(), as a caller that does not use `async with` (worker.run's shape)
    again = build_worker(time_env.client, sessions, task_queue)
    running = asyncio.create_task(again.run())
    await started(again)
    await again.shutdown()
    await asyncio.wait_for(running, timeout=30)
    assert again.main.is_shutdown and again.documents.is_shutdown


async def started(worker: BatonWorker) -> None:
    """Both polling (a temporalio worker starts on the loop's next turn)."""
    async with asyncio.timeout(10):
        while not (worker.main.is_running and worker.documents.is_running):
            await asyncio.sleep(0.02)


def thread_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a nice value per thread")
async def test_render_threads_run_at_a_lower_priority(time_env: WorkflowEnvironment,
                                                      sessions: SessionFactory) -> None:
    worker = build_worker(time_env.client, sessions, f"tq-{uuid.uuid4().hex[:8]}",
                          document_nice=5)
    base = thread_nice()
    renders = worker.documents.config()["activity_executor"]
    others = worker.main.config()["activity_executor"]
    assert renders is not None and others is not None
    assert renders.submit(thread_nice).result() == min(19, base + 5)
    assert others.submit(thread_nice).result() == base  # approvals keep their priority
    assert thread_nice() == base  # and so does the worker's own thread


async def test_a_process_serves_the_queues_of_its_role(time_env: WorkflowEnvironment,
                                                      sessions: SessionFactory) -> None:
    client = time_env.client
    queue = "tq-roles"
    workflows = build_worker(client, sessions, queue, role="workflows")
    renders = build_worker(client, sessions, queue, role="documents")
    assert workflows.documents is None and workflows.main is not None
    assert [w.task_queue for w in workflows.workers] == [queue]
    assert renders.main is None and renders.documents is not None
    assert [w.task_queue for w in renders.workers] == [documents_task_queue(queue)]
    assert renders.task_queue == workflows.task_queue == queue


async def test_renders_run_in_a_process_of_their_own(time_env: WorkflowEnvironment,
                                                     sessions: SessionFactory,
                                                     org: SmallOrg) -> None:
    """One worker with role "workflows" and one with role "documents", as two processes would
    run them: the approvals go through the first, the report and the agreement are rendered
    by the second (the first does not poll the documents queue)."""
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    harness = Harness(time_env, time_env.client, sessions, org, queue)
    async with build_worker(time_env.client, sessions, queue, role="workflows"), \
            build_worker(time_env.client, sessions, queue, role="documents"):
        try:
            handle = await harness.submit_and_start(
                requester=org.manager_a, from_id=org.sales_a1, to_id=org.sales_a2,
                customers=org.customers_a1[:1])
            await approve_all_levels(handle)
            state = await current_agreement(handle)
            assert state.stage == Stage.COMMUNICATION and state.report_sha256 is not None
            with sessions() as s:
                kinds = set(s.exec(select(RequestDocument.kind).where(
                    RequestDocument.request_id == state.request_id)).all())
            assert kinds == {"REPORT", "AGREEMENT"}
        finally:
            await harness.terminate_leftovers()
