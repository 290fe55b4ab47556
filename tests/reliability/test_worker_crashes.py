"""Issue 10, reliability 1: worker processes SIGKILLed at random moments while N lifecycles
run; each is restarted. Every lifecycle ends as expected and nothing is written twice.

`make test`: N=10, K=3. `make soak`: N=100, K=10. BATON_FAULT_SEED replays a run's moments.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.reliability.scenario import SOAK, Run, fault_rng, run_scenario
from tests.reliability.stack import WORKER_SLOTS

pytestmark = [pytest.mark.prodlike, pytest.mark.postgres]


def worker_kills(kills: int, gap_s: tuple[float, float]):  # type: ignore[no-untyped-def]
    async def faults(run: Run) -> list[str]:
        _seed, rng = fault_rng()
        lines, writes = [], None
        for k in range(kills):
            await asyncio.sleep(rng.uniform(*gap_s))
            assert run.running(), f"the lifecycles finished before kill {k + 1} of {kills}"
            slot = rng.randrange(WORKER_SLOTS)
            victim = run.stack.kill_worker(slot)
            at = run.elapsed()
            await asyncio.sleep(rng.uniform(0, 2))  # a moment with one worker only
            run.stack.start_worker(slot)
            lines.append(f"kill {k + 1}: worker slot {slot} (pid {victim.pid}) at {at:.1f} s, "
                         f"restarted at {run.elapsed():.1f} s")
            if k == 0:  # alongside the kills, not before the next one
                writes = asyncio.create_task(run.post_orders_during())
        if writes is not None:
            await writes
        return lines
    return faults


@pytest.mark.parametrize(("lifecycles", "kills", "gap_s", "timeout_s"), [
    # 600 s: a worker killed while rendering a document holds that lifecycle until the
    # render's 5 min start-to-close timeout lets another worker retry it (no heartbeat)
    pytest.param(10, 3, (2.0, 6.0), 600, id="n10-k3", marks=pytest.mark.timeout(900)),
    pytest.param(100, 10, (3.0, 12.0), 1500, id="n100-k10", marks=SOAK),
])
async def test_lifecycles_survive_worker_kills(tmp_path: Path, lifecycles: int, kills: int,
                                              gap_s: tuple[float, float],
                                              timeout_s: float) -> None:
    await run_scenario(tmp_path, lifecycles=lifecycles, timeout_s=timeout_s,
                       faults=worker_kills(kills, gap_s))
