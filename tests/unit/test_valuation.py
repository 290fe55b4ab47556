"""Customer valuation: observed figures, BG/NBD + Gamma-Gamma (pymc-marketing, MAP) with the
run-rate fallback, and tiers. One session-scoped fit on a small synthetic base (fixed seed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy.special import hyp2f1

from domain.clv import ClvFit, RfmRow, fit_clv
from domain.valuation import (
    METHOD_FIT,
    METHOD_RUN_RATE,
    CustomerValuation,
    OrderStats,
    assign_tiers,
    explain,
    fit_and_value,
    horizon_weeks,
    rfm_inputs,
    summarize,
    value_customers,
)

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)
HORIZON = 12


def bgnbd_expected_purchases(r: float, alpha: float, a: float, b: float, x: float, t_x: float,
                             T: float, t: float) -> float:  # noqa: N803
    """Fader, Hardie & Lee (2005), eq. 10: E[Y(t) | X = x, t_x, T], written out by hand."""
    head = (a + b + x - 1) / (a - 1)
    tail = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(
        r + x, b + x, a + b + x - 1, t / (alpha + T + t))
    denominator = 1 + (x > 0) * (a / (b + x - 1)) * ((alpha + T) / (alpha + t_x)) ** (r + x)
    return head * tail / denominator


def synthetic_base(n: int = 300, seed: int = 20260101) -> list[OrderStats]:
    """Customers who buy by a Poisson process (rate ~ Gamma) and drop out after any repeat
    purchase (p ~ Beta): the BG/NBD story. 6 months to 2 years of history; amounts ~ Gamma."""
    rng = np.random.default_rng(seed)
    out = []
    for cid in range(1, n + 1):
        rate = rng.gamma(1.0, 1 / 4.0)  # purchases per week
        p = rng.beta(0.6, 3.0)
        age = rng.uniform(26, 104)  # weeks since the first order
        mean_value = rng.gamma(4.0, 50_000 / 4.0)  # fen
        t, times = 0.0, [0.0]
        while True:
            t += rng.exponential(1 / rate)
            if t > age:
                break
            times.append(t)
            if rng.random() < p:
                break
        first = AS_OF - timedelta(weeks=age)
        orders = [(first + timedelta(weeks=w), max(1, int(rng.gamma(6.0, mean_value / 6.0))))
                  for w in times]
        out.append(summarize(cid, orders, first, AS_OF))
    return out


def steady_orders(until: datetime) -> list[tuple[datetime, int]]:
    """An order of 1,000 yuan every 30 days for two years, the last one 10 days before `until`,
    and one partial refund of 200 yuan."""
    last = until - timedelta(days=10)
    orders = [(last - timedelta(days=30 * k), 100_000) for k in range(24)]
    orders.append((last - timedelta(days=95), -20_000))
    return orders


@pytest.fixture(scope="session")
def base_fit() -> tuple[list[OrderStats], ClvFit]:
    base = synthetic_base()
    fit = fit_clv([r for r in (rfm_inputs(s, AS_OF) for s in base) if r is not None])
    assert fit.ok, fit.reason
    return base, fit


def test_observed_figures_of_a_steady_customer():
    owner_since = AS_OF - timedelta(days=400)
    stats = summarize(7, steady_orders(AS_OF), owner_since, AS_OF)
    assert (stats.order_count, stats.refund_count) == (24, 1)
    assert stats.lifetime_revenue_fen == 24 * 100_000 - 20_000
    # (as_of - 365.2425 days, as_of]: orders 10, 40, ..., 340 days ago, and the refund
    assert stats.t12m_order_count == 12
    assert stats.t12m_revenue_fen == 12 * 100_000 - 20_000
    [v] = value_customers([stats], AS_OF, HORIZON, None, fit_reason="not fitted here")
    assert v.recency_days == 10
    assert v.owner_tenure_days == 400
    assert v.avg_order_value_fen == round((2_400_000 - 20_000) / 24)  # 99,167 fen, net
    first_age_days = 10 + 30 * 23
    assert v.orders_per_month == pytest.approx(24 / (first_age_days / 30.436875), rel=1e-6)
    rfm = rfm_inputs(stats, AS_OF)
    assert rfm == RfmRow(customer_id=7, frequency=23, recency=30 * 23 / 7,
                         T=first_age_days / 7, monetary_value=(2_400_000 - 20_000) / 24)
    # every figure carries its inputs and can be explained
    figures = v.inputs["figures"]
    assert figures["lifetime_revenue_fen"]["inputs"] == {
        "orders_fen": 2_400_000, "refunds_fen": -20_000, "refund_count": 1}
    assert set(explain(v.inputs)) == set(figures) >= {
        "lifetime_revenue_fen", "t12m_revenue_fen", "order_count", "orders_per_month",
        "avg_order_value_fen", "recency_days", "owner_tenure_days", "expected_purchases",
        "expected_revenue_fen", "tier"}
    assert "degenerate fit: not fitted here" in explain(v.inputs)["expected_revenue_fen"]


def test_steady_customer_is_valued_by_the_model(base_fit):
    base, fit = base_fit
    stats = summarize(10_001, steady_orders(AS_OF), AS_OF - timedelta(days=800), AS_OF)
    [v], _ = fit_and_value([stats], AS_OF, HORIZON, fit=fit)
    assert v.method == METHOD_FIT
    figure = v.inputs["figures"]["expected_revenue_fen"]
    assert figure["method"] == METHOD_FIT
    assert figure["inputs"]["frequency"] == 23
    assert v.inputs["figures"]["expected_purchases"]["inputs"]["probability_alive"] > 0.9
    # a customer who kept ordering monthly is expected to keep roughly that pace: a little
    # under 12 orders (some chance of dropping out), at about their average order value
    assert 8 < v.expected_purchases < 12.5
    assert 0.6 * stats.t12m_revenue_fen < v.expected_revenue_fen < 1.25 * stats.t12m_revenue_fen


def test_lapsed_customer_expected_revenue_falls_with_recency(base_fit):
    """The same history valued later and later: each later as_of expects less."""
    _, fit = base_fit
    history = steady_orders(AS_OF)
    expected = []
    for days_later in (0, 30, 90, 180, 270):
        as_of = AS_OF + timedelta(days=days_later)
        stats = summarize(10_002, history, AS_OF - timedelta(days=800), as_of)
        [v], _ = fit_and_value([stats], as_of, HORIZON, fit=fit)
        assert v.method == METHOD_FIT
        expected.append(v.expected_revenue_fen)
    assert expected == sorted(expected, reverse=True)
    assert len(set(expected)) == len(expected)
    assert expected[-1] < expected[0] / 3  # nine silent months after monthly orders


def test_new_customer_gets_the_run_rate_fallback(base_fit):
    _, fit = base_fit
    one_order = [(AS_OF - timedelta(days=73), 300_000)]
    stats = summarize(10_003, one_order, AS_OF - timedelta(days=73), AS_OF)
    [v], _ = fit_and_value([stats], AS_OF, HORIZON, fit=fit)
    assert v.method == METHOD_RUN_RATE
    revenue = v.inputs["figures"]["expected_revenue_fen"]
    assert revenue["method"] == METHOD_RUN_RATE
    assert revenue["inputs"]["reason"] == "fewer than 2 orders"
    decay = 1 - 73 / 365.2425
    assert revenue["inputs"]["decay"] == pytest.approx(decay, abs=1e-6)
    assert v.expected_revenue_fen == round(300_000 * decay)
    assert v.expected_purchases == pytest.approx(decay, abs=1e-6)
    # the same single order longer ago decays, and to nothing after 12 months
    values = []
    for days_later in (0, 100, 200, 300):
        as_of = AS_OF + timedelta(days=days_later)
        [w] = value_customers([summarize(10_003, one_order, None, as_of)], as_of, HORIZON,
                              None)
        values.append(w.expected_revenue_fen)
    assert values == sorted(values, reverse=True) and values[-1] == 0
    # a 6-month horizon is half of the 12-month run rate
    [h] = value_customers([stats], AS_OF, 6, None)
    assert h.expected_revenue_fen == round(300_000 * decay / 2)


def test_customer_without_orders():
    [v] = value_customers([OrderStats(customer_id=5)], AS_OF, HORIZON, None)
    assert (v.method, v.expected_revenue_fen, v.tier, v.recency_days) == (
        METHOD_RUN_RATE, 0, "C", None)


def test_expected_purchases_match_equation_10_by_hand(base_fit):
    """pymc-marketing's expected purchases equal eq. 10 evaluated by hand (scipy's 2F1) with
    the fitted r, alpha, a, b, to within 1%."""
    # the hand formula itself, checked on the paper's CDNOW example: r=0.243, alpha=4.414,
    # a=0.793, b=2.426; x=2, t_x=30.43, T=38.86 -> 1.226 purchases in the next 39 weeks
    assert bgnbd_expected_purchases(0.243, 4.414, 0.793, 2.426, 2, 30.43, 38.86, 39) == (
        pytest.approx(1.226, abs=5e-4))
    base, fit = base_fit
    p = fit.params
    rows = [r for r in (rfm_inputs(s, AS_OF) for s in base) if r and r.frequency > 0][:5]
    steady = rfm_inputs(summarize(10_001, steady_orders(AS_OF), None, AS_OF), AS_OF)
    assert steady is not None
    rows.append(steady)
    weeks = horizon_weeks(HORIZON)
    predicted = fit.predict(rows, weeks)
    assert not predicted.rejected
    for row in rows:
        by_hand = bgnbd_expected_purchases(p["r"], p["alpha"], p["a"], p["b"], row.frequency,
                                           row.recency, row.T, weeks)
        assert predicted.predictions[row.customer_id].expected_purchases == pytest.approx(
            by_hand, rel=0.01)


def test_fit_on_the_base_values_repeat_customers_by_model(base_fit):
    base, fit = base_fit
    values, _ = fit_and_value(base, AS_OF, HORIZON, fit=fit)
    by_id = {v.customer_id: v for v in values}
    for s in base:
        expected_method = METHOD_FIT if s.order_count >= 2 else METHOD_RUN_RATE
        assert by_id[s.customer_id].method == expected_method
    tiers = [v.tier for v in values]
    assert tiers.count("A") == pytest.approx(0.2 * len(values), abs=2)
    assert tiers.count("B") == pytest.approx(0.3 * len(values), abs=2)
    # the parameters stay near the ones the base was drawn from (r=1, alpha=4, a=0.6, b=3)
    assert 0.5 < fit.params["r"] < 2 and 2 < fit.params["alpha"] < 8
    assert fit.summary()["params"] == fit.params


def test_too_few_repeat_customers_is_a_degenerate_fit():
    rows = [RfmRow(i, 1 if i < 5 else 0, 1.0, 10.0, 100.0) for i in range(50)]
    fit = fit_clv(rows)
    assert not fit.ok and fit.reason == "too few repeat customers to fit: 5 < 20"
    stats = [summarize(1, [(AS_OF - timedelta(days=40), 50_000),
                           (AS_OF - timedelta(days=20), 50_000)], None, AS_OF)]
    [v], _ = fit_and_value(stats, AS_OF, HORIZON, fit=fit)
    assert v.method == METHOD_RUN_RATE
    assert v.inputs["figures"]["expected_revenue_fen"]["inputs"]["reason"] == (
        "degenerate fit: too few repeat customers to fit: 5 < 20")
    assert v.expected_revenue_fen == round(100_000 * (1 - 20 / 365.2425))


def test_a_non_finite_prediction_falls_back_for_that_customer_only(base_fit):
    _, fit = base_fit
    good = summarize(1, steady_orders(AS_OF), None, AS_OF)
    refunded = summarize(2, [(AS_OF - timedelta(days=50), 10_000),
                             (AS_OF - timedelta(days=30), 10_000),
                             (AS_OF - timedelta(days=29), -20_000)], None, AS_OF)
    values, _ = fit_and_value([good, refunded], AS_OF, HORIZON, fit=fit)
    assert [v.method for v in values] == [METHOD_FIT, METHOD_RUN_RATE]
    reason = values[1].inputs["figures"]["expected_revenue_fen"]["inputs"]["reason"]
    assert reason == "average net order value is not positive"


def _valued(revenues: list[int]) -> list[CustomerValuation]:
    values = [CustomerValuation(customer_id=i, lifetime_revenue_fen=0, t12m_revenue_fen=0,
                                order_count=0, orders_per_month=0, avg_order_value_fen=0,
                                recency_days=None, owner_tenure_days=None,
                                expected_purchases=0, expected_revenue_fen=r,
                                method=METHOD_FIT) for i, r in enumerate(revenues)]
    assign_tiers(values)
    return values


def test_tiers_by_percentile_of_expected_revenue():
    values = _valued([100 * (i + 1) for i in range(10)])  # 100 .. 1000
    by_revenue = {v.expected_revenue_fen: v.tier for v in values}
    assert [by_revenue[r] for r in (1000, 900)] == ["A", "A"]  # top 20%
    assert [by_revenue[r] for r in (800, 700, 600)] == ["B", "B", "B"]  # next 30%
    assert {by_revenue[r] for r in (500, 400, 300, 200, 100)} == {"C"}
    top = next(v for v in values if v.expected_revenue_fen == 1000)
    assert top.inputs["figures"]["tier"]["inputs"] == {
        "expected_revenue_fen": 1000, "rank": 1, "customers": 10, "share_above": 0.0}

    # ties share the better tier; zero expected revenue is always C
    tied = _valued([500, 500, 500, 100, 0, 0, 0, 0, 0, 0])
    assert [v.tier for v in tied] == ["A", "A", "A", "B", "C", "C", "C", "C", "C", "C"]
    assert [v.tier for v in _valued([0, 0, 0])] == ["C", "C", "C"]
