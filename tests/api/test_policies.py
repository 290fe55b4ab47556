"""Policy versions through the API: draft, validate, update, publish, acknowledge, pending.

The org factory starts with "default" v1 PUBLISHED (org.policy_version_id).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from activities.reassignment import ReassignmentActivities
from domain.periods import period_of
from domain.stages import Role
from domain.workflow_dto import ReassignmentInput
from models import (
    AuditEvent,
    Order,
    PolicyAcknowledgement,
    PolicyStatus,
    PolicyVersion,
    ReassignmentRequest,
)
from models.audit import verify_chain
from tests.api.conftest import Api, FakeTemporal, assert_problem
from tests.api.test_orders import add_person
from tests.factories import fast_policy_rules

URL = "/api/v1/policies"


def rules(**overrides: Any) -> dict[str, Any]:
    body = fast_policy_rules().model_dump(mode="json")
    body.update(overrides)
    return body


async def draft(api: Api, body_rules: dict[str, Any] | None = None, *, name: str = "default",
                as_id: int | None = None) -> Any:
    headers = await api.auth(api.org.hr_staff if as_id is None else as_id)
    return await api.http.post(URL, json={"name": name, "rules": body_rules or rules()},
                               headers=headers)


async def publish(api: Api, policy_id: int, as_id: int | None = None) -> Any:
    headers = await api.auth(api.org.hr_staff if as_id is None else as_id)
    return await api.http.post(f"{URL}/{policy_id}/publish", headers=headers)


async def put(api: Api, policy_id: int, body_rules: dict[str, Any],
              as_id: int | None = None) -> Any:
    headers = await api.auth(api.org.hr_staff if as_id is None else as_id)
    return await api.http.put(f"{URL}/{policy_id}", json={"rules": body_rules},
                              headers=headers)


async def ack(api: Api, policy_id: int, as_id: int) -> Any:
    return await api.http.post(f"{URL}/{policy_id}/acknowledge", headers=await api.auth(as_id))


async def acks(api: Api, policy_id: int, as_id: int | None = None) -> Any:
    headers = await api.auth(api.org.hr_staff if as_id is None else as_id)
    return await api.http.get(f"{URL}/{policy_id}/acknowledgements", headers=headers)


async def drafted_and_published(api: Api, body_rules: dict[str, Any] | None = None) -> int:
    r = await draft(api, body_rules)
    assert r.status_code == 201, r.text
    policy_id = int(r.json()["id"])
    r = await publish(api, policy_id)
    assert r.status_code == 200, r.text
    return policy_id


def version(api: Api, policy_id: int) -> PolicyVersion:
    with api.sessions() as s:
        policy = s.get(PolicyVersion, policy_id)
        assert policy is not None
        return policy


def counts(api: Api) -> tuple[int, int]:
    with api.sessions() as s:
        return (int(s.exec(select(func.count()).select_from(PolicyVersion)).one()),
                int(s.exec(select(func.count()).select_from(AuditEvent)).one()))


def events(api: Api, event_type: str) -> list[AuditEvent]:
    with api.sessions() as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.event_type == event_type)
                           .order_by(col(AuditEvent.chain_index))).all())


# --- drafting -----------------------------------------------------------------------------


async def test_draft_is_numbered_per_name_and_audited(api: Api) -> None:
    r = await draft(api)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["name"], body["version"], body["status"]) == ("default", 2, "DRAFT")
    assert body["published_at"] is None and body["acknowledged_at"] is None
    assert body["rules"] == rules()
    assert any(line.startswith("Communication window: 10 minutes") for line in body["summary"])
    pilot = (await draft(api, name="pilot")).json()
    assert (pilot["name"], pilot["version"]) == ("pilot", 1)
    again = (await draft(api)).json()
    assert again["version"] == 3
    stored = version(api, body["id"])
    assert stored.status == PolicyStatus.DRAFT and stored.rules == rules()
    assert [(e.actor_id, e.detail) for e in events(api, "POLICY_DRAFTED")] == [
        (api.org.hr_staff, {"policy_version_id": body["id"], "version": 2}),
        (api.org.hr_staff, {"policy_version_id": pilot["id"], "version": 1}),
        (api.org.hr_staff, {"policy_version_id": again["id"], "version": 3}),
    ]


LEVEL = {"role": "manager", "sla": "PT4M", "reminder_after": "PT2M"}


@pytest.mark.parametrize(
    ("overrides", "field", "code", "says"),
    [
        ({"protection_share_bp": 12_000}, "rules.protection_share_bp", "SHARE_OUT_OF_RANGE",
         "between 0 (0%) and 10000 (100%); you sent 12000 (120.00%)"),
        ({"protection_share_bp": -1}, "rules.protection_share_bp", "SHARE_OUT_OF_RANGE",
         "between 0 (0%) and 10000 (100%)"),
        ({"communication_window": "P7D", "legal_minimum_window": "P15D"},
         "rules.communication_window", "WINDOW_BELOW_LEGAL_MINIMUM",
         "Lengthen communication_window to at least 15 days"),
        ({"approval_levels": []}, "rules.approval_levels", "APPROVAL_CHAIN_EMPTY",
         "needs at least one approval level"),
        ({"approval_levels": [{**LEVEL, "reminder_after": "PT5M"}]},
         "rules.approval_levels.0.reminder_after", "REMINDER_AFTER_SLA",
         "must be shorter than the level's SLA (4 minutes)"),
        ({"legal_level": {**LEVEL, "role": "legal", "reminder_after": "PT4M"}},
         "rules.legal_level.reminder_after", "REMINDER_AFTER_SLA", "half the SLA (2 minutes)"),
        ({"protection_period": "-P1D"}, "rules.protection_period", "NEGATIVE_DURATION",
         "must not be negative; you sent minus 1 day"),
        ({"communication_window": "-PT1H"}, "rules.communication_window", "NEGATIVE_DURATION",
         "must not be negative"),
        ({"compensation_extra_protection": "-P30D"}, "rules.compensation_extra_protection",
         "NEGATIVE_DURATION", "must not be negative"),
        ({"signature_deadline": "PT0S"}, "rules.signature_deadline", "DURATION_NOT_POSITIVE",
         "must be longer than zero"),
        ({"signature_reminders_before": ["PT20M"]}, "rules.signature_reminders_before.0",
         "REMINDER_OUTSIDE_DEADLINE", "shorter than signature_deadline (10 minutes)"),
        ({"protection_share_bp": 6_000, "compensation_extra_share_bp": 5_000},
         "rules.compensation_extra_share_bp", "SHARE_SUM_ABOVE_100", "is 110.00%"),
        ({"legal_threshold_fen": -1}, "rules.legal_threshold_fen", "NEGATIVE_AMOUNT",
         "must not be negative"),
        ({"communication_window": "two weeks"}, "rules.communication_window", "NOT_A_DURATION",
         '"P15D"'),
        ({"protection_share": 5_000}, "rules.protection_share", "UNKNOWN_SETTING",
         "check its spelling"),
        ({"legal_tier_threshold": "Z"}, "rules.legal_tier_threshold", "NOT_A_TIER",
         '"A", "B" or "C"'),
    ],
)
async def test_figures_that_make_no_sense_are_422_with_how_to_fix(
    api: Api, overrides: dict[str, Any], field: str, code: str, says: str
) -> None:
    before = counts(api)
    problem = assert_problem(await draft(api, rules(**overrides)), 422, "validation-failed")
    assert problem["title"] == "The policy is not valid"
    assert field in problem["detail"]
    found = [e for e in problem["errors"] if e["field"] == field]
    assert len(found) == 1, problem["errors"]
    [error] = found
    assert error["code"] == code and error["location"] == "body"
    assert says in error["message"], error["message"]
    assert "Value error" not in error["message"]
    assert counts(api) == before


async def test_every_problem_is_listed_at_once(api: Api) -> None:
    bad = rules(protection_share_bp=12_000, approval_levels=[], communication_window="P1D",
                legal_minimum_window="P15D", protection_period="-P1D")
    problem = assert_problem(await draft(api, bad, name=""), 422, "validation-failed")
    assert {(e["field"], e["code"]) for e in problem["errors"]} >= {
        ("rules.protection_share_bp", "SHARE_OUT_OF_RANGE"),
        ("rules.approval_levels", "APPROVAL_CHAIN_EMPTY"),
        ("rules.communication_window", "WINDOW_BELOW_LEGAL_MINIMUM"),
        ("rules.protection_period", "NEGATIVE_DURATION"),
        ("name", "string_too_short"),
    }
    assert all(e["message"] for e in problem["errors"])


async def test_missing_settings_and_non_object_rules(api: Api) -> None:
    headers = await api.auth(api.org.hr_staff)
    r = await api.http.post(URL, json={"name": "default", "rules": {"protection_share_bp": 1}},
                            headers=headers)
    problem = assert_problem(r, 422, "validation-failed")
    required = {e["field"] for e in problem["errors"] if e["code"] == "REQUIRED"}
    assert {"rules.communication_window", "rules.approval_levels",
            "rules.allowed_reasons"} <= required
    r = await api.http.post(URL, json={"name": "default", "rules": "lenient"}, headers=headers)
    [error] = assert_problem(r, 422)["errors"]
    assert (error["field"], error["code"]) == ("rules", "NOT_AN_OBJECT")
    r = await api.http.post(URL, json={"name": "default"}, headers=headers)
    assert [e["field"] for e in assert_problem(r, 422)["errors"]] == ["rules"]


# --- updating and publishing ----------------------------------------------------------------


async def test_update_a_draft(api: Api) -> None:
    policy_id = (await draft(api)).json()["id"]
    r = await put(api, policy_id, rules(protection_share_bp=6_000))
    assert r.status_code == 200, r.text
    assert r.json()["rules"]["protection_share_bp"] == 6_000
    assert version(api, policy_id).rules["protection_share_bp"] == 6_000
    problem = assert_problem(await put(api, policy_id, rules(approval_levels=[])), 422)
    assert [e["field"] for e in problem["errors"]] == ["rules.approval_levels"]
    assert version(api, policy_id).rules["protection_share_bp"] == 6_000
    assert_problem(await put(api, 987_654, rules()), 404, "policy-not-found")
    assert [(e.actor_id, e.detail) for e in events(api, "POLICY_UPDATED")] == [
        (api.org.hr_staff, {"policy_version_id": policy_id})]


async def test_publish_retires_the_previous_version_and_freezes_it(api: Api) -> None:
    org = api.org
    policy_id = (await draft(api, rules(protection_share_bp=4_000))).json()["id"]
    r = await publish(api, policy_id)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["policy"]["status"] == "PUBLISHED" and body["policy"]["published_at"]
    assert body["retired_policy_version_ids"] == [org.policy_version_id]
    # manager_a and manager_b hold sales in their accounts; sales_left has left
    assert body["awaiting_acknowledgement"] == 5
    assert version(api, org.policy_version_id).status == PolicyStatus.RETIRED
    published = version(api, policy_id)
    assert published.status == PolicyStatus.PUBLISHED and published.published_at is not None

    problem = assert_problem(await publish(api, policy_id), 409, "already-published")
    assert "new version" in problem["detail"]
    for frozen in (policy_id, org.policy_version_id):
        problem = assert_problem(await put(api, frozen, rules(protection_share_bp=1)), 409,
                                 "policy-immutable")
        assert "Publish a new version instead" in problem["detail"]
    assert version(api, policy_id).rules["protection_share_bp"] == 4_000
    assert_problem(await publish(api, org.policy_version_id), 409, "policy-retired")
    assert_problem(await publish(api, 987_654), 404, "policy-not-found")

    # an older draft cannot replace a newer published version
    older = (await draft(api)).json()["id"]
    newer = await drafted_and_published(api)
    assert_problem(await publish(api, older), 409, "newer-version-published")
    assert version(api, older).status == PolicyStatus.DRAFT
    assert version(api, policy_id).status == PolicyStatus.RETIRED
    assert version(api, newer).status == PolicyStatus.PUBLISHED

    assert [(e.actor_id, e.detail) for e in events(api, "POLICY_PUBLISHED")] == [
        (org.hr_staff, {"policy_version_id": policy_id,
                        "retired_policy_version_ids": [org.policy_version_id]}),
        (org.hr_staff, {"policy_version_id": newer, "retired_policy_version_ids": [policy_id]}),
    ]


async def test_publishing_another_name_retires_nothing_of_default(api: Api) -> None:
    pilot = (await draft(api, name="pilot")).json()["id"]
    r = await publish(api, pilot)
    assert r.status_code == 200 and r.json()["retired_policy_version_ids"] == []
    assert version(api, api.org.policy_version_id).status == PolicyStatus.PUBLISHED


# --- acknowledging ----------------------------------------------------------------------------


async def test_acknowledge_once_and_only_published(api: Api) -> None:
    org = api.org
    policy_id = await drafted_and_published(api)
    first = await ack(api, policy_id, org.sales_a1)
    assert first.status_code == 201, first.text
    assert first.json()["recorded_now"] is True
    assert first.json()["employee_id"] == org.sales_a1
    again = await ack(api, policy_id, org.sales_a1)
    assert again.status_code == 200, again.text
    assert again.json()["recorded_now"] is False
    assert again.json()["acknowledged_at"] == first.json()["acknowledged_at"]
    with api.sessions() as s:
        rows = s.exec(select(PolicyAcknowledgement)
                      .where(PolicyAcknowledgement.policy_version_id == policy_id)).all()
        assert [(a.employee_id, a.acknowledged_at) for a in rows] == [
            (org.sales_a1, datetime.fromisoformat(first.json()["acknowledged_at"]))]
    assert [(e.actor_id, e.detail) for e in events(api, "POLICY_ACKNOWLEDGED")] == [
        (org.sales_a1, {"policy_version_id": policy_id, "employee_id": org.sales_a1})]

    # the detail and the list say the caller acknowledged it
    detail = (await api.http.get(f"{URL}/{policy_id}",
                                 headers=await api.auth(org.sales_a1))).json()
    assert detail["acknowledged_at"] == first.json()["acknowledged_at"]
    other = (await api.http.get(f"{URL}/{policy_id}",
                                headers=await api.auth(org.sales_a2))).json()
    assert other["acknowledged_at"] is None

    drafted = (await draft(api)).json()["id"]
    problem = assert_problem(await ack(api, drafted, org.sales_a1), 409, "policy-not-published")
    assert "draft" in problem["detail"]
    problem = assert_problem(await ack(api, org.policy_version_id, org.sales_a1), 409,
                             "policy-not-published")
    assert "retired" in problem["detail"]
    assert_problem(await ack(api, 987_654, org.sales_a1), 404, "policy-not-found")
    assert_problem(await api.http.post(f"{URL}/{policy_id}/acknowledge"), 401)
    assert len(events(api, "POLICY_ACKNOWLEDGED")) == 1


async def test_pending_list_shrinks_as_salespeople_acknowledge(api: Api) -> None:
    org = api.org
    policy_id = await drafted_and_published(api)
    salespeople = [org.manager_a, org.manager_b, org.sales_a1, org.sales_a2, org.sales_b1]

    async def overview() -> dict[str, Any]:
        r = await acks(api, policy_id)
        assert r.status_code == 200, r.text
        return dict(r.json())

    start = await overview()
    assert [p["employee_id"] for p in start["pending"]] == salespeople  # by employee no.
    assert start["acknowledged"] == [] and start["pending_count"] == 5
    assert org.sales_left not in [p["employee_id"] for p in start["pending"]]

    assert (await ack(api, policy_id, org.sales_a1)).status_code == 201
    assert (await ack(api, policy_id, org.manager_b)).status_code == 201
    assert (await ack(api, policy_id, org.hr_head)).status_code == 201  # anyone may
    now = await overview()
    assert [p["employee_id"] for p in now["pending"]] == [org.manager_a, org.sales_a2,
                                                          org.sales_b1]
    assert [a["employee_id"] for a in now["acknowledged"]] == [org.sales_a1, org.manager_b,
                                                               org.hr_head]
    assert all(a["acknowledged_at"] and a["name"] for a in now["acknowledged"])
    assert (now["acknowledged_count"], now["pending_count"]) == (3, 3)
    # acknowledging the old, now retired, version did not count for the new one
    retired = (await acks(api, org.policy_version_id)).json()
    assert retired["status"] == "RETIRED" and retired["pending"] == []


# --- reading and permissions -----------------------------------------------------------------


async def test_who_sees_what(api: Api) -> None:
    org = api.org
    drafted = (await draft(api)).json()["id"]

    async def listing(as_id: int, **params: Any) -> Any:
        return await api.http.get(URL, params=params, headers=await api.auth(as_id))

    seen = (await listing(org.sales_a1)).json()
    assert [p["id"] for p in seen["items"]] == [org.policy_version_id]
    assert seen["total"] == 1 and seen["items"][0]["acknowledged_at"] is None
    assert_problem(await listing(org.sales_a1, status="DRAFT"), 403, "forbidden-role")
    assert_problem(await api.http.get(f"{URL}/{drafted}", headers=await api.auth(org.sales_a1)),
                   404, "policy-not-found")
    for who in (org.hr_staff, org.legal_head, add_person(api, "E401", Role.ADMIN)):
        everything = (await listing(who)).json()
        assert [p["id"] for p in everything["items"]] == [drafted, org.policy_version_id]
        r = await api.http.get(f"{URL}/{drafted}", headers=await api.auth(who))
        assert r.status_code == 200 and r.json()["status"] == "DRAFT"
    only = (await listing(org.hr_staff, status="PUBLISHED", name="default")).json()
    assert [p["id"] for p in only["items"]] == [org.policy_version_id]
    page = (await listing(org.hr_staff, limit=1, offset=1)).json()
    assert (page["total"], [p["id"] for p in page["items"]]) == (2, [org.policy_version_id])
    detail = (await api.http.get(f"{URL}/{org.policy_version_id}",
                                 headers=await api.auth(org.sales_b1))).json()
    assert detail["rules"] == rules() and detail["summary"]
    assert_problem(await api.http.get(URL), 401)


async def test_only_hr_drafts_updates_and_publishes(api: Api) -> None:
    org = api.org
    finance = add_person(api, "E400", Role.FINANCE)
    admin = add_person(api, "E401", Role.ADMIN)
    drafted = (await draft(api)).json()["id"]
    before = counts(api)
    for who in (org.sales_a1, org.manager_a, org.director, org.legal_head, finance, admin):
        assert_problem(await draft(api, as_id=who), 403, "forbidden-role")
        # the role is checked before the body: no hint about the policy to a non-HR caller
        assert_problem(await draft(api, rules(approval_levels=[]), as_id=who), 403)
        assert_problem(await put(api, drafted, rules(), as_id=who), 403, "forbidden-role")
        assert_problem(await publish(api, drafted, as_id=who), 403, "forbidden-role")
        assert_problem(await acks(api, drafted, as_id=who), 403, "forbidden-role")
    assert counts(api) == before
    assert version(api, drafted).status == PolicyStatus.DRAFT
    assert_problem(await api.http.post(URL, json={"name": "x", "rules": rules()}), 401)
    assert_problem(await api.http.post(f"{URL}/{drafted}/publish"), 401)
    assert (await publish(api, drafted, as_id=org.hr_head)).status_code == 200


async def test_audit_trail_of_a_policy_life(api: Api) -> None:
    org = api.org
    policy_id = (await draft(api)).json()["id"]
    assert (await put(api, policy_id, rules(protection_share_bp=4_500))).status_code == 200
    assert (await publish(api, policy_id)).status_code == 200
    assert (await ack(api, policy_id, org.sales_b1)).status_code == 201
    with api.sessions() as s:
        trail = s.exec(select(AuditEvent).where(col(AuditEvent.event_type).like("POLICY_%"))
                       .order_by(col(AuditEvent.chain_index))).all()
        assert [(e.event_type, e.actor_id, e.request_id) for e in trail] == [
            ("POLICY_DRAFTED", org.hr_staff, None),
            ("POLICY_UPDATED", org.hr_staff, None),
            ("POLICY_PUBLISHED", org.hr_staff, None),
            ("POLICY_ACKNOWLEDGED", org.sales_b1, None),
        ]
        for event in trail:  # ids and numbers only: no names, no free text
            assert all(isinstance(v, int) or (isinstance(v, list) and
                                              all(isinstance(i, int) for i in v))
                       for v in event.detail.values()), event.detail
        assert verify_chain(s)[0]


# --- end to end: publish, acknowledge, submit under it, legal level ---------------------------


def _recent_orders(api: Api, customer_ids: list[int]) -> None:
    """A fresh order per customer, so their trailing value is above 1 fen whatever the date."""
    booked = datetime.now(UTC) - timedelta(days=1)
    with api.sessions() as s:
        for cid in customer_ids:
            s.add(Order(external_id=f"O-policy-e2e-{cid}", customer_id=cid, amount_fen=500_000,
                        booked_at=booked, period=period_of(booked, "Asia/Shanghai")))


async def _submit(api: Api, customer_ids: list[int]) -> dict[str, Any]:
    headers = {**await api.auth(api.org.manager_a), "Idempotency-Key": str(uuid.uuid4())}
    r = await api.http.post("/api/v1/reassignments", headers=headers, json={
        "from_employee_id": api.org.sales_a1, "to_employee_id": api.org.sales_a2,
        "customer_ids": customer_ids, "reason": "WORKLOAD_BALANCING"})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _request_id(body: dict[str, Any]) -> int:
    return int(body["id"])


async def test_submitted_under_the_new_version_with_legal_level_above_threshold(
    api: Api, fake_temporal: FakeTemporal
) -> None:
    org = api.org
    _recent_orders(api, org.customers_a1)
    assess = ReassignmentActivities(api.sessions).assess_request

    # v2: a legal level, but a threshold far above these customers' value
    high = await drafted_and_published(api, rules(legal_threshold_fen=10**15))
    assert (await ack(api, high, org.sales_a1)).status_code == 201
    below = _request_id(await _submit(api, org.customers_a1[:1]))

    # v3: the same legal level from 1 fen on; publishing it retires v2
    low = await drafted_and_published(api, rules(legal_threshold_fen=1))
    assert version(api, high).status == PolicyStatus.RETIRED
    assert (await ack(api, low, org.sales_a1)).status_code == 201
    pending = (await acks(api, low)).json()["pending"]
    assert org.sales_a1 not in [p["employee_id"] for p in pending]
    above = _request_id(await _submit(api, org.customers_a1[1:2]))

    with api.sessions() as s:
        first, second = s.get(ReassignmentRequest, below), s.get(ReassignmentRequest, above)
        assert first is not None and second is not None
        # a request keeps the version it was submitted under; new ones use the new version
        assert (first.policy_version_id, second.policy_version_id) == (high, low)
        assert second.value_fen >= 1
        workflow_ids = [first.workflow_id, second.workflow_id]
    assert fake_temporal.started == workflow_ids

    without = assess(ReassignmentInput(request_id=below))
    assert without.policy_version_id == high and without.violations == []
    assert Role.LEGAL not in [level.role for level in without.chain]

    with_legal = assess(ReassignmentInput(request_id=above))
    assert with_legal.policy_version_id == low and with_legal.violations == []
    assert with_legal.rules.legal_threshold_fen == 1
    assert [level.role for level in with_legal.chain] == [
        Role.MANAGER, Role.DIRECTOR, Role.HR, Role.LEGAL]
    assert with_legal.chain[-1].approver_id == org.legal_head
    assert [level.level for level in with_legal.chain] == [1, 2, 3, 4]
