"""Income impact and compensation: exact money, explained, at least two alternatives."""

from datetime import timedelta

import pytest

from domain.impact import CompensationKind, CustomerValue, assess, legal_review_needed
from domain.policy import default_terms
from tests.factories import fast_policy_rules

YEAR = timedelta(days=365.2425)


def rules(**overrides):
    base = dict(protection_period=YEAR / 4, protection_share_bp=5_000,
                compensation_pct_of_loss_bp=5_000, valuation_horizon_months=12)
    base.update(overrides)
    return fast_policy_rules(**base)


def customer(cid: int, expected: int, rate: int = 500, tier: str = "B") -> CustomerValue:
    return CustomerValue(customer_id=cid, expected_revenue_fen=expected, rate_bp=rate, tier=tier)


def test_quarter_protection_at_half_share_keeps_an_eighth():
    r = rules()
    a = assess([customer(1, 120_000_000)], r, default_terms(r))
    assert a.projected_commission_fen == 6_000_000  # 5% of 1.2M yuan
    assert a.kept_through_protection_fen == 750_000  # a quarter of the year at 50%
    assert a.projected_loss_fen == 5_250_000
    lump = a.suggested
    assert lump.kind == CompensationKind.LUMP_SUM
    assert lump.terms.compensation_fen == 2_625_000  # 50% of the loss
    assert lump.remaining_loss_fen == 2_625_000 and lump.cost_to_company_fen == 2_625_000
    assert "¥52,500.00" in a.explanation and "human review" in a.explanation


def test_alternatives_carry_their_own_figures():
    r = rules()
    a = assess([customer(1, 120_000_000), customer(2, 40_000_000, rate=200, tier="A")], r,
               default_terms(r))
    kinds = [o.kind for o in a.alternatives]
    assert len(a.alternatives) >= 2 and kinds[:2] == [CompensationKind.LUMP_SUM,
                                                      CompensationKind.LONGER_PROTECTION]
    longer = a.alternatives[1]
    assert longer.terms.protection_period == YEAR / 2 and longer.terms.compensation_fen == 0
    assert longer.kept_through_protection_fen == 2 * a.kept_through_protection_fen
    higher = a.alternatives[2]
    assert higher.terms.protection_share_bp == 7_000
    assert a.top_tier == "A"
    # per-customer rounding, then a sum: exact integers throughout
    assert a.projected_commission_fen == 6_000_000 + 800_000


def test_protection_longer_than_the_horizon_keeps_at_most_the_horizon():
    r = rules(protection_period=YEAR * 3)
    a = assess([customer(1, 100_000)], r, default_terms(r))
    assert a.kept_through_protection_fen == a.projected_commission_fen // 2


def test_no_lump_sum_policy_suggests_longer_protection():
    r = rules(compensation_pct_of_loss_bp=0)
    a = assess([customer(1, 100_000_000)], r, default_terms(r))
    assert a.suggested.kind == CompensationKind.LONGER_PROTECTION


def test_half_up_rounding_on_a_half_fen():
    r = rules(protection_share_bp=0)
    a = assess([customer(1, 101, rate=500)], r, default_terms(r))  # 5.05 fen
    assert a.projected_commission_fen == 5
    a = assess([customer(1, 110, rate=500)], r, default_terms(r))  # 5.5 fen
    assert a.projected_commission_fen == 6


def test_empty_request_is_refused():
    r = rules()
    with pytest.raises(ValueError):
        assess([], r, default_terms(r))


def test_legal_review_thresholds_by_value_tier_and_loss():
    r = rules(legal_threshold_fen=10**12, legal_tier_threshold="A",
              legal_loss_threshold_fen=1_000_000)
    assert not legal_review_needed(r, value_fen=0, top_tier="B", projected_loss_fen=999_999)
    assert legal_review_needed(r, value_fen=0, top_tier="A", projected_loss_fen=0)
    assert legal_review_needed(r, value_fen=0, top_tier="C", projected_loss_fen=1_000_000)
    assert legal_review_needed(r, value_fen=10**12, top_tier=None, projected_loss_fen=None)
    no_legal = rules(legal_level=None)
    assert not legal_review_needed(no_legal, value_fen=10**13, top_tier="A",
                                   projected_loss_fen=10**9)
