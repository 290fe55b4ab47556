"""The stuck monitor against the real Temporal dev server (with Baton's dynamic config), the real
worker and the HTTP API (issue 9, acceptance 4): it finds an approval whose SLA passed, leaves
out one that is not due, and finds a workflow whose task keeps failing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import pytest_asyncio
import yaml
from temporalio import workflow
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.policy import ApprovalLevelRule
from domain.stages import Role
from models.policy import PolicyStatus, PolicyVersion
from temporal_client import DEV_SERVER_DYNAMIC_CONFIG, dev_server_dynamic_config_args
from tests.api.test_lifecycle_devserver import (  # noqa: F401  (fixtures)
    Live,
    level_open,
    live,
    org,
    seconds_policy,
)
from tests.conftest import binary
from tests.payload_keys import TEST_DATA_CONVERTER
from workflows.search_attributes import ALL_KEYS

pytestmark = pytest.mark.devserver

WAIT_S = 60.0
ROOT = Path(__file__).resolve().parents[2]


@workflow.defn(name="MonitorTestAlwaysFailing", sandboxed=False)
class AlwaysFailingWorkflow:
    """Test only: a bug (not an ApplicationError) fails every workflow task, for ever."""

    @workflow.run
    async def run(self) -> None:
        raise RuntimeError("a bug in the workflow code")


@pytest_asyncio.fixture
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The dev server as `cli.py dev` starts it: with TemporalReportedProblems switched on."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        search_attributes=ALL_KEYS,
        data_converter=TEST_DATA_CONVERTER,
        dev_server_extra_args=dev_server_dynamic_config_args(),
        ui=False,
    )
    try:
        yield env
    finally:
        await env.shutdown()


def publish_fast_sla_policy(stack: Live) -> None:
    """Version 2: level 1's SLA is 2 s, so a request submitted now is overdue in seconds."""
    fast = ApprovalLevelRule(role=Role.MANAGER, sla=timedelta(seconds=2),
                             reminder_after=timedelta(seconds=1))
    rules = seconds_policy().model_copy(update={"approval_levels": [
        fast, fast.model_copy(update={"role": Role.DIRECTOR})]})
    with stack.sessions() as s:
        s.add(PolicyVersion(name="default", version=2, status=PolicyStatus.PUBLISHED,
                            rules=rules.model_dump(mode="json"), published_at=datetime.now(UTC)))


async def submit(stack: Live, customers: list[int], key: str) -> int:
    people = stack.org
    r = await stack.http.post(
        "/api/v1/reassignments",
        json={"from_employee_id": people.sales_a1, "to_employee_id": people.sales_a2,
              "customer_ids": customers, "reason": "WORKLOAD_BALANCING"},
        headers={**await stack.auth(people.manager_a), "Idempotency-Key": key})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def monitor_until(stack: Live, what: str, done: Any) -> dict[str, Any]:
    headers = await stack.auth(stack.org.hr_head)
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        r = await stack.http.get("/api/v1/monitor/stuck", headers=headers)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if done(body):
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last answer: {body}")
        await asyncio.sleep(0.5)


async def test_monitor_finds_the_overdue_approval_and_the_failing_workflow(
        live: Live, dev_env: WorkflowEnvironment) -> None:  # noqa: F811
    people = live.org
    # under version 1 (2 h SLA): pending, not overdue
    on_time = await submit(live, people.customers_a1[:1], "monitor-on-time")
    await live.wait(on_time, people.hr_head, "level 1 of the on-time request", level_open(1))
    publish_fast_sla_policy(live)
    late = await submit(live, people.customers_a1[1:2], "monitor-late")
    await live.wait(late, people.hr_head, "level 1 of the late request", level_open(1))

    broken_queue = f"broken-{uuid.uuid4().hex[:8]}"
    broken_id = f"monitor-broken-{uuid.uuid4().hex[:8]}"
    async with Worker(dev_env.client, task_queue=broken_queue,
                      workflows=[AlwaysFailingWorkflow]):
        # a 1 s task timeout: the failed task is retried (and counted) sooner
        await dev_env.client.start_workflow(AlwaysFailingWorkflow.run, id=broken_id,
                                            task_queue=broken_queue,
                                            task_timeout=timedelta(seconds=1))
        started = asyncio.get_running_loop().time()
        body = await monitor_until(live, "the late approval and the failing workflow", lambda b: (
            any(i["request_id"] == late for i in b["overdue"]["items"])
            and any(i["workflow_id"] == broken_id for i in b["failing"]["items"])))
        found_after = asyncio.get_running_loop().time() - started
        await dev_env.client.get_workflow_handle(broken_id).terminate("test over")
    print(f"monitor found both after {found_after:.1f} s")

    overdue = body["overdue"]
    assert [i["request_id"] for i in overdue["items"]] == [late]  # not the on-time one
    [item] = overdue["items"]
    assert item["workflow_id"] == f"reassignment-{late}" and item["stage"] == "PENDING_APPROVAL"
    deadline = datetime.fromisoformat(item["deadline"])
    checked = datetime.fromisoformat(body["checked_at"])
    assert deadline < checked
    assert item["overdue_by_seconds"] == int((checked - deadline).total_seconds())
    # the level-1 approver (the director: the requester is skipped), and whoever the SLA
    # escalation added; names from the database for HR
    assert item["pending_approver_ids"][0] == people.director
    assert item["pending_approvers"][0]["name"]
    record = item["request"]
    assert record["approval_level"] == 1 and record["approver"]["id"] == people.director
    assert record["from_employee"]["id"] == people.sales_a1 and record["from_employee"]["name"]
    assert record["baton_url"] == f"/app/hr/cases/{late}"
    assert item["temporal_ui_url"] == (f"http://localhost:8233/namespaces/default/workflows/"
                                       f"reassignment-{late}/{item['run_id']}/history")
    # the exact query, and the Temporal UI's list with it pre-filled
    assert overdue["query"].startswith("ExecutionStatus = 'Running' AND (")
    assert "BatonStageDeadline < '" in overdue["query"]
    assert unquote(overdue["temporal_ui_url"].split("query=", 1)[1]) == overdue["query"]

    failing = body["failing"]
    [broken] = [i for i in failing["items"] if i["workflow_id"] == broken_id]
    assert broken["workflow_type"] == "MonitorTestAlwaysFailing"
    assert "category=WorkflowTaskFailed" in broken["problems"]
    assert broken["task_queue"] == broken_queue and broken["request_id"] is None
    # Baton's own workflows run fine
    assert all(i["workflow_type"] == "MonitorTestAlwaysFailing" for i in failing["items"])
    assert failing["query"] == ("ExecutionStatus = 'Running' AND TemporalReportedProblems IN "
                                "('category=WorkflowTaskFailed', "
                                "'category=WorkflowTaskTimedOut')")

    # the Temporal UI's lines: the summary given at start and the current details, ids only
    handle = dev_env.client.get_workflow_handle(f"reassignment-{late}")
    description = await handle.describe()
    assert await description.static_summary() == (
        f"Reassignment request {late} · 1 customer · employee {people.sales_a1} → employee "
        f"{people.sales_a2}")
    assert f"**Customers** {people.customers_a1[1]}" in (await description.static_details()
                                                          or "")
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    due = datetime.fromisoformat(item["deadline"]).strftime("%Y-%m-%dT%H:%MZ")
    assert metadata.current_details.startswith(
        f"request {late} · PENDING_APPROVAL level 1/2 · due {due} · awaiting employee")
    assert str(people.director) in metadata.current_details

    # asked for one stage only, with no grace: the query says so, the late request is still in
    r = await live.http.get("/api/v1/monitor/stuck?stage=PENDING_APPROVAL&grace_minutes=0",
                            headers=await live.auth(people.hr_head))
    assert r.status_code == 200, r.text
    assert r.json()["overdue"]["query"].startswith(
        "ExecutionStatus = 'Running' AND BatonStage IN ('PENDING_APPROVAL') AND ")
    assert [i["request_id"] for i in r.json()["overdue"]["items"]] == [late]


def test_the_compose_dynamic_config_matches_the_dev_server_one() -> None:
    path = ROOT / "deploy" / "temporal" / "dynamicconfig" / "development-sql.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key, value in DEV_SERVER_DYNAMIC_CONFIG.items():
        assert config[key] == [{"value": value}], key
