"""A production-like run (issue 8): real processes on PostgreSQL, one whole lifecycle.

PostgreSQL, the Temporal dev server, the API under uvicorn with 2 processes, and 2 Baton
workers run as separate OS processes (tests/prod/conftest.py). Through the HTTP API only, the
test logs in as each role, posts batches of orders before, during and after the protection
period, submits a reassignment, approves every level, and has the salesperson sign with a
one-time code; the policy's window and protection last seconds. Mid-way it SIGKILLs the worker
that holds the workflow, and restarts the API. The lifecycle must complete on the other
worker, and nothing may be lost or written twice.

Run it alone with `.venv/bin/pytest tests/prod` (`-m prodlike` selects the reliability
tests of tests/reliability too).
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func
from sqlmodel import Session, col, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus

from models import Assignment, AssignmentSource, Employee, NotificationRecord, Order
from models.commission import CommissionLine
from models.db import make_engine
from tests.factories import PASSWORD, SmallOrg
from tests.prod.conftest import ProdStack
from tests.prod.processes import PYTHON, ROOT, wait_until
from tests.prod.seed import PROTECTION_SHARE_BP

pytestmark = [pytest.mark.prodlike, pytest.mark.postgres]

WAIT_S = 90.0  # per step; generous for a loaded CI machine (the timers themselves are seconds)
BATCH = 60  # orders per batch, three batches
FULL_BP = 10_000
# commission plans posted by HR: A found the customers; B receives them by reassignment
PLANS = {"a": (300, 150), "b": (250, 200)}  # (base_rate_bp, inherited_rate_bp)


@dataclass
class Client:
    """The HTTP API as a client sees it: one login per person, logged in again on a 401."""

    http: httpx.AsyncClient
    org: SmallOrg
    tokens: dict[int, str] = field(default_factory=dict)
    logins: int = 0

    async def login(self, employee_id: int) -> str:
        r = await self.http.post("/api/v1/auth/login", json={
            "username": self.org.usernames[employee_id], "password": PASSWORD})
        assert r.status_code == 200, r.text
        self.logins += 1
        self.tokens[employee_id] = str(r.json()["access_token"])
        return self.tokens[employee_id]

    async def call(self, method: str, path: str, as_id: int, **kwargs: Any) -> httpx.Response:
        token = self.tokens.get(as_id) or await self.login(as_id)
        headers = {**kwargs.pop("headers", {})}
        r = await self.http.request(method, path, headers={
            **headers, "Authorization": f"Bearer {token}"}, **kwargs)
        if r.status_code == 401:  # expired, or the server forgot the session
            token = await self.login(as_id)
            r = await self.http.request(method, path, headers={
                **headers, "Authorization": f"Bearer {token}"}, **kwargs)
        return r

    async def detail(self, rid: int, as_id: int) -> dict[str, Any]:
        r = await self.call("GET", f"/api/v1/reassignments/{rid}", as_id)
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def act(self, rid: int, action: str, as_id: int, body: dict[str, Any],
                  **kwargs: Any) -> httpx.Response:
        return await self.call("POST", f"/api/v1/reassignments/{rid}/{action}", as_id,
                               json=body, **kwargs)


def level_open(n: int) -> Callable[[dict[str, Any]], bool]:
    def check(d: dict[str, Any]) -> bool:
        live = d["live"]
        return bool(live) and live["stage"] == "PENDING_APPROVAL" and \
            live["current_level"] == n and live["levels"][n - 1]["status"] == "PENDING"
    return check


@dataclass(frozen=True)
class PostedOrder:
    external_id: str
    customer_id: int
    amount_fen: int
    booked_at: datetime


def order_batch(phase: str, customers: list[int], booked_at: datetime) -> list[PostedOrder]:
    # whole hundreds of yuan: every commission line is exact, no rounding to reason about
    return [PostedOrder(f"PL-{phase}-{i:03d}", customers[i % len(customers)],
                        (i % 7 + 1) * 10_000, booked_at) for i in range(BATCH)]


async def post_orders(client: Client, hr: int, orders: list[PostedOrder]) -> httpx.Response:
    return await client.call("POST", "/api/v1/orders", hr, json={"orders": [
        {"external_id": o.external_id, "customer_id": o.customer_id,
         "amount_fen": o.amount_fen, "currency": "CNY", "booked_at": o.booked_at.isoformat()}
        for o in orders]})


def expected_lines(order: PostedOrder, *, moved: set[int], org: SmallOrg, rid: int,
                   effective_at: datetime, protection_end: datetime) -> set[tuple[Any, ...]]:
    """DESIGN.md "Commission attribution", rules 1-3, for one order (amount exact)."""
    base_a, _inherited_a = PLANS["a"]
    _base_b, inherited_b = PLANS["b"]

    def line(employee: int, role: str, rule: str, rate: int, share: int,
             request: int | None) -> tuple[Any, ...]:
        amount, rest = divmod(order.amount_fen * rate * share, FULL_BP * FULL_BP)
        assert rest == 0
        return (order.external_id, employee, role, rule, rate, share, amount, request)

    if order.customer_id not in moved or order.booked_at < effective_at:
        return {line(org.sales_a1, "OWNER", "R1_OWNER_BASE", base_a, FULL_BP, None)}
    if order.booked_at < protection_end:
        s = PROTECTION_SHARE_BP
        return {line(org.sales_a1, "PROTECTED_ORIGINAL", "R2_PROTECTION_ORIGINAL", base_a, s,
                     rid),
                line(org.sales_a2, "INHERITED_OWNER", "R2_PROTECTION_INHERITED", inherited_b,
                     FULL_BP - s, rid)}
    return {line(org.sales_a2, "INHERITED_OWNER", "R3_OWNER_INHERITED", inherited_b, FULL_BP,
                 rid)}


async def statement_lines(client: Client, hr: int, employees: list[int]
                          ) -> list[tuple[Any, ...]]:
    """Every commission line of the test's orders, as the statements API shows them."""
    found: list[tuple[Any, ...]] = []
    for employee in employees:
        r = await client.call("GET", "/api/v1/statements", hr,
                              params={"employee_id": employee, "limit": 200})
        assert r.status_code == 200, r.text
        for header in r.json()["items"]:
            d = await client.call("GET", f"/api/v1/statements/{employee}/{header['period']}", hr)
            assert d.status_code == 200, d.text
            found += [(x["order_external_id"], employee, x["role"], x["rule"], x["rate_bp"],
                       x["share_bp"], x["amount_fen"], x["request_id"])
                      for x in d.json()["lines"] if x["order_external_id"].startswith("PL-")]
    return found


def signing_code(database_url: str, rid: int, signer: int) -> str:
    """The one-time code as delivered: the signer's newest SIGNING_CODE notification."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as s:
            notice = s.exec(select(NotificationRecord).where(
                NotificationRecord.request_id == rid, NotificationRecord.kind == "SIGNING_CODE")
                .order_by(col(NotificationRecord.id).desc())).first()
    finally:
        engine.dispose()
    assert notice is not None and notice.recipient_id == signer
    codes = re.findall(r"\b\d{6}\b", notice.message)  # not the digits inside the hash
    assert len(codes) == 1, notice.message
    return str(codes[0])


async def test_lifecycle_survives_a_worker_kill_and_an_api_restart(
        prod_stack: ProdStack) -> None:
    started = time.monotonic()
    stack, org = prod_stack, prod_stack.org
    hr, moved = org.hr_head, org.customers_a1[:2]
    control = org.customers_a1[2]  # stays with A throughout
    customers = [*moved, control]

    async def wait(rid: int, as_id: int, what: str,
                   predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            d = await client.detail(rid, as_id)
            return d if predicate(d) else None
        return dict(await wait_until(what, check, timeout=WAIT_S, alive=stack.alive,
                                     interval=0.3))

    async with httpx.AsyncClient(base_url=stack.api_url, timeout=90) as http:
        client = Client(http, org)

        # HR sets the commission plans, then the ERP posts the first batch (before)
        for employee, (base, inherited) in ((org.sales_a1, PLANS["a"]),
                                            (org.sales_a2, PLANS["b"])):
            r = await client.call("POST", "/api/v1/commission-plans", hr, json={
                "employee_id": employee, "effective_from": "2025-01-01T00:00:00+00:00",
                "base_rate_bp": base, "inherited_rate_bp": inherited})
            assert r.status_code == 201, r.text
        before = order_batch("before", customers, datetime.now(UTC))
        r = await post_orders(client, hr, before)
        assert r.status_code == 201 and r.json()["created"] == BATCH, r.text

        # the manager submits; a repeated submit is the same request
        body = {"from_employee_id": org.sales_a1, "to_employee_id": org.sales_a2,
                "customer_ids": moved, "reason": "WORKLOAD_BALANCING"}
        submit = {"json": body, "headers": {"Idempotency-Key": "prod-like-1"}}
        r = await client.call("POST", "/api/v1/reassignments", org.manager_a, **submit)
        assert r.status_code == 201, r.text
        rid, workflow_id = int(r.json()["id"]), str(r.json()["workflow_id"])
        r = await client.call("POST", "/api/v1/reassignments", org.manager_a, **submit)
        assert r.status_code == 200 and r.json()["id"] == rid, r.text

        detail = await wait(rid, org.manager_a, "approval level 1 to open", level_open(1))
        approvers = [level["approver_id"] for level in detail["live"]["levels"]]
        assert approvers == [org.director, org.ceo, org.hr_head], detail["live"]["levels"]

        # SIGKILL the worker that ran the workflow's last task: it holds the workflow in its
        # cache while the approvals wait
        handle = stack.client.get_workflow_handle(workflow_id)
        holder = await last_workflow_task_identity(handle)
        by_identity = {stack.worker_identity(w): w for w in stack.workers}
        assert holder in by_identity, f"{holder} is none of our workers {list(by_identity)}"
        victim = by_identity[holder]
        survivor = next(w for w in stack.workers if w is not victim)
        victim.kill()
        assert victim.popen.returncode == -signal.SIGKILL
        killed_at = datetime.now(UTC)

        r = await client.act(rid, "approve", approvers[0], {"comment": "level 1"})
        assert r.status_code == 200, r.text

        # restart the API (SIGTERM to uvicorn's master, which stops its processes)
        logins = client.logins
        code = await stack.restart_api()
        assert code == 0, f"uvicorn exited with {code} on SIGTERM"
        after_restart = await wait(rid, org.manager_a, "level 2 after the API restart",
                                   level_open(2))
        assert after_restart["stage"] == "PENDING_APPROVAL"
        assert [(s["level"], s["status"]) for s in after_restart["approval_steps"]][:2] == \
            [(1, "APPROVED"), (2, "PENDING")], after_restart["approval_steps"]
        # the first batch is still stored: sending it again only finds duplicates
        r = await post_orders(client, hr, before)
        assert r.status_code == 200 and r.json()["duplicates"] == BATCH, r.text
        assert len(await statement_lines(client, hr, [org.sales_a1])) == BATCH
        # tokens are signed with the configured secret: a restart logs nobody out
        assert client.logins == logins, "the API restart invalidated the access tokens"

        for level, approver in enumerate(approvers[1:], start=2):
            await wait(rid, approver, f"level {level} to open", level_open(level))
            r = await client.act(rid, "approve", approver, {"comment": f"level {level}"},
                                 headers={"X-Request-ID": f"prodlike-approve-{level}"})
            assert r.status_code == 200, r.text
            assert r.headers["X-Request-ID"] == f"prodlike-approve-{level}"

        # the salesperson signs with a one-time code
        detail = await wait(rid, org.sales_a1, "the agreement to sign",
                            lambda d: bool(d["live"] and d["live"].get("agreement_sha256")))
        document = detail["live"]["agreement_sha256"]
        r = await client.act(rid, "sign/otp", org.sales_a1, {"document_sha256": document})
        assert r.status_code == 202, r.text
        r = await client.act(rid, "sign", org.sales_a1, {
            "typed_name": "Li Sales", "document_sha256": document, "method": "otp",
            "otp_code": signing_code(stack.database_url, rid, org.sales_a1)})
        assert r.status_code == 200, r.text

        # during protection: the second batch
        detail = await wait(rid, hr, "PROTECTION", lambda d: d["stage"] == "PROTECTION")
        during_at = datetime.now(UTC)
        protection_end = datetime.fromisoformat(detail["protection_end"])
        assert during_at < protection_end, "the protection period ended before the batch"
        during = order_batch("during", customers, during_at)
        r = await post_orders(client, hr, during)
        assert r.status_code == 201 and r.json()["created"] == BATCH, r.text

        final = await wait(rid, hr, "COMPLETED", lambda d: d["stage"] == "COMPLETED")
        after = order_batch("after", customers, datetime.now(UTC))
        r = await post_orders(client, hr, after)
        assert r.status_code == 201 and r.json()["created"] == BATCH, r.text

        # the request as recorded
        effective_at = datetime.fromisoformat(final["effective_at"])
        protection_end = datetime.fromisoformat(final["protection_end"])
        assert effective_at <= during_at < protection_end
        assert [(s["approver_id"], s["status"]) for s in final["approval_steps"]] == \
            [(a, "APPROVED") for a in approvers]
        assert final["signature"]["decision"] == "SIGNED"
        r = await client.call("GET", f"/api/v1/reassignments/{rid}/agreement/verify", hr)
        assert r.status_code == 200 and r.json()["ok"], r.text

        # the commission split, as the statements API shows it
        expected = Counter(line for order in before + during + after
                           for line in expected_lines(order, moved=set(moved), org=org, rid=rid,
                                                      effective_at=effective_at,
                                                      protection_end=protection_end))
        shown = Counter(await statement_lines(client, hr, [org.sales_a1, org.sales_a2]))
        assert shown == expected, (f"missing: {expected - shown}\nunexpected: "
                                   f"{shown - expected}")
        rules = Counter(line[3] for line in shown.elements())
        assert rules["R2_PROTECTION_ORIGINAL"] == rules["R2_PROTECTION_INHERITED"] > 0
        assert rules["R3_OWNER_INHERITED"] > 0 and rules["R1_OWNER_BASE"] > BATCH

        r = await client.call("GET", f"/api/v1/reassignments/{rid}/audit", hr)
        assert r.status_code == 200, r.text
        events = r.json()["items"]

        # what Prometheus would scrape: the API (all its processes since the restart) ...
        r = await http.get("/metrics")
        assert r.status_code == 401, r.text  # BATON_METRICS_TOKEN is set
        r = await http.get("/metrics", headers={
            "Authorization": f"Bearer {stack.metrics_token}"})
        assert r.status_code == 200, r.text
        api_text = r.text
        api_metrics = samples(api_text)
        approve = {"method": "POST", "route": "/api/v1/reassignments/{request_id}/approve"}
        assert api_metrics.value("baton_http_requests_total", status="200", **approve) == 2
        assert api_metrics.value("baton_http_request_duration_seconds_count",
                                 status_class="2xx", **approve) == 2
        assert api_metrics.value("baton_http_requests_total", method="POST",
                                 route="/api/v1/orders", status="201") == 2
        # ... and the surviving worker, which ran everything after the kill
        r = await http.get(stack.worker_metrics_url(survivor))
        assert r.status_code == 200, r.text
        worker_metrics = samples(r.text)
        assert worker_metrics.value("temporal_workflow_completed",
                                    workflow_type="ReassignmentWorkflow") == 1
        assert worker_metrics.value("temporal_activity_execution_latency_count",
                                    activity_type="record_transition") > 0
        assert worker_metrics.value("baton_stage_transitions_total", stage="COMPLETED") == 1
        assert worker_metrics.value("baton_signatures_total", decision="SIGNED") == 1
        print("\n".join(line for text in (api_text, r.text) for line in text.splitlines()
                        if "approve" in line and "requests_total" in line
                        or line.startswith(("temporal_workflow_completed{",
                                            "baton_stage_transitions_total{"))))

    # the audit chain on PostgreSQL, recomputed by the CLI
    out = stack.processes.run("audit-verify", [PYTHON, str(ROOT / "cli.py"), "audit", "verify"])
    assert "audit chain intact" in out, out

    # nothing written twice: one event per transition, in sequence, each step once
    steps = [e["transition_seq"] for e in events
             if e["workflow_id"] == workflow_id and e["transition_seq"] is not None]
    assert steps == list(range(len(steps))), steps  # 0, 1, 2, ...: no gap, no repeat
    kinds = Counter(e["event_type"] for e in events)
    for once in ("REQUEST_SUBMITTED", "COMMUNICATION_STARTED", "SIGNED",
                 "OWNERSHIP_TRANSFERRED", "PROTECTION_STARTED", "PROTECTION_ENDED"):
        assert kinds[once] == 1, (once, kinds)
    assert kinds["APPROVED"] == 3, kinds
    stages = [e["to_stage"] for e in events if e["to_stage"]]
    assert stages[-1] == "COMPLETED" and stages.count("COMPLETED") == 1, stages
    check_database(stack.database_url, org, rid, moved, effective_at,
                   orders=len(before + during + after), lines=sum(expected.values()))

    # the workflow completed, and everything after the kill ran on the other worker
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED
    ran_on = await identities_by_time(handle)
    assert any(who == stack.worker_identity(victim) and at < killed_at for at, who in ran_on)
    late = {who for at, who in ran_on if at > killed_at}
    assert late == {stack.worker_identity(survivor)}, late

    check_logs(stack, personal_data(stack.database_url))
    print(f"prod-like lifecycle: {time.monotonic() - started:.1f} s after the stack was up")


@dataclass
class Samples:
    """The samples of one Prometheus scrape (parsed by prometheus_client)."""

    items: list[Any]

    def value(self, name: str, **labels: str) -> float:
        """The sum over the series of `name` whose labels include `labels`."""
        # the parser names every counter's sample *_total, also the SDK's that lack it
        names = {name, f"{name}_total"}
        found = [s.value for s in self.items
                 if s.name in names and labels.items() <= s.labels.items()]
        assert found, f"no sample {name}{labels} in the scrape"
        return float(sum(found))


def samples(text: str) -> Samples:
    return Samples([s for family in text_string_to_metric_families(text)
                    for s in family.samples])


def personal_data(database_url: str) -> list[str]:
    """Every employee's name and e-mail address: none may reach a log."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as s:
            people = s.exec(select(Employee.name, Employee.email)).all()
    finally:
        engine.dispose()
    return [value for person in people for value in person if value]


def check_logs(stack: ProdStack, personal: list[str]) -> None:
    """JSON lines with the ids that tie them to a request; no personal data anywhere."""
    api_lines = [json.loads(line) for proc in stack.processes.started if proc.name == "api"
                 for line in proc.log().splitlines() if line.startswith("{")]
    traced = [line for line in api_lines if line.get("request_id") == "prodlike-approve-2"]
    assert traced and traced[-1]["route"] == "/api/v1/reassignments/{request_id}/approve", \
        traced
    for proc in stack.processes.started:
        if proc.name in ("api", "worker"):
            text = proc.log()
            leaked = [value for value in personal if value in text]
            assert not leaked, f"{proc.log_path.name} names {leaked}"


async def last_workflow_task_identity(handle: Any) -> str:
    identity = ""
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            identity = event.workflow_task_completed_event_attributes.identity
    assert identity, "no workflow task completed yet"
    return identity


async def identities_by_time(handle: Any) -> list[tuple[datetime, str]]:
    """(time, worker identity) of every completed workflow task and started activity."""
    found = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            who = event.workflow_task_completed_event_attributes.identity
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            who = event.activity_task_started_event_attributes.identity
        else:
            continue
        found.append((event.event_time.ToDatetime(tzinfo=UTC), who))
    return found


def check_database(database_url: str, org: SmallOrg, rid: int, moved: list[int],
                   effective_at: datetime, *, orders: int, lines: int) -> None:
    """Ownership moved once; every order and commission line is stored exactly once."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as s:
            rows = s.exec(select(Assignment).where(
                col(Assignment.customer_id).in_(moved))).all()
            assert len(rows) == 2 * len(moved), rows
            for customer in moved:
                mine = sorted((a for a in rows if a.customer_id == customer),
                              key=lambda a: a.start_at)
                assert [(a.employee_id, a.source, a.end_at) for a in mine] == [
                    (org.sales_a1, AssignmentSource.FOUND, effective_at),
                    (org.sales_a2, AssignmentSource.REASSIGNMENT, None)]
                assert mine[1].start_at == effective_at and mine[1].request_id == rid
            stored = s.exec(select(func.count()).select_from(Order).where(
                col(Order.external_id).startswith("PL-"))).one()
            assert stored == orders
            ids = select(Order.id).where(col(Order.external_id).startswith("PL-"))
            line_count = s.exec(select(func.count()).select_from(CommissionLine).where(
                col(CommissionLine.order_id).in_(ids))).one()
            assert line_count == lines
    finally:
        engine.dispose()
