"""Issue 10, reliability 3: the Temporal dev server stopped in the middle of a run (its state
in a file, --db-filename) and started again on the same port.

While it is down, workflow actions (a submit, an approval) answer 503 problem+json
(temporal-unavailable, Retry-After) and a submit's request is saved; reads come from the
database (the request list and detail, statements). Afterwards the workers reconnect by
themselves, the saved request starts when submitted again with its Idempotency-Key, and every
lifecycle finishes with nothing lost or written twice. `make test`: 10 lifecycles, 8 s down;
`make soak`: 100, 20 s.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from tests.prod.conftest import _pollers_include
from tests.prod.processes import wait_until
from tests.reliability.scenario import SOAK, Run, fault_rng, run_scenario
from tests.reliability.test_database_outage import assert_unavailable

pytestmark = [pytest.mark.prodlike, pytest.mark.postgres]


async def pending_approval(run: Run) -> tuple[int, int]:
    """A request now waiting for an approval (any level), with that level's approver.

    Any level: the drivers approve each level as soon as it opens, so asking for level 1 alone
    raced them and lost on a loaded machine (CI timed out waiting). The approve tried during
    the outage must answer 503 whichever level it is.
    """
    async def find() -> tuple[int, int] | None:
        for lc in run.flights:
            if lc.request_id is None:
                continue
            r = await run.api.call("detail", "GET", f"/api/v1/reassignments/{lc.request_id}",
                                   run.stack.org.hr_head)
            live = r.json().get("live")
            if live and live["stage"] == "PENDING_APPROVAL" and live.get("current_level"):
                level = live["levels"][live["current_level"] - 1]
                if level["status"] == "PENDING":
                    return lc.request_id, int(level["approver_id"])
        return None
    found: tuple[int, int] = await wait_until("a request waiting for an approval", find,
                                              timeout=60, alive=run.stack.alive)
    return found


def temporal_outage(outage_s: float):  # type: ignore[no-untyped-def]
    async def faults(run: Run) -> list[str]:
        _seed, rng = fault_rng()
        stack, org, http = run.stack, run.stack.org, run.api.http
        # keep one approve-path lifecycle waiting at its open level until Temporal is back,
        # so the outage always meets a request that an approver could act on
        held = run.flights[0]
        held.hold_approvals = True
        await asyncio.sleep(rng.uniform(2.0, 6.0))
        rid, approver = await pending_approval(run)
        assert run.running(), "the lifecycles finished before the outage"
        tokens = {who: await run.api.login(who) for who in (org.hr_head, org.manager_a,
                                                             approver)}

        def auth(who: int) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[who]}"}

        stopping_at = run.elapsed()
        stack.stop_temporal()
        down_at = time.monotonic()
        lines = [f"Temporal stopping at {stopping_at:.1f} s, down at {run.elapsed():.1f} s "
                 f"(SIGTERM), for {outage_s:.0f} s"]
        timed: dict[str, float] = {}

        async def probe(name: str, method: str, path: str, who: int, **kwargs: object
                        ) -> object:
            started = time.monotonic()
            r = await http.request(method, path, headers={
                **auth(who), **kwargs.pop("headers", {})}, **kwargs)  # type: ignore[arg-type]
            timed[name] = time.monotonic() - started
            return r

        # actions: refused with 503, nothing half-done
        late = run.flights and len(run.flights)  # the spare lifecycle's index and key
        submit = await probe("submit", "POST", "/api/v1/reassignments", org.manager_a, json={
            "from_employee_id": org.sales_a1, "to_employee_id": org.sales_a2,
            "customer_ids": [run.spare_customer], "reason": "WORKLOAD_BALANCING"},
            headers={"Idempotency-Key": f"reliability-{late}"})
        assert_unavailable(submit, "temporal-unavailable")  # type: ignore[arg-type]
        saved = submit.json()["request_id"]  # type: ignore[attr-defined]
        approve = await probe("approve", "POST", f"/api/v1/reassignments/{rid}/approve",
                              approver, json={"comment": "while Temporal is down"})
        assert_unavailable(approve, "temporal-unavailable")  # type: ignore[arg-type]
        # reads: from the database
        listing = await probe("list", "GET", "/api/v1/reassignments", org.hr_head)
        detail = await probe("detail", "GET", f"/api/v1/reassignments/{rid}", org.hr_head)
        statements = await probe("statements", "GET", "/api/v1/statements", org.hr_head,
                                 params={"employee_id": org.sales_a1})
        for r in (listing, detail, statements):
            assert r.status_code == 200, r.text  # type: ignore[attr-defined]
        assert saved in [x["id"] for x in listing.json()["items"]]  # type: ignore[attr-defined]
        shown = detail.json()  # type: ignore[attr-defined]
        assert shown["stage"] == "PENDING_APPROVAL" and shown["live"] is None, shown
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["temporal"] != "ok"
        lines.append("while down: " + ", ".join(
            f"{name} {timed[name]:.1f} s" for name in timed)
            + " (submit and approve 503 temporal-unavailable, the submitted request saved "
            f"as {saved}; list, detail and statements 200)")

        await asyncio.sleep(max(0.0, outage_s - (time.monotonic() - down_at)))
        stack.start_temporal()
        back_at, restarted_at = time.monotonic(), run.elapsed()
        await stack.wait_temporal()
        frontend_s = time.monotonic() - back_at
        identities = {f"{w.pid}@{socket.gethostname()}" for w in stack.workers}
        await wait_until("the workers to poll again",
                         lambda: _pollers_include(stack.client, identities),
                         timeout=120, alive=stack.alive, interval=0.2)
        polling_s = time.monotonic() - back_at
        lines.append(f"Temporal started at {restarted_at:.1f} s (down "
                     f"{back_at - down_at:.1f} s); frontend up after {frontend_s:.1f} s, "
                     f"both workers polling after {polling_s:.1f} s")
        held.hold_approvals = False
        run.late_lifecycle()  # submits again with the same key: the saved request starts
        while run.first_action_after(back_at) is None and run.running():
            await asyncio.sleep(0.5)
        first = run.first_action_after(back_at)
        lines.append("first workflow action through the API after the restart: "
                     + (f"{first:.1f} s" if first is not None else "none (all done)"))
        return lines
    return faults


@pytest.mark.parametrize(("lifecycles", "outage_s", "timeout_s"), [
    pytest.param(10, 8.0, 300, id="n10-8s"),
    pytest.param(100, 20.0, 1500, id="n100-20s", marks=SOAK),
])
async def test_lifecycles_survive_a_temporal_outage(tmp_path: Path, lifecycles: int,
                                                   outage_s: float, timeout_s: float) -> None:
    await run_scenario(tmp_path, lifecycles=lifecycles, timeout_s=timeout_s,
                       faults=temporal_outage(outage_s))
