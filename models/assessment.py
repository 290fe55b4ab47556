"""Assemble a request's assessment: customer values from the latest valuation snapshot, the
owner's current rates, and domain.impact. Reads only; never refits a model."""

from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction

from sqlalchemy import func
from sqlmodel import Session, col, select

from domain.impact import Assessment, CustomerValue, assess, half_up
from domain.policy import PolicyRules, Terms
from models.commission import CommissionPlan
from models.customer import Assignment, AssignmentSource, Customer, Order, OrderKind
from models.valuation import ValuationRun, ValuationSnapshot

YEAR = timedelta(days=365)


def latest_run_id(session: Session) -> int | None:
    return session.exec(select(func.max(ValuationRun.id)).where(
        col(ValuationRun.finished_at).is_not(None))).one()


def customer_values(session: Session, *, owner_id: int, customer_ids: list[int],
                    as_of: datetime, horizon_months: int) -> list[CustomerValue]:
    """Each customer's value and the owner's rate on it, in the order given.

    Without a snapshot (no refresh has run yet) expected revenue is the run-rate fallback of
    domain.valuation: trailing-12-month revenue scaled to the horizon, marked RUN_RATE.
    """
    run_id = latest_run_id(session)
    snapshots = {} if run_id is None else {s.customer_id: s for s in session.exec(
        select(ValuationSnapshot).where(ValuationSnapshot.run_id == run_id,
                                        col(ValuationSnapshot.customer_id).in_(customer_ids)))}
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
        values.append(CustomerValue(
            customer_id=cid, customer_code=customer.code if customer else "",
            customer_name=customer.name if customer else "",
            t12m_revenue_fen=t12m, lifetime_revenue_fen=lifetime, order_count=count,
            expected_revenue_fen=(snapshot.expected_revenue_fen if snapshot else
                                  half_up(Fraction(max(t12m, 0) * horizon_months, 12))),
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
