"""Worker entrypoint: registers the workflows and activities and polls the task queue."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.worker import Worker

from activities.reassignment import ReassignmentActivities
from models.db import SessionFactory, engine_for, session_factory
from settings import get_settings
from temporal_client import connect
from workflows.reassignment import ReassignmentWorkflow


def build_worker(
    client: Client, sessions: SessionFactory, task_queue: str, activity_threads: int = 8
) -> Worker:
    """A worker for Baton's workflows; sync activities run on a thread pool."""
    reassignment = ReassignmentActivities(sessions)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[ReassignmentWorkflow],
        activities=[
            reassignment.assess_request,
            reassignment.record_transition,
            reassignment.escalate_approval,
            reassignment.notify,
        ],
        activity_executor=ThreadPoolExecutor(max_workers=activity_threads),
        max_concurrent_activities=activity_threads,
    )


async def run() -> None:
    settings = get_settings()
    client = await connect(settings)
    sessions = session_factory(engine_for(settings.database_url))
    worker = build_worker(client, sessions, settings.task_queue, settings.activity_threads)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        logging.info("worker polling task queue %s on %s", settings.task_queue,
                     settings.temporal_address)
        await stop.wait()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(run())


if __name__ == "__main__":
    main()
