"""worker.build_worker: one object over two temporalio workers, the workflows and database
activities on the task queue and the renders and seals on `<queue>-documents`."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import uuid

import pytest
from temporalio.testing import WorkflowEnvironment

from models.db import SessionFactory
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
