"""GET /customers?owner_employee_id=: the owner's current customers, within the caller's scope
(api.services.directory.customer_rows leaves the scope's IN list out when the owner is one of
the owners the scope admits, and answers nothing when not)."""

from __future__ import annotations

from tests.api.conftest import Api


async def _owned(api: Api, caller: int, owner: int) -> tuple[set[int], int]:
    r = await api.http.get(f"/api/v1/customers?owner_employee_id={owner}&limit=500",
                           headers=await api.auth(caller))
    assert r.status_code == 200, r.text
    body = r.json()
    assert all(c["owner_employee_id"] == owner for c in body["items"])
    return {c["id"] for c in body["items"]}, body["total"]


async def test_owner_filter_stays_inside_the_callers_scope(api: Api) -> None:
    org = api.org
    # a manager: their team member's customers, none of another team's
    assert await _owned(api, org.manager_a, org.sales_a2) == (set(org.customers_a2),
                                                              len(org.customers_a2))
    assert await _owned(api, org.manager_a, org.sales_b1) == (set(), 0)
    # a salesperson: their own, nobody else's
    assert await _owned(api, org.sales_a1, org.sales_a1) == (set(org.customers_a1),
                                                             len(org.customers_a1))
    assert await _owned(api, org.sales_a1, org.sales_a2) == (set(), 0)
    # HR: anyone's
    assert await _owned(api, org.hr_staff, org.sales_b1) == (set(org.customers_b1),
                                                             len(org.customers_b1))


async def test_owner_filter_with_search_and_paging(api: Api) -> None:
    org = api.org
    r = await api.http.get(
        f"/api/v1/customers?owner_employee_id={org.sales_a1}&q=A1-&limit=2&offset=1",
        headers=await api.auth(org.manager_a))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == len(org.customers_a1)
    codes = [c["code"] for c in body["items"]]
    assert len(codes) == 2 and codes == sorted(codes) and all(c.startswith("A1-") for c in codes)
