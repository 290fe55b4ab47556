"""The lifecycle benchmark at toy scale (both backends): it drives Baton's lifecycles through
the API and the bare baseline to the end, and the bare workflow copies the shape it measured."""

from __future__ import annotations

import pytest

from bench.lifecycle import format_report, measure

pytestmark = pytest.mark.devserver


async def test_two_lifecycles_each_side(db_url: str) -> None:
    said: list[str] = []
    baton, bare, shape = await measure(db_url, count=2, concurrency=2, activity_threads=4,
                                       worker_mode="inprocess", say=said.append)
    assert baton.failures == [] and bare.failures == []
    # 3 approvals and the signature; the reminder timers of the levels, the protection timer.
    # Under load a reminder may fire before its approval arrives, moving it from cancelled to
    # fired, so only the total of started timers is fixed.
    assert shape.updates == 4
    assert shape.activities > 20
    assert shape.armed_timers + len(shape.fired_timers_s) >= 3
    assert len(baton.update_ms) == 2 * 3  # the approve round-trips through the API
    assert len(bare.update_ms) == 2 * shape.updates
    assert baton.per_second > 0 and bare.per_second > 0
    # CPU of the run's processes, measured per side; no worker process in this mode
    assert baton.cpu_s and bare.cpu_s and baton.worker_cpu_s is None and baton.load
    report = format_report(baton, bare, shape, concurrency=2)
    assert "throughput baton/bare" in report and "approve p95" in report
