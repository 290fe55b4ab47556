"""Commission plans through the API: effective-dated, appended, managed by HR."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from domain.stages import Role
from models import AuditEvent, CommissionPlan
from models.audit import verify_chain
from tests.api.conftest import Api, assert_problem
from tests.api.test_orders import add_person

URL = "/api/v1/commission-plans"


def plan(employee_id: int, effective_from: str = "2026-01-01T00:00:00+08:00",
         **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"employee_id": employee_id, "effective_from": effective_from,
                            "base_rate_bp": 300, "inherited_rate_bp": 200}
    body.update(overrides)
    return body


async def post(api: Api, body: dict[str, Any], as_id: int | None = None) -> Any:
    headers = await api.auth(api.org.hr_staff if as_id is None else as_id)
    return await api.http.post(URL, json=body, headers=headers)


def plans_of(api: Api, employee_id: int) -> list[CommissionPlan]:
    with api.sessions() as s:
        return list(s.exec(select(CommissionPlan)
                           .where(CommissionPlan.employee_id == employee_id)
                           .order_by(col(CommissionPlan.effective_from))).all())


def audit_count(api: Api) -> int:
    with api.sessions() as s:
        return int(s.exec(select(func.count()).select_from(AuditEvent)).one())


async def test_create_plan(api: Api) -> None:
    a1 = api.org.sales_a1
    r = await post(api, plan(a1))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["closed_plan"] is None
    created = body["plan"]
    assert created["employee_id"] == a1 and created["effective_to"] is None
    assert (created["base_rate_bp"], created["inherited_rate_bp"]) == (300, 200)
    assert created["created_by"] == api.org.hr_staff
    [stored] = plans_of(api, a1)
    assert stored.id == created["id"]
    assert stored.effective_from == datetime(2025, 12, 31, 16, tzinfo=UTC)


async def test_new_plan_closes_the_open_one(api: Api) -> None:
    a1 = api.org.sales_a1
    first = (await post(api, plan(a1))).json()["plan"]
    r = await post(api, plan(a1, "2026-03-15T12:00:00+08:00", base_rate_bp=350))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["closed_plan"]["id"] == first["id"]
    old, new = plans_of(api, a1)
    boundary = datetime(2026, 3, 15, 4, tzinfo=UTC)
    assert old.effective_to == boundary  # [from, to): no gap, no overlap
    assert new.effective_from == boundary and new.effective_to is None
    assert new.base_rate_bp == 350
    # another employee's plans are not touched
    other = await post(api, plan(api.org.sales_a2, "2026-02-01T00:00:00Z"))
    assert other.status_code == 201 and other.json()["closed_plan"] is None
    assert plans_of(api, a1)[1].effective_to is None


@pytest.mark.parametrize("start", ["2026-03-01T00:00:00+08:00",   # the same instant
                                   "2026-02-28T16:00:00Z",         # the same, in UTC
                                   "2026-02-01T00:00:00+08:00"])   # earlier
async def test_backdating_is_rejected_and_changes_nothing(api: Api, start: str) -> None:
    a1 = api.org.sales_a1
    assert (await post(api, plan(a1, "2026-01-01T00:00:00+08:00"))).status_code == 201
    assert (await post(api, plan(a1, "2026-03-01T00:00:00+08:00"))).status_code == 201
    before, events = [(p.id, p.effective_from, p.effective_to) for p in plans_of(api, a1)], \
        audit_count(api)
    problem = assert_problem(await post(api, plan(a1, start)), 409, "plan-not-after-latest")
    assert "appended" in problem["detail"] and "history is not rewritten" in problem["detail"]
    assert [(p.id, p.effective_from, p.effective_to) for p in plans_of(api, a1)] == before
    assert audit_count(api) == events


async def test_validation(api: Api) -> None:
    a1 = api.org.sales_a1
    problem = assert_problem(await post(api, plan(987_654)), 422)
    assert [(e["field"], e["code"]) for e in problem["errors"]] == \
        [("employee_id", "UNKNOWN_EMPLOYEE")]
    assert_problem(await post(api, plan(a1, "2026-01-01T00:00:00")), 422)  # naive
    assert_problem(await post(api, plan(a1, base_rate_bp=10_001)), 422)
    assert_problem(await post(api, plan(a1, inherited_rate_bp=-1)), 422)
    assert_problem(await post(api, plan(a1, note="x")), 422)  # unknown field
    assert plans_of(api, a1) == []


async def test_audit_event_for_every_plan_change(api: Api) -> None:
    a1 = api.org.sales_a1
    first = (await post(api, plan(a1))).json()["plan"]
    second = (await post(api, plan(a1, "2026-06-01T00:00:00+08:00"), as_id=api.org.hr_head)
              ).json()["plan"]
    with api.sessions() as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.event_type == "PLAN_CREATED")
                        .order_by(col(AuditEvent.chain_index))).all()
        assert [(e.actor_id, e.detail) for e in events] == [
            (api.org.hr_staff, {"plan_id": first["id"], "employee_id": a1}),
            (api.org.hr_head, {"plan_id": second["id"], "employee_id": a1,
                               "closed_plan_id": first["id"]}),
        ]
        assert verify_chain(s)[0]


async def test_recompute_since_the_plan_start(api: Api,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import models.plans as plans_module

    calls: list[datetime] = []

    def recompute_since(session: Any, since: datetime) -> int:
        calls.append(since)
        return 3

    monkeypatch.setattr(plans_module, "recompute_since", recompute_since)
    r = await post(api, plan(api.org.sales_a1, "2026-04-01T00:00:00+08:00"))
    assert r.status_code == 201 and r.json()["recomputed_lines"] == 3
    assert calls == [datetime(2026, 3, 31, 16, tzinfo=UTC)]


async def test_permissions(api: Api) -> None:
    org = api.org
    finance = add_person(api, "E400", Role.FINANCE)
    admin = add_person(api, "E401", Role.ADMIN)
    for who in (org.sales_a1, org.manager_a, org.director, org.legal_head, finance):
        assert_problem(await post(api, plan(org.sales_b1), as_id=who), 403, "forbidden-role")
    assert plans_of(api, org.sales_b1) == []
    assert (await post(api, plan(org.sales_a1), as_id=admin)).status_code == 201
    assert (await post(api, plan(org.sales_a2), as_id=org.hr_head)).status_code == 201
    assert_problem(await api.http.post(URL, json=plan(org.sales_b1)), 401)

    async def get(as_id: int, **params: Any) -> Any:
        return await api.http.get(URL, params=params, headers=await api.auth(as_id))

    for who in (org.hr_staff, finance, admin):
        r = await get(who)
        assert r.status_code == 200, r.text
        assert r.json()["total"] == 2
    one = (await get(finance, employee_id=org.sales_a2)).json()
    assert [p["employee_id"] for p in one["items"]] == [org.sales_a2]
    # a salesperson sees their own plans only
    own = (await get(org.sales_a1)).json()
    assert own["total"] == 1 and own["items"][0]["employee_id"] == org.sales_a1
    assert (await get(org.sales_a1, employee_id=org.sales_a1)).json()["total"] == 1
    assert_problem(await get(org.sales_a1, employee_id=org.sales_a2), 403, "forbidden-scope")
    assert (await get(org.sales_b1)).json() == {"items": [], "total": 0, "limit": 50,
                                                "offset": 0}


async def test_list_is_paginated_newest_first(api: Api) -> None:
    a1 = api.org.sales_a1
    for month in (1, 2, 3):
        r = await post(api, plan(a1, f"2026-0{month}-01T00:00:00+08:00", base_rate_bp=month))
        assert r.status_code == 201, r.text
    headers = await api.auth(api.org.hr_staff)
    page = (await api.http.get(URL, params={"employee_id": a1, "limit": 2, "offset": 1},
                               headers=headers)).json()
    assert page["total"] == 3 and (page["limit"], page["offset"]) == (2, 1)
    assert [p["base_rate_bp"] for p in page["items"]] == [2, 1]
    assert_problem(await api.http.get(URL, params={"limit": 0}, headers=headers), 422)
