"""Customer valuation: observed figures, expected revenue over a horizon, value tiers. No I/O.

Every figure is stored with its inputs (`CustomerValuation.inputs["figures"][name]`): the
value, the formula's key in FORMULAS, the method, and the numbers that went in, so that
`explain()` can say in plain words how it was computed (an employee may demand an explanation
of an automated assessment and a human review of it).

Definitions (as_of is the valuation time; only rows booked at or before it count):
- An *order* is a row with a positive amount; refunds and cancellations are negative rows.
- lifetime revenue = the sum of all rows (orders minus refunds), in fen.
- trailing-12-month revenue = the sum of the rows booked in (as_of - 12 months, as_of], where a
  month is the mean Gregorian month, 30.436875 days (as in domain.impact), so 12 months are
  365.2425 days.
- order count = orders (not refunds); orders per month = order count / months since the first
  order (at least 1 month); average order value = lifetime revenue / order count, half-up.
- recency = whole days since the last order; owner tenure = whole days since the current
  owner's assignment started.
- RFM for BG/NBD, in weeks: frequency = order count - 1 (repeat purchases), recency = first to
  last order, T = first order to as_of; monetary value = average net order value (lifetime
  revenue / order count). Gamma-Gamma's textbook input is the mean of the repeat orders only;
  the net average over all orders is used because refunds cannot be split between first and
  repeat orders in one aggregate pass. Each order row counts as a purchase, even two on a day.

Expected revenue over `horizon_months` (method recorded per figure):
- BG_NBD_GG: expected purchases over the horizon (BG/NBD, horizon in weeks = months *
  30.436875 / 7) times Gamma-Gamma's expected value of one order (domain.clv). Used for
  customers with at least 2 orders when the fit is sound and the customer's prediction is finite.
- RUN_RATE, the fallback for everyone else (fewer than 2 orders, a degenerate fit, a rejected
  prediction, or a non-positive average order value):
      expected revenue   = max(0, trailing-12-month revenue) * horizon_months / 12 * decay
      expected purchases = trailing-12-month orders           * horizon_months / 12 * decay
      decay              = max(0, 1 - recency_days / 365.2425)
  The decay makes a customer who last ordered long ago fade linearly to zero at 12 months
  since the last order: a single order yesterday projects that order's value over the next 12
  months, the same order 6 months ago projects half of it, and a year ago nothing.
  A customer without any order gets 0.

Tiers by percentile of expected revenue across every customer valued in the same run:
  share_above = (customers with strictly greater expected revenue) / (customers in the run)
  A if share_above < 20% (the top 20%), B if < 50% (the next 30%), else C.
  Ties share the better tier, so a tier may hold slightly more than its share. A customer whose
  expected revenue is 0 is always C.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from domain.clv import MIN_REPEAT_CUSTOMERS, ClvFit, ClvPredictions, RfmRow, fit_clv

DAYS_PER_MONTH = 146_097 / 4_800  # the mean Gregorian month, 30.436875 days (domain.impact)
TRAILING_MONTHS = 12
TRAILING = timedelta(days=TRAILING_MONTHS * DAYS_PER_MONTH)  # 365.2425 days
DECAY_DAYS = TRAILING_MONTHS * DAYS_PER_MONTH  # run-rate fades to 0 this long after an order
DAY = timedelta(days=1)
WEEK = timedelta(days=7)

METHOD_FIT = "BG_NBD_GG"
METHOD_RUN_RATE = "RUN_RATE"
METHOD_OBSERVED = "OBSERVED"
TIER_A_SHARE = 0.20  # top 20% of the base by expected revenue
TIER_B_SHARE = 0.50  # the next 30%
MIN_ORDERS_FOR_MODEL = 2

FORMULAS: dict[str, str] = {
    "lifetime": "sum of all order and refund amounts booked at or before as_of",
    "t12m": "sum of order and refund amounts booked in (as_of - 365.2425 days, as_of]",
    "order_count": "number of orders (positive amounts) booked at or before as_of",
    "orders_per_month": "order_count / max(1, months from the first order to as_of), "
                        "month = 30.436875 days",
    "aov": "lifetime_revenue_fen / order_count, rounded half-up to the fen",
    "recency": "whole days from the last order to as_of",
    "tenure": "whole days from the start of the current owner's assignment to as_of",
    "bg_nbd_purchases": "BG/NBD conditional expected purchases over horizon_weeks given "
                        "frequency, recency and T (Fader, Hardie & Lee 2005, eq. 10), "
                        "parameters fitted by MAP on the whole customer base",
    "bg_nbd_gg_revenue": "expected_purchases * Gamma-Gamma expected value of one order "
                         "(Fader & Hardie 2013, eq. 5), rounded half-up to the fen",
    "run_rate_purchases": "t12m_order_count * horizon_months / 12 * decay",
    "run_rate_revenue": "max(0, t12m_revenue_fen) * horizon_months / 12 * decay, "
                        "decay = max(0, 1 - recency_days / 365.2425), rounded half-up",
    "tier": "A if share_above < 20%, B if share_above < 50%, else C; 0 expected revenue is C; "
            "share_above = customers with greater expected revenue / customers in the run",
}


# --- workflow DTOs ---------------------------------------------------------------------------


class ValuationRefreshInput(BaseModel):
    """Start ValuationRefreshWorkflow with this (the nightly Schedule, or HR on demand)."""

    horizon_months: int = Field(default=12, ge=1, le=60)
    label: str | None = Field(default=None, max_length=200)  # stored as the run's note
    trigger: str = Field(default="manual", max_length=20)  # "schedule" or "manual"


class ValuationRefreshResult(BaseModel):
    run_id: int
    run_key: str
    as_of: datetime
    horizon_months: int
    customers: int
    fitted_customers: int  # valued by BG_NBD_GG; the rest by RUN_RATE
    reused: bool = False  # True when the run already existed (a retried activity)
    fit_ok: bool = False
    fit_reason: str | None = None


# --- per-customer inputs ---------------------------------------------------------------------


@dataclass(frozen=True)
class OrderStats:
    """One customer's order history, aggregated (by SQL, or by `summarize`)."""

    customer_id: int
    order_count: int = 0  # rows with a positive amount
    refund_count: int = 0  # rows with a negative amount
    lifetime_revenue_fen: int = 0  # net: orders minus refunds
    refunds_fen: int = 0  # the negative rows' sum (<= 0)
    t12m_revenue_fen: int = 0
    t12m_order_count: int = 0
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    owner_since: datetime | None = None


def t12m_start(as_of: datetime) -> datetime:
    """Rows booked strictly after this (and at or before as_of) are in the trailing 12 months."""
    return as_of - TRAILING


def summarize(customer_id: int, orders: Iterable[tuple[datetime, int]],
              owner_since: datetime | None, as_of: datetime) -> OrderStats:
    """Aggregate a customer's (booked_at, amount_fen) rows, refunds negative, as of `as_of`.

    The reference for the SQL aggregation in activities.valuation.
    """
    since = t12m_start(as_of)
    count = refunds = lifetime = refunds_fen = t12m = t12m_orders = 0
    first = last = None
    for booked_at, amount in orders:
        if booked_at > as_of:
            continue
        lifetime += amount
        in_t12m = booked_at > since
        if in_t12m:
            t12m += amount
        if amount > 0:
            count += 1
            t12m_orders += in_t12m
            first = booked_at if first is None else min(first, booked_at)
            last = booked_at if last is None else max(last, booked_at)
        elif amount < 0:
            refunds += 1
            refunds_fen += amount
    return OrderStats(customer_id=customer_id, order_count=count, refund_count=refunds,
                      lifetime_revenue_fen=lifetime, refunds_fen=refunds_fen,
                      t12m_revenue_fen=t12m, t12m_order_count=t12m_orders,
                      first_order_at=first, last_order_at=last, owner_since=owner_since)


def half_up(value: float) -> int:
    """Round half away from zero to a whole number (fen)."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def _fig(value: Any, formula: str, method: str = METHOD_OBSERVED, **inputs: Any) -> dict:
    return {"value": value, "formula": formula, "method": method, "inputs": inputs}


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def rfm_inputs(stats: OrderStats, as_of: datetime) -> RfmRow | None:
    """BG/NBD and Gamma-Gamma inputs in weeks, or None for a customer without orders."""
    if stats.order_count == 0 or stats.first_order_at is None or stats.last_order_at is None:
        return None
    return RfmRow(
        customer_id=stats.customer_id,
        frequency=stats.order_count - 1,
        recency=(stats.last_order_at - stats.first_order_at) / WEEK,
        T=(as_of - stats.first_order_at) / WEEK,
        monetary_value=stats.lifetime_revenue_fen / stats.order_count,
    )


def horizon_weeks(horizon_months: int) -> float:
    return horizon_months * DAYS_PER_MONTH / 7


@dataclass
class CustomerValuation:
    """One customer's figures, shaped like models.valuation.ValuationSnapshot."""

    customer_id: int
    lifetime_revenue_fen: int
    t12m_revenue_fen: int
    order_count: int
    orders_per_month: float
    avg_order_value_fen: int
    recency_days: int | None
    owner_tenure_days: int | None
    expected_purchases: float
    expected_revenue_fen: int
    method: str
    tier: str = "C"
    inputs: dict[str, Any] = field(default_factory=dict)


def observed_figures(stats: OrderStats, as_of: datetime) -> dict[str, dict]:
    """The figures that need no model, each with its inputs."""
    first, last = stats.first_order_at, stats.last_order_at
    months = max(1.0, (as_of - first) / DAY / DAYS_PER_MONTH) if first else 1.0
    recency = math.floor((as_of - last) / DAY) if last else None
    tenure = (math.floor((as_of - stats.owner_since) / DAY)
              if stats.owner_since is not None else None)
    aov = half_up(stats.lifetime_revenue_fen / stats.order_count) if stats.order_count else 0
    return {
        "lifetime_revenue_fen": _fig(stats.lifetime_revenue_fen, "lifetime",
                                     orders_fen=stats.lifetime_revenue_fen - stats.refunds_fen,
                                     refunds_fen=stats.refunds_fen,
                                     refund_count=stats.refund_count),
        "t12m_revenue_fen": _fig(stats.t12m_revenue_fen, "t12m",
                                 window_start=_iso(t12m_start(as_of)),
                                 t12m_order_count=stats.t12m_order_count),
        "order_count": _fig(stats.order_count, "order_count"),
        "orders_per_month": _fig(round(stats.order_count / months, 6), "orders_per_month",
                                 order_count=stats.order_count, months=round(months, 4),
                                 first_order_at=_iso(first)),
        "avg_order_value_fen": _fig(aov, "aov", lifetime_revenue_fen=stats.lifetime_revenue_fen,
                                    order_count=stats.order_count),
        "recency_days": _fig(recency, "recency", last_order_at=_iso(last)),
        "owner_tenure_days": _fig(tenure, "tenure", owner_since=_iso(stats.owner_since)),
    }


def run_rate(stats: OrderStats, as_of: datetime, horizon_months: int,
             reason: str) -> tuple[float, int, dict[str, dict]]:
    """The fallback: (expected purchases, expected revenue in fen, the two figures)."""
    last = stats.last_order_at
    recency_days = math.floor((as_of - last) / DAY) if last else None
    decay = max(0.0, 1 - recency_days / DECAY_DAYS) if recency_days is not None else 0.0
    scale = horizon_months / TRAILING_MONTHS
    purchases = round(stats.t12m_order_count * scale * decay, 6)
    revenue = half_up(max(0, stats.t12m_revenue_fen) * scale * decay)
    common = {"horizon_months": horizon_months, "recency_days": recency_days,
              "decay": round(decay, 6), "reason": reason}
    return purchases, revenue, {
        "expected_purchases": _fig(purchases, "run_rate_purchases", METHOD_RUN_RATE,
                                   t12m_order_count=stats.t12m_order_count, **common),
        "expected_revenue_fen": _fig(revenue, "run_rate_revenue", METHOD_RUN_RATE,
                                     t12m_revenue_fen=stats.t12m_revenue_fen, **common),
    }


def value_customers(stats: Sequence[OrderStats], as_of: datetime, horizon_months: int,
                    predictions: ClvPredictions | None, *,
                    fit_reason: str | None = None) -> list[CustomerValuation]:
    """Value every customer of the base and assign tiers across it.

    `predictions` come from a sound fit (domain.clv.ClvFit.predict) for the customers with
    at least 2 orders; None, or a missing/rejected customer, means the run-rate fallback, and
    `fit_reason` (why the fit is degenerate) is then recorded as the reason.
    """
    weeks = horizon_weeks(horizon_months)
    out = []
    for s in stats:
        figures = observed_figures(s, as_of)
        rfm = rfm_inputs(s, as_of)
        prediction = predictions.predictions.get(s.customer_id) if predictions else None
        if s.order_count < MIN_ORDERS_FOR_MODEL:
            reason = f"fewer than {MIN_ORDERS_FOR_MODEL} orders"
        elif predictions is None:
            reason = f"degenerate fit: {fit_reason or 'no fit'}"
        elif prediction is None:
            reason = predictions.rejected.get(s.customer_id, "not predicted by the fit")
        else:
            reason = None
        if prediction is not None and reason is None and rfm is not None:
            method = METHOD_FIT
            purchases = prediction.expected_purchases
            revenue = half_up(prediction.expected_revenue_fen)
            model_inputs = {"frequency": rfm.frequency, "recency_weeks": round(rfm.recency, 6),
                            "T_weeks": round(rfm.T, 6),
                            "monetary_value_fen": round(rfm.monetary_value, 4),
                            "horizon_weeks": round(weeks, 6)}
            figures["expected_purchases"] = _fig(
                round(purchases, 6), "bg_nbd_purchases", METHOD_FIT,
                probability_alive=round(prediction.probability_alive, 6), **model_inputs)
            figures["expected_revenue_fen"] = _fig(
                revenue, "bg_nbd_gg_revenue", METHOD_FIT,
                expected_purchases=round(purchases, 6),
                expected_order_value_fen=round(prediction.expected_spend_fen, 4),
                **model_inputs)
        else:
            method = METHOD_RUN_RATE
            purchases, revenue, expected = run_rate(s, as_of, horizon_months,
                                                    reason or "no prediction")
            figures.update(expected)
        out.append(CustomerValuation(
            customer_id=s.customer_id,
            lifetime_revenue_fen=s.lifetime_revenue_fen,
            t12m_revenue_fen=s.t12m_revenue_fen,
            order_count=s.order_count,
            orders_per_month=figures["orders_per_month"]["value"],
            avg_order_value_fen=figures["avg_order_value_fen"]["value"],
            recency_days=figures["recency_days"]["value"],
            owner_tenure_days=figures["owner_tenure_days"]["value"],
            expected_purchases=round(purchases, 6),
            expected_revenue_fen=revenue,
            method=method,
            inputs={"as_of": _iso(as_of), "horizon_months": horizon_months,
                    "method": method, "figures": figures},
        ))
    assign_tiers(out)
    return out


def fit_and_value(stats: Sequence[OrderStats], as_of: datetime, horizon_months: int, *,
                  min_repeat_customers: int = MIN_REPEAT_CUSTOMERS,
                  fit: ClvFit | None = None) -> tuple[list[CustomerValuation], ClvFit]:
    """Fit once on the whole base (unless `fit` is given), predict, value and tier everyone."""
    rows = [r for r in (rfm_inputs(s, as_of) for s in stats) if r is not None]
    if fit is None:
        fit = fit_clv(rows, min_repeat_customers=min_repeat_customers)
    predictions = None
    if fit.ok:
        eligible = [r for r in rows if r.frequency + 1 >= MIN_ORDERS_FOR_MODEL]
        predictions = fit.predict(eligible, horizon_weeks(horizon_months))
    return value_customers(stats, as_of, horizon_months, predictions,
                           fit_reason=fit.reason), fit


def tier_for(share_above: float, expected_revenue_fen: int) -> str:
    if expected_revenue_fen <= 0:
        return "C"
    if share_above < TIER_A_SHARE:
        return "A"
    return "B" if share_above < TIER_B_SHARE else "C"


def assign_tiers(values: list[CustomerValuation]) -> None:
    """Set each customer's tier (and its inputs) by percentile of expected revenue."""
    n = len(values)
    ordered = sorted(values, key=lambda v: v.expected_revenue_fen, reverse=True)
    above = 0  # customers with strictly greater expected revenue than the current group
    i = 0
    while i < n:
        j = i
        value = ordered[i].expected_revenue_fen
        while j < n and ordered[j].expected_revenue_fen == value:
            j += 1
        share = above / n
        tier = tier_for(share, value)
        for v in ordered[i:j]:
            v.tier = tier
            v.inputs.setdefault("figures", {})["tier"] = _fig(
                tier, "tier", v.method, expected_revenue_fen=value, rank=above + 1,
                customers=n, share_above=round(share, 6))
        above = j
        i = j


def tier_cutoffs(values: Sequence[CustomerValuation]) -> dict[str, int | None]:
    """The lowest expected revenue in tiers A and B, for the run's record."""
    return {t: min((v.expected_revenue_fen for v in values if v.tier == t), default=None)
            for t in ("A", "B")}


def _yuan(fen: int | None) -> str:
    if fen is None:
        return "-"
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


def explain(inputs: dict[str, Any]) -> dict[str, str]:
    """Plain-language explanation of each stored figure, from a snapshot's `inputs`."""
    out = {}
    for name, fig in inputs.get("figures", {}).items():
        args = ", ".join(f"{k}={v}" for k, v in fig.get("inputs", {}).items())
        value = fig.get("value")
        shown = _yuan(value) if name.endswith("_fen") and isinstance(value, int) else value
        out[name] = (f"{name} = {shown} [{fig.get('method')}]: "
                     f"{FORMULAS.get(fig.get('formula', ''), fig.get('formula'))}"
                     + (f"; with {args}" if args else ""))
    return out
