"""The set-based SQL engine agrees with domain.commission.attribute, and closed months hold."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlmodel import func, select

from domain.commission import (
    AssignmentSpan,
    OrderFact,
    PlanSpan,
    Protection,
    SpanSource,
    attribute,
)
from domain.policy import default_terms
from models import (
    Assignment,
    AssignmentSource,
    CommissionLine,
    CommissionPlan,
    Customer,
    Order,
    OrderKind,
    ReassignmentRequest,
    Statement,
)
from models.commission_engine import (
    SCOPE,
    closed_through,
    fill_scope,
    finalize_period,
    owner_lines_select,
    recompute_for_orders,
    recompute_since,
)
from tests.factories import fast_policy_rules

T0 = datetime(2025, 1, 1, tzinfo=UTC)
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def _request(s, org, from_id: int, to_id: int, customer: int, at: datetime, end: datetime,
             share: int) -> int:
    req = ReassignmentRequest(
        idempotency_key=str(uuid.uuid4()), payload_hash="0" * 64, requester_id=org.manager_a,
        from_employee_id=from_id, to_employee_id=to_id, customer_ids=[customer],
        reason="TERRITORY_REALIGNMENT", policy_version_id=org.policy_version_id,
        terms=default_terms(fast_policy_rules()).model_dump(mode="json"), stage="COMPLETED",
        effective_at=at, protection_end=end, protection_share_bp=share)
    s.add(req)
    s.flush()
    return req.id


def build_random_book(sessions, org, seed: int) -> list[int]:
    """Customers with 0-2 reassignments each, effective-dated plans, orders and refunds,
    with many bookings exactly on the boundaries."""
    rnd = random.Random(seed)
    people = [org.sales_a1, org.sales_a2, org.sales_b1, org.manager_a]
    order_ids: list[int] = []
    with sessions() as s:
        for person in people:
            start = T0 - timedelta(days=30)
            for _ in range(rnd.randint(1, 3)):
                end = start + timedelta(days=rnd.randint(40, 200), hours=rnd.randint(0, 23))
                s.add(CommissionPlan(employee_id=person, effective_from=start, effective_to=end,
                                     base_rate_bp=rnd.choice([300, 450, 500, 777]),
                                     inherited_rate_bp=rnd.choice([0, 150, 200, 333])))
                start = end
            # and sometimes a gap before an open-ended plan: orders in the gap get rate 0
            gap = timedelta(days=rnd.choice([0, 0, 10]))
            s.add(CommissionPlan(employee_id=person, effective_from=start + gap,
                                 base_rate_bp=400, inherited_rate_bp=250))
        for n in range(12):
            owner = rnd.choice(people)
            customer = Customer(code=f"R{seed}-{n}", name=f"Random {n}")
            s.add(customer)
            s.flush()
            moments = [T0]
            at = T0
            current = owner
            s.add(Assignment(customer_id=customer.id, employee_id=owner, start_at=T0,
                             source=AssignmentSource.FOUND))
            s.flush()
            for _ in range(rnd.randint(0, 2)):
                at = at + timedelta(days=rnd.randint(20, 90), minutes=rnd.randint(0, 999))
                receiver = rnd.choice([p for p in people if p != current])
                end = at + timedelta(days=rnd.randint(5, 60))
                share = rnd.choice([0, 3_000, 5_000, 10_000])
                request_id = _request(s, org, current, receiver, customer.id, at, end, share)
                open_span = s.exec(select(Assignment).where(
                    Assignment.customer_id == customer.id, Assignment.end_at.is_(None))).one()
                open_span.end_at = at
                s.add(open_span)
                s.add(Assignment(customer_id=customer.id, employee_id=receiver, start_at=at,
                                 source=AssignmentSource.REASSIGNMENT, request_id=request_id))
                s.flush()
                moments += [at, end]
                current = receiver
                at = end  # rule 8: no new reassignment inside protection
            for k in range(rnd.randint(3, 9)):
                booked = rnd.choice(moments) if rnd.random() < 0.3 else T0 + timedelta(
                    seconds=rnd.randint(0, 300 * 86_400))
                amount = rnd.choice([1, 3, 99, 12_345, 1_000_000, rnd.randint(1, 10**9)])
                order = Order(external_id=f"X{seed}-{n}-{k}", customer_id=customer.id,
                              amount_fen=amount, booked_at=booked)
                s.add(order)
                s.flush()
                order_ids.append(order.id)
                remaining = amount
                for r in range(rnd.choice([0, 0, 1, 2])):
                    part = remaining if r == 1 or rnd.random() < 0.3 else rnd.randint(
                        1, max(1, remaining))
                    if part <= 0:
                        break
                    remaining -= part
                    refund = Order(external_id=f"X{seed}-{n}-{k}-R{r}",
                                   kind=OrderKind.REFUND, original_order_id=order.id,
                                   customer_id=customer.id, amount_fen=-part,
                                   booked_at=booked + timedelta(days=rnd.randint(0, 40)))
                    s.add(refund)
                    s.flush()
                    order_ids.append(refund.id)
    return order_ids


def expected_lines(sessions, order_ids: list[int]) -> set[tuple]:
    with sessions() as s:
        spans = [AssignmentSpan(a.customer_id, a.employee_id, a.start_at, a.end_at,
                                SpanSource(a.source.value), a.request_id)
                 for a in s.exec(select(Assignment)).all()]
        protections = [Protection(r.id, r.from_employee_id, r.to_employee_id, r.effective_at,
                                  r.protection_end, r.protection_share_bp)
                       for r in s.exec(select(ReassignmentRequest)).all()
                       if r.effective_at is not None and r.protection_end is not None]
        plans = [PlanSpan(p.employee_id, p.effective_from, p.effective_to, p.base_rate_bp,
                          p.inherited_rate_bp) for p in s.exec(select(CommissionPlan)).all()]
        orders = {o.id: o for o in s.exec(select(Order).where(Order.id.in_(order_ids))).all()}
    refunded: dict[int, int] = defaultdict(int)
    out = set()
    for oid in sorted(orders):
        o = orders[oid]
        if o.original_order_id is None:
            fact = OrderFact(o.id, o.customer_id, o.amount_fen, o.booked_at)
        else:
            original = orders[o.original_order_id]
            fact = OrderFact(o.id, o.customer_id, o.amount_fen, o.booked_at, is_refund=True,
                             original_booked_at=original.booked_at,
                             refunded_before_fen=refunded[original.id])
            refunded[original.id] += -o.amount_fen
        for line in attribute(fact, spans, protections, plans):
            out.add((line.order_id, line.employee_id, line.role.value, line.rule, line.rate_bp,
                     line.share_bp, line.base_amount_fen, line.amount_fen, o.period))
    return out


def stored_lines(sessions) -> set[tuple]:
    with sessions() as s:
        return {(x.order_id, x.employee_id, x.role, x.rule, x.rate_bp, x.share_bp,
                 x.base_amount_fen, x.amount_fen, x.period)
                for x in s.exec(select(CommissionLine)).all()}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sql_engine_matches_the_pure_reference(sessions, org, seed):
    order_ids = build_random_book(sessions, org, seed)
    with sessions() as s:
        written = recompute_since(s, EPOCH)
    expected = expected_lines(sessions, order_ids) | expected_lines(sessions, _factory_orders(
        sessions, order_ids))
    assert written == len(expected)
    assert stored_lines(sessions) == expected
    # recomputing changes nothing and duplicates nothing
    with sessions() as s:
        recompute_since(s, EPOCH)
        recompute_for_orders(s, order_ids[:5])
    assert stored_lines(sessions) == expected


def _factory_orders(sessions, exclude: list[int]) -> list[int]:
    with sessions() as s:
        return [i for i in s.exec(select(Order.id)).all() if i not in set(exclude)]


def _statement(sessions, employee: int, period: str) -> Statement | None:
    with sessions() as s:
        return s.exec(select(Statement).where(Statement.employee_id == employee,
                                              Statement.period == period)).first()


def test_closed_month_is_never_changed_late_orders_become_adjustments(sessions, org):
    customer = org.customers_a1[0]
    with sessions() as s:
        s.add(CommissionPlan(employee_id=org.sales_a1, effective_from=EPOCH, base_rate_bp=500,
                             inherited_rate_bp=200))
        jan = Order(external_id="JAN-1", customer_id=customer, amount_fen=100_000,
                    booked_at=datetime(2026, 1, 10, tzinfo=UTC))
        s.add(jan)
        s.flush()
        recompute_for_orders(s, [jan.id])
        # 2026-01-31T17:00Z is already February in Asia/Shanghai
        feb_edge = Order(external_id="FEB-EDGE", customer_id=customer, amount_fen=10_000,
                         booked_at=datetime(2026, 1, 31, 17, 0, tzinfo=UTC))
        s.add(feb_edge)
        s.flush()
        recompute_for_orders(s, [feb_edge.id])
        # the factory's orders are from December 2025: settle December first
        finalize_period(s, "2025-12", run_key="test-2025-12", trigger="manual")
        finalize_period(s, "2026-01", run_key="test-2026-01", trigger="manual")
        assert closed_through(s) == "2026-01"
    closed = _statement(sessions, org.sales_a1, "2026-01")
    assert closed.status == "FINAL" and closed.total_fen == 5_000

    with sessions() as s:
        late = Order(external_id="JAN-LATE", customer_id=customer, amount_fen=20_000,
                     booked_at=datetime(2026, 1, 20, tzinfo=UTC))
        s.add(late)
        s.flush()
        recompute_for_orders(s, [late.id])
        recompute_for_orders(s, [late.id])  # a retry
        late_lines = s.exec(select(CommissionLine).where(
            CommissionLine.order_id == late.id)).all()
    assert [(x.period, x.origin_period, x.is_adjustment, x.amount_fen) for x in late_lines] == [
        ("2026-02", "2026-01", True, 1_000)]
    again = _statement(sessions, org.sales_a1, "2026-01")
    assert (again.total_fen, again.status, again.updated_at) == (
        5_000, "FINAL", closed.updated_at)
    with sessions() as s:
        jan_lines = s.exec(select(func.sum(CommissionLine.amount_fen)).where(
            CommissionLine.period == "2026-01")).one()
    assert jan_lines == 5_000

    # a retroactive rate change re-prices January through an adjustment, not by editing it
    with sessions() as s:
        plan = s.exec(select(CommissionPlan)).one()
        plan.base_rate_bp = 600
        s.add(plan)
        s.flush()
        recompute_since(s, EPOCH)
        adjustments = s.exec(select(CommissionLine).where(
            CommissionLine.is_adjustment, CommissionLine.period == "2026-02",
            CommissionLine.order_id.in_([jan.id, late.id]))
            .order_by(CommissionLine.order_id)).all()
        # the factory's December orders of the same salesperson are re-priced the same way
        december = s.exec(select(CommissionLine).where(
            CommissionLine.is_adjustment, CommissionLine.origin_period == "2025-12")).all()
    # JAN-1 100000 x 1% more = +1000; JAN-LATE at 6% = 1200 in total
    assert [(x.order_id, x.amount_fen) for x in adjustments] == [(jan.id, 1_000),
                                                                 (late.id, 1_200)]
    assert december and all(x.period == "2026-02" for x in december)
    assert _statement(sessions, org.sales_a1, "2026-01").total_fen == 5_000

    with sessions() as s:
        finalize_period(s, "2026-02", run_key="test-2026-02", trigger="manual")
        finalize_period(s, "2026-02", run_key="test-2026-02", trigger="manual")  # a retry
        with pytest.raises(ValueError, match="already final"):
            finalize_period(s, "2026-02", run_key="other-key", trigger="manual")
    feb = _statement(sessions, org.sales_a1, "2026-02")
    assert feb.status == "FINAL"
    # adjustments + FEB-EDGE at 6%
    assert feb.total_fen == 1_000 + 1_200 + sum(x.amount_fen for x in december) + 600


def test_scope_holds_the_orders_and_postgresql_knows_its_size(sessions, org):
    """On PostgreSQL the scope gets statistics: without them the planner took it for 10x its
    size, scanned customer_order and compiled with JIT (bench/README.md, settlement). SQLite
    keeps its plan (a scan of customer_order probing the scope), which measured cheaper in
    the whole settlement at 10^6 orders than the scope-driven one."""
    customer = org.customers_a1[0]
    with sessions() as s:
        s.add_all(Order(external_id=f"PLAN-{n}", customer_id=customer, amount_fen=1_000 + n,
                        booked_at=T0 + timedelta(hours=n)) for n in range(300))
        s.flush()
        picked = [o.id for o in s.exec(select(Order).where(
            Order.external_id.in_(["PLAN-7", "PLAN-150"]))).all()]
        bind = s.connection()
        bind.execute(text("ANALYZE"))  # customer_order has statistics, as in any live database
        fill_scope(bind, select(Order.id).where(Order.id.in_(picked)))
        attribution = str(owner_lines_select().compile(
            bind, compile_kwargs={"literal_binds": True}))
        if bind.dialect.name == "sqlite":
            plan = [row[3] for row in bind.execute(text("EXPLAIN QUERY PLAN " + attribution))]
            assert f"SEARCH {SCOPE.name} USING INTEGER PRIMARY KEY (rowid=?)" in plan, plan
        else:
            estimated = bind.execute(text("SELECT reltuples FROM pg_class WHERE relname = :name"),
                                     {"name": SCOPE.name}).scalar_one()
            assert estimated == len(picked)
        assert sorted(bind.execute(select(SCOPE.c.order_id)).scalars()) == sorted(picked)
