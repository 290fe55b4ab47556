"""POST/GET /api/v1/reorganisations without a Temporal server: the dry run, the refusals, and
the idempotent start (the workflow itself: tests/workflow/test_bulk.py and the dev-server
acceptance test)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import select

from domain.bulk import BulkInput, SplitRule
from domain.policy import default_terms
from domain.stages import Reason
from models import Customer, Employee, Reorganisation, ReorganisationRow
from models.assessment import build_assessment
from models.bulk_plan import plan_rows, rule_rows
from tests.api.conftest import Api, FakeTemporal, assert_problem

URL = "/api/v1/reorganisations"


def _codes(api: Api, ids: list[int]) -> list[str]:
    with api.sessions() as s:
        return [c.code for i in ids if (c := s.get(Customer, i)) is not None]


def _no(api: Api, employee_id: int) -> str:
    with api.sessions() as s:
        e = s.get(Employee, employee_id)
        assert e is not None
        return e.employee_no


async def _post_csv(api: Api, text: str, *, dry_run: bool, key: str | None = None,
                    reason: str = "WORKLOAD_BALANCING") -> Any:
    headers = await api.auth(api.org.hr_head)
    if key:
        headers["Idempotency-Key"] = key
    return await api.http.post(URL, headers=headers,
                               files={"file": ("moves.csv", text.encode(), "text/csv")},
                               data={"reason": reason, "dry_run": str(dry_run).lower()})


def _csv(api: Api) -> str:
    org = api.org
    a2, b1 = _no(api, org.sales_a2), _no(api, org.sales_b1)
    rows = [f"{c},{a2}" for c in _codes(api, org.customers_a1[:2])]
    rows += [f"{c},{b1}" for c in _codes(api, org.customers_a1[2:])]
    return "customer_code,new_owner_employee_no\n" + "\n".join(rows) + "\n"


def _stored(api: Api) -> tuple[int, int]:
    with api.sessions() as s:
        return (s.exec(select(func.count()).select_from(Reorganisation)).one(),
                s.exec(select(func.count()).select_from(ReorganisationRow)).one())


async def test_rule_dry_run_splits_by_value_and_writes_nothing(api: Api) -> None:
    org = api.org
    before = api.counts()
    r = await api.http.post(URL, headers=await api.auth(org.hr_head), json={
        "from_employee_id": org.sales_a1, "to_employee_ids": [org.sales_a2, org.sales_b1],
        "split": "BALANCED_VALUE", "reason": "WORKLOAD_BALANCING", "dry_run": True})
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["ok"] and plan["row_errors"] == [] and plan["batch_errors"] == []
    # orders of 1, 2, 3 and 4 M fen: 4 -> A2, 3 -> B1, 2 -> B1, 1 -> A2 (5 M each)
    assert [(g["to_employee_id"], g["customers"]) for g in plan["groups"]] == [
        (org.sales_a2, 2), (org.sales_b1, 2)]
    totals = plan["totals"]
    assert (totals["customers"], totals["groups"], totals["t12m_revenue_fen"]) == (
        4, 2, 10_000_000)
    [owner] = totals["owners"]
    assert owner["employee_id"] == org.sales_a1 and owner["requests"] == 2
    assert api.counts() == before and _stored(api) == (0, 0)


async def test_bad_uploads_are_problems_that_say_what_to_fix(api: Api) -> None:
    r = await _post_csv(api, "customer,owner\n1,2\n", dry_run=True)
    body = assert_problem(r, 422, "file-invalid")
    assert "unknown column" in body["detail"]
    r = await _post_csv(api, _csv(api), dry_run=True, reason="BECAUSE")
    assert_problem(r, 422, "validation-failed")
    r = await api.http.post(URL, headers=await api.auth(api.org.hr_head), content=b"x")
    assert_problem(r, 415, "unsupported-media-type")
    r = await _post_csv(api, _csv(api), dry_run=False)  # a start needs a key
    assert_problem(r, 400, "idempotency-key-missing")
    # a row naming the owner it does not have: the start is refused by row, nothing stored
    org = api.org
    header, *rows = _csv(api).splitlines()
    b1_customer = _codes(api, org.customers_b1)[0]
    text = "\n".join([f"{header},expected_owner_id", *(f"{row}," for row in rows),
                      f"{b1_customer},{_no(api, org.sales_a1)},{org.sales_a2}"]) + "\n"
    r = await _post_csv(api, text, dry_run=False, key="bad-1")
    body = assert_problem(r, 422, "reorganisation-invalid")
    assert body["rows"] == [6]
    assert body["errors"][0]["code"] == "EXPECTED_OWNER_MISMATCH"
    assert _stored(api) == (0, 0)


async def test_start_is_idempotent_and_reads_from_the_database_when_no_workflow_answers(
        api: Api, fake_temporal: FakeTemporal) -> None:
    r = await _post_csv(api, _csv(api), dry_run=False, key="reorg-a")
    assert r.status_code == 202, r.text
    out = r.json()
    assert out["status"] == "RUNNING" and out["progress_source"] == "database"
    assert (out["progress"]["total_groups"], out["progress"]["total_rows"]) == (2, 4)
    assert r.headers["Location"] == f"{URL}/{out['id']}"
    r = await _post_csv(api, _csv(api), dry_run=False, key="reorg-a")
    assert r.status_code == 200 and r.json()["id"] == out["id"]
    assert _stored(api) == (1, 4)
    [attempt, repeat] = fake_temporal.attempts
    assert attempt["workflow"] == "BulkReassignmentWorkflow"
    assert attempt["id"] == f"reorganisation-{out['id']}" == repeat["id"]
    inp = attempt["arg"]
    assert isinstance(inp, BulkInput) and (inp.total_groups, inp.starts_per_second) == (2, 10)

    r = await api.http.get(f"{URL}/{out['id']}", headers=await api.auth(api.org.hr_staff))
    assert r.status_code == 200 and r.json()["totals"]["customers"] == 4
    r = await api.http.get(f"{URL}/999", headers=await api.auth(api.org.hr_staff))
    assert_problem(r, 404, "not-found")
    r = await api.http.get(f"{URL}/{out['id']}", headers=await api.auth(api.org.manager_a))
    assert_problem(r, 403, "forbidden-role")


def test_group_assessments_are_the_submits_own(api: Api) -> None:
    """Values are read once per losing salesperson; each group's figures must still equal
    what its submit would store (models.assessment.build_assessment)."""
    org, now = api.org, datetime.now(UTC)
    with api.sessions() as s:
        rows = rule_rows(s, from_employee_id=org.sales_a1,
                         to_employee_ids=[org.sales_a2, org.sales_b1],
                         rule=SplitRule.ROUND_ROBIN, now=now)
        plan = plan_rows(s, rows, reason=Reason.PERFORMANCE, now=now)
        assert len(plan.groups) == 2
        for g in plan.groups:
            assert plan.assessments[g.group_no] == build_assessment(
                s, owner_id=g.from_employee_id, customer_ids=list(g.customer_ids),
                rules=plan.rules, terms=default_terms(plan.rules), as_of=now)
