"""Lifecycle throughput benchmark: reassignments through approval to PROTECTION, against a bare
workflow with the same Updates, timers and activities doing nothing.

    .venv/bin/python -m bench.lifecycle                          # 500 lifecycles, PostgreSQL
    .venv/bin/python -m bench.lifecycle --count 50 --backend sqlite
    .venv/bin/python -m bench.lifecycle --count 200 --concurrency 50 --profile /tmp/prof.html

Everything runs on this machine: the Temporal dev server (.venv/bin/temporal, with Baton's
search attributes) in its own process; the API (api.main.create_app, in-process over ASGI through
httpx) and the drivers in THIS process; the real worker (worker.build_worker: real activities,
real PDF documents and seal) and the bare one in ONE worker process started by the benchmark
(`--worker process`, the default: production runs workers apart from the API), or in this
process (`--worker inprocess`). The database is a throwaway PostgreSQL cluster (tests/pg.py) or
a SQLite file, migrated by Alembic, holding the small test org with one customer per lifecycle.

Baton, per lifecycle: the manager submits (POST /reassignments), the three approvers approve
(POST .../approve; an approval sent before its level opens gets a 409 and is sent again), the
salesperson signs once the agreement exists (GET detail long-polled with wait_for=agreement, or
every 0.2 s with `--signer-wait poll`; POST .../sign/otp, the code from the notice,
POST .../sign), and the workflow runs its 1 s communication window, transfers the
customer, enters PROTECTION (1 s) and completes; done = the workflow's result is COMPLETED
with a protection_end.

Bare, per lifecycle: BenchBareLifecycle on its own task queue in the same process, started and
updated directly through the Temporal client. Its shape is measured from the history of a
warm-up Baton lifecycle: as many Updates (each running one activity in its handler, as approve
does), activities (a no-op) and timers (the fired ones with the same durations; the others
armed on each Update wait and cancelled, as an approval level's reminder timer is).

Same concurrency for both (`--concurrency` lifecycles in flight). Printed: lifecycles per second,
the ratio Baton / bare, and the p50/p95/p99 of the approve round-trip through the API against the
bare Update's round-trip through the client. Goals: >= 50% of the bare throughput; approve p95
<= 2x the bare Update's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

BARE_WORKFLOW = "BenchBareLifecycle"
TIMER_S = 1  # communication window and protection period of the demo policy
RESEND_S = 0.2  # an action refused because its step is not open yet is sent again after this
JWT_SECRET = "bench-lifecycle-secret-0123456789abcdef"


# --- the bare baseline (registered only in this benchmark's worker) ---------------------------


@dataclass
class BareShape:
    """One lifecycle's Updates, activities and timers, as counted in a Baton history."""

    updates: int = 4
    activities: int = 30
    fired_timers_s: list[float] = field(default_factory=lambda: [TIMER_S, TIMER_S])
    armed_timers: int = 3  # started and cancelled


@activity.defn(name="bench_noop")
def bench_noop(step: int) -> int:
    return step


@workflow.defn(name=BARE_WORKFLOW)
class BareLifecycle:
    def __init__(self) -> None:
        self._updates = 0
        self._accepted = 0  # Updates accepted (their handler may still run its activity)
        self._open_for = -1  # the Update the run waits for; others are refused, as Baton's

    @workflow.run
    async def run(self, shape: BareShape) -> int:
        # activities outside the handlers, spread over the phases before each Update and
        # before each fired timer; the rest after the last
        phases = shape.updates + len(shape.fired_timers_s) + 1
        outside = max(shape.activities - shape.updates, 0)
        per_phase = [outside // phases + (1 if i < outside % phases else 0)
                     for i in range(phases)]
        step = 0
        for n in range(shape.updates):
            # as Baton: the first approval opens after the assessment's writes, each next one
            # as soon as the previous is accepted (its writes follow), the signature only
            # after the documents exist
            opens_at_once = 0 < n < shape.updates - 1
            if opens_at_once:
                self._open_for = n
            step = await self._noops(step, per_phase[n])
            if self._accepted <= n:
                self._open_for = n
            armed = n < shape.armed_timers  # a reminder timer, cancelled by the Update
            await workflow.wait_condition(lambda n=n: self._accepted > n,
                                          timeout=timedelta(hours=1) if armed else None)
        for i, seconds in enumerate(shape.fired_timers_s):
            step = await self._noops(step, per_phase[shape.updates + i])
            await workflow.sleep(seconds)
        step = await self._noops(step, per_phase[-1])
        await workflow.wait_condition(workflow.all_handlers_finished)
        return step

    async def _noops(self, step: int, count: int) -> int:
        for _ in range(count):
            step = await workflow.execute_activity(
                bench_noop, step + 1, start_to_close_timeout=timedelta(seconds=30))
        return step

    @workflow.update
    async def act(self, number: int) -> int:
        self._open_for = -1
        self._accepted = number + 1
        await workflow.execute_activity(bench_noop, number,
                                        start_to_close_timeout=timedelta(seconds=30))
        self._updates += 1
        return self._updates

    @act.validator
    def _validate_act(self, number: int) -> None:
        if number != self._open_for:
            raise ApplicationError(f"update {number} is not open", type="WRONG_STAGE",
                                   non_retryable=True)


def shape_of(history: WorkflowHistory) -> BareShape:
    """Count a Baton lifecycle's Updates, activities and timers."""
    updates = activities = 0
    started: dict[str, float] = {}
    fired: list[str] = []
    for event in history.events:
        if event.HasField("workflow_execution_update_accepted_event_attributes"):
            updates += 1
        elif event.HasField("activity_task_scheduled_event_attributes"):
            activities += 1
        elif event.HasField("timer_started_event_attributes"):
            attrs = event.timer_started_event_attributes
            started[attrs.timer_id] = attrs.start_to_fire_timeout.ToTimedelta().total_seconds()
        elif event.HasField("timer_fired_event_attributes"):
            fired.append(event.timer_fired_event_attributes.timer_id)
    return BareShape(updates=updates, activities=activities,
                     fired_timers_s=[started[t] for t in fired],
                     armed_timers=len(started) - len(fired))


# --- measurement ------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    count: int
    wall_s: float = 0.0
    update_ms: list[float] = field(default_factory=list)  # the measured Update round-trips
    refused: int = 0  # Updates sent before their step opened (409 / WRONG_STAGE), resent
    failures: list[str] = field(default_factory=list)
    cpu_s: float | None = None  # every process of the run (see CpuMeter)
    worker_cpu_s: float | None = None  # the worker process(es) alone
    load: tuple[float, float, float] | None = None  # the 1/5/15-minute load average at the end
    polls: int = 0  # GET detail while the signer waits for the agreement
    # the same round-trips by their place in the lifecycle (approval level; bare Update n)
    update_ms_by_step: dict[int, list[float]] = field(default_factory=dict)
    loop_lag_ms: list[float] = field(default_factory=list)  # see measure_loop_lag

    def record_update(self, step: int, elapsed_ms: float) -> None:
        self.update_ms.append(elapsed_ms)
        self.update_ms_by_step.setdefault(step, []).append(elapsed_ms)

    @property
    def per_second(self) -> float:
        return (self.count - len(self.failures)) / self.wall_s if self.wall_s else 0.0


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(p) - 1]


def _proc_stats() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds of it and its reaped children), from Linux /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()  # from field 3 on: state, ppid, ...
        stats[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]) / tick)
    return stats


@dataclass
class CpuMeter:
    """CPU seconds of process trees (Linux /proc): `roots` is everything of the run (this
    process with the API and drivers, the worker processes, the Temporal dev server, and the
    PostgreSQL postmaster, which pg_ctl detaches); `workers` the worker processes. CPU moves
    much less than wall time when other people load the same cores."""

    roots: list[int]
    workers: list[int]

    @staticmethod
    def _tree(stats: dict[int, tuple[int, float]], roots: list[int]) -> float:
        children: dict[int, list[int]] = {}
        for pid, (parent, _) in stats.items():
            children.setdefault(parent, []).append(pid)
        seen: set[int] = set()
        todo = [r for r in roots if r in stats]
        while todo:
            pid = todo.pop()
            if pid not in seen:
                seen.add(pid)
                todo.extend(children.get(pid, []))
        return sum(stats[pid][1] for pid in seen)

    def sample(self) -> tuple[float, float | None]:
        stats = _proc_stats()
        workers = self._tree(stats, self.workers) if self.workers else None  # inprocess: none
        return self._tree(stats, self.roots), workers


LAG_TICK_S = 0.05


async def measure_loop_lag(lags_ms: list[float]) -> None:
    """How late this process's event loop wakes a 50 ms sleep: the API (in process, over
    ASGI) and the drivers share that loop, so a late wake-up delays every round-trip."""
    while True:
        expected = time.perf_counter() + LAG_TICK_S
        await asyncio.sleep(LAG_TICK_S)
        lags_ms.append(max(0.0, (time.perf_counter() - expected) * 1000))


async def run_concurrently(count: int, concurrency: int,
                           one: Callable[[int], Awaitable[None]], phase: Phase,
                           cpu: CpuMeter | None = None) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def guarded(i: int) -> None:
        async with gate:
            try:
                await one(i)
            except Exception as err:  # noqa: BLE001  (counted and shown, not hidden)
                phase.failures.append(f"#{i}: {type(err).__name__}: {err}"[:300])

    before = cpu.sample() if cpu else None
    started = time.perf_counter()
    lag = asyncio.ensure_future(measure_loop_lag(phase.loop_lag_ms))
    try:
        await asyncio.gather(*(guarded(i) for i in range(count)))
    finally:
        lag.cancel()
    phase.wall_s = time.perf_counter() - started
    if cpu and before:
        after = cpu.sample()
        phase.cpu_s = after[0] - before[0]
        if after[1] is not None and before[1] is not None:
            phase.worker_cpu_s = after[1] - before[1]
    phase.load = os.getloadavg()


@dataclass
class Bench:
    client: Client
    http: Any  # httpx.AsyncClient on the app
    sessions: Any
    org: Any
    customers: list[int]
    tokens: dict[int, str] = field(default_factory=dict)
    poll_s: float = RESEND_S
    long_poll: bool = True

    async def auth(self, employee_id: int) -> dict[str, str]:
        from tests.factories import PASSWORD

        if employee_id not in self.tokens:
            r = await self.http.post("/api/v1/auth/login", json={
                "username": self.org.usernames[employee_id], "password": PASSWORD})
            r.raise_for_status()
            self.tokens[employee_id] = r.json()["access_token"]
        return {"Authorization": f"Bearer {self.tokens[employee_id]}"}

    async def baton_lifecycle(self, i: int, phase: Phase) -> str:
        """One lifecycle through the API; returns its workflow id."""
        org = self.org
        body = {"from_employee_id": org.sales_a1, "to_employee_id": org.sales_a2,
                "customer_ids": [self.customers[i]], "reason": "WORKLOAD_BALANCING"}
        r = await self.http.post("/api/v1/reassignments", json=body, headers={
            **await self.auth(org.manager_a), "Idempotency-Key": f"bench-{uuid.uuid4()}"})
        if r.status_code != 201:
            raise RuntimeError(f"submit: {r.status_code} {r.text[:200]}")
        rid = r.json()["id"]
        for level, approver in enumerate((org.director, org.ceo, org.hr_head), start=1):
            await self._approve(rid, approver, phase, level)
        await self._sign(rid, phase)
        workflow_id = r.json().get("workflow_id") or f"reassignment-{rid}"
        final = await self.client.get_workflow_handle(workflow_id).result()
        if final.get("stage") != "COMPLETED" or not final.get("protection_end"):
            raise RuntimeError(f"request {rid} ended {final.get('stage')} without protection")
        return str(workflow_id)

    async def _approve(self, rid: int, approver: int, phase: Phase, level: int) -> None:
        headers = await self.auth(approver)
        while True:
            started = time.perf_counter()
            r = await self.http.post(f"/api/v1/reassignments/{rid}/approve", json={},
                                     headers=headers)
            elapsed = (time.perf_counter() - started) * 1000
            if r.status_code == 200:
                phase.record_update(level, elapsed)
                return
            if r.status_code == 409 and "wrong_stage" in r.text:
                phase.refused += 1
                await asyncio.sleep(RESEND_S)
                continue
            raise RuntimeError(f"approve {rid} as {approver}: {r.status_code} {r.text[:300]}")

    async def _sign(self, rid: int, phase: Phase) -> None:
        signer = self.org.sales_a1
        headers = await self.auth(signer)
        # the agreement is rendered after the last approval: long-poll for it as the signing
        # page does (`--signer-wait long-poll`), or ask every 0.2 s (`poll`, the old model)
        params = {"wait_for": "agreement", "wait_seconds": 30} if self.long_poll else {}
        while True:
            phase.polls += 1
            r = await self.http.get(f"/api/v1/reassignments/{rid}", params=params,
                                    headers=headers)
            r.raise_for_status()
            live = r.json().get("live") or {}
            if live.get("agreement_sha256"):
                document = live["agreement_sha256"]
                break
            if not self.long_poll:
                await asyncio.sleep(self.poll_s)
        r = await self.http.post(f"/api/v1/reassignments/{rid}/sign/otp",
                                 json={"document_sha256": document}, headers=headers)
        if r.status_code != 202:
            raise RuntimeError(f"otp {rid}: {r.status_code} {r.text[:300]}")
        sign = {"typed_name": "Li Sales", "document_sha256": document, "method": "otp",
                "otp_code": self._latest_code(rid)}
        r = await self.http.post(f"/api/v1/reassignments/{rid}/sign", json=sign,
                                 headers=headers)
        if r.status_code != 200:
            raise RuntimeError(f"sign {rid}: {r.status_code} {r.text[:300]}")

    def _latest_code(self, rid: int) -> str:
        """The one-time code as delivered: the signer's newest SIGNING_CODE notice."""
        from sqlmodel import col, select

        from models import NotificationRecord

        with self.sessions() as s:
            notice = s.exec(select(NotificationRecord).where(
                NotificationRecord.request_id == rid, NotificationRecord.kind == "SIGNING_CODE")
                .order_by(col(NotificationRecord.id).desc())).first()
        assert notice is not None, f"no code sent for request {rid}"
        codes = [w.rstrip(".") for w in notice.message.split()
                 if w.rstrip(".").isdigit() and len(w.rstrip(".")) == 6]
        assert len(codes) == 1, notice.message
        return codes[0]

    async def bare_lifecycle(self, i: int, shape: BareShape, task_queue: str,
                             phase: Phase) -> None:
        handle = await self.client.start_workflow(
            BARE_WORKFLOW, shape, id=f"bare-{task_queue}-{i}", task_queue=task_queue,
            result_type=int)
        for n in range(shape.updates):
            while True:
                started = time.perf_counter()
                try:
                    await handle.execute_update("act", n, result_type=int)
                except Exception as err:  # noqa: BLE001
                    if "WRONG_STAGE" not in repr(getattr(err, "cause", err)) + str(err):
                        raise
                    phase.refused += 1
                    await asyncio.sleep(RESEND_S)
                    continue
                phase.record_update(n + 1, (time.perf_counter() - started) * 1000)
                break
        await handle.result()


# --- setup ------------------------------------------------------------------------------------


def seconds_policy() -> Any:
    from domain.policy import ApprovalLevelRule
    from domain.stages import Role
    from tests.factories import fast_policy_rules

    slow = ApprovalLevelRule(role=Role.MANAGER, sla=timedelta(hours=2),
                             reminder_after=timedelta(hours=1))
    return fast_policy_rules(
        communication_window=timedelta(seconds=TIMER_S), signature_deadline=timedelta(minutes=30),
        signature_reminders_before=[], protection_period=timedelta(seconds=TIMER_S),
        cooling_off_max=1_000_000,
        approval_levels=[slow, slow.model_copy(update={"role": Role.DIRECTOR}),
                         slow.model_copy(update={"role": Role.HR})])


def seed(sessions: Any, count: int) -> tuple[Any, list[int]]:
    """The small test org with the seconds policy, plus one customer of A1 per lifecycle."""
    from sqlalchemy import func, insert, text
    from sqlmodel import select

    from models import Assignment, Customer, Order
    from tests.factories import build_small_org

    with sessions() as session:
        org = build_small_org(session, rules=seconds_policy())
        session.commit()
    found = datetime.now(UTC) - timedelta(days=400)
    with sessions() as session:
        highest = session.exec(select(func.max(Customer.id))).one() or 0
        ids = list(range(highest + 1, highest + 1 + count))
        session.execute(insert(Customer.__table__), [
            {"id": c, "code": f"BL{c:07d}", "name": f"Bench customer {c}",
             "found_by_employee_id": org.sales_a1} for c in ids])
        session.execute(insert(Assignment.__table__), [
            {"customer_id": c, "employee_id": org.sales_a1, "start_at": found, "end_at": None,
             "source": "FOUND"} for c in ids])
        session.execute(insert(Order.__table__), [
            {"external_id": f"BL-{c}", "customer_id": c, "amount_fen": 120_000 + c,
             "currency": "CNY", "booked_at": found + timedelta(days=300), "kind": "ORDER",
             "content_hash": "", "received_at": found + timedelta(days=300),
             "period": "2025-09"} for c in ids])
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT setval(pg_get_serial_sequence('customer', 'id'), "
                                 "(SELECT max(id) FROM customer))"))
        session.commit()
    return org, ids


@contextlib.contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'lifecycle-bench.db'}"
        return
    from tests.pg import fresh_database, sigterm_as_interrupt, temporary_postgres

    with sigterm_as_interrupt(), temporary_postgres() as server, fresh_database(server) as url:
        yield url


def workers(client: Client, sessions: Any, task_queue: str, bare_queue: str,
            activity_threads: int) -> tuple[Any, Worker | None, Any]:
    """Baton's worker and the bare one, each with its own pool of `activity_threads`. The
    Baton worker's role (BATON_WORKER_ROLE), render slots and priority are production's
    settings; a "documents" process runs no bare worker."""
    from concurrent.futures import ThreadPoolExecutor

    from settings import get_settings
    from worker import build_worker

    settings = get_settings()
    pool = ThreadPoolExecutor(max_workers=activity_threads)
    bare = None if settings.worker_role == "documents" else Worker(
        client, task_queue=bare_queue, workflows=[BareLifecycle], activities=[bench_noop],
        activity_executor=pool, max_concurrent_activities=activity_threads)
    return build_worker(client, sessions, task_queue, activity_threads=activity_threads,
                        document_slots=settings.document_slots,
                        document_nice=settings.document_nice,
                        role=settings.worker_role), bare, pool


async def serve_workers(address: str, url: str, task_queue: str, bare_queue: str,
                        activity_threads: int) -> None:
    """The worker process (--worker process): both workers until SIGTERM."""
    import signal

    from models.db import make_engine, session_factory
    from tests.payload_keys import TEST_DATA_CONVERTER

    client = await Client.connect(address, data_converter=TEST_DATA_CONVERTER)
    baton, bare, pool = workers(client, session_factory(make_engine(url)), task_queue,
                                bare_queue, activity_threads)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with contextlib.AsyncExitStack() as running:
        for worker in (baton, bare):
            if worker is not None:
                await running.enter_async_context(worker)
        print("workers ready", flush=True)
        await stop.wait()
    pool.shutdown()


@contextlib.asynccontextmanager
async def worker_process(address: str, url: str, task_queue: str, bare_queue: str,
                         activity_threads: int, role: str = "all") -> AsyncIterator[int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.lifecycle", "--serve-workers", address, url, task_queue,
        bare_queue, "--activity-threads", str(activity_threads),
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "BATON_WORKER_ROLE": role})
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=120)
        if b"workers ready" not in line:
            raise RuntimeError(f"the worker process did not start (exit {process.returncode})")
        yield process.pid
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=60)
            except TimeoutError:
                process.kill()


@contextlib.asynccontextmanager
async def stack(url: str, activity_threads: int, worker_mode: str, say: Callable[[str], None],
                processes: int = 1, document_processes: int = 0,
                ) -> AsyncIterator[tuple[Client, Any, Any, str, str, list[int]]]:
    """The dev server, the API app in this process, and the two workers (in this process or
    in `processes` worker processes, each polling both task queues; with
    `document_processes`, those poll the workflow queue and these the documents queue)."""
    import httpx
    from temporalio.testing import WorkflowEnvironment

    from api.main import create_app
    from models.db import make_engine, session_factory
    from settings import Settings
    from tests.conftest import binary
    from tests.payload_keys import TEST_DATA_CONVERTER, TEST_PAYLOAD_KEYS
    from workflows.search_attributes import ALL_KEYS

    sessions = session_factory(make_engine(url))
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"), search_attributes=ALL_KEYS,
        data_converter=TEST_DATA_CONVERTER, ui=False,
        dev_server_extra_args=["--log-level", "error"])
    try:
        address = env.client.service_client.config.target_host
        task_queue, bare_queue = (f"{name}-{uuid.uuid4().hex[:6]}" for name in ("bench", "bare"))
        settings = Settings(
            database_url=url, temporal_address=address, task_queue=task_queue,
            jwt_secret=JWT_SECRET, jwt_ttl_minutes=240, payload_keys=TEST_PAYLOAD_KEYS,
            login_rate_limit="100000/minute")
        app = create_app(settings)
        app.state.temporal.use(env.client)
        async with contextlib.AsyncExitStack() as running:
            pids: list[int] = []
            if worker_mode == "process":
                roles = ["workflows" if document_processes else "all"] * processes + \
                    ["documents"] * document_processes
                pids = [await running.enter_async_context(worker_process(
                    address, url, task_queue, bare_queue, activity_threads, role))
                    for role in roles]
                say(f"workers in process(es) {pids} (py-spy record --pid PID to profile one)")
            else:
                baton, bare, pool = workers(env.client, sessions, task_queue, bare_queue,
                                            activity_threads)
                running.callback(pool.shutdown)
                await running.enter_async_context(baton)
                assert bare is not None, "run the in-process worker with BATON_WORKER_ROLE=all"
                await running.enter_async_context(bare)
            transport = httpx.ASGITransport(app=app)
            http = await running.enter_async_context(httpx.AsyncClient(
                transport=transport, base_url="http://baton.bench", timeout=120))
            yield env.client, http, sessions, task_queue, bare_queue, pids
    finally:
        await env.shutdown()


async def measure(url: str, count: int, concurrency: int, activity_threads: int,
                  worker_mode: str, say: Callable[[str], None], processes: int = 1,
                  long_poll: bool = True, document_processes: int = 0
                  ) -> tuple[Phase, Phase, BareShape]:
    from models.db import migrate

    migrate(url)
    async with stack(url, activity_threads, worker_mode, say, processes,
                     document_processes) as (
            client, http, sessions, _queue, bare_queue, worker_pids):
        org, customers = seed(sessions, count + 1)
        cpu = CpuMeter(roots=[os.getpid(), *postmaster_of(sessions)], workers=worker_pids)
        bench = Bench(client, http, sessions, org, customers, long_poll=long_poll)
        warm = Phase("warm-up", 1)
        started = time.perf_counter()
        workflow_id = await bench.baton_lifecycle(count, warm)  # the last customer
        shape = shape_of(await client.get_workflow_handle(workflow_id).fetch_history())
        say(f"warm-up lifecycle in {time.perf_counter() - started:.1f} s; bare shape {shape}")

        bare = Phase("bare", count)
        await run_concurrently(count, concurrency, lambda i: bench.bare_lifecycle(
            i, shape, bare_queue, bare), bare, cpu)
        say(f"bare: {count} in {bare.wall_s:.1f} s, {len(bare.failures)} failed")

        baton = Phase("baton", count)

        async def one(i: int) -> None:
            await bench.baton_lifecycle(i, baton)

        await run_concurrently(count, concurrency, one, baton, cpu)
        say(f"baton: {count} in {baton.wall_s:.1f} s, {len(baton.failures)} failed")
        for phase in (bare, baton):
            for failure in phase.failures[:5]:
                say(f"{phase.name} failure {failure}")
        return baton, bare, shape


def postmaster_of(sessions: Any) -> list[int]:
    """The PostgreSQL server's postmaster pid (a detached process), or none on SQLite."""
    from sqlalchemy import text

    with sessions() as session:
        if session.get_bind().dialect.name != "postgresql":
            return []
        backend = int(session.exec(text("SELECT pg_backend_pid()")).scalar_one())
    found = _proc_stats().get(backend)
    return [found[0]] if found else []


def format_report(baton: Phase, bare: Phase, shape: BareShape, concurrency: int) -> str:
    rows = [f"{'lifecycle':<9} {'count':>6} {'failed':>6} {'wall s':>8} {'per s':>7} "
            f"{'upd p50 ms':>10} {'upd p95 ms':>10} {'upd p99 ms':>10} {'resent':>6} "
            f"{'cpu s':>7} {'wkr cpu s':>9} {'cpu s/lc':>8}  load avg",
            "-" * 118]
    for p in (baton, bare):
        per = p.cpu_s / (p.count - len(p.failures)) if p.cpu_s and p.count > len(
            p.failures) else None
        rows.append(f"{p.name:<9} {p.count:>6} {len(p.failures):>6} {p.wall_s:>8.1f} "
                    f"{p.per_second:>7.2f} {percentile(p.update_ms, 50):>10.1f} "
                    f"{percentile(p.update_ms, 95):>10.1f} {percentile(p.update_ms, 99):>10.1f} "
                    f"{p.refused:>6} {_num(p.cpu_s, 7, 1)} {_num(p.worker_cpu_s, 9, 1)} "
                    f"{_num(per, 8, 2)}  "
                    + (" ".join(f"{x:.1f}" for x in p.load) if p.load else "-"))
    throughput = baton.per_second / bare.per_second if bare.per_second else float("nan")
    p95 = percentile(baton.update_ms, 95) / percentile(bare.update_ms, 95)
    rows += [
        f"throughput baton/bare = {throughput:.2f} (goal >= 0.50: "
        f"{'met' if throughput >= 0.5 else 'MISSED'})",
        f"approve p95 / bare Update p95 = {p95:.2f} (goal <= 2.00: "
        f"{'met' if p95 <= 2 else 'MISSED'})",
        f"per lifecycle: {shape.updates} Updates, {shape.activities} activities, "
        f"{len(shape.fired_timers_s)} fired timers {shape.fired_timers_s} s, "
        f"{shape.armed_timers} cancelled; {concurrency} lifecycles in flight; the signer "
        f"asked for the request {baton.polls / max(baton.count, 1):.1f} times per lifecycle "
        "waiting for the agreement",
        *(f"{p.name} event loop of the API and drivers, late by p50/p95/p99/max "
          f"{percentile(p.loop_lag_ms, 50):.0f}/{percentile(p.loop_lag_ms, 95):.0f}/"
          f"{percentile(p.loop_lag_ms, 99):.0f}/{max(p.loop_lag_ms, default=0):.0f} ms"
          for p in (baton, bare)),
        *(f"{p.name} p50/p95 ms by step: " + ", ".join(
            f"{step}: {percentile(ms, 50):.0f}/{percentile(ms, 95):.0f}"
            for step, ms in sorted(p.update_ms_by_step.items())) for p in (baton, bare)),
        "upd = baton: POST .../approve through the API (3 per lifecycle); bare: execute_update "
        "through the client (all of its Updates); resent = sent before the step opened",
        "cpu s = every process of the run (API and drivers, workers, Temporal dev server, "
        "PostgreSQL); wkr = the worker process(es); lc = completed lifecycle; load avg at the "
        "phase's end (1/5/15 min)",
    ]
    return "\n".join(rows)


def _num(value: float | None, width: int, digits: int) -> str:
    return f"{value:>{width}.{digits}f}" if value is not None else f"{'-':>{width}}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lifecycle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=500, help="lifecycles per side (500)")
    parser.add_argument("--concurrency", type=int, default=50,
                        help="lifecycles in flight at once, both sides (50)")
    parser.add_argument("--activity-threads", type=int, default=16,
                        help="activity threads (and slots) of each worker (16, as "
                             "BATON_ACTIVITY_THREADS' default)")
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--worker", choices=["process", "inprocess"], default="process",
                        help="both workers in one worker process, as production runs them "
                             "apart from the API (default), or in the API's process")
    parser.add_argument("--worker-processes", type=int, default=1,
                        help="with --worker process: how many worker processes (1); each runs "
                             "both workers, as `docker compose --scale worker=N` would")
    parser.add_argument("--document-processes", type=int, default=0,
                        help="with --worker process: this many more worker processes serve "
                             "the documents queue only (BATON_WORKER_ROLE=documents) and the "
                             "--worker-processes the workflow queue only (0: every process "
                             "serves both)")
    parser.add_argument("--signer-wait", choices=["long-poll", "poll"], default="long-poll",
                        help="how the signer waits for the agreement: one GET detail with "
                             "wait_for=agreement (long-poll, as the signing page; default) or "
                             "a GET every 0.2 s (poll: the load model before 2026-12-01)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the SQLite file goes (default: a temporary directory)")
    parser.add_argument("--serve-workers", nargs=4, metavar=("ADDRESS", "URL", "QUEUE", "BARE"),
                        help=argparse.SUPPRESS)  # the worker process started by the benchmark
    args = parser.parse_args(argv)
    if args.serve_workers:
        asyncio.run(serve_workers(*args.serve_workers, activity_threads=args.activity_threads))
        return 0

    def say(message: str) -> None:
        print(f"[bench] {message}", flush=True)

    with tempfile.TemporaryDirectory(prefix="baton-lifecycle-bench-", dir=args.workdir) as tmp, \
            database(args.backend, Path(tmp)) as url:
        baton, bare, shape = asyncio.run(measure(url, args.count, args.concurrency,
                                                 args.activity_threads, args.worker, say,
                                                 args.worker_processes,
                                                 args.signer_wait == "long-poll",
                                                 args.document_processes))
    print()
    where = (f"in {args.worker_processes} worker process(es), {args.activity_threads} activity "
             "threads each" if args.worker == "process" else "in the API's process")
    if args.worker == "process" and args.document_processes:
        where += f" (workflow queue only), renders in {args.document_processes} more"
    print(f"backend {args.backend}; API (ASGI) and drivers in one process, both workers {where}, "
          "the Temporal dev server in its own")
    from settings import get_settings

    settings = get_settings()
    print(f"the signer waits for the agreement by {args.signer_wait}; document slots "
          f"{settings.document_slots}, render threads at nice +{settings.document_nice} "
          "(BATON_DOCUMENT_SLOTS, BATON_DOCUMENT_NICE)")
    print(format_report(baton, bare, shape, args.concurrency))
    return 1 if baton.failures or bare.failures else 0


if __name__ == "__main__":
    sys.exit(main())
