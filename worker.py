"""Worker entrypoint: registers the workflows and activities and polls the task queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, Literal

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)
from temporalio.worker import Worker

from activities.bulk import BulkActivities
from activities.documents import DocumentActivities
from activities.notifications import NotificationActivities
from activities.reassignment import ReassignmentActivities
from activities.settlement import SettlementActivities
from activities.valuation import ValuationActivities
from documents import font_subset_cache
from domain.valuation import ValuationRefreshInput
from domain.workflow_dto import SettlementInput
from domain.workflow_text import settlement_summary, valuation_summary
from logging_config import configure_logging
from models.db import SessionFactory, engine_for, session_factory
from notifications.channels import DeliveryChannels
from notifications.config import channels_from_settings
from settings import get_settings
from temporal_client import connect, worker_runtime
from workflows.bulk import BulkReassignmentWorkflow
from workflows.reassignment import ReassignmentWorkflow, documents_task_queue
from workflows.settlement import CommissionSettlementWorkflow
from workflows.valuation import ValuationRefreshWorkflow

# every workflow type this worker runs; tests/replay needs a recorded history of each
WORKFLOWS: tuple[type, ...] = (ReassignmentWorkflow, CommissionSettlementWorkflow,
                               ValuationRefreshWorkflow, BulkReassignmentWorkflow)
SETTLEMENT_SCHEDULE_ID = "baton-monthly-settlement"
VALUATION_SCHEDULE_ID = "baton-nightly-valuation"


WorkerRole = Literal["all", "workflows", "documents"]


class BatonWorker:
    """Baton's temporalio workers run as one: the workflows and database activities on
    `task_queue`, the PDF renders and seals on its documents queue with their own few slots
    (a render holds its slot for seconds; the renders run one at a time per process anyway,
    documents/report.py). A process serves both (role "all") or one of them ("workflows",
    "documents"), so that renders can run in processes of their own. Used like a temporalio
    Worker: `async with`, or run()/shutdown()."""

    def __init__(self, task_queue: str, main: Worker | None, documents: Worker | None) -> None:
        self.task_queue = task_queue
        self.main = main
        self.documents = documents
        # documents first: entered first, so a render slot is ready before any workflow runs
        self.workers = [w for w in (documents, main) if w is not None]
        if not self.workers:
            raise ValueError("a Baton worker needs at least one of its task queues")

    @property
    def is_running(self) -> bool:
        return all(w.is_running for w in self.workers)

    async def run(self) -> None:
        """Until shutdown(); if one worker fails, the others are shut down too."""
        runs = [asyncio.ensure_future(w.run()) for w in self.workers]
        try:
            await asyncio.gather(*runs)
        finally:
            for worker, running in zip(self.workers, runs, strict=True):
                if not running.done():
                    await worker.shutdown()

    async def shutdown(self) -> None:
        """All at once, each with its graceful-shutdown timeout for running activities."""
        await asyncio.gather(*(w.shutdown() for w in self.workers))

    async def __aenter__(self) -> BatonWorker:
        entered: list[Worker] = []
        try:
            for worker in self.workers:
                await worker.__aenter__()
                entered.append(worker)
        except BaseException:
            await asyncio.gather(*(w.__aexit__(None, None, None) for w in entered),
                                 return_exceptions=True)
            raise
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        # all shut down at once (each waits up to its graceful timeout), errors after all
        results = await asyncio.gather(*(w.__aexit__(*exc_info) for w in self.workers),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result


def lower_thread_priority(nice: int) -> None:
    """Raises the calling thread's nice value by `nice`: renders are CPU-bound and nobody
    waits on them by the second, so on a busy host the approvals, the API, Temporal and the
    database get the cores first. Linux keeps a nice value per thread; elsewhere, or without
    permission, the thread keeps its priority."""
    if nice <= 0:
        return
    try:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + nice)
    except (AttributeError, OSError) as exc:
        logging.getLogger(__name__).debug("documents thread keeps its priority: %s", exc)


def build_worker(
    client: Client, sessions: SessionFactory, task_queue: str, activity_threads: int = 8,
    timezone: str = "Asia/Shanghai", channels: DeliveryChannels | None = None,
    public_url: str = "http://localhost:8000",
    graceful_shutdown: timedelta = timedelta(0), document_slots: int = 2,
    document_nice: int = 0, role: WorkerRole = "all",
) -> BatonWorker:
    """A worker for Baton's workflows; sync activities run on thread pools. `role` chooses
    the task queues: both ("all"), the workflows and database activities ("workflows"), or
    the renders and seals ("documents")."""
    reassignment = ReassignmentActivities(sessions)
    settlement = SettlementActivities(sessions, timezone)
    valuation = ValuationActivities(sessions)
    documents = DocumentActivities(sessions, timezone)
    # no channels (the dev default): notices stay in-app only
    notifications = NotificationActivities(sessions, channels, public_url=public_url,
                                           timezone=timezone)
    bulk = BulkActivities(sessions)
    main = None if role == "documents" else Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=[
            reassignment.assess_request,
            reassignment.record_transition,
            reassignment.escalate_approval,
            reassignment.notify,
            notifications.deliver_notifications,
            settlement.plan_settlement,
            settlement.recompute_open_period,
            settlement.finalize_settlement_period,
            valuation.refresh_valuations,
            # still here for workflows that started before the documents queue (unpatched
            # histories schedule them on the workflow's own queue)
            documents.render_personal_report,
            documents.render_agreement,
            documents.seal_agreement,
            bulk.load_groups,
            bulk.create_group_request,
            bulk.record_progress,
            bulk.cancel_children,
        ],
        activity_executor=ThreadPoolExecutor(max_workers=activity_threads),
        max_concurrent_activities=activity_threads,
        graceful_shutdown_timeout=graceful_shutdown,
    )
    renders = None if role == "workflows" else Worker(
        client,
        task_queue=documents_task_queue(task_queue),
        activities=[documents.render_personal_report, documents.render_agreement,
                    documents.seal_agreement],
        activity_executor=ThreadPoolExecutor(max_workers=document_slots,
                                             thread_name_prefix="documents",
                                             initializer=lower_thread_priority,
                                             initargs=(document_nice,)),
        max_concurrent_activities=document_slots,
        graceful_shutdown_timeout=graceful_shutdown,
    )
    return BatonWorker(task_queue, main, renders)


async def ensure_settlement_schedule(client: Client, task_queue: str, timezone: str) -> None:
    """Monthly, 01:00 on the 1st in the org's timezone. Creating it twice is harmless."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            "CommissionSettlementWorkflow", SettlementInput(trigger="schedule"),
            id="settlement-scheduled", task_queue=task_queue,
            static_summary=settlement_summary("schedule (monthly)", None)),
        spec=ScheduleSpec(cron_expressions=["0 1 1 * *"], time_zone_name=timezone),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    with contextlib.suppress(ScheduleAlreadyRunningError):
        await client.create_schedule(SETTLEMENT_SCHEDULE_ID, schedule)


async def ensure_valuation_schedule(client: Client, task_queue: str, timezone: str) -> None:
    """Nightly, 02:30 in the org's timezone. Creating it twice is harmless."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            "ValuationRefreshWorkflow", ValuationRefreshInput(trigger="schedule"),
            id="valuation-scheduled", task_queue=task_queue,
            static_summary=valuation_summary("schedule (nightly)",
                                             ValuationRefreshInput().horizon_months)),
        spec=ScheduleSpec(cron_expressions=["30 2 * * *"], time_zone_name=timezone),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    with contextlib.suppress(ScheduleAlreadyRunningError):
        await client.create_schedule(VALUATION_SCHEDULE_ID, schedule)


async def run() -> None:
    settings = get_settings()
    font_subset_cache.CACHE.enabled = settings.font_subset_cache
    try:
        runtime = worker_runtime(settings)
    except ValueError as exc:  # the metrics port is taken
        raise SystemExit(
            f"worker: cannot serve metrics at {settings.worker_metrics_address} ({exc}); give "
            "each worker process on this host its own BATON_WORKER_METRICS_ADDRESS port, or "
            "leave it empty") from exc
    client = await connect(settings, runtime)
    sessions = session_factory(engine_for(settings.database_url))
    if settings.worker_role != "documents":  # the schedules start workflows
        await ensure_settlement_schedule(client, settings.task_queue, settings.org_timezone)
        await ensure_valuation_schedule(client, settings.task_queue, settings.org_timezone)
    worker = build_worker(client, sessions, settings.task_queue, settings.activity_threads,
                          settings.org_timezone, channels_from_settings(settings),
                          settings.public_base_url,
                          # on SIGTERM, running activities get this long to finish before
                          # they are cancelled (compose's stop_grace_period is 30 s)
                          graceful_shutdown=timedelta(seconds=20),
                          document_slots=settings.document_slots,
                          document_nice=settings.document_nice, role=settings.worker_role)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        logging.info("worker (%s) polling task queue(s) %s on %s", settings.worker_role,
                     ", ".join(w.task_queue for w in worker.workers), settings.temporal_address)
        if settings.worker_metrics_address:
            logging.info("worker metrics at http://%s/metrics", settings.worker_metrics_address)
        await stop.wait()


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    asyncio.run(run())


if __name__ == "__main__":
    main()
