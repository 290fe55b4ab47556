"""The whole lifecycle through the HTTP API, against the real Temporal dev server and a real
worker with real activities (acceptance test).

The policy's timers are seconds, so the test runs in real time: approvals, early signature,
a 3 s communication window, ownership transfer, a 3 s protection period, COMPLETED.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from domain.policy import ApprovalLevelRule
from domain.stages import Role
from models import Assignment, AssignmentSource, ReassignmentRequest, RequestDocument
from models.audit import verify_chain
from models.db import SessionFactory
from tests.api.conftest import Api, api_settings, assert_problem
from tests.api.test_signing import latest_code
from tests.conftest import binary
from tests.factories import SmallOrg, build_small_org, fast_policy_rules
from tests.payload_keys import TEST_DATA_CONVERTER
from workflows.search_attributes import ALL_KEYS

pytestmark = pytest.mark.devserver

WAIT_S = 60.0  # generous: CI machines are slow, the timers themselves are 3 s


# One server per test: workflow ids come from database ids, and every test's database
# starts at id 1, so tests sharing a server would collide on "reassignment-1".
@pytest_asyncio.fixture
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        search_attributes=ALL_KEYS,
        data_converter=TEST_DATA_CONVERTER,
        ui=False,
    )
    try:
        yield env
    finally:
        await env.shutdown()


def seconds_policy() -> Any:
    slow = ApprovalLevelRule(role=Role.MANAGER, sla=timedelta(hours=2),
                             reminder_after=timedelta(hours=1))
    return fast_policy_rules(
        communication_window=timedelta(seconds=3),
        signature_deadline=timedelta(minutes=5),
        signature_reminders_before=[],
        protection_period=timedelta(seconds=3),
        approval_levels=[slow, slow.model_copy(update={"role": Role.DIRECTOR}),
                         slow.model_copy(update={"role": Role.HR})],
    )


@pytest.fixture
def org(sessions: SessionFactory) -> SmallOrg:
    """The small org, with a policy whose window and protection last seconds."""
    with sessions() as session:
        return build_small_org(session, rules=seconds_policy())


@dataclass
class Live(Api):
    async def detail(self, rid: int, as_id: int) -> dict[str, Any]:
        r = await self.http.get(f"/api/v1/reassignments/{rid}", headers=await self.auth(as_id))
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def wait(self, rid: int, as_id: int, what: str,
                   predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while True:
            detail = await self.detail(rid, as_id)
            if predicate(detail):
                return detail
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {what}; last detail: {detail}")
            await asyncio.sleep(0.2)

    async def timed_detail(self, rid: int, as_id: int, **params: Any
                           ) -> tuple[float, dict[str, Any]]:
        started = asyncio.get_running_loop().time()
        r = await self.http.get(f"/api/v1/reassignments/{rid}", params=params,
                                headers=await self.auth(as_id))
        assert r.status_code == 200, r.text
        return asyncio.get_running_loop().time() - started, dict(r.json())

    async def wait_for_agreement(self, rid: int, as_id: int) -> dict[str, Any]:
        """Long-polls (30 s each) until the workflow names an agreement; two polls at most,
        since the render takes seconds, not a minute."""
        for _ in range(2):
            _, detail = await self.timed_detail(rid, as_id, wait_for="agreement",
                                                wait_seconds=30)
            if detail["live"] and detail["live"].get("agreement_sha256"):
                return detail
        raise AssertionError(f"no agreement after two long-polls; last detail: {detail}")

    async def act(self, rid: int, action: str, as_id: int, body: dict[str, Any]
                  ) -> httpx.Response:
        return await self.http.post(f"/api/v1/reassignments/{rid}/{action}", json=body,
                                    headers=await self.auth(as_id))


def level_open(n: int) -> Callable[[dict[str, Any]], bool]:
    def check(d: dict[str, Any]) -> bool:
        live = d["live"]
        return bool(live) and live["stage"] == "PENDING_APPROVAL" and \
            live["current_level"] == n and live["levels"][n - 1]["status"] == "PENDING"
    return check


def live_stage(stage: str) -> Callable[[dict[str, Any]], bool]:
    return lambda d: bool(d["live"]) and d["live"]["stage"] == stage


@pytest_asyncio.fixture
async def live(dev_env: WorkflowEnvironment, db_url: str, sessions: SessionFactory,
               org: SmallOrg) -> AsyncIterator[Live]:
    task_queue = f"api-{uuid.uuid4().hex[:8]}"
    from worker import build_worker  # the worker module imports workflow code: only here

    app = create_app(api_settings(db_url, task_queue=task_queue,
                                  temporal_address=dev_env.client.service_client.config
                                  .target_host))
    app.state.temporal.use(dev_env.client)  # the real get_temporal_client path, connected
    worker = build_worker(dev_env.client, sessions, task_queue)
    async with worker:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://baton.test") as http:
            yield Live(http=http, org=org, sessions=sessions, app=app)


async def test_full_lifecycle_through_the_api(live: Live) -> None:
    org = live.org
    moved = org.customers_a1[:2]
    body = {"from_employee_id": org.sales_a1, "to_employee_id": org.sales_a2,
            "customer_ids": moved, "reason": "WORKLOAD_BALANCING"}
    headers = {**await live.auth(org.manager_a), "Idempotency-Key": "lifecycle-1"}
    r = await live.http.post("/api/v1/reassignments", json=body, headers=headers)
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    # a repeat while the workflow runs: same request, and the real server's
    # "already started" is taken as success
    again = await live.http.post("/api/v1/reassignments", json=body, headers=headers)
    assert again.status_code == 200 and again.json()["id"] == rid, again.text

    detail = await live.wait(rid, org.manager_a, "level 1 to open", level_open(1))
    approvers = [lv["approver_id"] for lv in detail["live"]["levels"]]
    # no agreement while approvals are pending: the long-poll answers when its wait is over
    elapsed, waited = await live.timed_detail(rid, org.sales_a1, wait_for="agreement",
                                              wait_seconds=1)
    assert elapsed >= 1.0 and waited["live"]["agreement_sha256"] is None
    for bad in ({"wait_for": "agreement", "wait_seconds": 31},
                {"wait_for": "agreement", "seen_agreement_sha256": "not-a-hash"},
                {"wait_for": "signature"}):
        r = await live.http.get(f"/api/v1/reassignments/{rid}", params=bad,
                                headers=await live.auth(org.sales_a1))
        assert_problem(r, 422)
    # the requester (manager_a, A's own manager) is skipped: director, CEO, then HR
    assert approvers == [org.director, org.ceo, org.hr_head], detail["live"]["levels"]

    # a salesperson holds no approver role at all: the permission table refuses
    r = await live.act(rid, "approve", org.sales_b1, {"comment": "me too"})
    assert_problem(r, 403, "forbidden-role")
    # an approver who sees the request but is not this level's: the workflow refuses
    r = await live.act(rid, "approve", org.hr_staff, {"comment": "me too"})
    assert_problem(r, 403, "action-wrong_actor")
    # the requester may not approve their own request (four-eyes)
    r = await live.act(rid, "approve", org.manager_a, {})
    assert_problem(r, 409)

    for number, approver in enumerate(approvers, start=1):
        await live.wait(rid, org.hr_head, f"level {number} to open", level_open(number))
        r = await live.act(rid, "approve", approver, {"comment": f"ok at level {number}"})
        assert r.status_code == 200, r.text
        assert r.json()["levels"][number - 1]["status"] == "APPROVED"
        if number == 1:
            # approving twice: 409 (already done, or four-eyes once level 2 is open)
            r = await live.act(rid, "approve", approver, {})
            assert_problem(r, 409)

    # the signer long-polls for the agreement instead of asking again and again
    detail = await live.wait_for_agreement(rid, org.sales_a1)
    document = detail["live"]["agreement_sha256"]
    with live.sessions() as s:
        newest = s.exec(select(RequestDocument.sha256).where(
            RequestDocument.request_id == rid, RequestDocument.kind == "AGREEMENT")
            .order_by(col(RequestDocument.version).desc())).first()
    assert document == newest
    # already seen: nothing newer comes, so it answers when the wait is over, with the same one
    elapsed, again = await live.timed_detail(rid, org.sales_a1, wait_for="agreement",
                                             seen_agreement_sha256=document, wait_seconds=1)
    assert elapsed >= 1.0 and again["live"]["agreement_sha256"] == document
    # re-authenticate by one-time code, bound to this agreement version, then sign
    r = await live.act(rid, "sign/otp", org.sales_a1, {"document_sha256": document})
    assert r.status_code == 202, r.text
    code = latest_code(live, rid)
    sign = {"typed_name": "Li Sales", "document_sha256": document, "method": "otp",
            "otp_code": code}
    r = await live.act(rid, "sign", org.sales_a1, sign)
    assert r.status_code == 200, r.text
    assert r.json()["signed_at"] is not None
    r = await live.act(rid, "sign", org.sales_a1, sign)  # the code is spent
    assert_problem(r, 403, "otp-used")

    final = await live.wait(rid, org.hr_head, "COMPLETED",
                            lambda d: d["stage"] == "COMPLETED")
    assert final["live"] is None or final["live"]["stage"] == "COMPLETED"
    assert [s["status"] for s in final["approval_steps"]] == ["APPROVED"] * 3
    assert final["signature"]["decision"] == "SIGNED"
    assert final["signature"]["typed_name"] == "Li Sales"

    # ownership moved in the assignment history, closed at effective_at, source REASSIGNMENT
    with live.sessions() as s:
        request = s.get(ReassignmentRequest, rid)
        assert request is not None and request.effective_at is not None
        assert request.closed_at is not None
        effective_at = request.effective_at
        rows = s.exec(select(Assignment).where(col(Assignment.customer_id).in_(moved))).all()
        open_rows = [a for a in rows if a.end_at is None]
        closed_rows = [a for a in rows if a.end_at is not None]
        assert sorted(a.customer_id for a in open_rows) == sorted(moved)
        assert all(a.employee_id == org.sales_a2 and a.source == AssignmentSource.REASSIGNMENT
                   and a.request_id == rid and a.start_at == effective_at for a in open_rows)
        assert sorted(a.customer_id for a in closed_rows) == sorted(moved)
        assert all(a.employee_id == org.sales_a1 and a.end_at == effective_at
                   for a in closed_rows)
        untouched = s.exec(select(Assignment).where(
            col(Assignment.customer_id).in_(org.customers_a1[2:]))).all()
        assert all(a.employee_id == org.sales_a1 and a.end_at is None for a in untouched)
        assert verify_chain(s)[0]

    r = await live.http.get(f"/api/v1/reassignments/{rid}/audit",
                            headers=await live.auth(org.hr_head))
    assert r.status_code == 200, r.text
    events = r.json()["items"]
    indexes = [e["chain_index"] for e in events]
    assert indexes == sorted(indexes)
    kinds = [e["event_type"] for e in events]
    for expected in ("REQUEST_SUBMITTED", "APPROVAL_STARTED", "APPROVED", "COMMUNICATION_STARTED",
                     "SIGNED", "OWNERSHIP_TRANSFERRED", "PROTECTION_STARTED",
                     "PROTECTION_ENDED"):
        assert expected in kinds, kinds
    assert kinds[0] == "REQUEST_SUBMITTED" and kinds.count("APPROVED") == 3
    assert events[-1]["to_stage"] == "COMPLETED"

    # closed: actions are refused with 409
    r = await live.act(rid, "withdraw", org.manager_a, {"reason": "too late"})
    assert_problem(r, 409)


async def test_reject_and_withdraw_through_the_api(live: Live) -> None:
    org = live.org

    async def submit(customers: list[int], key: str) -> int:
        r = await live.http.post(
            "/api/v1/reassignments",
            json={"from_employee_id": org.sales_a1, "to_employee_id": org.sales_a2,
                  "customer_ids": customers, "reason": "PERFORMANCE"},
            headers={**await live.auth(org.manager_a), "Idempotency-Key": key})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    rejected = await submit(org.customers_a1[:1], "rej")
    await live.wait(rejected, org.director, "level 1", level_open(1))
    r = await live.act(rejected, "reject", org.director, {"reason": "not now"})
    assert r.status_code == 200, r.text
    assert r.json()["stage"] == "REJECTED"
    await live.wait(rejected, org.director, "REJECTED in the DB",
                    lambda d: d["stage"] == "REJECTED")
    # no agreement can come any more: the long-poll answers at once, not after 30 s
    elapsed, ended = await live.timed_detail(rejected, org.sales_a1, wait_for="agreement",
                                             wait_seconds=30)
    assert elapsed < 10 and ended["stage"] == "REJECTED"

    withdrawn = await submit(org.customers_a1[1:2], "wd")
    await live.wait(withdrawn, org.manager_a, "level 1", level_open(1))
    r = await live.act(withdrawn, "withdraw", org.sales_a1, {"reason": "not mine"})
    assert_problem(r, 403, "forbidden-role")
    r = await live.act(withdrawn, "withdraw", org.director, {"reason": "not mine"})
    assert_problem(r, 403, "action-wrong_actor")
    r = await live.act(withdrawn, "withdraw", org.manager_a, {"reason": "changed my mind"})
    assert r.status_code == 200, r.text
    assert r.json()["stage"] == "WITHDRAWN"
    final = await live.wait(withdrawn, org.manager_a, "WITHDRAWN in the DB",
                            lambda d: d["stage"] == "WITHDRAWN")
    assert final["closed_at"] is not None
    with live.sessions() as s:  # nothing moved for either request
        rows = s.exec(select(Assignment).where(
            col(Assignment.customer_id).in_(org.customers_a1[:2]))).all()
        assert all(a.employee_id == org.sales_a1 and a.end_at is None for a in rows)
