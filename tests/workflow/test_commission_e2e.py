"""A reassignment through the API on the time-skipping server, with orders posted through the
API before, during and after protection; A's and B's commission checked to the fen."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest_asyncio
from sqlmodel import func, select
from temporalio.testing import WorkflowEnvironment

from api.deps import get_temporal_client
from api.main import create_app
from domain.periods import period_of
from domain.stages import Stage
from models import CommissionLine, CommissionPlan, SignatureRecord
from temporal_client import register_search_attributes
from tests.api.conftest import api_settings
from tests.api.test_signing import latest_code
from tests.conftest import binary
from tests.factories import PASSWORD
from tests.payload_keys import TEST_DATA_CONVERTER
from tests.workflow.conftest import Harness, wait_stage, wait_until
from worker import build_worker

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


@pytest_asyncio.fixture
async def fresh_harness(sessions, org) -> AsyncIterator[Harness]:
    """Its own time-skipping server: request ids from this test's database start at 1, and
    must not meet workflow ids left by other tests on the shared server."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"),
        data_converter=TEST_DATA_CONVERTER)
    await register_search_attributes(env.client, "default")
    task_queue = f"e2e-{uuid.uuid4().hex[:6]}"
    try:
        async with build_worker(env.client, sessions, task_queue):
            yield Harness(env, env.client, sessions, org, task_queue)
    finally:
        await env.shutdown()


async def test_orders_before_during_after_protection_pay_a_and_b_to_the_fen(fresh_harness,
                                                                            db_url):
    h, org = fresh_harness, fresh_harness.org
    a, b, customer = org.sales_a1, org.sales_a2, org.customers_a1[0]
    with h.sessions() as s:
        s.add(CommissionPlan(employee_id=a, effective_from=EPOCH, base_rate_bp=500,
                             inherited_rate_bp=200))
        s.add(CommissionPlan(employee_id=b, effective_from=EPOCH, base_rate_bp=400,
                             inherited_rate_bp=300))
    app = create_app(api_settings(db_url, task_queue=h.task_queue))
    app.dependency_overrides[get_temporal_client] = lambda: h.client
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://baton.test") as http:

        async def auth(employee: int) -> dict[str, str]:
            r = await http.post("/api/v1/auth/login", json={
                "username": org.usernames[employee], "password": PASSWORD})
            return {"Authorization": f"Bearer {r.json()['access_token']}"}

        async def post_order(external_id: str, booked_at: datetime, amount: int) -> None:
            r = await http.post("/api/v1/orders", headers=await auth(org.hr_head), json={
                "external_id": external_id, "customer_id": customer, "amount_fen": amount,
                "currency": "CNY", "booked_at": booked_at.isoformat()})
            assert r.status_code in (200, 201), r.text

        now = await h.env.get_current_time()
        await post_order("E2E-BEFORE", now - timedelta(hours=1), 123_457)

        r = await http.post("/api/v1/reassignments", headers={
            **await auth(org.manager_a), "Idempotency-Key": str(uuid.uuid4())}, json={
            "from_employee_id": a, "to_employee_id": b, "customer_ids": [customer],
            "reason": "TERRITORY_REALIGNMENT"})
        assert r.status_code == 201, r.text
        handle = h.client.get_workflow_handle(r.json()["workflow_id"])
        state = await wait_stage(handle, Stage.PENDING_APPROVAL, level=1)
        for level in state.levels:
            await wait_stage(handle, Stage.PENDING_APPROVAL, level=level.level)
            r = await http.post(f"/api/v1/reassignments/{state.request_id}/approve",
                                headers=await auth(level.approver_id), json={})
            assert r.status_code == 200, r.text
        await wait_stage(handle, Stage.COMMUNICATION)
        # sign the current agreement version, after re-authenticating by one-time code
        document = (await wait_until(handle, lambda s: s.agreement_sha256 is not None)
                    ).agreement_sha256
        r = await http.post(f"/api/v1/reassignments/{state.request_id}/sign/otp",
                            headers=await auth(a), json={"document_sha256": document})
        assert r.status_code == 202, r.text
        r = await http.post(f"/api/v1/reassignments/{state.request_id}/sign",
                            headers=await auth(a), json={
                                "typed_name": "Li Sales", "document_sha256": document,
                                "method": "otp", "otp_code": latest_code(h, state.request_id)})
        assert r.status_code == 200, r.text
        await h.env.sleep(timedelta(minutes=11))
        state = await wait_stage(handle, Stage.PROTECTION)
        effective_at, protection_end = state.effective_at, state.protection_end
        # signed by one-time code, and the organisation's seal verifies as intact (issue 5)
        r = await http.get(f"/api/v1/reassignments/{state.request_id}/agreement/verify",
                           headers=await auth(org.hr_head))
        assert r.status_code == 200, r.text
        assert r.json()["intact"] is True and r.json()["hash_matches"] is True
        with h.sessions() as s:
            signature = s.exec(select(SignatureRecord).where(
                SignatureRecord.request_id == state.request_id)).one()
        assert signature.method == "otp" and signature.document_hash == state.agreement_sha256

        await post_order("E2E-AT-EFFECTIVE", effective_at, 10_000)  # start is inclusive
        await post_order("E2E-DURING", effective_at + timedelta(minutes=1), 200_001)
        await h.env.sleep(protection_end - await h.env.get_current_time() + timedelta(seconds=1))
        await wait_stage(handle, Stage.COMPLETED)
        await post_order("E2E-AT-END", protection_end, 20_000)  # end is exclusive
        await post_order("E2E-AFTER", protection_end + timedelta(minutes=1), 99_999)

    def earned(employee: int) -> dict[str, int]:
        with h.sessions() as s:
            rows = s.exec(select(CommissionLine.rule, func.sum(CommissionLine.amount_fen))
                          .where(CommissionLine.employee_id == employee,
                                 CommissionLine.customer_id == customer,
                                 CommissionLine.origin_period >= period_of(now, "Asia/Shanghai"))
                          .group_by(CommissionLine.rule)).all()
        return {rule: int(total) for rule, total in rows}

    # A: 123457 x 5% = 6172.85 -> 6173 before; in protection 50% of 5%:
    #    10000 -> 250, 200001 -> 5000.025 -> 5000
    assert earned(a) == {"R1_OWNER_BASE": 6_173, "R2_PROTECTION_ORIGINAL": 250 + 5_000}
    # B: in protection 50% of the 3% inherited rate: 10000 -> 150, 200001 -> 3000.015 -> 3000;
    #    after: 20000 x 3% = 600, 99999 x 3% = 2999.97 -> 3000
    assert earned(b) == {"R2_PROTECTION_INHERITED": 150 + 3_000,
                         "R3_OWNER_INHERITED": 600 + 3_000}
