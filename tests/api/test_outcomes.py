"""Post-reassignment monitoring (issue 9, acceptance 5): a seeded scenario with known numbers.

Dates are relative to today (the API reads the clock), at 04:00 UTC = noon in Asia/Shanghai,
so every order sits well inside or outside a 3-month window (89-92 days) whatever the date.
The fixture org's own orders are removed first; Team A = {A1, A2}, Team B = {B1}.

Case 1 (TERRITORY_REALIGNMENT, COMPLETED, effective E1 = today - 400 d): A1 -> A2, C1 and C2.
  C1: E1-100 d 9,999.99 (outside), E1-60 d 3,000, E1-20 d 2,000, E1+30 d 1,500,
      E1+100 d 5,000 (outside).  C2: E1-45 d 1,000, E1+10 d 800, E1+40 d refund -300.
  before 600,000 fen in 3 orders; after 150,000 + 80,000 - 30,000 = 200,000 fen in 2 orders
  (a refund is negative revenue, not an order); change -400,000/600,000 = -6667 bp: fell by
  more than the policy's 20 % -> FLAGGED.
  A1 leaves at E1+120 d: 3 months EMPLOYED, 6 months LEFT (on E1+120 d), 12 months LEFT.
  CSAT before (4, 5) = 4.50, after (2, 3) = 2.50; NPS before 9.00, after 5.00.
  A2 (receiver): from the moved customers after 200,000; own book before 400,000 (C5 at
  E1-30 d), after 200,000 + 100,000 (C5 at E1+20 d) = 300,000.
Case 2 (WORKLOAD_BALANCING, COMPLETED, E2 = today - 200 d): B1 -> A2, C3.
  C3: E2-50 d 2,000, E2-10 d 1,000, E2+15 d 1,500, E2+70 d 1,200.
  before 300,000 (2 orders), after 270,000 (2 orders), change -1000 bp: not flagged.
  B1 stays: 3 and 6 months EMPLOYED, 12 months NOT_YET_KNOWN. CSAT 3.00 -> 4.00.
  A2: from moved 270,000; own book before 0, after 270,000.
Case 3 (TERRITORY_REALIGNMENT, PROTECTION, E3 = today - 30 d): A2 -> B1, C4.
  C4: E3-20 d 1,000, E3+5 d 400. The after-window runs until E3 + 3 months: incomplete, so
  the figures so far (40,000 in 1 order), no change, never flagged; stability NOT_YET_KNOWN.
A request still in COMMUNICATION (no effective_at) is no case.

Aggregates (complete cases only for revenue and orders):
  Team A: cases 2 (1 complete), flagged 1, 600,000 -> 200,000 (-6667 bp), orders 3 -> 2;
          still employed at 3 m 1 of 1 known (10000 bp), 6 m 0 of 1 (0), 12 m 0 of 1 (0).
  Team B: cases 1, flagged 0, 300,000 -> 270,000 (-1000 bp), orders 2 -> 2;
          3 m 10000, 6 m 10000, 12 m unknown (null).
  by reason: TERRITORY_REALIGNMENT = Team A's figures; WORKLOAD_BALANCING = Team B's.
  overall: cases 3 (2 complete), flagged 1, 900,000 -> 470,000 (-4778 bp), orders 5 -> 4;
           3 m 2 of 2 (10000), 6 m 1 of 2 (5000), 12 m 0 of 1 (0).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, delete, select

from domain.policy import default_terms
from domain.stages import Stage
from models import (
    Assignment,
    AssignmentSource,
    AuditEvent,
    Customer,
    Employee,
    EmploymentStatus,
    Order,
    OrderKind,
    ReassignmentRequest,
    RequestCustomer,
    SatisfactionScore,
)
from tests.api.conftest import Api, assert_problem
from tests.factories import SmallOrg, fast_policy_rules

pytestmark = pytest.mark.anyio

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def _day(days_ago: int) -> datetime:
    today = datetime.now(UTC).replace(hour=4, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days_ago)


class Scenario:
    def __init__(self, org: SmallOrg) -> None:
        self.org = org
        self.e1, self.e2, self.e3 = _day(400), _day(200), _day(30)
        self.customers: dict[str, int] = {}
        self.requests: dict[str, int] = {}
        self.team_a = self.team_b = 0


def seed(session: Session, org: SmallOrg) -> Scenario:
    sc = Scenario(org)
    session.exec(delete(Order))  # the fixture's orders would fall into some windows
    a1, a2, b1 = org.sales_a1, org.sales_a2, org.sales_b1
    sc.team_a = session.get(Employee, a1).org_unit_id  # type: ignore[union-attr]
    sc.team_b = session.get(Employee, b1).org_unit_id  # type: ignore[union-attr]
    n = 0

    def customer(code: str, owners: list[tuple[int, datetime, datetime | None, int | None]]
                 ) -> int:
        c = Customer(code=code, name=f"=Customer {code}", found_by_employee_id=owners[0][0])
        session.add(c)
        session.flush()
        assert c.id is not None
        for emp, start, end, rid in owners:
            session.add(Assignment(customer_id=c.id, employee_id=emp, start_at=start, end_at=end,
                                   request_id=rid, source=AssignmentSource.REASSIGNMENT if rid
                                   else AssignmentSource.FOUND))
        sc.customers[code] = c.id
        return c.id

    def order(cid: int, at: datetime, fen: int, refund_of: int | None = None) -> int:
        nonlocal n
        n += 1
        o = Order(external_id=f"OUT-{n}", customer_id=cid, amount_fen=fen, booked_at=at,
                  kind=OrderKind.REFUND if refund_of else OrderKind.ORDER,
                  original_order_id=refund_of)
        session.add(o)
        session.flush()
        assert o.id is not None
        return o.id

    def request(name: str, frm: int, to: int, reason: str, stage: Stage,
                effective_at: datetime | None) -> int:
        r = ReassignmentRequest(
            idempotency_key=name, payload_hash="0" * 64, requester_id=org.manager_a,
            from_employee_id=frm, to_employee_id=to, customer_ids=[], reason=reason,
            stage=stage, policy_version_id=org.policy_version_id,
            terms=default_terms(fast_policy_rules()).model_dump(mode="json"),
            effective_at=effective_at)
        session.add(r)
        session.flush()
        assert r.id is not None
        sc.requests[name] = r.id
        return r.id

    r1 = request("case1", a1, a2, "TERRITORY_REALIGNMENT", Stage.COMPLETED, sc.e1)
    r2 = request("case2", b1, a2, "WORKLOAD_BALANCING", Stage.COMPLETED, sc.e2)
    r3 = request("case3", a2, b1, "TERRITORY_REALIGNMENT", Stage.PROTECTION, sc.e3)
    r4 = request("open", a2, b1, "TERRITORY_REALIGNMENT", Stage.COMMUNICATION, None)
    e1, e2, e3 = sc.e1, sc.e2, sc.e3
    d = timedelta(days=1)
    c1 = customer("C1", [(a1, LONG_AGO, e1, None), (a2, e1, None, r1)])
    c2 = customer("C2", [(a1, LONG_AGO, e1, None), (a2, e1, None, r1)])
    c3 = customer("C3", [(b1, LONG_AGO, e2, None), (a2, e2, None, r2)])
    c4 = customer("C4", [(a2, LONG_AGO, e3, None), (b1, e3, None, r3)])
    c5 = customer("C5", [(a2, LONG_AGO, None, None)])
    for rid, ids in ((r1, [c1, c2]), (r2, [c3]), (r3, [c4]), (r4, [c5])):
        session.get(ReassignmentRequest, rid).customer_ids = ids  # type: ignore[union-attr]
        session.add_all(RequestCustomer(request_id=rid, customer_id=c) for c in ids)

    order(c1, e1 - 100 * d, 999_999)
    order(c1, e1 - 60 * d, 300_000)
    order(c1, e1 - 20 * d, 200_000)
    order(c1, e1 + 30 * d, 150_000)
    order(c1, e1 + 100 * d, 500_000)
    order(c2, e1 - 45 * d, 100_000)
    refunded = order(c2, e1 + 10 * d, 80_000)
    order(c2, e1 + 40 * d, -30_000, refund_of=refunded)
    order(c5, e1 - 30 * d, 400_000)
    order(c5, e1 + 20 * d, 100_000)
    order(c3, e2 - 50 * d, 200_000)
    order(c3, e2 - 10 * d, 100_000)
    order(c3, e2 + 15 * d, 150_000)
    order(c3, e2 + 70 * d, 120_000)
    order(c4, e3 - 20 * d, 100_000)
    order(c4, e3 + 5 * d, 40_000)

    leaver = session.get(Employee, a1)
    assert leaver is not None
    leaver.status, leaver.leave_date = EmploymentStatus.LEFT, e1 + 120 * d
    session.add(leaver)
    return sc


def scores(sc: Scenario) -> list[dict[str, Any]]:
    c = sc.customers
    d = timedelta(days=1)

    def score(code: str, at: datetime, kind: str, value: int) -> dict[str, Any]:
        return {"customer_id": c[code], "date": at.date().isoformat(), "kind": kind,
                "score": value, "source": "survey-2026"}

    e1, e2 = sc.e1, sc.e2
    return [score("C1", e1 - 30 * d, "CSAT", 4), score("C1", e1 + 30 * d, "CSAT", 2),
            score("C1", e1 - 30 * d, "NPS", 9), score("C1", e1 + 30 * d, "NPS", 5),
            score("C2", e1 - 10 * d, "CSAT", 5), score("C2", e1 + 20 * d, "CSAT", 3),
            score("C3", e2 - 5 * d, "CSAT", 3), score("C3", e2 + 5 * d, "CSAT", 4)]


@pytest.fixture
async def scenario(api: Api) -> Scenario:
    with api.sessions() as session:
        sc = seed(session, api.org)
    r = await api.http.post("/api/v1/satisfaction", json={"scores": scores(sc)},
                            headers=await api.auth(api.org.hr_staff))
    assert r.status_code == 201, r.text
    assert r.json() == {"created": 8, "duplicates": 0}
    return sc


def stability(case: dict[str, Any]) -> list[tuple[int, str, str | None]]:
    return [(p["months"], p["status"], p["left_on"]) for p in case["stability"]]


def rates(group: dict[str, Any]) -> list[int | None]:
    return [r["rate_bp"] for r in group["stability"]]


async def test_the_report_shows_the_seeded_figures(api: Api, scenario: Scenario) -> None:
    sc, org = scenario, api.org
    r = await api.http.get("/api/v1/outcomes", headers=await api.auth(org.hr_head))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["months"] == 3
    cases = {c["request_id"]: c for c in body["cases"]}
    assert set(cases) == {sc.requests["case1"], sc.requests["case2"], sc.requests["case3"]}

    one = cases[sc.requests["case1"]]
    assert (one["before"]["revenue_fen"], one["before"]["order_count"]) == (600_000, 3)
    assert (one["after"]["revenue_fen"], one["after"]["order_count"]) == (200_000, 2)
    assert one["before"]["orders_per_month"] == "1.00"
    assert one["after"]["complete"] is True and one["after"]["elapsed_bp"] == 10_000
    assert one["revenue_change_bp"] == -6667
    assert one["revenue_drop_threshold_bp"] == 2000
    assert one["flagged"] is True
    left_on = (sc.e1 + timedelta(days=120)).isoformat().replace("+00:00", "Z")
    assert [(m, s) for m, s, _ in stability(one)] == [
        (3, "EMPLOYED"), (6, "LEFT"), (12, "LEFT")]
    assert datetime.fromisoformat(stability(one)[1][2]) == datetime.fromisoformat(left_on)
    assert {s["kind"]: (s["before_avg"], s["after_avg"]) for s in one["satisfaction"]} == {
        "CSAT": ("4.50", "2.50"), "NPS": ("9.00", "5.00")}
    assert one["receiver"]["from_moved_customers_after_fen"] == 200_000
    assert one["receiver"]["total_before"]["revenue_fen"] == 400_000
    assert one["receiver"]["total_after"]["revenue_fen"] == 300_000
    assert one["team_id"] == sc.team_a and one["team_name"] == "Team A"

    two = cases[sc.requests["case2"]]
    assert (two["before"]["revenue_fen"], two["after"]["revenue_fen"]) == (300_000, 270_000)
    assert (two["before"]["order_count"], two["after"]["order_count"]) == (2, 2)
    assert two["revenue_change_bp"] == -1000 and two["flagged"] is False
    assert [s for _, s, _ in stability(two)] == ["EMPLOYED", "EMPLOYED", "NOT_YET_KNOWN"]
    assert [(s["kind"], s["before_avg"], s["after_avg"]) for s in two["satisfaction"]] == [
        ("CSAT", "3.00", "4.00")]
    assert two["receiver"]["from_moved_customers_after_fen"] == 270_000
    assert two["receiver"]["total_before"]["revenue_fen"] == 0
    assert two["receiver"]["total_after"]["revenue_fen"] == 270_000

    three = cases[sc.requests["case3"]]
    assert three["after"]["complete"] is False
    assert 0 < three["after"]["elapsed_bp"] < 10_000
    assert (three["before"]["revenue_fen"], three["after"]["revenue_fen"]) == (100_000, 40_000)
    assert three["revenue_change_bp"] is None and three["flagged"] is False
    assert [s for _, s, _ in stability(three)] == ["NOT_YET_KNOWN"] * 3

    teams = {g["team_id"]: g for g in body["by_team"]}
    a, b = teams[sc.team_a], teams[sc.team_b]
    assert (a["cases"], a["complete_cases"], a["flagged"]) == (2, 1, 1)
    assert (a["revenue_before_fen"], a["revenue_after_fen"], a["revenue_change_bp"]) == (
        600_000, 200_000, -6667)
    assert (a["orders_before"], a["orders_after"]) == (3, 2)
    assert rates(a) == [10_000, 0, 0]
    assert (b["cases"], b["complete_cases"], b["flagged"]) == (1, 1, 0)
    assert (b["revenue_before_fen"], b["revenue_after_fen"], b["revenue_change_bp"]) == (
        300_000, 270_000, -1000)
    assert rates(b) == [10_000, 10_000, None]
    reasons = {g["reason"]: g for g in body["by_reason"]}
    assert set(reasons) == {"TERRITORY_REALIGNMENT", "WORKLOAD_BALANCING"}
    for reason, team in (("TERRITORY_REALIGNMENT", a), ("WORKLOAD_BALANCING", b)):
        assert {k: v for k, v in reasons[reason].items() if k != "reason"} == {
            k: v for k, v in team.items() if k not in ("team_id", "team_name")}
    overall = body["overall"]
    assert (overall["cases"], overall["complete_cases"], overall["flagged"]) == (3, 2, 1)
    assert (overall["revenue_before_fen"], overall["revenue_after_fen"]) == (900_000, 470_000)
    assert overall["revenue_change_bp"] == -4778
    assert (overall["orders_before"], overall["orders_after"]) == (5, 4)
    assert rates(overall) == [10_000, 5_000, 0]

    # the CSV carries the same numbers, one row per case
    r = await api.http.get("/api/v1/outcomes.csv", headers=await api.auth(org.hr_head))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith("\ufeff".encode())
    rows = {int(row["request_id"]): row
            for row in csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")))}
    row = rows[sc.requests["case1"]]
    assert (row["revenue_before_fen"], row["revenue_after_fen"], row["revenue_change_bp"],
            row["orders_before"], row["orders_after"], row["flagged"]) == (
        "600000", "200000", "-6667", "3", "2", "true")
    assert (row["stability_3m"], row["stability_6m"], row["stability_12m"]) == (
        "EMPLOYED", "LEFT", "LEFT")
    assert (row["csat_before_avg"], row["csat_after_avg"], row["nps_before_avg"],
            row["nps_after_avg"]) == ("4.50", "2.50", "9.00", "5.00")
    assert (row["receiver_from_moved_after_fen"], row["receiver_total_before_fen"],
            row["receiver_total_after_fen"]) == ("200000", "400000", "300000")
    row = rows[sc.requests["case2"]]
    assert (row["revenue_before_fen"], row["revenue_after_fen"], row["revenue_change_bp"],
            row["flagged"], row["stability_12m"]) == (
        "300000", "270000", "-1000", "false", "NOT_YET_KNOWN")
    row = rows[sc.requests["case3"]]
    assert (row["after_complete"], row["revenue_change_bp"], row["flagged"]) == (
        "false", "", "false")


async def test_filters_and_scope(api: Api, scenario: Scenario) -> None:
    sc, org = scenario, api.org
    hr = await api.auth(org.hr_head)

    async def ids(headers: dict[str, str], **params: Any) -> set[int]:
        r = await api.http.get("/api/v1/outcomes", params=params, headers=headers)
        assert r.status_code == 200, r.text
        return {c["request_id"] for c in r.json()["cases"]}

    case1, case2, case3 = (sc.requests[k] for k in ("case1", "case2", "case3"))
    assert await ids(hr, flagged_only="true") == {case1}
    r = await api.http.get("/api/v1/outcomes", params={"limit": 1, "offset": 1}, headers=hr)
    page = r.json()  # cases oldest transfer first; aggregates over all of them
    assert [c["request_id"] for c in page["cases"]] == [case2]
    assert (page["total_cases"], page["overall"]["cases"]) == (3, 3)
    assert await ids(hr, team=sc.team_b) == {case2}
    assert await ids(hr, reason="WORKLOAD_BALANCING") == {case2}
    # managers see the cases that moved customers away from their team
    assert await ids(await api.auth(org.manager_a)) == {case1, case3}
    assert await ids(await api.auth(org.manager_b)) == {case2}
    # windows of 7 months: the case from 200 days ago has not reached its end yet
    r = await api.http.get("/api/v1/outcomes", params={"months": 7}, headers=hr)
    two = next(c for c in r.json()["cases"] if c["request_id"] == case2)
    assert two["after"]["complete"] is False and two["revenue_change_bp"] is None
    assert_problem(await api.http.get("/api/v1/outcomes", params={"reason": "NOPE"},
                                      headers=hr), 422, "unknown-reason")
    assert_problem(await api.http.get("/api/v1/outcomes", params={"months": 0}, headers=hr),
                   422, "validation-failed")
    assert_problem(await api.http.get("/api/v1/outcomes",
                                      headers=await api.auth(org.sales_b1)), 403,
                   "forbidden-role")


async def test_the_csv_neutralises_formulas(api: Api, scenario: Scenario) -> None:
    with api.sessions() as session:
        session.get(Employee, api.org.sales_a2).name = "@SUM(A1:A9)"  # type: ignore[union-attr]
    r = await api.http.get("/api/v1/outcomes.csv", headers=await api.auth(api.org.hr_head))
    text = r.content.decode("utf-8-sig")
    assert "'@SUM(A1:A9)" in text
    assert ",@SUM" not in text


async def test_scores_are_validated_all_or_nothing_and_idempotent(
        api: Api, scenario: Scenario) -> None:
    sc, hr = scenario, await api.auth(api.org.hr_staff)
    c1 = sc.customers["C1"]
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()

    def item(**over: Any) -> dict[str, Any]:
        return {"customer_id": c1, "date": "2025-06-01", "kind": "CSAT", "score": 4,
                "source": "crm", **over}

    with api.sessions() as s:
        stored = len(s.exec(select(SatisfactionScore)).all())
        events = len(s.exec(select(AuditEvent)).all())
    bad = [item(), item(score=6), item(kind="NPS", score=11), item(customer_id=999_999),
           item(date=tomorrow)]
    body = assert_problem(await api.http.post("/api/v1/satisfaction", json={"scores": bad},
                                              headers=hr), 422, "satisfaction-invalid")
    assert [(e["index"], e["code"]) for e in body["errors"]] == [
        (1, "SCORE_OUT_OF_RANGE"), (2, "SCORE_OUT_OF_RANGE"), (3, "UNKNOWN_CUSTOMER"),
        (4, "DATE_IN_FUTURE")]
    with api.sessions() as s:  # nothing written, not even the good item
        assert len(s.exec(select(SatisfactionScore)).all()) == stored
        assert len(s.exec(select(AuditEvent)).all()) == events

    # re-posting the scenario's scores is a no-op
    r = await api.http.post("/api/v1/satisfaction", json={"scores": scores(sc)}, headers=hr)
    assert r.status_code == 200 and r.json() == {"created": 0, "duplicates": 8}
    # a different score under a stored key is a conflict
    changed = scores(sc)[:1]
    changed[0]["score"] = 1
    body = assert_problem(await api.http.post("/api/v1/satisfaction", json={"scores": changed},
                                              headers=hr), 409, "satisfaction-conflict")
    assert body["errors"][0]["code"] == "SCORE_CONFLICT"
    # the batch's good item alone is stored once, with an audit event
    r = await api.http.post("/api/v1/satisfaction", json={"scores": [item()]}, headers=hr)
    assert r.status_code == 201 and r.json() == {"created": 1, "duplicates": 0}
    with api.sessions() as s:
        event = s.exec(select(AuditEvent).where(
            AuditEvent.event_type == "SATISFACTION_POSTED")).all()[-1]
        assert event.actor_id == api.org.hr_staff and event.detail["customer_ids"] == [c1]
    assert_problem(await api.http.post("/api/v1/satisfaction", json={"scores": [item()]},
                                       headers=await api.auth(api.org.manager_a)), 403)
