"""Drive many reassignment lifecycles concurrently through the HTTP API, across faults.

Each lifecycle is a small loop over the request's detail (read from the database, plus the
workflow's live state when Temporal answers): approve the open level as its approver (every
fifth request is rejected at level 2), sign with a one-time code when the agreement waits,
until the request is COMPLETED or REJECTED. Every answer is recorded. While something is
down the API must answer 503 problem+json with Retry-After (then the client waits and tries
again); any other 5xx, or a 503 without those, is recorded as a failure of the API.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from models import NotificationRecord
from models.db import make_engine
from tests.factories import PASSWORD, SmallOrg

PROBLEM_JSON = "application/problem+json"
REJECT_EVERY = 5  # request i with i % REJECT_EVERY == REJECT_EVERY - 1 is rejected
REJECT_AT_LEVEL = 2
SIGNER_TYPED_NAME = "Li Sales"  # sales_a1's name in tests/factories.py
PLANS = {"a1": (300, 150), "a2": (250, 200)}  # (base_rate_bp, inherited_rate_bp)


def expected_stage(index: int) -> str:
    return "REJECTED" if index % REJECT_EVERY == REJECT_EVERY - 1 else "COMPLETED"


@dataclass
class Answers:
    """What the API answered, by route and status; and every answer that breaks the rules."""

    counts: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    broken: list[str] = field(default_factory=list)
    unavailable_by_kind: Counter[str] = field(default_factory=Counter)  # 503s by slug
    done_at: list[tuple[float, str]] = field(default_factory=list)  # (monotonic, action) 2xx

    def record(self, what: str, r: httpx.Response) -> None:
        if r.is_success and what in ("approve", "reject", "sign", "submit"):
            self.done_at.append((time.monotonic(), what))
        slug = ""
        if r.headers.get("content-type", "").startswith(PROBLEM_JSON):
            slug = str(r.json().get("type", "")).rsplit("/", 1)[-1]
        self.counts[(what, r.status_code, slug)] += 1
        if r.status_code == 503:
            self.unavailable_by_kind[slug] += 1
            if not slug or "Retry-After" not in r.headers:
                self.broken.append(f"{what}: 503 without problem+json or Retry-After: "
                                   f"{r.headers} {r.text[:300]}")
        elif r.status_code >= 500 and not (r.status_code == 504 and slug == "workflow-timeout"):
            self.broken.append(f"{what}: {r.status_code} {r.text[:500]}")


@dataclass
class Api:
    """One HTTP client for all lifecycles; one login per person, again after a 401."""

    http: httpx.AsyncClient
    org: SmallOrg
    answers: Answers
    tokens: dict[int, str] = field(default_factory=dict)
    # one login at a time per person: N lifecycles needing the same approver must not each
    # log in (a burst of password hashes after an outage starves the API's processes)
    login_locks: dict[int, asyncio.Lock] = field(default_factory=dict)

    async def _send(self, what: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send until the answer is not 'unavailable, retry later' (503, or the workflow
        timing out while no worker holds it)."""
        while True:
            try:
                r = await self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:  # the API itself must stay up
                self.answers.broken.append(f"{what}: {type(exc).__name__}: {exc}")
                await asyncio.sleep(1)
                continue
            self.answers.record(what, r)
            if r.status_code == 503 or r.status_code == 504:
                await asyncio.sleep(min(float(r.headers.get("Retry-After", 1)), 2.0))
                continue
            return r

    async def token(self, employee_id: int) -> str:
        lock = self.login_locks.setdefault(employee_id, asyncio.Lock())
        async with lock:
            return self.tokens.get(employee_id) or await self.login(employee_id)

    async def login(self, employee_id: int) -> str:
        r = await self._send("login", "POST", "/api/v1/auth/login", json={
            "username": self.org.usernames[employee_id], "password": PASSWORD})
        assert r.status_code == 200, r.text
        self.tokens[employee_id] = str(r.json()["access_token"])
        return self.tokens[employee_id]

    async def call(self, what: str, method: str, path: str, as_id: int,
                   **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        for _ in range(3):
            token = await self.token(as_id)
            r = await self._send(what, method, path, headers={
                **headers, "Authorization": f"Bearer {token}"}, **kwargs)
            if r.status_code != 401:
                return r
            self.tokens.pop(as_id, None)
        return r


def orders(customers: list[int], phase: str) -> list[dict[str, Any]]:
    booked_at = datetime.now(UTC).isoformat()
    return [{"external_id": f"REL-{phase}-{i:04d}", "customer_id": customer,
             "amount_fen": (i % 7 + 1) * 10_000, "currency": "CNY", "booked_at": booked_at}
            for i, customer in enumerate(customers)]


async def post_orders(api: Api, hr: int, batch: list[dict[str, Any]]) -> None:
    """Post in chunks; a chunk sent again after a 503 may find some already stored."""
    for start in range(0, len(batch), 50):
        chunk = batch[start:start + 50]
        r = await api.call("orders", "POST", "/api/v1/orders", hr, json={"orders": chunk})
        assert r.status_code in (200, 201), r.text
        body = r.json()
        assert body["created"] + body["duplicates"] == len(chunk), body


async def post_plans(api: Api) -> None:
    org = api.org
    for employee, (base, inherited) in ((org.sales_a1, PLANS["a1"]),
                                        (org.sales_a2, PLANS["a2"])):
        r = await api.call("plans", "POST", "/api/v1/commission-plans", org.hr_head, json={
            "employee_id": employee, "effective_from": "2025-01-01T00:00:00+00:00",
            "base_rate_bp": base, "inherited_rate_bp": inherited})
        assert r.status_code == 201, r.text


def newest_signing_code(database_url: str, rid: int) -> str | None:
    """The one-time code as delivered: the newest SIGNING_CODE notice of the request."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as s:
            notice = s.exec(select(NotificationRecord).where(
                NotificationRecord.request_id == rid,
                NotificationRecord.kind == "SIGNING_CODE")
                .order_by(col(NotificationRecord.id).desc())).first()
    except OperationalError:
        return None  # the database is down: ask for a new code later
    finally:
        engine.dispose()
    if notice is None:
        return None
    codes = re.findall(r"\b\d{6}\b", notice.message)
    return str(codes[0]) if len(codes) == 1 else None


@dataclass
class Lifecycle:
    index: int
    customer: int
    request_id: int | None = None
    workflow_id: str | None = None
    stage: str = ""
    finished_after_s: float | None = None
    actions: Counter[str] = field(default_factory=Counter)
    # set by a fault that needs a request waiting for an approval: the driver leaves open
    # levels alone until it is cleared (the drivers otherwise approve each level at once)
    hold_approvals: bool = False


async def drive(api: Api, lifecycle: Lifecycle, *, database_url: str, started: float,
                poll_s: float) -> Lifecycle:
    org = api.org
    want = expected_stage(lifecycle.index)
    r = await api.call("submit", "POST", "/api/v1/reassignments", org.manager_a, json={
        "from_employee_id": org.sales_a1, "to_employee_id": org.sales_a2,
        "customer_ids": [lifecycle.customer], "reason": "WORKLOAD_BALANCING"},
        headers={"Idempotency-Key": f"reliability-{lifecycle.index}"})
    assert r.status_code in (200, 201), r.text
    rid = lifecycle.request_id = int(r.json()["id"])
    lifecycle.workflow_id = str(r.json()["workflow_id"])
    base = f"/api/v1/reassignments/{rid}"
    while True:
        r = await api.call("detail", "GET", base, org.hr_head)
        assert r.status_code == 200, r.text
        detail = r.json()
        lifecycle.stage = detail["stage"]
        if lifecycle.stage in ("COMPLETED", "REJECTED", "WITHDRAWN", "CANCELLED", "DECLINED",
                               "EXPIRED_NO_CONSENT"):
            assert lifecycle.stage == want, (rid, lifecycle.stage, want)
            lifecycle.finished_after_s = time.monotonic() - started
            return lifecycle
        live = detail.get("live")
        if (live and live["stage"] == "PENDING_APPROVAL" and live.get("current_level")
                and not lifecycle.hold_approvals):
            level = live["levels"][live["current_level"] - 1]
            if level["status"] == "PENDING":
                n, approver = live["current_level"], level["approver_id"]
                if want == "REJECTED" and n == REJECT_AT_LEVEL:
                    r = await api.call("reject", "POST", f"{base}/reject", approver,
                                       json={"reason": "not now"})
                else:
                    r = await api.call("approve", "POST", f"{base}/approve", approver,
                                       json={"comment": f"level {n}"})
                # 409: the workflow already has it (an earlier try that timed out)
                assert r.status_code in (200, 409), r.text
                lifecycle.actions[f"{r.status_code}"] += 1
                continue
        if live and live["stage"] == "AWAITING_SIGNATURE" and live.get("agreement_sha256"):
            document = live["agreement_sha256"]
            r = await api.call("sign/otp", "POST", f"{base}/sign/otp", org.sales_a1,
                               json={"document_sha256": document})
            code = newest_signing_code(database_url, rid) if r.status_code == 202 else None
            if code is not None:
                r = await api.call("sign", "POST", f"{base}/sign", org.sales_a1, json={
                    "typed_name": SIGNER_TYPED_NAME, "document_sha256": document,
                    "method": "otp", "otp_code": code})
                # 409: already signed by an earlier try; 4xx on the code: ask for a new one
                assert r.status_code < 500, r.text
                lifecycle.actions[f"sign {r.status_code}"] += 1
                if r.status_code == 200:
                    continue
        await asyncio.sleep(poll_s)


async def run_lifecycles(api: Api, lifecycles: list[Lifecycle], *, database_url: str,
                         started: float) -> list[Lifecycle]:
    # poll less often when there are many: the detail asks each workflow for its state
    poll_s = max(1.0, len(lifecycles) / 25)
    return list(await asyncio.gather(*(
        drive(api, lc, database_url=database_url, started=started, poll_s=poll_s)
        for lc in lifecycles)))
