"""One fault run: the stack up, N lifecycles started, a fault injected while they run, then
every lifecycle finished and the database checked (tests/reliability/checks.py).

`faults(run)` is the test's part: it breaks something while `run.lifecycles` is in flight
and returns lines for the report. Orders are posted before the lifecycles, in the middle
(by the fault, after it strikes: `run.post_orders_during()`), and after.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.reliability.checks import audit_verify, check_database
from tests.reliability.lifecycles import (
    Answers,
    Api,
    Lifecycle,
    drive,
    orders,
    post_orders,
    post_plans,
    run_lifecycles,
)
from tests.reliability.stack import FaultStack, fault_stack

# the full-size runs: only with -m soak (tests/reliability/conftest.py), up to 30 min each
SOAK = [pytest.mark.soak, pytest.mark.timeout(1800)]
SEED_VARIABLE = "BATON_FAULT_SEED"  # set it to replay a run's random moments


def fault_rng() -> tuple[int, random.Random]:
    seed = int(os.environ.get(SEED_VARIABLE) or random.SystemRandom().randrange(10**6))
    print(f"\nfault seed {seed} (replay with {SEED_VARIABLE}={seed})")
    return seed, random.Random(seed)


@dataclass
class Run:
    stack: FaultStack
    api: Api
    started: float
    lifecycles: asyncio.Task[list[Lifecycle]]
    flights: list[Lifecycle]
    spare_customer: int  # seeded for a request the fault submits itself (late_lifecycle)
    order_ids: set[str] = field(default_factory=set)
    late: list[asyncio.Task[Lifecycle]] = field(default_factory=list)

    def late_lifecycle(self) -> Lifecycle:
        """The next lifecycle (index N, the spare customer), driven from now on; its submit
        uses the Idempotency-Key a fault may already have used."""
        lifecycle = Lifecycle(len(self.flights), self.spare_customer)
        self.flights.append(lifecycle)
        self.late.append(asyncio.create_task(drive(
            self.api, lifecycle, database_url=self.stack.database_url, started=self.started,
            poll_s=1.0)))
        return lifecycle

    def first_action_after(self, moment: float) -> float | None:
        """Seconds from `moment` (monotonic) to the first action the API carried out."""
        after = [at for at, _what in self.api.answers.done_at if at > moment]
        return min(after) - moment if after else None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def running(self) -> bool:
        return not self.lifecycles.done()

    async def post_orders_during(self) -> None:
        batch = orders(self.stack.customers, "during")
        self.order_ids |= {o["external_id"] for o in batch}
        await post_orders(self.api, self.stack.org.hr_head, batch)


async def run_scenario(tmp_path: Path, *, lifecycles: int, timeout_s: float,
                       faults: Callable[[Run], Awaitable[list[str]]]) -> list[str]:
    """Returns the report's lines; fails on anything lost, duplicated or badly answered."""
    wall = time.monotonic()
    async with fault_stack(tmp_path, customers=lifecycles + 1) as stack, httpx.AsyncClient(
            base_url=stack.api_url, timeout=120,
            limits=httpx.Limits(max_connections=50)) as http:
        report = Report()
        report.append(f"stack up in {time.monotonic() - wall:.1f} s")
        api = Api(http, stack.org, Answers())
        await post_plans(api)
        before = orders(stack.customers, "before")
        await post_orders(api, stack.org.hr_head, before)
        started = time.monotonic()
        flights = [Lifecycle(i, customer)
                   for i, customer in enumerate(stack.customers[:lifecycles])]
        task = asyncio.create_task(run_lifecycles(api, flights,
                                                  database_url=stack.database_url,
                                                  started=started))
        run = Run(stack, api, started, task, flights, stack.customers[lifecycles],
                  {o["external_id"] for o in before})
        try:
            report += await faults(run)
            done = await asyncio.wait_for(asyncio.shield(task), timeout_s - run.elapsed())
            done += await asyncio.wait_for(asyncio.gather(*run.late),
                                           timeout_s - run.elapsed())
        except TimeoutError:
            task.cancel()
            for late in run.late:
                late.cancel()
            unfinished = [lc for lc in flights if lc.finished_after_s is None]
            raise AssertionError(f"{len(unfinished)} lifecycles unfinished after "
                                 f"{run.elapsed():.0f} s: {unfinished}") from None
        except BaseException:
            task.cancel()
            for late in run.late:
                late.cancel()
            raise
        stack.alive()
        report.append(f"{len(done)} lifecycles finished in {run.elapsed():.1f} s "
                      f"(last at {max(lc.finished_after_s or 0 for lc in done):.1f} s): "
                      + ", ".join(f"{k} {v}" for k, v in sorted(
                          _stages(done).items())))
        after = orders(stack.customers, "after")
        run.order_ids |= {o["external_id"] for o in after}
        await post_orders(api, stack.org.hr_head, after)
        assert not api.answers.broken, "\n".join(api.answers.broken[:20])
        checked = check_database(stack.database_url, stack.org, done, run.order_ids)
        report.append(f"checked: {checked.line()}")
        report.append(audit_verify(stack.processes))
        answers: Counter[str] = Counter()
        for (_what, status, slug), n in api.answers.counts.items():
            answers[f"{status} {slug}".strip()] += n
        report.append("API answers: " + ", ".join(f"{k}: {v}" for k, v in sorted(
            answers.items())))
    report.append(f"wall time {time.monotonic() - wall:.1f} s")
    return report


class Report(list[str]):
    """The run's figures, printed as they come (so a failing run still shows them)."""

    def append(self, line: str) -> None:
        print(line, flush=True)
        super().append(line)

    def __iadd__(self, lines: object) -> Report:
        assert isinstance(lines, list)
        for line in lines:
            self.append(line)
        return self


def _stages(done: list[Lifecycle]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for lc in done:
        counts[lc.stage] = counts.get(lc.stage, 0) + 1
    return counts
