"""The settlement benchmark at toy scale: its floor query is a fair baseline only if it computes
exactly what the settlement books, so the per-employee totals must be equal (both backends)."""

from __future__ import annotations

from sqlalchemy import text

from bench.settlement import (
    PERIODS,
    Scale,
    compare,
    floor_totals,
    generate,
    settle_year,
    settled_totals,
)

TINY = Scale(orders=3_000, customers=300, salespeople=20, reassigned=80, seed=7)


def test_floor_query_equals_the_settled_year(engine):
    generated = generate(engine, TINY)
    assert generated.orders == TINY.orders
    assert generated.refunds >= 20
    assert generated.reassigned == TINY.reassigned
    assert generated.protected_at_year_end == TINY.reassigned // 2
    assert generated.boundary_orders > 0

    months = settle_year(engine)
    assert len(months) == len(PERIODS)
    settled = settled_totals(engine)
    floor = floor_totals(engine)
    assert compare(settled, floor) == []
    assert settled == floor
    assert len(settled) > TINY.salespeople // 2 and sum(settled.values()) > 0

    with engine.connect() as conn:
        roles = dict(conn.execute(text(
            "SELECT role, count(*) FROM commission_line GROUP BY role")).all())
        clawbacks = conn.execute(text(
            "SELECT count(*) FROM commission_line WHERE rule LIKE 'R4_CLAWBACK:%'")).scalar_one()
        adjustments = conn.execute(text(
            "SELECT count(*) FROM commission_line WHERE is_adjustment")).scalar_one()
    # the data exercises every rule: found owners, protection splits, inherited owners, refunds
    assert set(roles) == {"OWNER", "PROTECTED_ORIGINAL", "INHERITED_OWNER"}
    assert clawbacks > 0
    assert adjustments == 0  # nothing arrives after a month closes in this book
