"""Assemble a request's assessment: customer values from the latest valuation snapshot, the
owner's current rates, and domain.impact. Reads only; never refits a model."""

from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction

from sqlalchemy import func
from sqlmodel import Session, col, select

from domain.impact import Assessment, CustomerValue, assess, half_up
from domain.policy import PolicyRules, Terms
from domain.valuation import OrderStats, run_rate
from models.commission import CommissionPlan
from models.customer import Assignment, AssignmentSource, Customer, Order, OrderKind
from models.valuation import ValuationRun
from models.valuation_queries import latest_snapshots, order_stats_query

YEAR = timedelta(days=365)


def _stats(row: object) -> OrderStats:
    cid, n, nr, life, ref, t12m, t12m_n, first, last, since = row  # type: ignore[misc]
    return OrderStats(customer_id=int(cid), order_count=int(n or 0), refund_count=int(nr or 0),
                      lifetime_revenue_fen=int(life or 0), refunds_fen=int(ref or 0),
                      t12m_revenue_fen=int(t12m or 0), t12m_order_count=int(t12m_n or 0),
                      first_order_at=first, last_order_at=last, owner_since=since)


def customer_values(session: Session, *, owner_id: int, customer_ids: list[int],
                    as_of: datetime, horizon_months: int) -> list[CustomerValue]:
    """Each customer's value and the owner's rate on it, in the order given.

    Expected revenue comes from each customer's latest valuation snapshot, scaled linearly
    when the policy's horizon differs from the run's. Without a snapshot (no refresh has
    valued the customer yet) it is the run-rate fallback of domain.valuation, marked RUN_RATE.
    """
    snapshots = latest_snapshots(session, customer_ids)
    run_horizons = dict(session.exec(select(ValuationRun.id, ValuationRun.horizon_months).where(
        col(ValuationRun.id).in_({s.run_id for s in snapshots.values()}))).all())
    missing = [cid for cid in customer_ids if cid not in snapshots]
    fallback = {}
    if missing:
        stats = session.execute(order_stats_query(as_of).where(
            Customer.__table__.c.id.in_(missing))).all()
        for row in stats:
            s = _stats(row)
            fallback[s.customer_id] = run_rate(s, as_of, horizon_months,
                                               reason="no valuation snapshot yet")[1]
    customers = {c.id: c for c in session.exec(
        select(Customer).where(col(Customer.id).in_(customer_ids)))}
    revenue = {cid: (int(life or 0), int(t12 or 0), int(n or 0)) for cid, life, t12, n in
               session.exec(
                   select(Order.customer_id, func.sum(Order.amount_fen),
                          func.sum(Order.amount_fen).filter(Order.booked_at >= as_of - YEAR),
                          func.count().filter(Order.kind == OrderKind.ORDER))
                   .where(col(Order.customer_id).in_(customer_ids), Order.booked_at <= as_of)
                   .group_by(Order.customer_id))}
    sources = dict(session.exec(select(Assignment.customer_id, Assignment.source).where(
        col(Assignment.customer_id).in_(customer_ids), Assignment.employee_id == owner_id,
        col(Assignment.end_at).is_(None))).all())
    plan = session.exec(select(CommissionPlan).where(
        CommissionPlan.employee_id == owner_id, CommissionPlan.effective_from <= as_of,
        (col(CommissionPlan.effective_to).is_(None)) | (CommissionPlan.effective_to > as_of))
    ).first()
    values = []
    for cid in customer_ids:
        lifetime, t12m, count = revenue.get(cid, (0, 0, 0))
        found = sources.get(cid, AssignmentSource.FOUND) == AssignmentSource.FOUND
        rate = 0 if plan is None else (plan.base_rate_bp if found else plan.inherited_rate_bp)
        customer = customers.get(cid)
        snapshot = snapshots.get(cid)
        if snapshot is not None:
            expected = half_up(Fraction(snapshot.expected_revenue_fen * horizon_months,
                                        run_horizons.get(snapshot.run_id, horizon_months)))
        else:
            expected = fallback.get(cid, 0)
        values.append(CustomerValue(
            customer_id=cid, customer_code=customer.code if customer else "",
            customer_name=customer.name if customer else "",
            t12m_revenue_fen=t12m, lifetime_revenue_fen=lifetime, order_count=count,
            expected_revenue_fen=expected,
            tier=snapshot.tier if snapshot else "C",
            method=snapshot.method if snapshot else "RUN_RATE",
            rate_bp=rate,
            snapshot_as_of=snapshot.as_of.isoformat() if snapshot else None,
        ))
    return values


def build_assessment(session: Session, *, owner_id: int, customer_ids: list[int],
                     rules: PolicyRules, terms: Terms, as_of: datetime) -> Assessment:
    values = customer_values(session, owner_id=owner_id, customer_ids=customer_ids, as_of=as_of,
                             horizon_months=rules.valuation_horizon_months)
    return assess(values, rules, terms)


def reassess(stored: dict[str, object], rules: PolicyRules, terms: Terms) -> Assessment:
    """HR amended the terms: the same customer figures, the new terms (no new valuation)."""
    previous = Assessment.model_validate(stored)
    return assess(previous.customers, rules, terms)
