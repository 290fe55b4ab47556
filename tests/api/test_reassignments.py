"""Submission, reading and action mapping, without a Temporal server.

Temporal is replaced by a fake that records start_workflow calls: these tests are about what
the API decides and writes before any workflow runs. The real lifecycle is in
test_lifecycle_devserver.py.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from api.deps import get_temporal_client
from domain.stages import Stage
from models import AuditEvent, PolicyStatus, PolicyVersion, ReassignmentRequest, RequestCustomer
from models.audit import verify_chain
from tests.api.conftest import Api, FakeTemporal, assert_problem, expired_token
from tests.factories import T0


def body_for(api: Api, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from_employee_id": api.org.sales_a1,
        "to_employee_id": api.org.sales_a2,
        "customer_ids": api.org.customers_a1[:2],
        "reason": "WORKLOAD_BALANCING",
        "note": "balancing the team's load",
    }
    body.update(overrides)
    return body


async def submit(api: Api, as_id: int, body: dict[str, Any], key: str | None = "auto") -> Any:
    headers = await api.auth(as_id)
    if key is not None:
        headers["Idempotency-Key"] = str(uuid.uuid4()) if key == "auto" else key
    return await api.http.post("/api/v1/reassignments", json=body, headers=headers)


# --- (a) bad input: problem+json, nothing written, no workflow started ----------------------


@pytest.mark.parametrize(
    ("case", "code", "field"),
    [
        ("unknown_customer", "UNKNOWN_CUSTOMER", "customer_ids"),
        ("not_owner", "NOT_OWNER", "customer_ids"),
        ("same_employee", "SAME_EMPLOYEE", "to_employee_id"),
        ("receiver_left", "RECEIVER_NOT_ACTIVE", "to_employee_id"),
    ],
)
async def test_policy_violation_is_422_and_changes_nothing(
    api: Api, fake_temporal: FakeTemporal, case: str, code: str, field: str
) -> None:
    org = api.org
    overrides: dict[str, Any] = {
        "unknown_customer": {"customer_ids": [org.customers_a1[0], 987_654]},
        "not_owner": {"customer_ids": [org.customers_a1[0], org.customers_b1[0]]},
        "same_employee": {"to_employee_id": org.sales_a1},
        "receiver_left": {"to_employee_id": org.sales_left},
    }[case]
    before = api.counts()
    r = await submit(api, org.manager_a, body_for(api, **overrides))
    problem = assert_problem(r, 422, "policy-violation")
    assert {"code": code, "field": field} in [
        {"code": e["code"], "field": e["field"]} for e in problem["errors"]]
    assert all(e["message"] for e in problem["errors"])
    assert api.counts() == before
    assert fake_temporal.attempts == []


async def test_missing_idempotency_key_is_400_and_changes_nothing(
    api: Api, fake_temporal: FakeTemporal
) -> None:
    before = api.counts()
    r = await submit(api, api.org.manager_a, body_for(api), key=None)
    problem = assert_problem(r, 400, "idempotency-key-missing")
    assert "Idempotency-Key" in problem["detail"]
    assert api.counts() == before and fake_temporal.attempts == []


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"from_employee_id": "abc", "customer_ids": [], "reason": "BECAUSE"},
         {"from_employee_id", "to_employee_id", "customer_ids", "reason"}),
        ({"to_employee_id": 1, "from_employee_id": 2, "customer_ids": ["x"],
          "reason": "PERFORMANCE", "requester_id": 5},  # the actor never comes from a body
         {"customer_ids.0", "requester_id"}),
        ({"from_employee_id": 1, "to_employee_id": 2, "customer_ids": list(range(1, 202)),
          "reason": "PERFORMANCE"}, {"customer_ids"}),
    ],
)
async def test_malformed_body_is_422_listing_each_field(
    api: Api, fake_temporal: FakeTemporal, body: dict[str, Any], fields: set[str]
) -> None:
    before = api.counts()
    r = await submit(api, api.org.manager_a, body)
    problem = assert_problem(r, 422, "validation-failed")
    assert {e["field"] for e in problem["errors"]} == fields
    assert all(e["location"] == "body" and e["code"] and e["message"]
               for e in problem["errors"])
    assert api.counts() == before and fake_temporal.attempts == []


async def test_invalid_json_is_422_problem(api: Api) -> None:
    headers = {**await api.auth(api.org.manager_a), "Idempotency-Key": "k-json",
               "Content-Type": "application/json"}
    before = api.counts()
    r = await api.http.post("/api/v1/reassignments", content=b"{not json", headers=headers)
    assert_problem(r, 422, "validation-failed")
    assert api.counts() == before


async def test_expired_token_or_wrong_role_or_scope_changes_nothing(
    api: Api, fake_temporal: FakeTemporal
) -> None:
    org = api.org
    before = api.counts()
    for token, slug in ((expired_token(org.manager_a, ["manager"]), "token-expired"),
                        ("not.a.token", "invalid-token")):
        r = await api.http.post("/api/v1/reassignments", json=body_for(api),
                                headers={"Authorization": f"Bearer {token}",
                                         "Idempotency-Key": "k1"})
        assert_problem(r, 401, slug)
    r = await submit(api, org.sales_a2, body_for(api))  # a salesperson may not submit
    assert_problem(r, 403, "forbidden-role")
    r = await submit(api, org.manager_b, body_for(api))  # team A is not manager B's
    assert_problem(r, 403, "out-of-scope")
    assert api.counts() == before and fake_temporal.attempts == []


async def test_no_published_policy_is_409(api: Api) -> None:
    with api.sessions() as s:
        for p in s.exec(select(PolicyVersion)).all():
            p.status = PolicyStatus.RETIRED
            s.add(p)
    before = api.counts()
    r = await submit(api, api.org.manager_a, body_for(api))
    assert_problem(r, 409, "no-published-policy")
    assert api.counts() == before


# --- the happy path and idempotency ---------------------------------------------------------


async def test_submit_records_request_customers_audit_and_starts_workflow(
    api: Api, fake_temporal: FakeTemporal
) -> None:
    org = api.org
    r = await submit(api, org.manager_a, body_for(api), key="key-1")
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["stage"] == "SUBMITTED" and out["requester_id"] == org.manager_a
    assert out["workflow_id"] == f"reassignment-{out['id']}"
    assert r.headers["location"] == f"/api/v1/reassignments/{out['id']}"
    assert out["terms"]["protection_share_bp"] == 5_000
    # the two customers' orders (1M + 2M fen, booked T0 - 30 days) count if in the last 365 days
    in_window = T0 - timedelta(days=30) >= datetime.now(UTC) - timedelta(days=365)
    assert out["value_fen"] == (3_000_000 if in_window else 0)

    with api.sessions() as s:
        req = s.get(ReassignmentRequest, out["id"])
        assert req is not None and req.idempotency_key == "key-1" and len(req.payload_hash) == 64
        rows = s.exec(select(RequestCustomer).where(RequestCustomer.request_id == req.id)).all()
        assert sorted(r_.customer_id for r_ in rows) == sorted(org.customers_a1[:2])
        events = s.exec(select(AuditEvent).where(AuditEvent.request_id == req.id)).all()
        assert [(e.event_type, e.to_stage, e.transition_seq, e.actor_id) for e in events] == [
            ("REQUEST_SUBMITTED", "SUBMITTED", 0, org.manager_a)]
        assert verify_chain(s)[0]

    assert len(fake_temporal.attempts) == 1
    call = fake_temporal.attempts[0]
    assert call["workflow"] == "ReassignmentWorkflow" and call["id"] == out["workflow_id"]
    assert call["arg"].request_id == out["id"] and call["task_queue"] == "baton"
    attrs = {p.key.name: p.value for p in call["search_attributes"].search_attributes}
    assert attrs["BatonStage"] == "SUBMITTED" and attrs["BatonRequestId"] == str(out["id"])


async def test_repeat_submit_returns_same_request_and_starts_one_workflow(
    api: Api, fake_temporal: FakeTemporal
) -> None:
    first = await submit(api, api.org.manager_a, body_for(api), key="same-key")
    assert first.status_code == 201, first.text
    after_first = api.counts()
    again = await submit(api, api.org.manager_a, body_for(api), key="same-key")
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert api.counts() == after_first
    # The repeat made sure the workflow runs (the server said "already started"): one workflow.
    assert fake_temporal.started == [first.json()["workflow_id"]]
    assert [a["id"] for a in fake_temporal.attempts] == [first.json()["workflow_id"]] * 2

    # Once the workflow has moved the request on, a repeat does not even try to start it.
    with api.sessions() as s:
        req = s.get(ReassignmentRequest, first.json()["id"])
        assert req is not None
        req.stage = Stage.PENDING_APPROVAL
        s.add(req)
    third = await submit(api, api.org.manager_a, body_for(api), key="same-key")
    assert third.status_code == 200 and third.json()["id"] == first.json()["id"]
    assert len(fake_temporal.attempts) == 2


async def test_same_key_with_different_body_is_409(api: Api, fake_temporal: FakeTemporal) -> None:
    first = await submit(api, api.org.manager_a, body_for(api), key="k-409")
    assert first.status_code == 201
    before = api.counts()
    r = await submit(api, api.org.manager_a, body_for(api, note="something else"), key="k-409")
    problem = assert_problem(r, 409, "idempotency-key-reused")
    assert problem["request_id"] == first.json()["id"]
    assert api.counts() == before and len(fake_temporal.attempts) == 1


async def test_keys_are_per_requester(api: Api) -> None:
    """Two requesters may happen to pick the same key; each gets their own request."""
    a = await submit(api, api.org.manager_a, body_for(api), key="shared")
    b = await submit(api, api.org.hr_head, body_for(
        api, customer_ids=api.org.customers_a1[2:]), key="shared")
    assert a.status_code == b.status_code == 201 and a.json()["id"] != b.json()["id"]


async def test_temporal_down_keeps_the_request_and_the_same_key_starts_it(
    api: Api, fake_temporal: FakeTemporal
) -> None:
    api.app.dependency_overrides.pop(get_temporal_client)  # settings point at a closed port
    r = await submit(api, api.org.manager_a, body_for(api), key="k-down")
    problem = assert_problem(r, 503, "temporal-unavailable")
    assert "same Idempotency-Key" in problem["detail"]
    request_id = problem["request_id"]
    with api.sessions() as s:
        req = s.get(ReassignmentRequest, request_id)
        assert req is not None and req.stage == Stage.SUBMITTED

    api.app.dependency_overrides[get_temporal_client] = lambda: fake_temporal  # it is back
    r = await submit(api, api.org.manager_a, body_for(api), key="k-down")
    assert r.status_code == 200 and r.json()["id"] == request_id
    assert fake_temporal.started == [f"reassignment-{request_id}"]


async def test_stale_workflow_with_the_same_id_is_reported_not_ignored(
    api: Api, fake_temporal: FakeTemporal
) -> None:
    """A database reset while Temporal kept its history: reassignment-1 already exists."""
    fake_temporal.preexisting["reassignment-1"] = datetime.now(UTC) - timedelta(hours=1)
    r = await submit(api, api.org.manager_a, body_for(api))
    problem = assert_problem(r, 500, "workflow-id-collision")
    assert problem["request_id"] == 1 and "out of step" in problem["detail"]


# --- reading, scope, audit ------------------------------------------------------------------


async def test_list_detail_and_audit_follow_the_callers_scope(api: Api) -> None:
    org = api.org
    made = await submit(api, org.manager_a, body_for(api))
    assert made.status_code == 201
    rid = made.json()["id"]

    async def visible(who: int) -> list[int]:
        r = await api.http.get("/api/v1/reassignments", headers=await api.auth(who))
        assert r.status_code == 200, r.text
        assert r.json()["total"] == len(r.json()["items"])
        return [item["id"] for item in r.json()["items"]]

    for who in (org.manager_a, org.sales_a1, org.sales_a2, org.director, org.hr_head,
                org.legal_head):
        assert await visible(who) == [rid], who
    for who in (org.manager_b, org.sales_b1):
        assert await visible(who) == [], who

    r = await api.http.get(f"/api/v1/reassignments/{rid}", headers=await api.auth(org.sales_b1))
    assert_problem(r, 404, "request-not-found")
    r = await api.http.get(f"/api/v1/reassignments/{rid}/audit",
                           headers=await api.auth(org.manager_b))
    assert_problem(r, 404, "request-not-found")

    r = await api.http.get(f"/api/v1/reassignments/{rid}", headers=await api.auth(org.sales_a1))
    assert r.status_code == 200, r.text
    detail = r.json()
    assert detail["id"] == rid and detail["approval_steps"] == [] and detail["signature"] is None
    assert detail["live"] is None and "not found" in detail["live_error"]

    r = await api.http.get(f"/api/v1/reassignments/{rid}/audit",
                           headers=await api.auth(org.hr_head))
    assert r.status_code == 200
    assert [e["event_type"] for e in r.json()["items"]] == ["REQUEST_SUBMITTED"]


async def test_list_filters_and_pagination(api: Api) -> None:
    org = api.org
    ids = []
    for i, cid in enumerate(org.customers_a1[:3]):
        r = await submit(api, org.manager_a, body_for(api, customer_ids=[cid]), key=f"p{i}")
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    hr = await api.auth(org.hr_head)

    async def page(**params: Any) -> dict[str, Any]:
        r = await api.http.get("/api/v1/reassignments", params=params, headers=hr)
        assert r.status_code == 200, r.text
        return dict(r.json())

    p = await page(limit=2, offset=0)
    assert p["total"] == 3 and p["limit"] == 2 and [i["id"] for i in p["items"]] == ids[::-1][:2]
    assert [i["id"] for i in (await page(limit=2, offset=2))["items"]] == [ids[0]]
    assert [i["id"] for i in (await page(customer_id=org.customers_a1[1]))["items"]] == [ids[1]]
    assert (await page(stage="SUBMITTED", from_employee_id=org.sales_a1,
                       to_employee_id=org.sales_a2, requester_id=org.manager_a))["total"] == 3
    assert (await page(stage="COMPLETED"))["total"] == 0
    r = await api.http.get("/api/v1/reassignments", params={"limit": 201}, headers=hr)
    problem = assert_problem(r, 422, "validation-failed")
    assert problem["errors"][0]["field"] == "limit"
    assert problem["errors"][0]["location"] == "query"


# --- actions: mapping of what the workflow answers ------------------------------------------


async def test_action_on_unknown_request_is_404(api: Api) -> None:
    r = await api.http.post("/api/v1/reassignments/424242/approve", json={},
                            headers=await api.auth(api.org.director))
    assert_problem(r, 404, "request-not-found")


async def test_action_on_closed_workflow_is_409(api: Api, fake_temporal: FakeTemporal) -> None:
    rid = (await submit(api, api.org.manager_a, body_for(api))).json()["id"]
    r = await api.http.post(f"/api/v1/reassignments/{rid}/approve", json={"comment": "ok"},
                            headers=await api.auth(api.org.director))
    assert_problem(r, 409, "request-closed")
    # the actor comes from the token
    (_wf, update, arg), = fake_temporal.updates
    assert update == "approve" and arg.actor_id == api.org.director and arg.comment == "ok"
    assert "director" in arg.actor_roles


@pytest.mark.parametrize(("rejection", "status"), [
    ("WRONG_ACTOR", 403), ("WRONG_STAGE", 409), ("ALREADY_DONE", 409), ("FOUR_EYES", 409),
    ("INVALID", 422),
])
async def test_update_rejections_map_to_status(
    api: Api, fake_temporal: FakeTemporal, rejection: str, status: int
) -> None:
    rid = (await submit(api, api.org.manager_a, body_for(api))).json()["id"]
    fake_temporal.update_error = WorkflowUpdateFailedError(
        ApplicationError("you are not the approver of level 1", type=rejection,
                         non_retryable=True))
    # the director holds an approver role and sees the request; the workflow refuses
    r = await api.http.post(f"/api/v1/reassignments/{rid}/reject", json={"reason": "no"},
                            headers=await api.auth(api.org.director))
    problem = assert_problem(r, status)
    assert problem["detail"] == "you are not the approver of level 1"
    assert problem["code"] == rejection


async def test_action_bodies_are_validated_before_temporal(
    api: Api, fake_temporal: FakeTemporal
) -> None:
    rid = (await submit(api, api.org.manager_a, body_for(api))).json()["id"]
    headers = await api.auth(api.org.sales_a1)
    r = await api.http.post(f"/api/v1/reassignments/{rid}/decline", json={"reason": "   "},
                            headers=headers)
    assert_problem(r, 422, "validation-failed")
    r = await api.http.post(f"/api/v1/reassignments/{rid}/sign",
                            json={"typed_name": "Li", "actor_id": api.org.director},
                            headers=headers)
    assert_problem(r, 422, "validation-failed")
    assert fake_temporal.updates == []


# --- misc ------------------------------------------------------------------------------------


async def test_health_and_unknown_route(api: Api) -> None:
    r = await api.http.get("/api/v1/health")
    assert r.status_code == 200
    assert r.json()["database"] == "ok" and r.json()["temporal"] == "unavailable"
    assert_problem(await api.http.get("/api/v1/nope"), 404, "not-found")


async def test_openapi_docs_are_served(api: Api) -> None:
    r = await api.http.get("/docs")
    assert r.status_code == 200 and "swagger" in r.text.lower()
    spec = (await api.http.get("/api/v1/openapi.json")).json()
    assert "/api/v1/reassignments/{request_id}/resolve-appeal" in spec["paths"]


async def test_app_runs_without_temporal_and_actions_answer_503(api: Api) -> None:
    rid = (await submit(api, api.org.manager_a, body_for(api))).json()["id"]
    api.app.dependency_overrides.pop(get_temporal_client)  # settings point at a closed port
    r = await api.http.post(f"/api/v1/reassignments/{rid}/approve", json={},
                            headers=await api.auth(api.org.director))
    assert_problem(r, 503, "temporal-unavailable")
    assert r.headers["retry-after"]
    # reads still work; the live view says why it is missing
    r = await api.http.get(f"/api/v1/reassignments/{rid}", headers=await api.auth(api.org.hr_head))
    assert r.status_code == 200 and r.json()["live"] is None
    assert "unavailable" in r.json()["live_error"]
    health = await api.http.get("/api/v1/health")
    assert health.status_code == 200
    assert health.json() == {"status": "degraded", "database": "ok", "temporal": "unavailable"}
