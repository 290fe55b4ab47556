"""GET /api/v1/monitor/stuck in process, against a fake visibility store: who may call it, the
answer's shape (ids from Temporal, names from the database in the caller's scope), bad
parameters and an unreachable Temporal as problem+json. The real visibility queries run in
test_monitor_devserver.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from api.deps import get_temporal_client
from api.main import create_app
from api.services import monitor
from domain.stages import Role, Stage
from models.org import Employee, UserAccount
from models.passwords import hash_password
from tests.api.conftest import Api, FakeTemporal, api_settings, assert_problem
from tests.factories import PASSWORD
from workflows import search_attributes as sa


@dataclass
class FakeExecution:
    id: str
    run_id: str
    workflow_type: str
    start_time: datetime
    task_queue: str
    typed_search_attributes: TypedSearchAttributes


def overdue_execution(request_id: int, deadline: datetime, pending: list[int],
                      stage: str = "PENDING_APPROVAL") -> FakeExecution:
    return FakeExecution(
        id=f"reassignment-{request_id}", run_id=f"run-{request_id}",
        workflow_type="ReassignmentWorkflow", start_time=deadline - timedelta(hours=1),
        task_queue="baton", typed_search_attributes=TypedSearchAttributes([
            SearchAttributePair(sa.STAGE, stage),
            SearchAttributePair(sa.REQUEST_ID, str(request_id)),
            SearchAttributePair(sa.STAGE_DEADLINE, deadline),
            SearchAttributePair(sa.PENDING_APPROVERS, [str(p) for p in pending]),
        ]))


def failing_execution(workflow_id: str, workflow_type: str) -> FakeExecution:
    return FakeExecution(
        id=workflow_id, run_id="run-x", workflow_type=workflow_type,
        start_time=datetime(2026, 11, 1, tzinfo=UTC), task_queue="baton",
        typed_search_attributes=TypedSearchAttributes([SearchAttributePair(
            monitor.REPORTED_PROBLEMS,
            ["category=WorkflowTaskFailed",
             "cause=WorkflowTaskFailedCauseWorkflowWorkerUnhandledFailure"])]))


@dataclass
class FakeVisibility(FakeTemporal):
    """The fake Temporal plus a visibility store: answers by which query it is asked."""

    overdue: list[FakeExecution] = field(default_factory=list)
    failing: list[FakeExecution] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    list_error: BaseException | None = None

    def list_workflows(self, query: str | None = None, *, limit: int | None = None,
                       **kwargs: Any) -> AsyncIterator[FakeExecution]:
        assert query is not None
        self.queries.append(query)
        rows = self.failing if "TemporalReportedProblems" in query else self.overdue
        error = self.list_error

        async def listing() -> AsyncIterator[FakeExecution]:
            if error is not None:
                raise error
            for row in rows[:limit]:
                yield row
        return listing()


@pytest.fixture
def visibility(api: Api) -> FakeVisibility:
    fake = FakeVisibility()
    api.app.dependency_overrides[get_temporal_client] = lambda: fake
    return fake


def add_admin(api: Api) -> int:
    with api.sessions() as s:
        employee = Employee(employee_no="E500", name="Admin Probe", role=Role.ADMIN.value,
                            org_unit_id=s.get(Employee, api.org.hr_head).org_unit_id)  # type: ignore[union-attr]
        s.add(employee)
        s.flush()
        assert employee.id is not None
        s.add(UserAccount(username="e500", password_hash=hash_password(PASSWORD),
                          employee_id=employee.id, roles=[Role.ADMIN.value]))
        api.org.usernames[employee.id] = "e500"
        return employee.id


async def submitted(api: Api, customer: int, key: str) -> int:
    org = api.org
    r = await api.http.post("/api/v1/reassignments", headers={
        **await api.auth(org.manager_a), "Idempotency-Key": key}, json={
        "from_employee_id": org.sales_a1, "to_employee_id": org.sales_a2,
        "customer_ids": [customer], "reason": "WORKLOAD_BALANCING"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def test_hr_sees_overdue_cases_with_names_and_failing_workflows(
        api: Api, visibility: FakeVisibility) -> None:
    org = api.org
    known = await submitted(api, org.customers_a1[0], "monitor-1")
    now = datetime.now(UTC)
    visibility.overdue = [
        overdue_execution(known, now - timedelta(minutes=5), [org.director, org.ceo]),
        # a workflow whose request this database does not have: ids only
        overdue_execution(9999, now - timedelta(hours=3), [org.hr_head]),
    ]
    visibility.failing = [failing_execution("bulk-7", "BulkReassignmentWorkflow")]
    r = await api.http.get("/api/v1/monitor/stuck", headers=await api.auth(org.hr_staff))
    assert r.status_code == 200, r.text
    body = r.json()
    # the queries it ran are the ones it reports, and the UI links carry them
    assert sorted(visibility.queries) == sorted([body["overdue"]["query"],
                                                 body["failing"]["query"]])
    for section in ("overdue", "failing"):
        link = body[section]["temporal_ui_url"]
        assert link.startswith("http://localhost:8233/namespaces/default/workflows?query=")
        assert unquote(link.split("query=", 1)[1]) == body[section]["query"]
    # the longest overdue first
    assert [i["request_id"] for i in body["overdue"]["items"]] == [9999, known]
    unknown, item = body["overdue"]["items"]
    assert unknown["request"] is None
    assert unknown["pending_approvers"] == [{"id": org.hr_head, "name": None}]
    assert item["stage"] == "PENDING_APPROVAL" and item["run_id"] == f"run-{known}"
    assert 299 <= item["overdue_by_seconds"] <= 330
    assert item["pending_approver_ids"] == [org.director, org.ceo]
    assert all(p["name"] for p in item["pending_approvers"])
    assert item["request"]["from_employee"]["id"] == org.sales_a1
    assert item["request"]["from_employee"]["name"]
    assert item["request"]["baton_url"] == f"/app/hr/cases/{known}"
    assert item["temporal_ui_url"] == ("http://localhost:8233/namespaces/default/workflows/"
                                       f"reassignment-{known}/run-{known}/history")
    [failing] = body["failing"]["items"]
    assert failing["workflow_type"] == "BulkReassignmentWorkflow"
    assert failing["workflow_id"] == "bulk-7" and failing["request_id"] is None
    assert "category=WorkflowTaskFailed" in failing["problems"]
    assert body["overdue"]["truncated"] is False


async def test_admin_sees_ids_only_and_other_roles_are_refused(
        api: Api, visibility: FakeVisibility) -> None:
    org = api.org
    known = await submitted(api, org.customers_a1[0], "monitor-2")
    visibility.overdue = [overdue_execution(known, datetime.now(UTC) - timedelta(minutes=1),
                                            [org.director])]
    admin = add_admin(api)
    r = await api.http.get("/api/v1/monitor/stuck", headers=await api.auth(admin))
    assert r.status_code == 200, r.text
    [item] = r.json()["overdue"]["items"]
    # admin sees business records only through other roles: Temporal's ids, no names
    assert item["request"] is None and item["pending_approvers"] == [
        {"id": org.director, "name": None}]
    for who in (org.manager_a, org.director, org.sales_a1, org.legal_head):
        r = await api.http.get("/api/v1/monitor/stuck", headers=await api.auth(who))
        assert_problem(r, 403, "forbidden-role")


async def test_limit_truncates_and_says_so(api: Api, visibility: FakeVisibility) -> None:
    now = datetime.now(UTC)
    visibility.overdue = [overdue_execution(900 + i, now - timedelta(minutes=i + 1), [])
                          for i in range(3)]
    r = await api.http.get("/api/v1/monitor/stuck?limit=2",
                           headers=await api.auth(api.org.hr_staff))
    assert r.status_code == 200, r.text
    assert r.json()["overdue"]["truncated"] is True
    assert len(r.json()["overdue"]["items"]) == 2


@pytest.mark.parametrize("params, field_name", [
    ("stage=APPEAL_REVIEW", "stage"), ("stage=NOPE", "stage"), ("limit=0", "limit"),
    ("limit=501", "limit"), ("grace_minutes=-1", "grace_minutes")])
async def test_bad_parameters_are_problems(api: Api, visibility: FakeVisibility,
                                           params: str, field_name: str) -> None:
    r = await api.http.get(f"/api/v1/monitor/stuck?{params}",
                           headers=await api.auth(api.org.hr_staff))
    body = assert_problem(r, 422)
    assert field_name in r.text and body["errors"]
    assert visibility.queries == []  # refused before Temporal is asked


async def test_temporal_unreachable_is_503(api: Api, db_url: str) -> None:
    # no fake: the app's own connector tries a closed port
    app = create_app(api_settings(db_url))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://baton.test") as http:
        r = await http.get("/api/v1/monitor/stuck", headers=await api.auth(api.org.hr_staff))
    body = assert_problem(r, 503, "temporal-unavailable")
    assert r.headers["retry-after"] == "5" and "try again" in body["detail"].lower()


async def test_a_lost_connection_is_503_and_a_refused_query_502(
        api: Api, visibility: FakeVisibility) -> None:
    headers = await api.auth(api.org.hr_staff)
    visibility.list_error = RPCError("connection reset", RPCStatusCode.UNAVAILABLE, b"")
    r = await api.http.get("/api/v1/monitor/stuck", headers=headers)
    assert_problem(r, 503, "temporal-unavailable")
    visibility.list_error = RPCError("BatonStage is not a search attribute",
                                     RPCStatusCode.INVALID_ARGUMENT, b"")
    r = await api.http.get("/api/v1/monitor/stuck", headers=headers)
    body = assert_problem(r, 502, "temporal-visibility-error")
    assert "search attributes registered" in body["detail"] and body["query"]


def test_the_queries() -> None:
    now = datetime(2026, 12, 1, 10, 0, 30, 123456, tzinfo=UTC)
    assert monitor.overdue_query(now, [Stage.PENDING_APPROVAL], timedelta(minutes=15)) == (
        "ExecutionStatus = 'Running' AND BatonStage IN ('PENDING_APPROVAL') AND "
        "BatonStageDeadline < '2026-12-01T10:00:30Z'")
    # timer stages only after the grace: the workflow moves them on by itself
    assert monitor.overdue_query(now, monitor.DEADLINE_STAGES, timedelta(minutes=15)) == (
        "ExecutionStatus = 'Running' AND ((BatonStage IN ('PENDING_APPROVAL') AND "
        "BatonStageDeadline < '2026-12-01T10:00:30Z') OR (BatonStage IN ('SCHEDULED', "
        "'COMMUNICATION', 'AWAITING_SIGNATURE', 'PROTECTION') AND "
        "BatonStageDeadline < '2026-12-01T09:45:30Z'))")
    assert monitor.overdue_query(now, [Stage.PROTECTION, Stage.COMMUNICATION],
                                 timedelta(0)) == (
        "ExecutionStatus = 'Running' AND BatonStage IN ('COMMUNICATION', 'PROTECTION') AND "
        "BatonStageDeadline < '2026-12-01T10:00:30Z'")
    with pytest.raises(ValueError):
        monitor.overdue_query(now, [Stage.APPEAL_REVIEW])
