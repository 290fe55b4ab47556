"""POST /api/v1/orders: single and batch, all-or-nothing, idempotent, refunds, permissions."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from domain.stages import Role
from models import AuditEvent, CommissionLine, Employee, Order, OrderKind, UserAccount
from models.audit import verify_chain
from models.order_ingest import content_hash
from tests.api.conftest import Api, assert_problem
from tests.factories import _PW_HASH

URL = "/api/v1/orders"


def add_person(api: Api, employee_no: str, role: Role) -> int:
    """An employee with a login whose only role is `role` (e.g. finance, admin)."""
    with api.sessions() as s:
        hr = s.get(Employee, api.org.hr_head)
        assert hr is not None
        e = Employee(employee_no=employee_no, name=f"{role.value} person", role=role.value,
                     org_unit_id=hr.org_unit_id, manager_id=api.org.hr_head)
        s.add(e)
        s.flush()
        assert e.id is not None
        s.add(UserAccount(username=employee_no.lower(), password_hash=_PW_HASH(),
                          employee_id=e.id, roles=[role.value]))
        api.org.usernames[e.id] = employee_no.lower()
        return e.id


def order(external_id: str, amount: Any = 10_000, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"external_id": external_id, "customer_code": "A1-000",
                            "amount_fen": amount, "currency": "CNY",
                            "booked_at": "2026-02-10T09:00:00+08:00", "product_line": "widgets"}
    body.update(fields)
    return body


def refund(external_id: str, original: str, amount: int | None = None, *,
           kind: str = "REFUND", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"external_id": external_id, "kind": kind,
                            "original_external_id": original, "currency": "CNY",
                            "booked_at": "2026-02-20T09:00:00+08:00"}
    if amount is not None:
        body["amount_fen"] = amount
    body.update(fields)
    return body


async def post(api: Api, body: Any, as_id: int | None = None) -> Any:
    headers = await api.auth(api.org.hr_staff if as_id is None else as_id)
    return await api.http.post(URL, json=body, headers=headers)


def totals(api: Api) -> dict[str, int]:
    with api.sessions() as s:
        return {
            "orders": int(s.exec(select(func.count()).select_from(Order)).one()),
            "amount": int(s.exec(select(func.coalesce(func.sum(Order.amount_fen), 0))).one()),
            "lines": int(s.exec(select(func.count()).select_from(CommissionLine)).one()),
            "commission": int(s.exec(
                select(func.coalesce(func.sum(CommissionLine.amount_fen), 0))).one()),
            "audit": int(s.exec(select(func.count()).select_from(AuditEvent)).one()),
        }


def stored(api: Api, external_id: str) -> Order:
    with api.sessions() as s:
        row = s.exec(select(Order).where(Order.external_id == external_id)).one()
        return row


# --- single and batch ----------------------------------------------------------------------------


async def test_single_order_is_stored_with_period_and_content_hash(api: Api) -> None:
    # 2026-02-28T17:30Z is March in Asia/Shanghai (DESIGN.md rule 9)
    r = await post(api, order("ERP-1", 12_345, booked_at="2026-02-28T17:30:00Z"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["created"] == 1 and body["duplicates"] == 0
    [result] = body["results"]
    assert result["status"] == "created" and result["external_id"] == "ERP-1"
    row = stored(api, "ERP-1")
    assert result["id"] == row.id
    assert row.kind == OrderKind.ORDER and row.amount_fen == 12_345
    assert row.customer_id == api.org.customers_a1[0]
    assert row.period == "2026-03" and row.currency == "CNY"
    assert row.product_line == "widgets" and row.original_order_id is None
    assert row.content_hash == content_hash({
        "external_id": "ERP-1", "kind": "ORDER", "customer_code": "A1-000",
        "amount_fen": 12_345, "currency": "CNY", "booked_at": "2026-02-28T17:30:00+00:00",
        "product_line": "widgets", "original_external_id": None})


async def test_customer_id_instead_of_code(api: Api) -> None:
    body = order("ERP-ID", customer_id=api.org.customers_b1[1])
    del body["customer_code"]
    r = await post(api, body)
    assert r.status_code == 201, r.text
    assert stored(api, "ERP-ID").customer_id == api.org.customers_b1[1]


async def test_batch_is_stored_in_order_and_audited(api: Api) -> None:
    before = totals(api)
    batch = {"orders": [order("B-1", 1_000), order("B-2", 2_000, customer_code="B1-000"),
                        refund("B-3", "B-1", 400)]}
    r = await post(api, batch)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["created"] == 3 and body["duplicates"] == 0
    assert [x["external_id"] for x in body["results"]] == ["B-1", "B-2", "B-3"]
    assert [x["index"] for x in body["results"]] == [0, 1, 2]
    after = totals(api)
    assert after["orders"] == before["orders"] + 3
    assert after["amount"] == before["amount"] + 1_000 + 2_000 - 400
    with api.sessions() as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.event_type == "ORDERS_POSTED")).one()
        assert event.actor_id == api.org.hr_staff
        assert event.detail == {"rows": 3, "created": 3, "duplicates": 0,
                                "order_ids": sorted(x["id"] for x in body["results"])}
        assert verify_chain(s)[0]


async def test_batch_is_all_or_nothing_and_lists_every_bad_row(api: Api) -> None:
    before = totals(api)
    batch = {"orders": [
        order("OK-1", 1_000),                                           # 0 fine
        order("BAD-1", customer_code="NOPE"),                           # 1 unknown customer
        order("BAD-2", booked_at="2026-02-10T09:00:00"),                # 2 naive time
        order("BAD-3", currency="USD"),                                 # 3 currency
        refund("BAD-4", "NO-SUCH-ORDER", 100),                          # 4 unknown original
        refund("OK-2", "OK-1", 600),                                    # 5 fine
        refund("BAD-5", "OK-1", 100, booked_at="2026-02-01T00:00:00Z"),  # 6 before original
        refund("BAD-6", "OK-2", 100),                                   # 7 refund of a refund
        refund("BAD-7", "OK-1", 500),                                   # 8 only 400 remain
        order("BAD-8", 0),                                              # 9 amount not > 0
        order("BAD-9", original_external_id="OK-1"),                    # 10 ORDER + original
    ]}
    r = await post(api, batch)
    problem = assert_problem(r, 422, "orders-invalid")
    got = {(e["index"], e["external_id"], e["field"], e["code"]) for e in problem["errors"]}
    assert got == {
        (1, "BAD-1", "customer_code", "UNKNOWN_CUSTOMER"),
        (2, "BAD-2", "booked_at", "NAIVE_DATETIME"),
        (3, "BAD-3", "currency", "UNSUPPORTED_CURRENCY"),
        (4, "BAD-4", "original_external_id", "UNKNOWN_ORIGINAL"),
        (6, "BAD-5", "booked_at", "BEFORE_ORIGINAL"),
        (7, "BAD-6", "original_external_id", "REFUND_OF_REFUND"),
        (8, "BAD-7", "amount_fen", "EXCEEDS_REFUNDABLE"),
        (9, "BAD-8", "amount_fen", "NOT_POSITIVE"),
        (10, "BAD-9", "original_external_id", "FORBIDDEN"),
    }
    assert all(e["message"] for e in problem["errors"])
    assert "9 of 11 rows" in problem["detail"]
    assert totals(api) == before  # nothing written, not even an audit event


async def test_field_shape_errors_are_listed_per_row(api: Api) -> None:
    batch = {"orders": [
        {"kind": "ORDER", "customer_code": "A1-000", "amount_fen": 1, "currency": "CNY",
         "booked_at": "2026-02-10T09:00:00Z"},                             # no external_id
        order("S-1", amount="12.5"),                                       # not an integer
        order("S-2", customer_id=api.org.customers_a1[1]),                 # both customers
        order("S-3", kind="GIFT"),                                         # kind
        order("S-4", colour="red"),                                        # unknown field
        order("x" * 101),                                                  # id too long
        refund("S-5", "", 100),                                            # original missing
        "not an object",
    ]}
    r = await post(api, batch)
    problem = assert_problem(r, 422, "orders-invalid")
    got = {(e["index"], e["field"], e["code"]) for e in problem["errors"]}
    assert got == {
        (0, "external_id", "REQUIRED"),
        (1, "amount_fen", "NOT_INTEGER"),
        (2, "customer_code", "CUSTOMER_AMBIGUOUS"),
        (3, "kind", "INVALID_KIND"),
        (4, "colour", "UNKNOWN_FIELD"),
        (5, "external_id", "TOO_LONG"),
        (6, "original_external_id", "REQUIRED"),
        (7, None, "NOT_AN_OBJECT"),
    }


@pytest.mark.parametrize("payload, code", [
    ([{"external_id": "X"}], "BATCH_SHAPE"),
    ({"orders": []}, "BATCH_EMPTY"),
    ({"orders": [order("X")], "extra": 1}, "BATCH_SHAPE"),
    ({"orders": [order(f"X-{i}") for i in range(1001)]}, "BATCH_TOO_LARGE"),
])
async def test_bad_batch_shape_is_422(api: Api, payload: Any, code: str) -> None:
    before = totals(api)
    problem = assert_problem(await post(api, payload), 422, "orders-invalid")
    assert [e["code"] for e in problem["errors"]] == [code]
    assert totals(api) == before


async def test_a_batch_of_1000_is_accepted(api: Api) -> None:
    r = await post(api, {"orders": [order(f"K-{i}", 100 + i) for i in range(1000)]})
    assert r.status_code == 201, r.text
    assert r.json()["created"] == 1000


# --- idempotency ---------------------------------------------------------------------------------


async def test_same_content_again_is_a_duplicate_no_op(api: Api) -> None:
    first = await post(api, order("D-1", 5_000))
    assert first.status_code == 201
    before = totals(api)
    # the same content, spelled differently: another offset for the same instant, customer id
    again = order("D-1", 5_000, booked_at="2026-02-10T01:00:00Z")
    del again["customer_code"]
    again["customer_id"] = api.org.customers_a1[0]
    r = await post(api, again, as_id=api.org.hr_head)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["created"] == 0 and body["duplicates"] == 1
    assert body["results"] == [{"index": 0, "line": None, "id": first.json()["results"][0]["id"],
                                "external_id": "D-1", "status": "duplicate"}]
    assert totals(api) == before  # no order, no line, no audit event


async def test_same_external_id_other_content_is_409_and_nothing_written(api: Api) -> None:
    assert (await post(api, order("C-1", 5_000))).status_code == 201
    before = totals(api)
    r = await post(api, {"orders": [order("C-NEW", 700), order("C-1", 5_001)]})
    problem = assert_problem(r, 409, "order-conflict")
    assert problem["conflicts"] == ["C-1"]
    assert [(e["index"], e["code"]) for e in problem["errors"]] == [(1, "EXTERNAL_ID_CONFLICT")]
    assert "C-1" in problem["detail"]
    assert totals(api) == before
    with api.sessions() as s:
        assert s.exec(select(Order).where(Order.external_id == "C-NEW")).first() is None


async def test_seeded_order_without_hash_conflicts(api: Api) -> None:
    problem = assert_problem(await post(api, order("O-A1-0")), 409, "order-conflict")
    assert problem["conflicts"] == ["O-A1-0"]


async def test_conflict_together_with_invalid_rows_is_422_listing_both(api: Api) -> None:
    assert (await post(api, order("M-1", 5_000))).status_code == 201
    r = await post(api, {"orders": [order("M-1", 1), order("M-2", customer_code="NOPE")]})
    problem = assert_problem(r, 422, "orders-invalid")
    assert problem["conflicts"] == ["M-1"]
    assert {e["code"] for e in problem["errors"]} == {"EXTERNAL_ID_CONFLICT", "UNKNOWN_CUSTOMER"}


async def test_same_id_twice_in_one_batch(api: Api) -> None:
    same = await post(api, {"orders": [order("T-1", 10), order("T-1", 10)]})
    assert same.status_code == 201, same.text
    body = same.json()
    assert (body["created"], body["duplicates"]) == (1, 1)
    assert body["results"][0]["id"] == body["results"][1]["id"]
    other = await post(api, {"orders": [order("T-2", 10), order("T-2", 11)]})
    problem = assert_problem(other, 422, "orders-invalid")
    assert [(e["index"], e["code"]) for e in problem["errors"]] == [(1, "DUPLICATE_IN_BATCH")]


async def test_posting_the_same_batch_twice_leaves_identical_totals(api: Api) -> None:
    org = api.org
    hr = await api.auth(org.hr_staff)
    for employee in (org.sales_a1, org.sales_a2, org.sales_b1):  # so commission is not zero
        r = await api.http.post("/api/v1/commission-plans", headers=hr, json={
            "employee_id": employee, "effective_from": "2025-01-01T00:00:00+08:00",
            "base_rate_bp": 300, "inherited_rate_bp": 200})
        assert r.status_code == 201, r.text
    batch = {"orders": [
        order("R-1", 100_000, customer_code="A1-000"),
        order("R-2", 250_000, customer_code="A2-001", booked_at="2026-01-31T23:59:59+08:00"),
        order("R-3", 80_000, customer_code="B1-000", product_line=None),
        refund("R-4", "R-1", 30_000),
        refund("R-5", "R-2", kind="CANCELLATION"),
        refund("R-6", "O-A1-1", 5_000),  # refund of an order stored before
    ]}
    first = await post(api, batch)
    assert first.status_code == 201, first.text
    assert first.json()["created"] == 6
    after_first = totals(api)
    assert after_first["lines"] > 0 and after_first["commission"] > 0
    second = await post(api, batch, as_id=org.hr_head)
    assert second.status_code == 200, second.text
    assert (second.json()["created"], second.json()["duplicates"]) == (0, 6)
    assert [x["id"] for x in second.json()["results"]] == \
        [x["id"] for x in first.json()["results"]]
    after_second = totals(api)
    # identical orders, amounts, commission lines and commission totals; no second audit event
    assert after_second == after_first


# --- refunds and cancellations ---------------------------------------------------------------


async def test_partial_and_full_refunds(api: Api) -> None:
    assert (await post(api, order("P-1", 10_000))).status_code == 201
    r = await post(api, refund("P-1-R1", "P-1", 3_000))
    assert r.status_code == 201, r.text
    partial = stored(api, "P-1-R1")
    original = stored(api, "P-1")
    assert partial.kind == OrderKind.REFUND and partial.amount_fen == -3_000
    assert partial.original_order_id == original.id
    assert partial.customer_id == original.customer_id  # taken from the original
    # the remaining 7000 in full
    assert (await post(api, refund("P-1-R2", "P-1", 7_000))).status_code == 201
    # nothing remains
    problem = assert_problem(await post(api, refund("P-1-R3", "P-1", 1)), 422)
    assert [e["code"] for e in problem["errors"]] == ["NOTHING_REMAINING"]


async def test_over_refund_is_rejected_counting_earlier_rows_of_the_batch(api: Api) -> None:
    assert (await post(api, order("Q-1", 10_000))).status_code == 201
    assert (await post(api, refund("Q-1-R1", "Q-1", 4_000))).status_code == 201
    before = totals(api)
    problem = assert_problem(await post(api, refund("Q-1-R2", "Q-1", 6_001)), 422)
    assert [(e["field"], e["code"]) for e in problem["errors"]] == \
        [("amount_fen", "EXCEEDS_REFUNDABLE")]
    assert "6000" in problem["errors"][0]["message"]
    batch = {"orders": [refund("Q-1-R3", "Q-1", 5_000), refund("Q-1-R4", "Q-1", 1_001)]}
    problem = assert_problem(await post(api, batch), 422)
    assert [(e["index"], e["code"]) for e in problem["errors"]] == [(1, "EXCEEDS_REFUNDABLE")]
    assert totals(api) == before


async def test_refund_of_unknown_original(api: Api) -> None:
    problem = assert_problem(await post(api, refund("U-R", "NOT-THERE", 10)), 422)
    assert [(e["field"], e["code"]) for e in problem["errors"]] == \
        [("original_external_id", "UNKNOWN_ORIGINAL")]


async def test_refund_listed_before_its_original_in_the_batch(api: Api) -> None:
    batch = {"orders": [refund("L-R", "L-1", 10), order("L-1", 100)]}
    problem = assert_problem(await post(api, batch), 422)
    assert [(e["index"], e["code"]) for e in problem["errors"]] == [(0, "ORIGINAL_AFTER_REFUND")]


async def test_refund_must_keep_the_original_customer(api: Api) -> None:
    assert (await post(api, order("CM-1", 100))).status_code == 201
    problem = assert_problem(
        await post(api, refund("CM-R", "CM-1", 10, customer_code="B1-000")), 422)
    assert [(e["field"], e["code"]) for e in problem["errors"]] == \
        [("customer_code", "CUSTOMER_MISMATCH")]
    ok = await post(api, refund("CM-R", "CM-1", 10, customer_code="A1-000"))
    assert ok.status_code == 201, ok.text


async def test_cancellation_defaults_to_the_remaining_amount(api: Api) -> None:
    batch = {"orders": [order("X-1", 10_000), refund("X-1-R", "X-1", 2_500),
                        refund("X-1-C", "X-1", kind="CANCELLATION")]}
    r = await post(api, batch)
    assert r.status_code == 201, r.text
    cancellation = stored(api, "X-1-C")
    assert cancellation.kind == OrderKind.CANCELLATION
    assert cancellation.amount_fen == -7_500
    # a retry of the amount-less cancellation is still a duplicate, not "nothing remaining"
    again = await post(api, refund("X-1-C", "X-1", kind="CANCELLATION"))
    assert again.status_code == 200 and again.json()["duplicates"] == 1
    # and a partial cancellation with an amount is allowed while something remains
    assert (await post(api, order("X-2", 900))).status_code == 201
    assert (await post(api, refund("X-2-C", "X-2", 300, kind="CANCELLATION"))).status_code == 201
    assert stored(api, "X-2-C").amount_fen == -300


async def test_naive_datetime_is_rejected(api: Api) -> None:
    before = totals(api)
    problem = assert_problem(await post(api, order("N-1", booked_at="2026-02-10T09:00:00")), 422)
    assert [(e["field"], e["code"]) for e in problem["errors"]] == \
        [("booked_at", "NAIVE_DATETIME")]
    problem = assert_problem(await post(api, order("N-2", booked_at="yesterday")), 422)
    assert [e["code"] for e in problem["errors"]] == ["INVALID_DATETIME"]
    assert totals(api) == before


# --- recompute and permissions -----------------------------------------------------------------


async def test_recompute_runs_for_the_new_orders_only(api: Api,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import models.order_ingest as ingest_module

    calls: list[list[int]] = []

    def recompute(session: Any, order_ids: list[int]) -> int:
        # inside the insert's transaction: the new rows are visible
        assert session.exec(select(func.count()).select_from(Order).where(
            col(Order.id).in_(order_ids))).one() == len(order_ids)
        calls.append(list(order_ids))
        return 7

    monkeypatch.setattr(ingest_module, "recompute_for_orders", recompute)
    assert (await post(api, order("E-1"))).status_code == 201
    r = await post(api, {"orders": [order("E-1"), order("E-2"), refund("E-3", "E-1", 5)]})
    assert r.status_code == 201 and r.json()["recomputed_lines"] == 7
    ids = {x["external_id"]: x["id"] for x in r.json()["results"]}
    assert calls[1] == sorted([ids["E-2"], ids["E-3"]])
    assert (await post(api, order("E-2"))).status_code == 200
    assert len(calls) == 2  # a duplicate-only batch recomputes nothing


async def test_permissions(api: Api) -> None:
    org = api.org
    finance = add_person(api, "E400", Role.FINANCE)
    admin = add_person(api, "E401", Role.ADMIN)
    for who in (org.sales_a1, org.manager_a, org.director, org.legal_head):
        problem = assert_problem(await post(api, order(f"P-{who}"), as_id=who), 403,
                                 "forbidden-role")
        assert "finance" in problem["detail"]
    for i, who in enumerate((org.hr_staff, finance, admin)):
        r = await post(api, order(f"OKP-{i}"), as_id=who)
        assert r.status_code == 201, r.text
    unauthenticated = await api.http.post(URL, json=order("ANON"))
    assert_problem(unauthenticated, 401)
    with api.sessions() as s:
        assert s.exec(select(Order).where(Order.external_id.like("P-%"))).first() is None  # type: ignore[attr-defined]
