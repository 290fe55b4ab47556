"""GET /api/v1/statements: list, detail, CSV, payroll export, scopes, audit, validation.

The book (amounts in fen; plans from 2020: Li (a1) base 5.00% / inherited 2.00%, Wang (a2)
3.00% / 2.50%, Zhao (b1) 4.00% / 3.00%):

* December 2025: the factory's orders (a1 10,000,000; a2 3,000,000; b1 3,000,000), owners'
  base rate. Finalised.
* Customer A1-000 moves from a1 to b1 at 2026-01-15T00:00Z, protected until 2026-03-15T00:00Z
  with a1 keeping a 40% share.
* January 2026 (finalised): O1 100,000 before the move (a1 5,000); O2 200,000 inside protection
  (a1 500bp x 40% = 4,000; b1 300bp x 60% = 3,600); O3 50,010 on A1-001 (a1 2,500.5 -> 2,501,
  half-up); O4 10,000 on B1-000 (b1 400).
* After January is closed: a late January order O5 300,000 inside protection (adjustments in
  February: a1 6,000, b1 5,400, origin 2026-01); O6 100,000 in February (a1 2,000, b1 1,800);
  a refund of 50,000 of O2 in February (clawback a1 -1,000, b1 -900); O7 100,000 in April,
  after protection (b1 inherited 300bp = 3,000).
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import col, select

from domain.policy import default_terms
from domain.stages import Role
from models import (
    Assignment,
    AssignmentSource,
    AuditEvent,
    CommissionPlan,
    Customer,
    Employee,
    Order,
    OrderKind,
    ReassignmentRequest,
    Statement,
    UserAccount,
)
from models.audit import verify_chain
from models.commission_engine import finalize_period, recompute_since, refresh_statements
from tests.api.conftest import Api, assert_problem
from tests.factories import _PW_HASH, fast_policy_rules

URL = "/api/v1/statements"
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
EFFECTIVE = datetime(2026, 1, 15, tzinfo=UTC)
PROTECTION_END = datetime(2026, 3, 15, tzinfo=UTC)
CHINESE_CUSTOMER = "华东贸易有限公司"
CHINESE_NAME = "李明"
FORMULA_CUSTOMER = "=1+1 Trading"
BOM = b"\xef\xbb\xbf"


@dataclass
class Book:
    a1: int
    a2: int
    b1: int
    moved: int  # customer A1-000
    other: int  # customer A1-001
    request_id: int
    orders: dict[str, int]


def _order(s: Any, external_id: str, customer: int, amount: int, at: datetime,
           original: int | None = None) -> int:
    o = Order(external_id=external_id, customer_id=customer, amount_fen=amount, booked_at=at,
              kind=OrderKind.REFUND if original else OrderKind.ORDER, original_order_id=original)
    s.add(o)
    s.flush()
    assert o.id is not None
    return o.id


def build_book(api: Api) -> Book:
    org = api.org
    a1, a2, b1 = org.sales_a1, org.sales_a2, org.sales_b1
    moved, other = org.customers_a1[0], org.customers_a1[1]
    ids: dict[str, int] = {}
    with api.sessions() as s:
        for employee, base, inherited in ((a1, 500, 200), (a2, 300, 250), (b1, 400, 300)):
            s.add(CommissionPlan(employee_id=employee, effective_from=EPOCH,
                                 base_rate_bp=base, inherited_rate_bp=inherited))
        s.get(Employee, a1).name = CHINESE_NAME
        s.get(Customer, moved).name = CHINESE_CUSTOMER
        s.get(Customer, other).name = FORMULA_CUSTOMER
        req = ReassignmentRequest(
            idempotency_key=str(uuid.uuid4()), payload_hash="0" * 64,
            requester_id=org.manager_a, from_employee_id=a1, to_employee_id=b1,
            customer_ids=[moved], reason="TERRITORY_REALIGNMENT",
            policy_version_id=org.policy_version_id,
            terms=default_terms(fast_policy_rules()).model_dump(mode="json"),
            stage="PROTECTION", effective_at=EFFECTIVE, protection_end=PROTECTION_END,
            protection_share_bp=4_000)
        s.add(req)
        s.flush()
        assert req.id is not None
        span = s.exec(select(Assignment).where(Assignment.customer_id == moved,
                                               col(Assignment.end_at).is_(None))).one()
        span.end_at = EFFECTIVE
        s.add(span)
        s.add(Assignment(customer_id=moved, employee_id=b1, start_at=EFFECTIVE,
                         source=AssignmentSource.REASSIGNMENT, request_id=req.id))
        s.flush()
        ids["O1"] = _order(s, "S-O1", moved, 100_000, datetime(2026, 1, 5, 4, tzinfo=UTC))
        ids["O2"] = _order(s, "S-O2", moved, 200_000, datetime(2026, 1, 20, 4, tzinfo=UTC))
        ids["O3"] = _order(s, "S-O3", other, 50_010, datetime(2026, 1, 10, 4, tzinfo=UTC))
        ids["O4"] = _order(s, "S-O4", org.customers_b1[0], 10_000,
                           datetime(2026, 1, 12, 4, tzinfo=UTC))
        recompute_since(s, EPOCH)
        finalize_period(s, "2025-12", run_key="st-2025-12", trigger="manual")
        finalize_period(s, "2026-01", run_key="st-2026-01", trigger="manual")
        request_id = req.id
    with api.sessions() as s:
        ids["O5"] = _order(s, "S-O5-LATE", moved, 300_000, datetime(2026, 1, 25, 4, tzinfo=UTC))
        ids["O6"] = _order(s, "S-O6", moved, 100_000, datetime(2026, 2, 10, 4, tzinfo=UTC))
        ids["R1"] = _order(s, "S-R1", moved, -50_000, datetime(2026, 2, 12, 4, tzinfo=UTC),
                           original=ids["O2"])
        ids["O7"] = _order(s, "S-O7", moved, 100_000, datetime(2026, 4, 10, 4, tzinfo=UTC))
        recompute_since(s, EPOCH)
        refresh_statements(s, "2026-02", final=False)  # a DRAFT statement row: still DRAFT
    return Book(a1=a1, a2=a2, b1=b1, moved=moved, other=other, request_id=request_id,
                orders=ids)


def add_person(api: Api, employee_no: str, roles: list[Role]) -> int:
    """An HR-unit employee with a login holding exactly `roles`."""
    with api.sessions() as s:
        hr = s.get(Employee, api.org.hr_head)
        assert hr is not None
        e = Employee(employee_no=employee_no, name=f"{employee_no} person",
                     role=roles[0].value, org_unit_id=hr.org_unit_id,
                     manager_id=api.org.hr_head)
        s.add(e)
        s.flush()
        assert e.id is not None
        s.add(UserAccount(username=employee_no.lower(), password_hash=_PW_HASH(),
                          employee_id=e.id, roles=[r.value for r in roles]))
        api.org.usernames[e.id] = employee_no.lower()
        return e.id


@pytest.fixture
def book(api: Api) -> Book:
    return build_book(api)


async def get(api: Api, path: str, as_id: int, **params: Any) -> Any:
    return await api.http.get(URL + path, params=params, headers=await api.auth(as_id))


def keys(page: dict[str, Any]) -> list[tuple[int, str]]:
    return [(i["employee_id"], i["period"]) for i in page["items"]]


def events(api: Api, event_type: str) -> list[AuditEvent]:
    with api.sessions() as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.event_type == event_type)
                           .order_by(col(AuditEvent.chain_index))).all())


def parse_csv(response: Any) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.content.startswith(BOM)
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


# --- list ------------------------------------------------------------------------------------


async def test_list_totals_to_the_fen_newest_first(api: Api, book: Book) -> None:
    r = await get(api, "", api.org.hr_staff)
    assert r.status_code == 200, r.text
    page = r.json()
    assert (page["total"], page["limit"], page["offset"]) == (8, 50, 0)
    a1, a2, b1 = book.a1, book.a2, book.b1
    assert keys(page) == [(b1, "2026-04"), (a1, "2026-02"), (b1, "2026-02"), (a1, "2026-01"),
                          (b1, "2026-01"), (a1, "2025-12"), (a2, "2025-12"), (b1, "2025-12")]
    figures = {(i["employee_id"], i["period"]): (
        i["status"], i["total_fen"], i["line_count"], i["protection_income_fen"],
        i["adjustment_fen"]) for i in page["items"]}
    assert figures == {
        (b1, "2026-04"): ("DRAFT", 3_000, 1, 0, 0),
        (a1, "2026-02"): ("DRAFT", 7_000, 3, 7_000, 6_000),
        (b1, "2026-02"): ("DRAFT", 6_300, 3, 0, 5_400),
        (a1, "2026-01"): ("FINAL", 11_501, 3, 4_000, 0),
        (b1, "2026-01"): ("FINAL", 4_000, 2, 0, 0),
        (a1, "2025-12"): ("FINAL", 500_000, 4, 0, 0),
        (a2, "2025-12"): ("FINAL", 90_000, 2, 0, 0),
        (b1, "2025-12"): ("FINAL", 120_000, 2, 0, 0),
    }
    for item in page["items"]:
        assert (item["finalized_at"] is not None) == (item["status"] == "FINAL")
    # closed months never change: the aggregate equals the frozen statement, to the fen
    with api.sessions() as s:
        frozen = {(x.employee_id, x.period): (x.status, x.total_fen, x.line_count)
                  for x in s.exec(select(Statement)).all()}
    finals = [i for i in page["items"] if i["status"] == "FINAL"]
    assert len(finals) == 5
    for item in finals:
        assert frozen[(item["employee_id"], item["period"])] == (
            "FINAL", item["total_fen"], item["line_count"])
    assert frozen[(a1, "2026-02")][0] == "DRAFT"


async def test_list_filters_and_pages(api: Api, book: Book) -> None:
    hr = api.org.hr_staff

    async def page(**params: Any) -> dict[str, Any]:
        r = await get(api, "", hr, **params)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    p = await page(limit=3, offset=2)
    assert (p["total"], p["limit"], p["offset"]) == (8, 3, 2)
    assert keys(p) == [(book.b1, "2026-02"), (book.a1, "2026-01"), (book.b1, "2026-01")]
    assert keys(await page(period="2026-02")) == [(book.a1, "2026-02"), (book.b1, "2026-02")]
    assert (await page(status="FINAL"))["total"] == 5
    assert keys(await page(status="DRAFT")) == [(book.b1, "2026-04"), (book.a1, "2026-02"),
                                                (book.b1, "2026-02")]
    assert keys(await page(employee_id=book.b1, status="DRAFT")) == [(book.b1, "2026-04"),
                                                                     (book.b1, "2026-02")]
    assert (await page(period="2026-03"))["items"] == []
    assert_problem(await get(api, "", hr, status="OPEN"), 422, "validation-failed")
    assert_problem(await get(api, "", hr, limit=0), 422, "validation-failed")


# --- detail ----------------------------------------------------------------------------------


async def test_detail_groups_by_customer_and_rule_and_names_adjustment_origins(
        api: Api, book: Book) -> None:
    r = await get(api, f"/{book.a1}/2026-02", api.org.hr_staff)
    assert r.status_code == 200, r.text
    st = r.json()
    assert (st["employee_id"], st["period"], st["status"], st["finalized_at"]) == (
        book.a1, "2026-02", "DRAFT", None)
    assert (st["employee_no"], st["employee_name"]) == ("E100", CHINESE_NAME)
    assert (st["total_fen"], st["line_count"], st["protection_income_fen"],
            st["adjustment_fen"]) == (7_000, 3, 7_000, 6_000)
    assert st["by_customer"] == [{"customer_id": book.moved, "customer_code": "A1-000",
                                  "customer_name": CHINESE_CUSTOMER, "total_fen": 7_000,
                                  "lines": 3}]
    assert st["by_rule"] == [
        {"rule": "R2_PROTECTION_ORIGINAL", "total_fen": 8_000, "lines": 2},
        {"rule": "R4_CLAWBACK:R2_PROTECTION_ORIGINAL", "total_fen": -1_000, "lines": 1},
    ]
    o = book.orders
    common = {"customer_id": book.moved, "customer_code": "A1-000", "role": "PROTECTED_ORIGINAL",
              "rate_bp": 500, "share_bp": 4_000, "request_id": book.request_id}
    assert st["lines"] == [
        # the late January order: an adjustment in February that names its origin
        {**common, "order_id": o["O5"], "order_external_id": "S-O5-LATE",
         "rule": "R2_PROTECTION_ORIGINAL", "base_amount_fen": 300_000, "amount_fen": 6_000,
         "origin_period": "2026-01", "is_adjustment": True},
        {**common, "order_id": o["O6"], "order_external_id": "S-O6",
         "rule": "R2_PROTECTION_ORIGINAL", "base_amount_fen": 100_000, "amount_fen": 2_000,
         "origin_period": "2026-02", "is_adjustment": False},
        {**common, "order_id": o["R1"], "order_external_id": "S-R1",
         "rule": "R4_CLAWBACK:R2_PROTECTION_ORIGINAL", "base_amount_fen": -50_000,
         "amount_fen": -1_000, "origin_period": "2026-02", "is_adjustment": False},
    ]


async def test_detail_final_month_and_the_receiving_side(api: Api, book: Book) -> None:
    hr = api.org.hr_staff
    jan = (await get(api, f"/{book.a1}/2026-01", hr)).json()
    assert (jan["status"], jan["total_fen"], jan["protection_income_fen"]) == (
        "FINAL", 11_501, 4_000)
    assert jan["finalized_at"] is not None
    assert jan["by_customer"] == [
        {"customer_id": book.moved, "customer_code": "A1-000", "customer_name": CHINESE_CUSTOMER,
         "total_fen": 9_000, "lines": 2},
        {"customer_id": book.other, "customer_code": "A1-001", "customer_name": FORMULA_CUSTOMER,
         "total_fen": 2_501, "lines": 1},
    ]
    assert jan["by_rule"] == [{"rule": "R1_OWNER_BASE", "total_fen": 7_501, "lines": 2},
                              {"rule": "R2_PROTECTION_ORIGINAL", "total_fen": 4_000, "lines": 1}]
    assert [(x["order_external_id"], x["amount_fen"]) for x in jan["lines"]] == [
        ("S-O1", 5_000), ("S-O2", 4_000), ("S-O3", 2_501)]

    feb = (await get(api, f"/{book.b1}/2026-02", hr)).json()
    assert (feb["total_fen"], feb["protection_income_fen"], feb["adjustment_fen"]) == (
        6_300, 0, 5_400)
    assert feb["by_rule"] == [
        {"rule": "R2_PROTECTION_INHERITED", "total_fen": 7_200, "lines": 2},
        {"rule": "R4_CLAWBACK:R2_PROTECTION_INHERITED", "total_fen": -900, "lines": 1},
    ]
    adjustment = [x for x in feb["lines"] if x["is_adjustment"]]
    assert [(x["order_id"], x["origin_period"], x["amount_fen"], x["role"], x["share_bp"])
            for x in adjustment] == [(book.orders["O5"], "2026-01", 5_400, "INHERITED_OWNER",
                                      6_000)]
    apr = (await get(api, f"/{book.b1}/2026-04", hr)).json()
    assert apr["by_rule"] == [{"rule": "R3_OWNER_INHERITED", "total_fen": 3_000, "lines": 1}]
    # no lines that month: 404
    assert_problem(await get(api, f"/{book.a1}/2026-04", hr), 404, "statement-not-found")
    assert_problem(await get(api, "/999999/2026-02", hr), 404, "statement-not-found")


# --- CSV -------------------------------------------------------------------------------------


async def test_statement_csv(api: Api, book: Book) -> None:
    r = await get(api, f"/{book.a1}/2026-02.csv", api.org.hr_staff)
    rows = parse_csv(r)
    assert r.headers["content-disposition"] == (
        'attachment; filename="commission-statement-E100-2026-02.csv"')
    header, *lines, total = rows
    assert header == ["order_id", "order_external_id", "customer_id", "customer_code",
                      "customer_name", "role", "rule", "rate_bp", "share_bp", "base_amount_fen",
                      "base_amount_yuan", "amount_fen", "amount_yuan", "origin_period",
                      "is_adjustment", "request_id"]
    as_dicts = [dict(zip(header, x, strict=True)) for x in lines]
    assert [(d["order_external_id"], d["customer_name"], d["amount_fen"], d["amount_yuan"],
             d["base_amount_yuan"], d["origin_period"], d["is_adjustment"]) for d in as_dicts] == [
        ("S-O5-LATE", CHINESE_CUSTOMER, "6000", "60.00", "3000.00", "2026-01", "true"),
        ("S-O6", CHINESE_CUSTOMER, "2000", "20.00", "1000.00", "2026-02", "false"),
        ("S-R1", CHINESE_CUSTOMER, "-1000", "-10.00", "-500.00", "2026-02", "false"),
    ]
    assert all(d["request_id"] == str(book.request_id) for d in as_dicts)
    assert total[0] == "TOTAL" and len(total) == len(header)
    assert (total[header.index("amount_fen")], total[header.index("amount_yuan")]) == (
        "7000", "70.00")

    jan = parse_csv(await get(api, f"/{book.a1}/2026-01.csv", api.org.hr_staff))
    by_order = {x[1]: x for x in jan[1:-1]}
    assert by_order["S-O3"][4] == "'" + FORMULA_CUSTOMER  # not run as a formula
    assert (by_order["S-O3"][11], by_order["S-O3"][12]) == ("2501", "25.01")
    assert jan[-1][11:13] == ["11501", "115.01"]
    assert_problem(await get(api, f"/{book.b1}/2026-01.csv", book.a1), 404)


async def test_payroll_export(api: Api, book: Book) -> None:
    finance = add_person(api, "E400", [Role.FINANCE])
    r = await get(api, "/export.csv", finance, period="2026-02")
    header, *rows = parse_csv(r)
    assert r.headers["content-disposition"] == (
        'attachment; filename="commission-statements-2026-02.csv"')
    assert header == ["employee_id", "employee_no", "name", "period", "status", "total_fen",
                      "total_yuan", "protection_income_fen", "protection_income_yuan",
                      "adjustment_fen", "adjustment_yuan", "line_count"]
    assert rows == [
        [str(book.a1), "E100", CHINESE_NAME, "2026-02", "DRAFT", "7000", "70.00", "7000",
         "70.00", "6000", "60.00", "3"],
        [str(book.b1), "E102", "Zhao Sales", "2026-02", "DRAFT", "6300", "63.00", "0", "0.00",
         "5400", "54.00", "3"],
    ]
    _, *dec = parse_csv(await get(api, "/export.csv", finance, period="2025-12"))
    assert [(x[1], x[4], x[5], x[6]) for x in dec] == [
        ("E100", "FINAL", "500000", "5000.00"), ("E101", "FINAL", "90000", "900.00"),
        ("E102", "FINAL", "120000", "1200.00")]
    # the export honours the caller's scope too
    _, *team = parse_csv(await get(api, "/export.csv", api.org.manager_a, period="2025-12"))
    assert [x[1] for x in team] == ["E100", "E101"]
    _, *own = parse_csv(await get(api, "/export.csv", book.b1, period="2025-12"))
    assert [x[1] for x in own] == ["E102"]
    assert parse_csv(await get(api, "/export.csv", finance, period="2026-03")) == [header]


# --- scopes ----------------------------------------------------------------------------------


async def test_scopes(api: Api, book: Book) -> None:
    org = api.org
    finance = add_person(api, "E400", [Role.FINANCE])
    admin = add_person(api, "E401", [Role.ADMIN])
    admin_finance = add_person(api, "E402", [Role.ADMIN, Role.FINANCE])
    everyone = {book.a1, book.a2, book.b1}

    async def visible(as_id: int) -> set[int]:
        r = await get(api, "", as_id, limit=200)
        assert r.status_code == 200, r.text
        return {i["employee_id"] for i in r.json()["items"]}

    expected = {
        org.sales_a1: {book.a1},
        org.sales_b1: {book.b1},
        org.manager_a: {book.a1, book.a2},
        org.manager_b: {book.b1},
        org.director: everyone,
        org.ceo: everyone,
        org.hr_staff: everyone,
        finance: everyone,
        admin_finance: everyone,
    }
    for who, employees in expected.items():
        assert await visible(who) == employees, org.usernames[who]
        for employee in everyone:
            r = await get(api, f"/{employee}/2025-12", who)
            if employee in employees:
                assert r.status_code == 200, (org.usernames[who], r.text)
            else:  # out of scope looks exactly like absent: 404, not 403
                assert_problem(r, 404, "statement-not-found")
            r = await get(api, f"/{employee}/2025-12.csv", who)
            assert r.status_code == (200 if employee in employees else 404)
    # admin (without finance) and legal hold no role that reads statements at all
    for who in (admin, org.legal_head):
        assert_problem(await get(api, "", who), 403, "forbidden-role")
        assert_problem(await get(api, f"/{book.a1}/2025-12", who), 403, "forbidden-role")
    # a filter for someone out of scope finds nothing rather than an error
    r = await get(api, "", org.sales_a1, employee_id=book.b1)
    assert r.json()["items"] == [] and r.json()["total"] == 0
    assert_problem(await api.http.get(URL), 401)
    assert_problem(await api.http.get(f"{URL}/{book.a1}/2026-02"), 401)
    assert_problem(await api.http.get(f"{URL}/export.csv", params={"period": "2026-02"}), 401)


# --- audit -----------------------------------------------------------------------------------


async def test_every_read_is_audited_without_amounts(api: Api, book: Book) -> None:
    org = api.org
    assert events(api, "STATEMENT_READ") == events(api, "STATEMENT_EXPORTED") == []
    await get(api, "", org.sales_a1)  # the list is not a statement read
    assert (await get(api, f"/{book.a1}/2026-02", org.sales_a1)).status_code == 200
    assert (await get(api, f"/{book.a1}/2026-01.csv", org.manager_a)).status_code == 200
    assert (await get(api, f"/{book.b1}/2026-02", org.sales_a1)).status_code == 404
    assert (await get(api, f"/{book.a1}/2026-13", org.sales_a1)).status_code == 422
    assert (await get(api, "/export.csv", org.hr_staff, period="2025-12")).status_code == 200

    reads = events(api, "STATEMENT_READ")
    assert [(e.actor_id, e.detail) for e in reads] == [
        (org.sales_a1, {"employee_id": book.a1, "period": "2026-02", "format": "json"}),
        (org.manager_a, {"employee_id": book.a1, "period": "2026-01", "format": "csv"}),
    ]
    exports = events(api, "STATEMENT_EXPORTED")
    assert [(e.actor_id, e.detail) for e in exports] == [
        (org.hr_staff, {"period": "2025-12", "format": "csv",
                        "employee_ids": [book.a1, book.a2, book.b1]})]
    for event in reads + exports:
        assert not any("fen" in k or "total" in k or "amount" in k for k in event.detail)
    with api.sessions() as s:
        ok, broken, message = verify_chain(s)
    assert ok, (broken, message)


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("period", ["2026-13", "2026-00", "2026-2", "202602", "2026_02", "26-02x"])
async def test_period_is_validated(api: Api, period: str) -> None:
    hr = api.org.hr_staff
    a1 = api.org.sales_a1
    body = assert_problem(await get(api, f"/{a1}/{period}", hr), 422, "validation-failed")
    assert body["errors"][0]["field"] == "period"
    assert body["errors"][0]["location"] == "path"
    assert_problem(await get(api, f"/{a1}/{period}.csv", hr), 422, "validation-failed")
    body = assert_problem(await get(api, "", hr, period=period), 422, "validation-failed")
    assert body["errors"][0]["location"] == "query"
    assert_problem(await get(api, "/export.csv", hr, period=period), 422, "validation-failed")


async def test_export_needs_a_period(api: Api) -> None:
    body = assert_problem(await get(api, "/export.csv", api.org.hr_staff), 422,
                          "validation-failed")
    assert body["errors"][0]["field"] == "period"
