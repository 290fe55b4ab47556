"""domain.commission.attribute: who earns what on one order or refund (DESIGN.md rules 1-9)."""

from __future__ import annotations

import dataclasses
import decimal
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.commission import (
    CLAWBACK_PREFIX,
    AssignmentSpan,
    Line,
    LineRole,
    OrderFact,
    PlanSpan,
    Protection,
    Rule,
    SpanSource,
    attribute,
    clawback_amount,
    commission_amount,
    owner_at,
    plan_at,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")

A, B, C = 1, 2, 3
CUSTOMER = 100
REQ_AB, REQ_BC = 7001, 7002

FOUND_AT = datetime(2025, 6, 1, tzinfo=UTC)
EFFECTIVE = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # A -> B takes effect
PROTECTION_END = EFFECTIVE + timedelta(days=30)
SHARE = 3_000  # A keeps 30 % during protection
US = timedelta(microseconds=1)

# base, inherited
RATES = {A: (500, 300), B: (400, 200), C: (600, 250)}


def plan(employee: int, base: int, inherited: int, frm: datetime = FOUND_AT - timedelta(days=365),
         to: datetime | None = None) -> PlanSpan:
    return PlanSpan(employee_id=employee, effective_from=frm, effective_to=to,
                    base_rate_bp=base, inherited_rate_bp=inherited)


PLANS = [plan(e, *RATES[e]) for e in (A, B, C)]


def found(employee: int, start: datetime, end: datetime | None,
          customer: int = CUSTOMER) -> AssignmentSpan:
    return AssignmentSpan(customer_id=customer, employee_id=employee, start_at=start, end_at=end,
                          source=SpanSource.FOUND)


def moved(employee: int, start: datetime, end: datetime | None, request_id: int,
          customer: int = CUSTOMER) -> AssignmentSpan:
    return AssignmentSpan(customer_id=customer, employee_id=employee, start_at=start, end_at=end,
                          source=SpanSource.REASSIGNMENT, request_id=request_id)


def protection(request_id: int, frm: int, to: int, effective_at: datetime,
               end: datetime, share: int = SHARE) -> Protection:
    return Protection(request_id=request_id, from_employee_id=frm, to_employee_id=to,
                      effective_at=effective_at, protection_end=end, share_bp=share)


# A found the customer; A -> B at EFFECTIVE with protection until PROTECTION_END.
SPANS_AB = [found(A, FOUND_AT, EFFECTIVE), moved(B, EFFECTIVE, None, REQ_AB)]
PROT_AB = [protection(REQ_AB, A, B, EFFECTIVE, PROTECTION_END)]


def order(booked_at: datetime, amount: int = 1_000_000, order_id: int = 1,
          customer: int = CUSTOMER) -> OrderFact:
    return OrderFact(order_id=order_id, customer_id=customer, amount_fen=amount,
                     booked_at=booked_at)


def refund(of: OrderFact, booked_at: datetime, amount: int | None = None,
           order_id: int = 2) -> OrderFact:
    return OrderFact(order_id=order_id, customer_id=of.customer_id,
                     amount_fen=-of.amount_fen if amount is None else amount,
                     booked_at=booked_at, is_refund=True, original_booked_at=of.booked_at)


def summary(lines: Sequence[Line]) -> list[tuple[int, LineRole, str, int, int, int]]:
    return [(x.employee_id, x.role, x.rule, x.rate_bp, x.share_bp, x.amount_fen) for x in lines]


# --- rules 1-3: before, during and after protection ----------------------------------------


def test_before_the_reassignment_the_finder_earns_the_base_rate_alone() -> None:
    lines = attribute(order(EFFECTIVE - US), SPANS_AB, PROT_AB, PLANS)
    assert summary(lines) == [(A, LineRole.OWNER, Rule.OWNER_BASE, 500, 10_000, 50_000)]
    line = lines[0]
    assert (line.order_id, line.customer_id, line.base_amount_fen, line.request_id) == (
        1, CUSTOMER, 1_000_000, None)


def test_during_protection_the_order_is_split_original_first() -> None:
    lines = attribute(order(EFFECTIVE + timedelta(days=3)), SPANS_AB, PROT_AB, PLANS)
    assert summary(lines) == [
        # 1_000_000 x 5.00 % x 30 % and 1_000_000 x 2.00 % x 70 %
        (A, LineRole.PROTECTED_ORIGINAL, Rule.PROTECTION_ORIGINAL, 500, 3_000, 15_000),
        (B, LineRole.INHERITED_OWNER, Rule.PROTECTION_INHERITED, 200, 7_000, 14_000),
    ]
    assert [x.request_id for x in lines] == [REQ_AB, REQ_AB]
    assert all(x.base_amount_fen == 1_000_000 for x in lines)


def test_after_protection_the_new_owner_earns_the_inherited_rate_alone() -> None:
    lines = attribute(order(PROTECTION_END + timedelta(days=1)), SPANS_AB, PROT_AB, PLANS)
    assert summary(lines) == [
        (B, LineRole.INHERITED_OWNER, Rule.OWNER_INHERITED, 200, 10_000, 20_000)]
    assert lines[0].request_id == REQ_AB


def test_effective_at_is_inclusive_and_protection_end_exclusive() -> None:
    at_start = attribute(order(EFFECTIVE), SPANS_AB, PROT_AB, PLANS)
    assert [x.role for x in at_start] == [LineRole.PROTECTED_ORIGINAL, LineRole.INHERITED_OWNER]
    last_moment = attribute(order(PROTECTION_END - US), SPANS_AB, PROT_AB, PLANS)
    assert [x.role for x in last_moment] == [LineRole.PROTECTED_ORIGINAL,
                                            LineRole.INHERITED_OWNER]
    at_end = attribute(order(PROTECTION_END), SPANS_AB, PROT_AB, PLANS)
    assert summary(at_end) == [
        (B, LineRole.INHERITED_OWNER, Rule.OWNER_INHERITED, 200, 10_000, 20_000)]


def test_boundaries_compare_absolute_time_whatever_the_zone() -> None:
    # Rule 9: the same instant written in Asia/Shanghai is still exactly effective_at.
    local_effective = EFFECTIVE.astimezone(SHANGHAI)
    assert local_effective.hour == 10
    lines = attribute(order(local_effective), SPANS_AB, PROT_AB, PLANS)
    assert [x.employee_id for x in lines] == [A, B]
    before = attribute(order((EFFECTIVE - US).astimezone(SHANGHAI)), SPANS_AB, PROT_AB, PLANS)
    assert [x.role for x in before] == [LineRole.OWNER]
    # and the history itself may be written in another zone
    spans = [found(A, FOUND_AT, local_effective),
             moved(B, local_effective, None, REQ_AB)]
    prots = [protection(REQ_AB, A, B, local_effective, PROTECTION_END.astimezone(SHANGHAI))]
    assert attribute(order(EFFECTIVE), spans, prots, PLANS) == lines


def test_two_successive_reassignments_use_the_middle_owners_inherited_rate() -> None:
    # A found the customer, A -> B (REQ_AB), B's protection ends, then B -> C (REQ_BC).
    second = PROTECTION_END + timedelta(days=20)
    second_end = second + timedelta(days=30)
    spans = [found(A, FOUND_AT, EFFECTIVE), moved(B, EFFECTIVE, second, REQ_AB),
             moved(C, second, None, REQ_BC)]
    prots = [*PROT_AB, protection(REQ_BC, B, C, second, second_end, share=5_000)]

    during_c = attribute(order(second + timedelta(days=1)), spans, prots, PLANS)
    assert summary(during_c) == [
        # B received the customer by reassignment: rate_A is B's inherited 2.00 %, not 4.00 %
        (B, LineRole.PROTECTED_ORIGINAL, Rule.PROTECTION_ORIGINAL, 200, 5_000, 10_000),
        (C, LineRole.INHERITED_OWNER, Rule.PROTECTION_INHERITED, 250, 5_000, 12_500),
    ]
    assert [x.request_id for x in during_c] == [REQ_BC, REQ_BC]

    # Earlier orders still follow the history as it stood then.
    during_b = attribute(order(EFFECTIVE + timedelta(days=1)), spans, prots, PLANS)
    assert [(x.employee_id, x.rate_bp, x.share_bp) for x in during_b] == [
        (A, 500, 3_000), (B, 200, 7_000)]
    between = attribute(order(second - US), spans, prots, PLANS)
    assert summary(between) == [
        (B, LineRole.INHERITED_OWNER, Rule.OWNER_INHERITED, 200, 10_000, 20_000)]
    after_c = attribute(order(second_end), spans, prots, PLANS)
    assert summary(after_c) == [
        (C, LineRole.INHERITED_OWNER, Rule.OWNER_INHERITED, 250, 10_000, 25_000)]


def test_attribution_uses_history_at_t_not_the_current_owner() -> None:
    later = PROTECTION_END + timedelta(days=90)
    spans = [found(A, FOUND_AT, EFFECTIVE), moved(B, EFFECTIVE, later, REQ_AB),
             moved(C, later, None, REQ_BC)]
    prots = [*PROT_AB, protection(REQ_BC, B, C, later, later + timedelta(days=30))]
    o = order(FOUND_AT + timedelta(days=10))
    assert summary(attribute(o, spans, prots, PLANS)) == [
        (A, LineRole.OWNER, Rule.OWNER_BASE, 500, 10_000, 50_000)]


def test_departure_handover_without_protection_goes_straight_to_the_inherited_rate() -> None:
    # EMPLOYEE_DEPARTURE: the span comes from a request, but that request has no protection.
    lines = attribute(order(EFFECTIVE), SPANS_AB, [], PLANS)
    assert summary(lines) == [
        (B, LineRole.INHERITED_OWNER, Rule.OWNER_INHERITED, 200, 10_000, 20_000)]
    assert lines[0].request_id == REQ_AB


def test_no_owner_at_t_means_no_lines() -> None:
    assert attribute(order(FOUND_AT - US), SPANS_AB, PROT_AB, PLANS) == []
    closed = [found(A, FOUND_AT, EFFECTIVE)]
    assert attribute(order(EFFECTIVE), closed, [], PLANS) == []
    assert attribute(order(FOUND_AT), closed, [], PLANS) != []


def test_other_customers_history_is_ignored() -> None:
    other = [found(C, FOUND_AT - timedelta(days=1), None, customer=CUSTOMER + 1)]
    lines = attribute(order(EFFECTIVE - US), [*other, *SPANS_AB], PROT_AB, PLANS)
    assert [x.employee_id for x in lines] == [A]
    assert attribute(order(EFFECTIVE, customer=CUSTOMER + 2), SPANS_AB, PROT_AB, PLANS) == []


def test_identical_copies_of_one_protection_count_once() -> None:
    # e.g. one protection row per customer of a multi-customer request
    lines = attribute(order(EFFECTIVE), SPANS_AB, PROT_AB * 2, PLANS)
    assert lines == attribute(order(EFFECTIVE), SPANS_AB, PROT_AB, PLANS)


def test_protection_share_zero_and_full_still_give_two_lines() -> None:
    for share in (0, 10_000):
        prots = [dataclasses.replace(PROT_AB[0], share_bp=share)]
        lines = attribute(order(EFFECTIVE), SPANS_AB, prots, PLANS)
        assert [(x.employee_id, x.share_bp) for x in lines] == [(A, share), (B, 10_000 - share)]
        assert sum(x.amount_fen for x in lines) == commission_amount(
            1_000_000, 500 if share else 200, 10_000)


# --- rule 4: refunds and cancellations mirror the original split ----------------------------


def test_refund_inside_protection_of_an_order_booked_before_the_reassignment() -> None:
    original = order(EFFECTIVE - timedelta(days=5))
    back = refund(original, EFFECTIVE + timedelta(days=2))
    lines = attribute(back, SPANS_AB, PROT_AB, PLANS)
    assert summary(lines) == [
        (A, LineRole.OWNER, CLAWBACK_PREFIX + Rule.OWNER_BASE, 500, 10_000, -50_000)]
    assert lines[0].rule == "R4_CLAWBACK:R1_OWNER_BASE"
    assert lines[0].base_amount_fen == -1_000_000
    assert lines[0].order_id == 2


def test_refund_after_protection_of_an_order_booked_during_it_mirrors_the_split() -> None:
    original = order(EFFECTIVE + timedelta(days=1))
    back = refund(original, PROTECTION_END + timedelta(days=60))
    lines = attribute(back, SPANS_AB, PROT_AB, PLANS)
    assert summary(lines) == [
        (A, LineRole.PROTECTED_ORIGINAL, "R4_CLAWBACK:R2_PROTECTION_ORIGINAL", 500, 3_000,
         -15_000),
        (B, LineRole.INHERITED_OWNER, "R4_CLAWBACK:R2_PROTECTION_INHERITED", 200, 7_000,
         -14_000),
    ]
    assert all(x.base_amount_fen == -1_000_000 for x in lines)


def test_partial_refund_rounds_on_its_own_magnitude() -> None:
    original = order(EFFECTIVE + timedelta(days=1), amount=1_000_000)
    back = refund(original, PROTECTION_END, amount=-333)
    lines = attribute(back, SPANS_AB, PROT_AB, PLANS)
    # 333 x 5 % x 30 % = 4.995 -> 5 ; 333 x 2 % x 70 % = 4.662 -> 5
    assert [x.amount_fen for x in lines] == [-5, -5]


def test_refund_lines_clawback_the_rule_of_an_after_protection_order() -> None:
    original = order(PROTECTION_END)
    lines = attribute(refund(original, PROTECTION_END + timedelta(days=1)), SPANS_AB, PROT_AB,
                      PLANS)
    assert [x.rule for x in lines] == ["R4_CLAWBACK:R3_OWNER_INHERITED"]


# --- rule 6: effective-dated plans ----------------------------------------------------------


def test_rate_change_mid_month() -> None:
    change = datetime(2026, 3, 15, 8, 0, tzinfo=UTC)
    plans = [plan(A, 500, 300, to=change), plan(A, 700, 350, frm=change)]
    spans = [found(A, FOUND_AT, None)]
    before = attribute(order(change - US), spans, [], plans)
    after = attribute(order(change), spans, [], plans)
    assert [(x.rate_bp, x.amount_fen) for x in before] == [(500, 50_000)]
    assert [(x.rate_bp, x.amount_fen) for x in after] == [(700, 70_000)]


def test_rate_change_during_protection_applies_to_each_side_separately() -> None:
    change = EFFECTIVE + timedelta(days=10)
    plans = [plan(A, 500, 300, to=change), plan(A, 800, 300, frm=change), plan(B, 400, 200)]
    lines = attribute(order(change), SPANS_AB, PROT_AB, plans)
    assert [(x.employee_id, x.rate_bp) for x in lines] == [(A, 800), (B, 200)]


def test_no_plan_gives_a_visible_zero_rate_line() -> None:
    lines = attribute(order(EFFECTIVE - US), SPANS_AB, PROT_AB, [])
    assert summary(lines) == [(A, LineRole.OWNER, Rule.OWNER_BASE, 0, 10_000, 0)]
    # the original salesperson's plan ended before t: their line is still there, at rate 0
    plans = [plan(A, 500, 300, to=EFFECTIVE), plan(B, 400, 200)]
    split = attribute(order(EFFECTIVE), SPANS_AB, PROT_AB, plans)
    assert summary(split) == [
        (A, LineRole.PROTECTED_ORIGINAL, Rule.PROTECTION_ORIGINAL, 0, 3_000, 0),
        (B, LineRole.INHERITED_OWNER, Rule.PROTECTION_INHERITED, 200, 7_000, 14_000),
    ]


def test_owner_at_and_plan_at() -> None:
    assert owner_at(SPANS_AB, CUSTOMER, EFFECTIVE - US) == SPANS_AB[0]
    assert owner_at(SPANS_AB, CUSTOMER, EFFECTIVE) == SPANS_AB[1]
    assert owner_at(SPANS_AB, CUSTOMER, FOUND_AT - US) is None
    assert owner_at(SPANS_AB, CUSTOMER + 1, EFFECTIVE) is None
    assert plan_at(PLANS, B, EFFECTIVE) == PLANS[1]
    assert plan_at(PLANS, 99, EFFECTIVE) is None


# --- rule 5: rounding and exact money -------------------------------------------------------


def single_rate_line(amount: int, rate: int) -> Line:
    (line,) = attribute(order(FOUND_AT, amount=amount), [found(A, FOUND_AT, None)], [],
                        [plan(A, rate, 0)])
    return line


def test_rounding_is_half_up_on_the_magnitude_per_line() -> None:
    assert single_rate_line(50, 100).amount_fen == 1  # exactly 0.5 fen -> 1
    assert single_rate_line(150, 100).amount_fen == 2  # 1.5 -> 2
    assert single_rate_line(4_999, 1).amount_fen == 0  # 0.4999 -> 0
    assert single_rate_line(14_999, 1).amount_fen == 1  # 1.4999 -> 1
    back = refund(order(FOUND_AT, amount=50), FOUND_AT + timedelta(days=1))
    (line,) = attribute(back, [found(A, FOUND_AT, None)], [], [plan(A, 100, 0)])
    assert line.amount_fen == -1  # -0.5 -> -1, so the refund mirrors the order


def test_split_lines_round_independently_without_balancing() -> None:
    plans = [plan(A, 100, 100), plan(B, 100, 100)]
    prots = [dataclasses.replace(PROT_AB[0], share_bp=5_000)]
    lines = attribute(order(EFFECTIVE, amount=100), SPANS_AB, prots, plans)
    # 100 fen x 1 % = 1 fen in all, but each half is exactly 0.5 fen and rounds up on its own
    assert [x.amount_fen for x in lines] == [1, 1]
    assert commission_amount(100, 100, 10_000) == 1


def test_money_stays_exact_for_huge_amounts() -> None:
    amount = 123_456_789_012_345_678  # far beyond a float's 53-bit mantissa
    line = single_rate_line(amount, 333)
    assert type(line.amount_fen) is int
    assert line.amount_fen == half_up(Fraction(amount * 333, 10_000))
    assert line.amount_fen == 4_111_111_074_111_111  # 4111111074111111.07...


def half_up(value: Fraction) -> int:
    """Reference rounding: half away from zero, via Decimal on an exact fraction."""
    with decimal.localcontext() as ctx:
        ctx.prec = 80  # exact for every amount these tests use
        magnitude = Decimal(abs(value.numerator)) / Decimal(value.denominator)
        rounded = int(magnitude.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return rounded if value >= 0 else -rounded


@given(st.integers(-(10**15), 10**15), st.integers(0, 10_000), st.integers(0, 10_000))
def test_commission_amount_is_exact_half_up(amount: int, rate: int, share: int) -> None:
    exact = Fraction(amount * rate * share, 100_000_000)
    assert commission_amount(amount, rate, share) == half_up(exact)


# --- input validation -----------------------------------------------------------------------


def test_refund_needs_the_original_booking_time() -> None:
    bad = OrderFact(order_id=2, customer_id=CUSTOMER, amount_fen=-5, booked_at=EFFECTIVE,
                    is_refund=True)
    with pytest.raises(ValueError, match="original_booked_at"):
        attribute(bad, SPANS_AB, PROT_AB, PLANS)


def test_an_order_that_is_not_a_refund_has_no_original_booking_time() -> None:
    bad = OrderFact(order_id=3, customer_id=CUSTOMER, amount_fen=5, booked_at=EFFECTIVE,
                    original_booked_at=FOUND_AT)
    with pytest.raises(ValueError, match="not a refund"):
        attribute(bad, SPANS_AB, PROT_AB, PLANS)


NAIVE = datetime(2026, 3, 1, 12, 0)


@pytest.mark.parametrize("where", ["booked_at", "original_booked_at", "span", "protection",
                                   "plan"])
def test_naive_datetimes_are_refused(where: str) -> None:
    o = order(EFFECTIVE)
    spans, prots, plans = list(SPANS_AB), list(PROT_AB), list(PLANS)
    if where == "booked_at":
        o = order(NAIVE)
    elif where == "original_booked_at":
        o = dataclasses.replace(refund(o, EFFECTIVE), original_booked_at=NAIVE)
    elif where == "span":
        spans[0] = dataclasses.replace(spans[0], start_at=NAIVE)
    elif where == "protection":
        prots[0] = dataclasses.replace(prots[0], protection_end=NAIVE)
    else:
        plans[2] = dataclasses.replace(plans[2], effective_to=NAIVE)
    with pytest.raises(ValueError, match="naive"):
        attribute(o, spans, prots, plans)


def test_overlapping_assignment_spans_are_refused_naming_the_customer() -> None:
    spans = [*SPANS_AB, found(C, EFFECTIVE + timedelta(days=1), None)]
    with pytest.raises(ValueError, match=f"customer {CUSTOMER}"):
        attribute(order(EFFECTIVE + timedelta(days=2)), spans, PROT_AB, PLANS)
    # an overlap elsewhere in the history does not matter to this order
    assert attribute(order(EFFECTIVE - US), spans, PROT_AB, PLANS) != []


def test_overlapping_plans_are_refused_naming_the_employee() -> None:
    plans = [*PLANS, plan(B, 900, 900, frm=EFFECTIVE)]
    with pytest.raises(ValueError, match=f"employee {B}"):
        attribute(order(EFFECTIVE), SPANS_AB, PROT_AB, plans)


def test_conflicting_protections_of_one_request_are_refused() -> None:
    prots = [*PROT_AB, dataclasses.replace(PROT_AB[0], share_bp=SHARE + 1)]
    with pytest.raises(ValueError, match=f"request {REQ_AB}"):
        attribute(order(EFFECTIVE), SPANS_AB, prots, PLANS)


def test_a_protection_for_someone_else_than_the_owner_is_refused() -> None:
    prots = [dataclasses.replace(PROT_AB[0], to_employee_id=C)]
    with pytest.raises(ValueError, match=f"customer {CUSTOMER}"):
        attribute(order(EFFECTIVE), SPANS_AB, prots, PLANS)


def test_a_protection_without_the_original_salespersons_span_is_refused() -> None:
    # rule 7 needs the span A held until effective_at; here A's span ends a day early
    spans = [found(A, FOUND_AT, EFFECTIVE - timedelta(days=1)), SPANS_AB[1]]
    with pytest.raises(ValueError, match=f"customer {CUSTOMER}.*original salesperson {A}"):
        attribute(order(EFFECTIVE), spans, PROT_AB, PLANS)


def test_a_protection_share_outside_0_to_10000_is_refused() -> None:
    prots = [dataclasses.replace(PROT_AB[0], share_bp=10_001)]
    with pytest.raises(ValueError, match="share"):
        attribute(order(EFFECTIVE), SPANS_AB, prots, PLANS)


# --- property tests over coherent random histories ------------------------------------------
#
# Times are whole minutes from T0. A history is a chain of segments per customer: the first is
# FOUND; each next one is either a reassignment (starts where the previous ends, with a
# protection from its start for 1..duration minutes, so rule 8 holds) or a re-found customer
# after a gap with no owner. Plans are chains per employee, with gaps and an optional open end.

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EMPLOYEES = (1, 2, 3, 4)
CUSTOMERS = {100: 1_000, 101: 2_000}  # customer -> base of its request ids
CUST = 100  # the customer whose orders the properties book; 101 is noise
ZONES: tuple[tzinfo, ...] = (UTC, SHANGHAI, timezone(timedelta(hours=-5)))


@dataclass(frozen=True)
class Seg:
    employee: int
    start: int
    end: int | None
    source: SpanSource
    request_id: int | None = None
    protection_end: int | None = None  # absolute minute
    share: int = 0


@dataclass(frozen=True)
class PlanSeg:
    employee: int
    start: int
    end: int | None
    base: int
    inherited: int


@dataclass(frozen=True)
class World:
    customers: dict[int, tuple[Seg, ...]]
    plans: tuple[PlanSeg, ...]
    zones: tuple[tzinfo, tzinfo, tzinfo, tzinfo]  # spans, protections, plans, orders

    def dt(self, minute: int | None, which: int) -> datetime | None:
        if minute is None:
            return None
        return (T0 + timedelta(minutes=minute)).astimezone(self.zones[which])

    def at(self, minute: int) -> datetime:
        return (T0 + timedelta(minutes=minute)).astimezone(self.zones[3])

    def assignments(self) -> list[AssignmentSpan]:
        out = []
        for customer, segs in self.customers.items():
            for s in segs:
                start = self.dt(s.start, 0)
                assert start is not None
                out.append(AssignmentSpan(customer_id=customer, employee_id=s.employee,
                                          start_at=start, end_at=self.dt(s.end, 0),
                                          source=s.source, request_id=s.request_id))
        return out

    def protections(self) -> list[Protection]:
        out = []
        for segs in self.customers.values():
            for prev, s in zip(segs, segs[1:], strict=False):
                if s.request_id is None:
                    continue
                assert s.protection_end is not None
                eff, end = self.dt(s.start, 1), self.dt(s.protection_end, 1)
                assert eff is not None and end is not None
                out.append(Protection(request_id=s.request_id, from_employee_id=prev.employee,
                                      to_employee_id=s.employee, effective_at=eff,
                                      protection_end=end, share_bp=s.share))
        return out

    def plan_spans(self) -> list[PlanSpan]:
        out = []
        for p in self.plans:
            start = self.dt(p.start, 2)
            assert start is not None
            out.append(PlanSpan(employee_id=p.employee, effective_from=start,
                                effective_to=self.dt(p.end, 2), base_rate_bp=p.base,
                                inherited_rate_bp=p.inherited))
        return out

    def inputs(self) -> tuple[list[AssignmentSpan], list[Protection], list[PlanSpan]]:
        return self.assignments(), self.protections(), self.plan_spans()

    def boundaries(self) -> list[int]:
        points = []
        for segs in self.customers.values():
            for s in segs:
                points += [s.start, *(m for m in (s.end, s.protection_end) if m is not None)]
        for p in self.plans:
            points += [p.start, *([p.end] if p.end is not None else [])]
        return points

    def as_of(self, t: int) -> World:
        """The history as it stood at minute t: nothing that starts later; what covers t open."""

        def covers(start: int, end: int | None) -> bool:
            return start <= t and (end is None or t < end)

        customers = {
            c: tuple(dataclasses.replace(s, end=None) if covers(s.start, s.end) else s
                     for s in segs if s.start <= t)
            for c, segs in self.customers.items()
        }
        plans = tuple(dataclasses.replace(p, end=None) if covers(p.start, p.end) else p
                      for p in self.plans if p.start <= t)
        return World(customers, plans, self.zones)


def span_at(segs: Sequence[Seg], t: int) -> int | None:
    for i, s in enumerate(segs):
        if s.start <= t and (s.end is None or t < s.end):
            return i
    return None


def oracle_rate(world: World, employee: int, t: int, *, inherited: bool) -> int:
    for p in world.plans:
        if p.employee == employee and p.start <= t and (p.end is None or t < p.end):
            return p.inherited if inherited else p.base
    return 0


def oracle(world: World, customer: int, t: int, o: OrderFact) -> list[Line]:
    """Expected lines, from the chain's structure (index of the segment, its predecessor)."""
    segs = world.customers.get(customer, ())
    i = span_at(segs, t)
    if i is None:
        return []
    s = segs[i]
    parts: list[tuple[int, LineRole, Rule, int, int]]
    if s.request_id is not None and s.protection_end is not None and t < s.protection_end:
        prev = segs[i - 1]
        parts = [
            (prev.employee, LineRole.PROTECTED_ORIGINAL, Rule.PROTECTION_ORIGINAL,
             oracle_rate(world, prev.employee, t, inherited=prev.source != SpanSource.FOUND),
             s.share),
            (s.employee, LineRole.INHERITED_OWNER, Rule.PROTECTION_INHERITED,
             oracle_rate(world, s.employee, t, inherited=True), 10_000 - s.share),
        ]
    elif s.source == SpanSource.FOUND:
        parts = [(s.employee, LineRole.OWNER, Rule.OWNER_BASE,
                  oracle_rate(world, s.employee, t, inherited=False), 10_000)]
    else:
        parts = [(s.employee, LineRole.INHERITED_OWNER, Rule.OWNER_INHERITED,
                  oracle_rate(world, s.employee, t, inherited=True), 10_000)]
    prefix = CLAWBACK_PREFIX if o.is_refund else ""
    return [
        Line(order_id=o.order_id, customer_id=customer, employee_id=emp, role=role,
             rule=prefix + rule, rate_bp=rate, share_bp=share, base_amount_fen=o.amount_fen,
             amount_fen=commission_amount(o.amount_fen, rate, share), request_id=s.request_id)
        for emp, role, rule, rate, share in parts
    ]


rates = st.one_of(st.integers(0, 2_000), st.sampled_from([0, 1, 9_999, 10_000]))
shares = st.one_of(st.sampled_from([0, 1, 5_000, 9_999, 10_000]), st.integers(0, 10_000))


@st.composite
def histories(draw: st.DrawFn, request_base: int) -> tuple[Seg, ...]:
    n = draw(st.integers(1, 4))
    start = draw(st.integers(-2_000, 2_000))
    employee = draw(st.sampled_from(EMPLOYEES))
    segs: list[Seg] = []
    kind = "found"
    for i in range(n):
        is_open = i == n - 1 and draw(st.booleans())
        duration = draw(st.integers(1, 3_000))
        end = None if is_open else start + duration
        if kind == "reassign":
            length = draw(st.integers(1, 5_000 if is_open else duration))
            segs.append(Seg(employee, start, end, SpanSource.REASSIGNMENT, request_base + i,
                            start + length, draw(shares)))
        else:
            segs.append(Seg(employee, start, end, SpanSource.FOUND))
        if end is None:
            break
        kind = draw(st.sampled_from(["reassign", "reassign", "refound"]))
        start = end if kind == "reassign" else end + draw(st.integers(1, 500))
        employee = draw(st.sampled_from([e for e in EMPLOYEES if e != employee]))
    return tuple(segs)


@st.composite
def plan_chains(draw: st.DrawFn, employee: int) -> list[PlanSeg]:
    out: list[PlanSeg] = []
    start = draw(st.integers(-8_000, 0))
    k = draw(st.sampled_from([0, 1, 1, 2, 2, 3]))
    for j in range(k):
        is_open = j == k - 1 and draw(st.sampled_from([False, True, True]))
        end = None if is_open else start + draw(st.integers(1, 15_000))
        out.append(PlanSeg(employee, start, end, draw(rates), draw(rates)))
        if end is None:
            break
        start = end + draw(st.one_of(st.just(0), st.integers(1, 500)))
    return out


@st.composite
def worlds(draw: st.DrawFn) -> World:
    customers = {c: draw(histories(base)) for c, base in CUSTOMERS.items()}
    plans = tuple(p for e in EMPLOYEES for p in draw(plan_chains(e)))
    zones = tuple(draw(st.sampled_from(ZONES)) for _ in range(4))
    return World(customers, plans, zones)  # type: ignore[arg-type]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[World, int, int]:
    """A world, a booking minute (often right on a boundary) and an order amount."""
    world = draw(worlds())
    segs = world.customers[CUST]
    windows = [(s.start, s.protection_end) for s in segs if s.protection_end is not None]
    edges = [m for s in segs for m in (s.start, s.end, s.protection_end) if m is not None]
    mode = draw(st.sampled_from(
        ["anywhere", "boundary", "edge", "owned", "owned", "protected", "protected"]))
    if mode == "boundary":
        t = draw(st.sampled_from(world.boundaries())) + draw(st.sampled_from([-1, 0, 1]))
    elif mode == "edge":  # exactly on (or next to) one of this customer's own boundaries
        t = draw(st.sampled_from(edges)) + draw(st.sampled_from([-1, 0, 0, 1]))
    elif mode == "owned":
        s = draw(st.sampled_from(segs))
        t = draw(st.integers(s.start, (s.end if s.end is not None else s.start + 5_000) - 1))
    elif mode == "protected" and windows:
        start, end = draw(st.sampled_from(windows))
        t = draw(st.one_of(st.integers(start, end - 1), st.sampled_from([start, end - 1, end])))
    else:
        t = draw(st.integers(-5_000, 20_000))
    amount = draw(st.one_of(st.integers(1, 10**12), st.integers(1, 10_000)))
    return world, t, amount


def book(world: World, t: int, amount: int) -> OrderFact:
    return OrderFact(order_id=1, customer_id=CUST, amount_fen=amount, booked_at=world.at(t))


@settings(max_examples=300)
@given(scenarios())
def test_attribution_matches_the_chain_oracle(scenario: tuple[World, int, int]) -> None:
    world, t, amount = scenario
    o = book(world, t, amount)
    assert attribute(o, *world.inputs()) == oracle(world, CUST, t, o)


@settings(max_examples=300)
@given(scenarios())
def test_each_line_is_its_own_rounded_product(scenario: tuple[World, int, int]) -> None:
    world, t, amount = scenario
    lines = attribute(book(world, t, amount), *world.inputs())
    assert len(lines) in (0, 1, 2)
    if len(lines) == 1:  # no protection: the whole order at one rate
        (line,) = lines
        assert line.role in (LineRole.OWNER, LineRole.INHERITED_OWNER)
        assert line.share_bp == 10_000
        assert line.amount_fen == commission_amount(amount, line.rate_bp, 10_000)
    if len(lines) == 2:  # protection: A then B, shares complete, no cross-line balancing
        a, b = lines
        assert (a.role, b.role) == (LineRole.PROTECTED_ORIGINAL, LineRole.INHERITED_OWNER)
        assert a.share_bp + b.share_bp == 10_000
        assert a.request_id == b.request_id is not None
    for line in lines:
        assert type(line.amount_fen) is int
        assert line.amount_fen == commission_amount(amount, line.rate_bp, line.share_bp)
        assert line.amount_fen == half_up(
            Fraction(amount * line.rate_bp * line.share_bp, 100_000_000))


@settings(max_examples=300)
@given(scenarios(), st.integers(0, 50_000))
def test_a_full_refund_nets_every_employee_to_zero(scenario: tuple[World, int, int],
                                                   delay: int) -> None:
    world, t, amount = scenario
    o = book(world, t, amount)
    back = OrderFact(order_id=2, customer_id=CUST, amount_fen=-amount,
                     booked_at=world.at(t + delay), is_refund=True,
                     original_booked_at=o.booked_at)
    inputs = world.inputs()
    lines, clawback = attribute(o, *inputs), attribute(back, *inputs)
    net: dict[int, int] = defaultdict(int)
    for line in [*lines, *clawback]:
        net[line.employee_id] += line.amount_fen
    assert all(v == 0 for v in net.values())
    # and line by line: the same people, roles, rates and shares, the rule prefixed
    assert len(clawback) == len(lines)
    for line, mirror in zip(lines, clawback, strict=True):
        assert mirror == dataclasses.replace(
            line, order_id=2, rule=CLAWBACK_PREFIX + line.rule, base_amount_fen=-amount,
            amount_fen=-line.amount_fen)


@settings(max_examples=300)
@given(scenarios(), st.integers(0, 50_000))
def test_later_history_never_changes_an_order(scenario: tuple[World, int, int],
                                              delay: int) -> None:
    # Everything that starts after t (later reassignments, re-founds, plans), and the closing of
    # what was open at t, is invisible: the full history gives the lines the history as of t
    # gave. A refund booked later still looks at the original booking time.
    world, t, amount = scenario
    then = world.as_of(t)
    o = book(world, t, amount)
    assert attribute(o, *world.inputs()) == attribute(o, *then.inputs())
    back = OrderFact(order_id=2, customer_id=CUST, amount_fen=-amount,
                     booked_at=world.at(t + delay), is_refund=True,
                     original_booked_at=o.booked_at)
    assert attribute(back, *world.inputs()) == attribute(back, *then.inputs())


@given(scenarios(), st.randoms(use_true_random=False))
def test_input_order_does_not_matter(scenario: tuple[World, int, int],
                                     rnd: random.Random) -> None:
    world, t, amount = scenario
    o = book(world, t, amount)
    spans, prots, plans = world.inputs()
    expected = attribute(o, spans, prots, plans)
    for seq in (spans, prots, plans):
        rnd.shuffle(seq)
    assert attribute(o, spans, prots, plans) == expected


@settings(max_examples=200)
@given(scenarios(), st.lists(st.integers(1, 1_000), min_size=1, max_size=6))
def test_partial_refunds_adding_up_to_the_order_net_to_zero(
        scenario: tuple[World, int, int], weights: list[int]) -> None:
    # cumulative clawback: each refund takes back what the refunded total so far earned minus
    # what earlier refunds took, so rounding can never over- or under-claw in total
    world, t, amount = scenario
    o = book(world, t, amount)
    total = sum(weights)
    parts = [amount * w // total for w in weights]
    parts[-1] += amount - sum(parts)
    inputs = world.inputs()
    net: dict[int, int] = defaultdict(int)
    for line in attribute(o, *inputs):
        net[line.employee_id] += line.amount_fen
    refunded = 0
    for i, part in enumerate(p for p in parts if p > 0):
        back = OrderFact(order_id=10 + i, customer_id=CUST, amount_fen=-part,
                         booked_at=world.at(t + 1), is_refund=True,
                         original_booked_at=o.booked_at, refunded_before_fen=refunded)
        refunded += part
        for line in attribute(back, *inputs):
            assert line.amount_fen <= 0
            net[line.employee_id] += line.amount_fen
    assert all(v == 0 for v in net.values()), net


def test_two_half_refunds_of_a_one_fen_commission_claw_back_one_fen() -> None:
    # 100 fen at 1% earns 1 fen; two -50 refunds used to claw back 2 fen between them
    assert clawback_amount(0, -50, 100, 10_000) + clawback_amount(50, -50, 100, 10_000) == -1
