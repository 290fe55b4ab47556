"""Issue 10, reliability 2: PostgreSQL stopped (pg_ctl stop -m fast) in the middle of a run
and started again on the same port and data directory.

While it is down, the API answers reads, writes and logins with 503 problem+json
(database-unavailable, Retry-After) and /readyz says the database is unavailable. Activities
retry; once it is back every lifecycle finishes and nothing is lost or written twice
(tests/reliability/checks.py). `make test`: 10 lifecycles, 10 s down; `make soak`: 100, 30 s.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.factories import PASSWORD
from tests.reliability.scenario import SOAK, Run, fault_rng, run_scenario

pytestmark = [pytest.mark.prodlike, pytest.mark.postgres]


def assert_unavailable(r: httpx.Response, slug: str) -> None:
    assert r.status_code == 503, (r.request.url, r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    assert r.json()["type"].endswith(f"/{slug}"), r.text
    assert int(r.headers["Retry-After"]) > 0


def database_outage(outage_s: float):  # type: ignore[no-untyped-def]
    async def faults(run: Run) -> list[str]:
        _seed, rng = fault_rng()
        stack, org, http = run.stack, run.stack.org, run.api.http
        await asyncio.sleep(rng.uniform(4.0, 8.0))
        assert run.running(), "the lifecycles finished before the outage"
        hr = {"Authorization": f"Bearer {run.api.tokens[org.hr_head]}"}
        stopping_at = run.elapsed()
        stack.stop_postgres()
        down_at = time.monotonic()
        lines = [f"PostgreSQL stopping at {stopping_at:.1f} s, down at {run.elapsed():.1f} s "
                 f"(pg_ctl stop -m fast), for {outage_s:.0f} s"]
        # a batch of orders sent while it is down: retried on 503 until it is back
        writes = asyncio.create_task(run.post_orders_during())
        rid = run.flights[0].request_id
        probes = {
            "login": await http.post("/api/v1/auth/login", json={
                "username": org.usernames[org.sales_a1], "password": PASSWORD}),
            "list": await http.get("/api/v1/reassignments", headers=hr),
            "detail": await http.get(f"/api/v1/reassignments/{rid}", headers=hr),
            "statements": await http.get("/api/v1/statements", headers=hr,
                                         params={"employee_id": org.sales_a1}),
            "write": await http.post("/api/v1/orders", headers=hr, json={"orders": [{
                "external_id": "PROBE-while-down", "customer_id": run.spare_customer,
                "amount_fen": 100, "currency": "CNY",
                "booked_at": "2026-06-01T00:00:00+00:00"}]}),
        }
        for response in probes.values():
            assert_unavailable(response, "database-unavailable")
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["database"] != "ok", \
            ready.text
        lines.append(f"while down: {', '.join(probes)} and /readyz answered 503 "
                     "problem+json with Retry-After")
        await asyncio.sleep(outage_s - (time.monotonic() - down_at))
        stack.start_postgres()
        back_at, restarted_at = time.monotonic(), run.elapsed()
        ready_s = await stack.wait_api_ready()
        await writes
        lines.append(f"PostgreSQL started at {restarted_at:.1f} s (down "
                     f"{back_at - down_at:.1f} s); /readyz 200 after "
                     f"{ready_s:.1f} s; the orders sent while down stored "
                     f"{time.monotonic() - back_at:.1f} s after the restart")
        while run.first_action_after(back_at) is None and run.running():
            await asyncio.sleep(0.5)
        first = run.first_action_after(back_at)
        lines.append("first workflow action through the API after the restart: "
                     + (f"{first:.1f} s" if first is not None else "none (all done)"))
        return lines
    return faults


@pytest.mark.parametrize(("lifecycles", "outage_s", "timeout_s"), [
    pytest.param(10, 10.0, 300, id="n10-10s"),
    pytest.param(100, 30.0, 1500, id="n100-30s", marks=SOAK),
])
async def test_lifecycles_survive_a_database_outage(tmp_path: Path, lifecycles: int,
                                                   outage_s: float, timeout_s: float) -> None:
    await run_scenario(tmp_path, lifecycles=lifecycles, timeout_s=timeout_s,
                       faults=database_outage(outage_s))
