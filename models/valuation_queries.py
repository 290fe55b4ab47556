"""Valuation reads and writes: per-customer order aggregates, run storage, latest snapshots.

All set-based: one GROUP BY over the orders for the whole base, bulk inserts of the snapshots,
one windowed query for the latest snapshot per customer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, insert, or_, select
from sqlmodel import Session

from domain.valuation import CustomerValuation, OrderStats, t12m_start
from models.audit import audit
from models.customer import Assignment, Customer, Order
from models.types import utcnow
from models.valuation import ValuationRun, ValuationSnapshot

INSERT_CHUNK = 5_000


def _int(value: Any) -> int:
    return 0 if value is None else int(value)  # PostgreSQL sums bigint into numeric


def order_stats_query(as_of: datetime) -> Any:
    """Per customer (every customer, with or without orders): the aggregates of OrderStats."""
    o = Order.__table__.c
    a = Assignment.__table__.c
    since = t12m_start(as_of)
    is_order = o.amount_fen > 0
    in_t12m = o.booked_at > since
    agg = (
        select(
            o.customer_id.label("customer_id"),
            func.sum(case((is_order, 1), else_=0)).label("order_count"),
            func.sum(case((o.amount_fen < 0, 1), else_=0)).label("refund_count"),
            func.sum(o.amount_fen).label("lifetime"),
            func.sum(case((o.amount_fen < 0, o.amount_fen), else_=0)).label("refunds"),
            func.sum(case((in_t12m, o.amount_fen), else_=0)).label("t12m"),
            func.sum(case((and_(is_order, in_t12m), 1), else_=0)).label("t12m_orders"),
            func.min(case((is_order, o.booked_at))).label("first_at"),
            func.max(case((is_order, o.booked_at))).label("last_at"),
        )
        .where(o.booked_at <= as_of)
        .group_by(o.customer_id)
        .subquery("agg")
    )
    owner = (
        select(a.customer_id.label("customer_id"), func.max(a.start_at).label("since"))
        .where(a.start_at <= as_of, or_(a.end_at.is_(None), a.end_at > as_of))
        .group_by(a.customer_id)
        .subquery("owner")
    )
    c = Customer.__table__.c
    return (
        select(c.id, agg.c.order_count, agg.c.refund_count, agg.c.lifetime, agg.c.refunds,
               agg.c.t12m, agg.c.t12m_orders, agg.c.first_at, agg.c.last_at, owner.c.since)
        .select_from(Customer.__table__)
        .outerjoin(agg, agg.c.customer_id == c.id)
        .outerjoin(owner, owner.c.customer_id == c.id)
        .order_by(c.id)
    )


def order_stats(session: Session, as_of: datetime) -> list[OrderStats]:
    """One OrderStats per customer as of `as_of`, from one aggregate query."""
    rows = session.execute(order_stats_query(as_of)).all()
    return [
        OrderStats(customer_id=int(cid), order_count=_int(n), refund_count=_int(nr),
                   lifetime_revenue_fen=_int(life), refunds_fen=_int(ref),
                   t12m_revenue_fen=_int(t12m), t12m_order_count=_int(t12m_n),
                   first_order_at=first, last_order_at=last, owner_since=since)
        for cid, n, nr, life, ref, t12m, t12m_n, first, last, since in rows
    ]


def finished_run(session: Session, run_key: str) -> ValuationRun | None:
    run = session.execute(
        select(ValuationRun).where(ValuationRun.run_key == run_key)
    ).scalar_one_or_none()
    return run if run is not None and run.finished_at is not None else None


def write_run(session: Session, *, run_key: str, as_of: datetime, horizon_months: int,
              valuations: Sequence[CustomerValuation], model_params: dict[str, Any],
              note: str | None = None) -> ValuationRun:
    """One ValuationRun and one snapshot per valuation, in the caller's transaction.

    The run is marked finished in the same transaction, so a reader never sees half a run
    and a unique run_key makes a second writer fail instead of writing twice.
    """
    run = ValuationRun(run_key=run_key, as_of=as_of, horizon_months=horizon_months,
                       customers=len(valuations),
                       fitted_customers=sum(v.method == "BG_NBD_GG" for v in valuations),
                       model_params=model_params, note=note)
    session.add(run)
    session.flush()
    table = ValuationSnapshot.__table__
    batch: list[dict[str, Any]] = []
    for v in valuations:
        batch.append({
            "run_id": run.id, "customer_id": v.customer_id, "as_of": as_of,
            "lifetime_revenue_fen": v.lifetime_revenue_fen,
            "t12m_revenue_fen": v.t12m_revenue_fen, "order_count": v.order_count,
            "orders_per_month": v.orders_per_month,
            "avg_order_value_fen": v.avg_order_value_fen, "recency_days": v.recency_days,
            "owner_tenure_days": v.owner_tenure_days,
            "expected_purchases": v.expected_purchases,
            "expected_revenue_fen": v.expected_revenue_fen, "method": v.method,
            "tier": v.tier, "inputs": v.inputs,
        })
        if len(batch) >= INSERT_CHUNK:
            session.execute(insert(table), batch)
            batch = []
    if batch:
        session.execute(insert(table), batch)
    run.finished_at = utcnow()
    session.add(run)
    session.flush()
    # one summary event per run; the snapshots are derived figures, not audited row by row
    audit(session, "VALUATION_RUN_WRITTEN", entity=("valuation_run", run.id), after={
        "run_key": run_key, "as_of": as_of.isoformat(), "horizon_months": horizon_months,
        "customers": run.customers, "fitted_customers": run.fitted_customers,
        "tiers": model_params.get("tiers"), "note": note})
    return run


def latest_snapshots(session: Session,
                     customer_ids: Iterable[int]) -> dict[int, ValuationSnapshot]:
    """Each customer's snapshot from the newest finished run that valued it (by as_of, then
    run id). Customers never valued are absent. Reads only: nothing is refitted."""
    ids = list(dict.fromkeys(customer_ids))
    if not ids:
        return {}
    s = ValuationSnapshot.__table__.c
    r = ValuationRun.__table__.c
    ranked = (
        select(s.id.label("snapshot_id"),
               func.row_number().over(partition_by=s.customer_id,
                                      order_by=(s.as_of.desc(), s.run_id.desc())).label("rn"))
        .join(ValuationRun.__table__, r.id == s.run_id)
        .where(s.customer_id.in_(ids), r.finished_at.is_not(None))
        .subquery("ranked")
    )
    snapshots = session.execute(
        select(ValuationSnapshot).join(ranked, ranked.c.snapshot_id == ValuationSnapshot.id)
        .where(ranked.c.rn == 1)
    ).scalars().all()
    return {snap.customer_id: snap for snap in snapshots}
