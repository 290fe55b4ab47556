"""Preview shows value, impact and compensation without writing; a submit stores the same."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from domain.policy import Terms
from models import CommissionPlan, Order, ReassignmentRequest
from models.assessment import reassess
from models.policy import PolicyVersion
from tests.api.conftest import Api


def _body(org) -> dict:
    return {"from_employee_id": org.sales_a1, "to_employee_id": org.sales_a2,
            "customer_ids": org.customers_a1[:2], "reason": "TERRITORY_REALIGNMENT"}


async def test_preview_writes_nothing_and_submit_stores_identical_figures(api: Api):
    org = api.org
    with api.sessions() as s:
        s.add(CommissionPlan(employee_id=org.sales_a1, effective_from=datetime(2020, 1, 1,
                             tzinfo=UTC), base_rate_bp=500, inherited_rate_bp=200))
        for i, cid in enumerate(org.customers_a1[:2]):  # recent, whatever today's date
            s.add(Order(external_id=f"PV-{i}", customer_id=cid, amount_fen=2_000_000,
                        booked_at=datetime.now(UTC) - timedelta(days=10)))
    auth = await api.auth(org.manager_a)
    before = api.counts()
    r = await api.http.post("/api/v1/reassignments/preview", headers=auth, json=_body(org))
    assert r.status_code == 200, r.text
    preview = r.json()
    assert api.counts() == before
    a = preview["assessment"]
    # no valuation has run: the run-rate fallback, trailing-12-month revenue decayed by the
    # 10 days since the last order (domain.valuation.run_rate)
    assert [c["method"] for c in a["customers"]] == ["RUN_RATE", "RUN_RATE"]
    for c in a["customers"]:
        decay = 1 - 10 / 365.2425
        assert abs(c["expected_revenue_fen"] - c["t12m_revenue_fen"] * decay) <= 1
        assert c["rate_bp"] == 500  # the base rate: A found them
    assert a["projected_commission_fen"] == sum(
        (c["expected_revenue_fen"] * 500 * 2 + 10_000) // 20_000 for c in a["customers"])
    assert a["projected_loss_fen"] > 0 and len(a["alternatives"]) >= 2
    assert preview["terms"]["compensation_fen"] == a["suggested"]["terms"]["compensation_fen"]
    assert preview["terms"]["compensation_fen"] > 0

    r = await api.http.post("/api/v1/reassignments", headers={
        **auth, "Idempotency-Key": str(uuid.uuid4())}, json=_body(org))
    assert r.status_code == 201, r.text
    with api.sessions() as s:
        stored = s.get(ReassignmentRequest, r.json()["id"])
    assert stored.assessment == a
    assert stored.terms == preview["terms"]
    assert r.json()["assessment"] == a


async def test_preview_refuses_what_submit_refuses(api: Api):
    org = api.org
    body = {**_body(org), "customer_ids": [org.customers_b1[0]]}
    r = await api.http.post("/api/v1/reassignments/preview",
                            headers=await api.auth(org.manager_a), json=body)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"][0]["code"] == "NOT_OWNER"
    r = await api.http.post("/api/v1/reassignments/preview",
                            headers=await api.auth(org.sales_a1), json=_body(org))
    assert r.status_code == 403


async def test_amended_terms_are_reassessed_from_the_same_customer_figures(api: Api):
    org = api.org
    r = await api.http.post("/api/v1/reassignments/preview",
                            headers=await api.auth(org.manager_a), json=_body(org))
    stored = r.json()["assessment"]
    with api.sessions() as s:
        rules = s.exec(select(PolicyVersion)).first().parsed_rules()
    longer = Terms(protection_period=timedelta(days=400), protection_share_bp=10_000,
                   inherited_rate_bp=200, compensation_fen=0)
    again = reassess(stored, rules, longer)
    assert again.customers == reassess(stored, rules, longer).customers
    # protection for the whole horizon at a full share: nothing is lost
    assert again.projected_loss_fen == 0


async def test_preview_uses_the_latest_finished_valuation_snapshot(api: Api):
    from models import ValuationRun, ValuationSnapshot

    org = api.org
    now = datetime.now(UTC)
    with api.sessions() as s:
        for key, finished, expected in (("old", now - timedelta(days=2), 1_000),
                                        ("new", now, 2_400_000), ("running", None, 9)):
            run = ValuationRun(run_key=key, as_of=now, horizon_months=24, finished_at=finished)
            s.add(run)
            s.flush()
            s.add(ValuationSnapshot(run_id=run.id, customer_id=org.customers_a1[0], as_of=now
                                    - timedelta(days=3 if key == "old" else 0),
                                    expected_revenue_fen=expected, method="BG_NBD_GG",
                                    tier="A"))
    body = {**_body(org), "customer_ids": [org.customers_a1[0]]}
    r = await api.http.post("/api/v1/reassignments/preview",
                            headers=await api.auth(org.manager_a), json=body)
    [c] = r.json()["assessment"]["customers"]
    # the newest finished run, its 24-month figure scaled to the policy's 12 months
    assert (c["method"], c["tier"], c["expected_revenue_fen"]) == ("BG_NBD_GG", "A", 1_200_000)
    assert r.json()["assessment"]["top_tier"] == "A"
