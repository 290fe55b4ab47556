"""Income impact and compensation for the salesperson who loses customers. Pure and exact.

Expected revenue over the policy's horizon comes from the latest valuation snapshot of each
customer. It is spread evenly over the horizon, so protection of length p keeps
min(p, horizon) / horizon of it at the protection share. Every figure carries its inputs and a
plain-language explanation, because an employee may demand both (PIPL Art. 24).
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from fractions import Fraction

from pydantic import BaseModel, Field

from domain.policy import PolicyRules, Terms

DAYS_PER_MONTH = Fraction(146_097, 4_800)  # the Gregorian mean, 30.436875 days
TIER_ORDER = {"A": 0, "B": 1, "C": 2}


class CustomerValue(BaseModel):
    """One customer's figures from the latest valuation snapshot."""

    customer_id: int
    customer_code: str = ""
    customer_name: str = ""
    t12m_revenue_fen: int = 0
    lifetime_revenue_fen: int = 0
    order_count: int = 0
    expected_revenue_fen: int
    tier: str = "C"
    method: str = "RUN_RATE"  # BG_NBD_GG or RUN_RATE
    rate_bp: int  # the owner's current rate on this customer (base if found, else inherited)
    snapshot_as_of: str | None = None


class CompensationKind(StrEnum):
    LUMP_SUM = "LUMP_SUM"
    LONGER_PROTECTION = "LONGER_PROTECTION"
    HIGHER_SHARE = "HIGHER_SHARE"
    COMBINED = "COMBINED"


class CompensationOption(BaseModel):
    kind: CompensationKind
    terms: Terms
    kept_through_protection_fen: int
    remaining_loss_fen: int  # the projected loss left after this option
    cost_to_company_fen: int  # lump sum plus the extra commission kept by the original owner
    explanation: str


class Assessment(BaseModel):
    horizon_months: int
    customers: list[CustomerValue]
    total_expected_revenue_fen: int
    total_t12m_revenue_fen: int
    top_tier: str | None
    projected_commission_fen: int  # what the owner would earn over the horizon without the move
    kept_through_protection_fen: int  # what the offered terms keep
    projected_loss_fen: int
    suggested: CompensationOption
    alternatives: list[CompensationOption] = Field(min_length=2)
    explanation: str
    inputs: dict[str, object] = Field(default_factory=dict)


def half_up(value: Fraction) -> int:
    """Round half away from zero to a whole fen."""
    sign = -1 if value < 0 else 1
    return sign * int((abs(value) * 2 + 1) // 2)


def _days(value: timedelta) -> Fraction:
    return Fraction(value // timedelta(microseconds=1), 86_400_000_000)


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


def _kept(customers: list[CustomerValue], horizon_days: Fraction, terms: Terms) -> int:
    covered = min(_days(terms.protection_period), horizon_days) / horizon_days
    return sum(half_up(Fraction(c.expected_revenue_fen) * covered * c.rate_bp
                       * terms.protection_share_bp / 100_000_000) for c in customers)


def _option(kind: CompensationKind, customers: list[CustomerValue], horizon_days: Fraction,
            terms: Terms, projected: int, base_kept: int, why: str) -> CompensationOption:
    kept = _kept(customers, horizon_days, terms)
    return CompensationOption(
        kind=kind, terms=terms, kept_through_protection_fen=kept,
        remaining_loss_fen=max(projected - kept - terms.compensation_fen, 0),
        cost_to_company_fen=terms.compensation_fen + (kept - base_kept),
        explanation=why)


def legal_review_needed(rules: PolicyRules, *, value_fen: int, top_tier: str | None,
                        projected_loss_fen: int | None) -> bool:
    """Legal joins the chain above the policy's value, tier or loss thresholds."""
    if rules.legal_level is None:
        return False
    if value_fen >= rules.legal_threshold_fen:
        return True
    if (rules.legal_tier_threshold and top_tier
            and TIER_ORDER[top_tier] <= TIER_ORDER[rules.legal_tier_threshold]):
        return True
    return (rules.legal_loss_threshold_fen is not None and projected_loss_fen is not None
            and projected_loss_fen >= rules.legal_loss_threshold_fen)


def assess(customers: list[CustomerValue], rules: PolicyRules, terms: Terms) -> Assessment:
    """Value, the owner's projected loss, and compensation options under `terms`."""
    if not customers:
        raise ValueError("an assessment needs at least one customer")
    horizon_days = rules.valuation_horizon_months * DAYS_PER_MONTH
    projected = sum(half_up(Fraction(c.expected_revenue_fen * c.rate_bp, 10_000))
                    for c in customers)
    base_terms = terms.model_copy(update={"compensation_fen": 0})
    kept = _kept(customers, horizon_days, base_terms)
    loss = max(projected - kept, 0)

    lump = half_up(Fraction(loss * rules.compensation_pct_of_loss_bp, 10_000))
    extra_period = rules.compensation_extra_protection or terms.protection_period
    extra_share = (rules.compensation_extra_share_bp
                   or min(2_000, 10_000 - terms.protection_share_bp))
    longer = base_terms.model_copy(
        update={"protection_period": terms.protection_period + extra_period})
    higher = base_terms.model_copy(
        update={"protection_share_bp": min(terms.protection_share_bp + extra_share, 10_000)})
    combined = longer.model_copy(update={"compensation_fen": lump // 2})
    options = [
        _option(CompensationKind.LUMP_SUM, customers, horizon_days,
                base_terms.model_copy(update={"compensation_fen": lump}), projected, kept,
                f"A one-off payment of {_yuan(lump)}: "
                f"{rules.compensation_pct_of_loss_bp / 100:g}% of the projected loss."),
        _option(CompensationKind.LONGER_PROTECTION, customers, horizon_days, longer, projected,
                kept, f"Protection lasts {float(_days(longer.protection_period)):.4g} days "
                      f"instead of {float(_days(terms.protection_period)):.4g}, at the same "
                      "share."),
        _option(CompensationKind.HIGHER_SHARE, customers, horizon_days, higher, projected, kept,
                f"The share kept during protection rises from "
                f"{terms.protection_share_bp / 100:g}% to {higher.protection_share_bp / 100:g}%."),
        _option(CompensationKind.COMBINED, customers, horizon_days, combined, projected, kept,
                f"Half the one-off payment ({_yuan(lump // 2)}) and the longer protection."),
    ]
    suggested = options[0] if lump > 0 else options[1]
    tiers = [c.tier for c in customers if c.tier in TIER_ORDER]
    top_tier = min(tiers, key=TIER_ORDER.__getitem__) if tiers else None
    total_expected = sum(c.expected_revenue_fen for c in customers)
    explanation = (
        f"Over the next {rules.valuation_horizon_months} months these {len(customers)} "
        f"customer(s) are expected to bring {_yuan(total_expected)} of revenue. At your current "
        f"rates you would earn {_yuan(projected)} commission on it. During the protection "
        f"period of {float(_days(terms.protection_period)):.4g} days you keep "
        f"{terms.protection_share_bp / 100:g}% of your commission on them, "
        f"{_yuan(kept)}, so the projected loss is {_yuan(loss)}. Expected revenue comes from "
        "each customer's latest valuation (BG/NBD with Gamma-Gamma where the history allows, "
        "otherwise the documented run-rate); you may ask for a human review of it."
    )
    return Assessment(
        horizon_months=rules.valuation_horizon_months, customers=customers,
        total_expected_revenue_fen=total_expected,
        total_t12m_revenue_fen=sum(c.t12m_revenue_fen for c in customers), top_tier=top_tier,
        projected_commission_fen=projected, kept_through_protection_fen=kept,
        projected_loss_fen=loss, suggested=suggested, alternatives=options,
        explanation=explanation,
        inputs={"horizon_months": rules.valuation_horizon_months,
                "horizon_days": float(horizon_days),
                "protection_days": float(_days(terms.protection_period)),
                "protection_share_bp": terms.protection_share_bp,
                "compensation_pct_of_loss_bp": rules.compensation_pct_of_loss_bp,
                "rates_bp": {str(c.customer_id): c.rate_bp for c in customers},
                "methods": {str(c.customer_id): c.method for c in customers}},
    )
