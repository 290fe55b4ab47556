"""Locust users for bench/api_load.py (run by it; not on its own).

Reads the plan that bench.api_load wrote (BENCH_API_PLAN: tokens by persona and the ids to ask
for) and records every response's time and outcome, by endpoint name, to BENCH_API_SAMPLES
(JSON) when locust quits, so that the benchmark computes exact percentiles per endpoint group
instead of reading locust's rounded ones. Endpoint names start with their group:
"baseline:", "detail:", "list:", "inbox:". BENCH_API_THINK ("MIN,MAX" seconds) makes each
client wait that long between requests, like a person reading a page, and first wait a random
part of MAX, so the clients arrive spread out; unset, no think time.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, between, constant, events, task

PLAN: dict[str, Any] = json.loads(Path(os.environ["BENCH_API_PLAN"]).read_text())
SAMPLES: dict[str, list[float]] = {}
ERRORS: dict[str, list[str]] = {}
THINK = os.environ.get("BENCH_API_THINK", "")


@events.request.add_listener
def _record(name: str, response_time: float, exception: BaseException | None, **_: Any) -> None:
    SAMPLES.setdefault(name, []).append(response_time)
    if exception is not None:
        ERRORS.setdefault(name, []).append(str(exception)[:200])


@events.quitting.add_listener
def _dump(**_: Any) -> None:
    with open(os.environ["BENCH_API_SAMPLES"], "w") as out:
        json.dump({"samples": SAMPLES, "errors": ERRORS}, out)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class BatonUser(FastHttpUser):
    """One client. Without think time 100 of them keep 100 requests in flight (saturation);
    with it each waits MIN..MAX seconds after every answer."""

    wait_time = (between(*(float(v) for v in THINK.split(",", 1))) if THINK else constant(0))

    def on_start(self) -> None:
        # With think time, people arrive spread over one think interval, as they would: without
        # this, all clients send their first request in the same instant (the spawn rate is
        # 100/s), and that one burst of 100 requests made the whole run's p99.
        if THINK:
            gevent.sleep(random.uniform(0, float(THINK.split(",", 1)[1])))

    def _get(self, name: str, path: str, token: str | None, **params: Any) -> None:
        headers = _auth(token) if token else {}
        with self.client.get(path, params=params or None, headers=headers, name=name,
                             catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:160]}")

    def _persona(self, kind: str) -> dict[str, Any]:
        return dict(random.choice(PLAN["personas"][kind]))

    # --- baseline: touches nothing --------------------------------------------------------

    @task(4)
    def healthz(self) -> None:
        self._get("baseline: /healthz", "/healthz", None)

    # --- details --------------------------------------------------------------------------

    @task(3)
    def request_detail(self) -> None:
        hr = self._persona("hr")
        self._get("detail: request", f"/api/v1/reassignments/{random.choice(PLAN['request_ids'])}",
                  hr["token"])

    @task(3)
    def statement_detail(self) -> None:
        hr = self._persona("hr")
        employee, period = random.choice(PLAN["statements"])
        self._get("detail: statement", f"/api/v1/statements/{employee}/{period}", hr["token"])

    @task(2)
    def employee_detail(self) -> None:
        sales = self._persona("sales")
        self._get("detail: employee (me)", "/api/v1/me", sales["token"])

    @task(2)
    def customer_by_code(self) -> None:
        sales = self._persona("sales")
        self._get("detail: customer (own, by code)", "/api/v1/customers", sales["token"],
                  q=random.choice(sales["customer_codes"]), limit=1)

    # --- filtered, paginated lists --------------------------------------------------------

    @task(3)
    def customers_by_owner(self) -> None:
        manager = self._persona("manager")
        self._get("list: customers by owner", "/api/v1/customers", manager["token"],
                  owner_employee_id=random.choice(manager["team"]), limit=50,
                  offset=random.choice((0, 0, 50, 100)))

    @task(2)
    def customers_search(self) -> None:
        hr = self._persona("hr")
        self._get("list: customers search", "/api/v1/customers", hr["token"],
                  q=f"Customer {random.randint(1, 999)}", limit=50)

    @task(3)
    def requests_by_stage(self) -> None:
        who = self._persona(random.choice(("hr", "manager")))
        self._get("list: requests by stage", "/api/v1/reassignments", who["token"],
                  stage=random.choice(PLAN["stages"]), limit=50,
                  offset=random.choice((0, 0, 50)))

    @task(2)
    def statements_by_period(self) -> None:
        hr = self._persona("hr")
        self._get("list: statements by period", "/api/v1/statements", hr["token"],
                  period=random.choice(PLAN["periods"]), limit=50,
                  offset=random.choice((0, 50, 100)))

    @task(2)
    def employees_search(self) -> None:
        hr = self._persona("hr")
        self._get("list: employees search", "/api/v1/employees", hr["token"],
                  q=random.choice(("Sales 1", "Sales 2", "Manager", "S0001")), limit=50)

    @task(2)
    def customers_page(self) -> None:
        # the web list: each row's trailing-12-month revenue comes from customer_order
        # (orders by customer and date range)
        sales = self._persona("sales")
        self._get("list: customers page with revenue", "/app/customers", sales["token"])

    # --- the approval inbox ---------------------------------------------------------------

    @task(3)
    def approvals_inbox(self) -> None:
        approver = self._persona("approver")
        self._get("inbox: approvals page", "/app/approvals", approver["token"])

    @task(2)
    def pending_requests(self) -> None:
        approver = self._persona("approver")
        self._get("inbox: pending requests API", "/api/v1/reassignments", approver["token"],
                  stage="PENDING_APPROVAL", limit=50)
