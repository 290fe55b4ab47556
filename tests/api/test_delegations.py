"""Delegations through the API, HR's reassignment of an approval, and the own-data export."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from sqlmodel import select

from api.services.scope import org_today
from domain.workflow_dto import ActionInput, LevelStatus, ReassignApprovalInput
from models import AuditEvent
from models.reassignment import ApprovalStep
from tests.api.conftest import Api, FakeTemporal, assert_problem

TZ = "Asia/Shanghai"


async def _submit(api: Api) -> int:
    org = api.org
    r = await api.http.post("/api/v1/reassignments", headers={
        **await api.auth(org.manager_a), "Idempotency-Key": "deleg-1"}, json={
        "from_employee_id": org.sales_a1, "to_employee_id": org.sales_a2,
        "customer_ids": org.customers_a1[:1], "reason": "WORKLOAD_BALANCING"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _open_level(api: Api, request_id: int, approver_id: int) -> None:
    """What the workflow's first transition writes: level 1 pending with this approver."""
    with api.sessions() as session:
        session.add(ApprovalStep(request_id=request_id, level=1, role="director",
                                 approver_id=approver_id, status=LevelStatus.PENDING.value))


async def _delegate(api: Api, delegator: int, delegate: int, *, starts: date, ends: date,
                    reason: str = "annual leave") -> dict:
    r = await api.http.post("/api/v1/me/delegations", headers=await api.auth(delegator), json={
        "delegate_id": delegate, "starts_on": starts.isoformat(), "ends_on": ends.isoformat(),
        "reason": reason})
    return {"status": r.status_code, "body": r.json()}


async def test_a_delegate_acts_on_behalf_of_the_approver(api: Api,
                                                         fake_temporal: FakeTemporal) -> None:
    org = api.org
    request_id = await _submit(api)
    _open_level(api, request_id, org.director)
    delegate = org.manager_b  # outside team A: sees the request only through the delegation
    r = await api.http.get(f"/api/v1/reassignments/{request_id}",
                           headers=await api.auth(delegate))
    assert_problem(r, 404, "request-not-found")

    today = org_today(TZ)
    made = await _delegate(api, org.director, delegate, starts=today, ends=today)
    assert made["status"] == 201, made
    assert made["body"]["active_today"] is True
    r = await api.http.get(f"/api/v1/reassignments/{request_id}",
                           headers=await api.auth(delegate))
    assert r.status_code == 200, r.text

    await api.http.post(f"/api/v1/reassignments/{request_id}/approve",
                        headers=await api.auth(delegate), json={"comment": "for Du"})
    _, update, arg = fake_temporal.updates[-1]
    assert update == "approve" and isinstance(arg, ActionInput)
    assert (arg.actor_id, arg.on_behalf_of) == (delegate, org.director)

    # the approver acting themselves is never "on behalf of"
    await api.http.post(f"/api/v1/reassignments/{request_id}/approve",
                        headers=await api.auth(org.director), json={})
    assert fake_temporal.updates[-1][2].on_behalf_of is None

    # revoked: the delegate loses sight of the request again
    r = await api.http.delete(f"/api/v1/me/delegations/{made['body']['id']}",
                              headers=await api.auth(org.director))
    assert r.status_code == 204
    r = await api.http.get(f"/api/v1/reassignments/{request_id}",
                           headers=await api.auth(delegate))
    assert_problem(r, 404, "request-not-found")
    with api.sessions() as session:
        kinds = [e.event_type for e in session.exec(select(AuditEvent).where(
            AuditEvent.actor_id == org.director)).all()]
    assert "DELEGATION_CREATED" in kinds and "DELEGATION_REVOKED" in kinds


async def test_a_delegation_outside_its_dates_gives_nothing(api: Api,
                                                           fake_temporal: FakeTemporal) -> None:
    org = api.org
    request_id = await _submit(api)
    _open_level(api, request_id, org.director)
    tomorrow = org_today(TZ) + timedelta(days=1)
    made = await _delegate(api, org.director, org.manager_b, starts=tomorrow, ends=tomorrow)
    assert made["status"] == 201 and made["body"]["active_today"] is False
    r = await api.http.post(f"/api/v1/reassignments/{request_id}/approve",
                            headers=await api.auth(org.manager_b), json={})
    assert_problem(r, 404, "request-not-found")
    assert fake_temporal.updates == []


async def test_bad_delegations_are_refused_and_write_nothing(api: Api) -> None:
    org = api.org
    today = org_today(TZ)
    cases = [
        (org.director, today, today, "self"),
        (org.sales_a1, today, today, "not-an-approver"),
        (org.sales_left, today, today, "unknown"),
        (org.manager_b, today, today - timedelta(days=1), "before-start"),
        (org.manager_b, today - timedelta(days=5), today - timedelta(days=2), "in-the-past"),
        (org.manager_b, today, today + timedelta(days=200), "too-long"),
    ]
    for delegate, starts, ends, code in cases:
        made = await _delegate(api, org.director, delegate, starts=starts, ends=ends)
        assert made["status"] == 422, (code, made)
        assert made["body"]["errors"][0]["code"] == code
    r = await api.http.get("/api/v1/me/delegations", headers=await api.auth(org.director))
    assert r.json() == {"given": [], "received": []}
    # salespeople approve nothing, so they cannot delegate
    r = await api.http.get("/api/v1/me/delegations", headers=await api.auth(org.sales_a1))
    assert_problem(r, 403, "forbidden-role")


async def test_hr_reassigns_a_pending_approval(api: Api, fake_temporal: FakeTemporal) -> None:
    org = api.org
    request_id = await _submit(api)
    url = f"/api/v1/reassignments/{request_id}/reassign-approval"
    r = await api.http.post(url, headers=await api.auth(org.hr_staff),
                            json={"new_approver_id": org.sales_left, "reason": "away"})
    assert_problem(r, 422, "approver-unknown")
    r = await api.http.post(url, headers=await api.auth(org.manager_a),
                            json={"new_approver_id": org.ceo, "reason": "away"})
    assert_problem(r, 403, "forbidden-role")
    assert fake_temporal.updates == []
    await api.http.post(url, headers=await api.auth(org.hr_staff),
                        json={"new_approver_id": org.ceo, "level": 1, "reason": "sick leave"})
    _, update, arg = fake_temporal.updates[-1]
    assert update == "reassign_approval" and isinstance(arg, ReassignApprovalInput)
    assert (arg.actor_id, arg.new_approver_id, arg.level) == (org.hr_staff, org.ceo, 1)
    assert arg.reason == "sick leave" and "hr" in arg.actor_roles


async def test_an_employee_exports_their_own_data(api: Api) -> None:
    org = api.org
    request_id = await _submit(api)
    r = await api.http.get("/api/v1/me/export", headers=await api.auth(org.sales_a1))
    assert r.status_code == 200
    assert "attachment" in r.headers["content-disposition"]
    data = json.loads(r.content)
    assert data["employee"]["id"] == org.sales_a1
    assert "password_hash" not in data["account"][0]
    assert [x["id"] for x in data["reassignment_requests"]] == [request_id]
    assert {a["customer_id"] for a in data["customer_assignments"]} == set(org.customers_a1)
    # the export is a read of personal data, so it is itself recorded
    with api.sessions() as session:
        [event] = session.exec(select(AuditEvent).where(
            AuditEvent.event_type == "OWN_DATA_EXPORTED")).all()
    assert event.actor_id == org.sales_a1
    assert datetime.now(UTC) - event.occurred_at < timedelta(minutes=5)
