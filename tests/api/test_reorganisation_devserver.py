"""Acceptance (issue 9, item 1): a bulk reorganisation of 2,000 customers over 40 salespeople,
through the HTTP API, on the real Temporal dev server with the real worker in process.

A dry run reports the planted bad rows by row number with the impact totals; the clean file
then runs: 80 requests (each salesperson's 50 customers split between the next two), started
at a limited rate over several continue-as-new runs, with the progress asked for throughout and
never going back; every request reaches PENDING_APPROVAL. The wall time is printed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, insert
from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from domain.periods import period_of
from domain.stages import Stage
from domain.workflow_text import reassignment_summary
from models import (
    Assignment,
    AssignmentSource,
    Customer,
    Employee,
    Order,
    ReassignmentRequest,
    Reorganisation,
)
from models.db import SessionFactory
from tests.api.conftest import Api, api_settings, assert_problem
from tests.api.test_lifecycle_devserver import dev_env, org  # noqa: F401, F811  (fixtures)
from tests.factories import T0, SmallOrg
from workflows.search_attributes import REQUEST_ID, STAGE

pytestmark = pytest.mark.devserver

SALESPEOPLE = 40
CUSTOMERS_EACH = 50
STARTS_PER_SECOND = 20
GROUPS_PER_RUN = 25  # 80 groups: four workflow runs
WAIT_S = 240.0


def build_sales_floor(sessions: SessionFactory, small: SmallOrg) -> list[tuple[int, str]]:
    """40 salespeople (half in each team) with 50 customers each, by bulk inserts.
    Returns (employee id, employee number) in order."""
    with sessions() as s:
        team_a = s.get(Employee, small.sales_a1)
        team_b = s.get(Employee, small.sales_b1)
        assert team_a is not None and team_b is not None
        people = []
        for i in range(SALESPEOPLE):
            team = team_a if i % 2 == 0 else team_b
            people.append({"employee_no": f"S{i:03d}", "name": f"Seller {i}", "role": "sales",
                           "org_unit_id": team.org_unit_id, "manager_id": team.manager_id,
                           "status": "EMPLOYED", "locale": "en", "hired_at": T0})
        s.execute(insert(Employee), people)
        ids = dict(s.exec(select(Employee.employee_no, Employee.id).where(
            col(Employee.employee_no).like("S%"))).all())
        sellers = [(ids[f"S{i:03d}"], f"S{i:03d}") for i in range(SALESPEOPLE)]
        base = 100_000
        customers, assignments, orders = [], [], []
        booked = T0 - timedelta(days=20)
        for i, (seller, _) in enumerate(sellers):
            for j in range(CUSTOMERS_EACH):
                cid = base + i * CUSTOMERS_EACH + j
                customers.append({"id": cid, "code": f"K{cid}", "name": f"Customer {cid}",
                                  "found_by_employee_id": seller, "created_at": T0})
                assignments.append({"customer_id": cid, "employee_id": seller,
                                    "start_at": T0 - timedelta(days=300),
                                    "source": AssignmentSource.FOUND.value})
                orders.append({"external_id": f"KO-{cid}", "customer_id": cid,
                               "amount_fen": 10_000 * (j + 1), "booked_at": booked,
                               "period": period_of(booked, "Asia/Shanghai"), "kind": "ORDER",
                               "currency": "CNY", "content_hash": "", "received_at": T0})
        s.execute(insert(Customer), customers)
        s.execute(insert(Assignment), assignments)
        s.execute(insert(Order), orders)
        return sellers


def reorganisation_csv(sellers: list[tuple[int, str]]) -> list[str]:
    """Each seller's customers: even ones to the next seller, odd ones to the one after."""
    lines = []
    for i, (_, number) in enumerate(sellers):
        for j in range(CUSTOMERS_EACH):
            cid = 100_000 + i * CUSTOMERS_EACH + j
            target = sellers[(i + 1 + j % 2) % SALESPEOPLE][1]
            expected = number if j % 3 == 0 else ""  # some rows also state the current owner
            lines.append(f"K{cid},{target},{expected},moved in the test")
    return lines


HEADER = "customer_code,new_owner_employee_no,expected_owner_employee_no,note"


@pytest_asyncio.fixture
async def bulk_api(dev_env: WorkflowEnvironment, db_url: str,  # noqa: F811
                   sessions: SessionFactory, org: SmallOrg) -> AsyncIterator[Api]:  # noqa: F811
    task_queue = f"bulk-{uuid.uuid4().hex[:8]}"
    from worker import build_worker  # the worker module imports workflow code: only here

    app = create_app(api_settings(
        db_url, task_queue=task_queue, bulk_starts_per_second=STARTS_PER_SECOND,
        bulk_groups_per_run=GROUPS_PER_RUN,
        temporal_address=dev_env.client.service_client.config.target_host))
    app.state.temporal.use(dev_env.client)
    worker = build_worker(dev_env.client, sessions, task_queue)
    async with worker:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://baton.test",
                                     timeout=120) as http:
            yield Api(http=http, org=org, sessions=sessions, app=app)


async def upload(api: Api, lines: list[str], *, dry_run: bool, key: str | None = None,
                 as_id: int | None = None) -> httpx.Response:
    headers = await api.auth(as_id or api.org.hr_staff)
    if key:
        headers["Idempotency-Key"] = key
    body = (HEADER + "\n" + "\n".join(lines) + "\n").encode("utf-8")
    return await api.http.post(
        "/api/v1/reorganisations", headers=headers,
        files={"file": ("reorg.csv", body, "text/csv")},
        data={"reason": "TERRITORY_REALIGNMENT", "note": "Q3 territories",
              "dry_run": "true" if dry_run else "false"})


async def test_reorganisation_of_2000_customers(bulk_api: Api, db_url: str) -> None:
    api = bulk_api
    org = api.org  # noqa: F811
    began = time.perf_counter()
    sellers = build_sales_floor(api.sessions, org)
    clean = reorganisation_csv(sellers)
    # planted bad rows: four clean rows spoiled, plus two extra rows at the end
    line = {i: i + 2 for i in range(len(clean))}  # list index -> file line (header is 1)
    bad = list(clean)
    bad[101] = f"K100101,{sellers[9][1]},{sellers[0][1]},"  # owned by S002, not S000
    bad[150] = "K100150,E200,,"  # HR's head is no salesperson
    bad[200] = f"K100200,{sellers[4][1]},,"  # to its own owner
    bad[250] = "K100250,E103,,"  # the receiver has left
    bad += ["NOPE-1,S001,,",  # no such customer
            f"K100000,{sellers[5][1]},,"]  # the first row already moves this customer
    expected_errors = {(line[101], "EXPECTED_OWNER_MISMATCH"), (line[150], "RECEIVER_NOT_SALES"),
                       (line[200], "SAME_EMPLOYEE"), (line[250], "RECEIVER_NOT_ACTIVE"),
                       (2002, "UNKNOWN_CUSTOMER"), (2003, "DUPLICATE_ROW")}
    checking = time.perf_counter()
    r = await upload(api, bad, dry_run=True)
    dry_run_s = time.perf_counter() - checking
    assert r.status_code == 200, r.text
    plan = r.json()
    codes = {(e["row"], e["code"]) for e in plan["row_errors"]}
    assert codes == expected_errors, codes
    totals = plan["totals"]
    assert (totals["rows"], totals["invalid_rows"], totals["customers"]) == (2002, 6, 1996)
    assert len(totals["owners"]) == SALESPEOPLE
    # customer j of each seller ordered 10,000 fen x (j + 1); 101, 150, 200 and 250 are left out
    left_out = 10_000 * ((1 + 1) + (0 + 1) + (0 + 1) + (0 + 1))
    assert totals["t12m_revenue_fen"] == SALESPEOPLE * 12_750_000 - left_out
    assert totals["projected_loss_fen"] == sum(o["projected_loss_fen"] for o in totals["owners"])
    with api.sessions() as s:  # the dry run wrote nothing
        assert s.exec(select(func.count()).select_from(Reorganisation)).one() == 0
        assert s.exec(select(func.count()).select_from(ReassignmentRequest)).one() == 0

    # starting the file with its bad rows is refused by row, and starts nothing
    r = await upload(api, bad, dry_run=False, key="reorg-bad")
    body = assert_problem(r, 422, "reorganisation-invalid")
    assert body["rows"] == sorted(n for n, _ in expected_errors)
    # a manager may not run a reorganisation at all
    r = await upload(api, clean, dry_run=True, as_id=org.manager_a)
    assert_problem(r, 403, "forbidden-role")

    started_at = time.perf_counter()
    r = await upload(api, clean, dry_run=False, key="reorg-1")
    assert r.status_code == 202, r.text
    rid = r.json()["id"]
    again = await upload(api, clean, dry_run=False, key="reorg-1")  # a retried upload
    assert again.status_code == 200 and again.json()["id"] == rid
    hr = await api.auth(org.hr_staff)
    seen: list[dict[str, Any]] = []
    deadline = time.perf_counter() + WAIT_S
    while True:
        r = await api.http.get(f"/api/v1/reorganisations/{rid}", headers=hr)
        assert r.status_code == 200, r.text
        out = r.json()
        seen.append(out["progress"] | {"source": out["progress_source"]})
        if out["status"] == "COMPLETED":
            break
        assert time.perf_counter() < deadline, seen[-1]
        await asyncio.sleep(0.5)
    execution_s = time.perf_counter() - started_at
    live = [p for p in seen if p["source"] == "workflow"]
    assert len(live) >= 3, seen  # progress was asked for while it ran
    for before, after in zip(seen, seen[1:], strict=False):
        for key in ("started_groups", "failed_groups", "started_rows", "failed_rows"):
            assert after[key] >= before[key], (key, before, after)
    assert live[0]["started_groups"] < 80  # seen part-way, not only at the end
    final = seen[-1]
    assert (final["started_groups"], final["failed_groups"]) == (80, 0)
    assert (final["started_rows"], final["failed_rows"]) == (2000, 0)
    assert max(p["runs"] for p in live) >= 2  # continue-as-new happened

    # every group's request reaches PENDING_APPROVAL (written by its own workflow)
    while True:
        with api.sessions() as s:
            stages = dict(s.exec(select(ReassignmentRequest.stage, func.count())
                                 .group_by(ReassignmentRequest.stage)).all())
        if stages.get(Stage.PENDING_APPROVAL) == 80:
            break
        assert time.perf_counter() < deadline, stages
        await asyncio.sleep(1)
    total_s = time.perf_counter() - began
    with api.sessions() as s:
        requests = s.exec(select(ReassignmentRequest)).all()
        assert sorted(len(r.customer_ids) for r in requests) == [25] * 80
        assert all(r.requester_id == org.hr_staff and r.reason == "TERRITORY_REALIGNMENT"
                   for r in requests)
        moved = {(r.from_employee_id, r.to_employee_id) for r in requests}
        assert moved == {(sellers[i][0], sellers[(i + k) % SALESPEOPLE][0])
                         for i in range(SALESPEOPLE) for k in (1, 2)}
        sample = requests[0]
    # a child is findable like any request: the same search attributes
    client = await api.app.state.temporal.get()
    child = await client.get_workflow_handle(sample.workflow_id or "").describe()
    assert child.typed_search_attributes.get(REQUEST_ID) == str(sample.id)
    assert child.typed_search_attributes.get(STAGE) == Stage.PENDING_APPROVAL.value
    assert await child.static_summary() == reassignment_summary(
        sample.id or 0, 25, sample.from_employee_id, sample.to_employee_id)
    backend = "postgres" if db_url.startswith("postgresql") else "sqlite"
    print(f"\n[{backend}] reorganisation of 2000 customers / 40 salespeople: dry run "
          f"{dry_run_s:.1f} s, execution to all groups started {execution_s:.1f} s,"
          f" total (with building the data) to 80 x PENDING_APPROVAL {total_s:.1f} s; "
          f"{len(live)} live progress reads")
