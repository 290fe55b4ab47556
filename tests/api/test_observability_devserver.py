"""Metrics after a real lifecycle: the dev server, a real worker whose Temporal runtime serves
Prometheus metrics (as worker.py sets it up), and the API in process.

The worker's endpoint must show the SDK's temporal_* metrics and Baton's baton_* counters,
and the counters must equal what the database recorded (each event once). The API's /metrics
must show the routes the lifecycle used, by template, with no raw id.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from models import AuditEvent, SettlementRun
from models.db import SessionFactory
from temporal_client import worker_runtime
from tests.api.conftest import api_settings
from tests.api.test_lifecycle_devserver import Live, level_open, seconds_policy
from tests.api.test_signing import latest_code
from tests.conftest import binary
from tests.factories import SmallOrg, build_small_org
from tests.payload_keys import TEST_DATA_CONVERTER
from workflows.search_attributes import ALL_KEYS

pytestmark = pytest.mark.devserver

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse(text: str) -> Samples:
    """{(sample name, labels): value} from the Prometheus text format."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


@pytest.fixture
def org(sessions: SessionFactory) -> SmallOrg:
    with sessions() as session:
        return build_small_org(session, rules=seconds_policy())


@pytest_asyncio.fixture
async def stack(db_url: str, sessions: SessionFactory, org: SmallOrg
                ) -> AsyncIterator[tuple[Live, str, WorkflowEnvironment]]:
    metrics_address = f"127.0.0.1:{free_port()}"
    task_queue = f"obs-{uuid.uuid4().hex[:8]}"
    settings = api_settings(db_url, task_queue=task_queue,
                            worker_metrics_address=metrics_address)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"), search_attributes=ALL_KEYS,
        data_converter=TEST_DATA_CONVERTER, ui=False,
        runtime=worker_runtime(settings))  # the worker's runtime, as worker.run() makes it
    from worker import build_worker  # imports workflow code: only here

    try:
        app = create_app(settings.model_copy(update={
            "temporal_address": env.client.service_client.config.target_host}))
        app.state.temporal.use(env.client)
        async with build_worker(env.client, sessions, task_queue):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport,
                                         base_url="http://baton.test") as http:
                yield (Live(http=http, org=org, sessions=sessions, app=app),
                       f"http://{metrics_address}/metrics", env)
    finally:
        await env.shutdown()


async def run_lifecycle(live: Live) -> int:
    org = live.org
    r = await live.http.post("/api/v1/reassignments", headers={
        **await live.auth(org.manager_a), "Idempotency-Key": "obs-1"}, json={
        "from_employee_id": org.sales_a1, "to_employee_id": org.sales_a2,
        "customer_ids": org.customers_a1[:2], "reason": "WORKLOAD_BALANCING"})
    assert r.status_code == 201, r.text
    rid = int(r.json()["id"])
    detail = await live.wait(rid, org.manager_a, "level 1", level_open(1))
    approvers = [lv["approver_id"] for lv in detail["live"]["levels"]]
    for number, approver in enumerate(approvers, start=1):
        await live.wait(rid, org.hr_head, f"level {number}", level_open(number))
        r = await live.act(rid, "approve", approver, {"comment": "ok"})
        assert r.status_code == 200, r.text
    detail = await live.wait(rid, org.sales_a1, "the agreement",
                             lambda d: bool(d["live"] and d["live"].get("agreement_sha256")))
    document = detail["live"]["agreement_sha256"]
    r = await live.act(rid, "sign/otp", org.sales_a1, {"document_sha256": document})
    assert r.status_code == 202, r.text
    r = await live.act(rid, "sign", org.sales_a1, {
        "typed_name": "Li Sales", "document_sha256": document, "method": "otp",
        "otp_code": latest_code(live, rid)})
    assert r.status_code == 200, r.text
    await live.wait(rid, org.hr_head, "COMPLETED", lambda d: d["stage"] == "COMPLETED")
    return rid


async def test_worker_and_api_metrics_after_a_lifecycle(
        stack: tuple[Live, str, WorkflowEnvironment]) -> None:
    live, worker_metrics_url, env = stack
    r = await live.http.get("/readyz")  # both dependencies up
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "checks": {"database": "ok", "temporal": "ok"}}

    rid = await run_lifecycle(live)
    # and a settlement that finalises the past months of the org's orders
    r = await live.http.post("/api/v1/settlements", json={"skip_grace": True},
                             headers=await live.auth(live.org.hr_head))
    assert r.status_code == 202, r.text
    await env.client.get_workflow_handle(r.json()["workflow_id"]).result()

    with live.sessions() as s:
        workflow_id = f"reassignment-{rid}"
        stages_recorded = Counter(s.exec(select(AuditEvent.to_stage).where(
            AuditEvent.workflow_id == workflow_id,
            col(AuditEvent.transition_seq) > 0,  # 0: the API's submission event
            AuditEvent.event_type != "APPROVAL_ESCALATED")).all())
        months_finalised = len(s.exec(select(SettlementRun.id).where(
            SettlementRun.trigger == "manual",
            col(SettlementRun.finalized_period).is_not(None))).all())
    assert months_finalised >= 1  # the org's orders lie in past months

    text = await asyncio.to_thread(scrape, worker_metrics_url)
    worker = parse(text)
    # the SDK's own metrics (the parser names counter samples *_total; the SDK's text has
    # `temporal_workflow_completed{...}` without the suffix)
    assert total(worker, "temporal_workflow_completed_total",
                 workflow_type="ReassignmentWorkflow") >= 1
    assert total(worker, "temporal_activity_execution_latency_count",
                 activity_type="record_transition") >= sum(stages_recorded.values())
    assert total(worker, "temporal_workflow_task_execution_latency_count") > 0
    # Baton's counters: exactly the events the database recorded, once each
    counted = {dict(ls)["stage"]: int(v) for (n, ls), v in worker.items()
               if n == "baton_stage_transitions_total"}
    assert counted == dict(stages_recorded), text
    assert counted["COMPLETED"] == 1 and counted["PROTECTION"] == 1
    assert total(worker, "baton_signatures_total", decision="SIGNED") == 1
    assert total(worker, "baton_settlements_total", trigger="manual") == months_finalised

    r = await live.http.get("/metrics")
    assert r.status_code == 200
    api = parse(r.text)
    approve = "/api/v1/reassignments/{request_id}/approve"
    assert total(api, "baton_http_requests_total", method="POST", route=approve,
                 status="200") == 3
    assert total(api, "baton_http_request_duration_seconds_count", route=approve) == 3
    assert total(api, "baton_http_requests_total", route="/readyz", status="200") == 1
    assert f"/reassignments/{rid}" not in r.text  # templates only, never the raw path
