"""HR and finance start settlement and valuation runs by hand; others may not."""

from tests.api.conftest import Api


async def test_hr_starts_a_valuation_refresh_and_sales_cannot(api: Api, fake_temporal):
    org = api.org
    r = await api.http.post("/api/v1/valuations", headers=await api.auth(org.hr_head),
                            json={"horizon_months": 6, "label": "after the reorg"})
    assert r.status_code == 202, r.text
    [attempt] = fake_temporal.attempts
    assert attempt["workflow"] == "ValuationRefreshWorkflow"
    assert attempt["id"] == r.json()["workflow_id"]
    assert attempt["arg"].horizon_months == 6 and attempt["arg"].trigger == "manual"
    r = await api.http.post("/api/v1/valuations", headers=await api.auth(org.sales_a1), json={})
    assert r.status_code == 403
    r = await api.http.get("/api/v1/valuations", headers=await api.auth(org.hr_head))
    assert r.status_code == 200 and r.json()["total"] == 0


async def test_hr_starts_a_settlement_and_a_manager_cannot(api: Api, fake_temporal):
    org = api.org
    r = await api.http.post("/api/v1/settlements", headers=await api.auth(org.hr_head),
                            json={"skip_grace": True})
    assert r.status_code == 202, r.text
    [attempt] = fake_temporal.attempts
    assert attempt["workflow"] == "CommissionSettlementWorkflow"
    assert attempt["arg"].requested_by == org.hr_head and attempt["arg"].skip_grace
    r = await api.http.post("/api/v1/settlements", headers=await api.auth(org.manager_a),
                            json={})
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
