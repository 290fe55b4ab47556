"""Commission attribution (DESIGN.md, "Commission attribution"): the pure reference.

The settlement engine computes the same lines in set-based SQL (models/commission_engine.py);
tests hold the two to each other. Specification:

* The attribution time `t` is the order's `booked_at`; for a refund or cancellation it is the
  ORIGINAL order's `booked_at`, so a refund mirrors the original split (rule 4), while the
  refund's own lines are booked in the refund's period by the caller.
* The owner at `t` is the assignment span with `start_at <= t < end_at` (open end = now on).
  No owner at `t`: no lines.
* If that span came from a reassignment (`request_id` set) and the request's protection has
  `effective_at <= t < protection_end`, the order is split (rule 2):
    - the original salesperson A (`from_employee_id`) earns `rate_A x s`, role
      PROTECTED_ORIGINAL, rule R2_PROTECTION_ORIGINAL, where `rate_A` is A's base rate at `t`
      if the span A held until `effective_at` was FOUND, else A's inherited rate (rule 7);
    - the owner B earns `inherited_rate_B x (1 - s)`, role INHERITED_OWNER,
      rule R2_PROTECTION_INHERITED.
* Otherwise one line for the owner, share 10000: base rate if the span is FOUND (role OWNER,
  rule R1_OWNER_BASE), inherited rate if it is a REASSIGNMENT (role INHERITED_OWNER, rule
  R3_OWNER_INHERITED).
* Rates come from the employee's plan in force at `t` (`effective_from <= t < effective_to`);
  no plan means rate 0, still as a line, so the gap is visible.
* amount = sign(a) x round_half_up(|a| x rate_bp x share_bp / 100_000_000), per line.
* Refund and cancellation lines carry rule "R4_CLAWBACK:" + the mirrored rule. Their amount
  is cumulative (`clawback_amount`): what the refunded total so far earned minus what the
  earlier refunds of the same order (lower ids) already took back, so partial refunds adding
  up to the whole order net every employee to exactly zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

FULL_SHARE_BP = 10_000
BP_SQUARED = 100_000_000


class LineRole(StrEnum):
    OWNER = "OWNER"
    PROTECTED_ORIGINAL = "PROTECTED_ORIGINAL"
    INHERITED_OWNER = "INHERITED_OWNER"


class Rule(StrEnum):
    OWNER_BASE = "R1_OWNER_BASE"
    PROTECTION_ORIGINAL = "R2_PROTECTION_ORIGINAL"
    PROTECTION_INHERITED = "R2_PROTECTION_INHERITED"
    OWNER_INHERITED = "R3_OWNER_INHERITED"


CLAWBACK_PREFIX = "R4_CLAWBACK:"


class SpanSource(StrEnum):
    FOUND = "FOUND"
    REASSIGNMENT = "REASSIGNMENT"


@dataclass(frozen=True)
class AssignmentSpan:
    customer_id: int
    employee_id: int
    start_at: datetime
    end_at: datetime | None
    source: SpanSource
    request_id: int | None = None


@dataclass(frozen=True)
class Protection:
    request_id: int
    from_employee_id: int
    to_employee_id: int
    effective_at: datetime
    protection_end: datetime
    share_bp: int  # s, the original salesperson's share during protection


@dataclass(frozen=True)
class PlanSpan:
    employee_id: int
    effective_from: datetime
    effective_to: datetime | None
    base_rate_bp: int
    inherited_rate_bp: int


@dataclass(frozen=True)
class OrderFact:
    order_id: int
    customer_id: int
    amount_fen: int  # negative for refunds and cancellations
    booked_at: datetime
    is_refund: bool = False
    original_booked_at: datetime | None = None  # required when is_refund
    # refunds: how much of the original was already refunded by earlier refunds (magnitude)
    refunded_before_fen: int = 0


@dataclass(frozen=True)
class Line:
    order_id: int
    customer_id: int
    employee_id: int
    role: LineRole
    rule: str
    rate_bp: int
    share_bp: int
    base_amount_fen: int
    amount_fen: int
    request_id: int | None = None


def commission_amount(amount_fen: int, rate_bp: int, share_bp: int) -> int:
    """Exact integer money: half-up on the magnitude, so a refund mirrors its order."""
    magnitude = (abs(amount_fen) * rate_bp * share_bp * 2 + BP_SQUARED) // (2 * BP_SQUARED)
    return magnitude if amount_fen >= 0 else -magnitude


def _require_aware(value: datetime | None, what: str) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{what} is a naive datetime ({value.isoformat()}); times must be aware")


def _validate(
    order: OrderFact,
    assignments: Sequence[AssignmentSpan],
    protections: Sequence[Protection],
    plans: Sequence[PlanSpan],
) -> None:
    _require_aware(order.booked_at, f"order {order.order_id} booked_at")
    _require_aware(order.original_booked_at, f"order {order.order_id} original_booked_at")
    if order.is_refund and order.original_booked_at is None:
        raise ValueError(f"refund {order.order_id} has no original_booked_at")
    if not order.is_refund and order.original_booked_at is not None:
        raise ValueError(f"order {order.order_id} is not a refund but has original_booked_at")
    for span in assignments:
        where = f"assignment of customer {span.customer_id} to employee {span.employee_id}"
        _require_aware(span.start_at, f"{where}: start_at")
        _require_aware(span.end_at, f"{where}: end_at")
    for protection in protections:
        where = f"protection of request {protection.request_id}"
        _require_aware(protection.effective_at, f"{where}: effective_at")
        _require_aware(protection.protection_end, f"{where}: protection_end")
    for plan in plans:
        where = f"plan of employee {plan.employee_id}"
        _require_aware(plan.effective_from, f"{where}: effective_from")
        _require_aware(plan.effective_to, f"{where}: effective_to")


def owner_at(
    assignments: Sequence[AssignmentSpan], customer_id: int, at: datetime
) -> AssignmentSpan | None:
    """The span with `start_at <= at < end_at` (open end: from then on), or None.

    Raises ValueError when several spans of the customer match (overlapping history).
    """
    matches = [
        span
        for span in assignments
        if span.customer_id == customer_id
        and span.start_at <= at
        and (span.end_at is None or at < span.end_at)
    ]
    if len(matches) > 1:
        owners = sorted(span.employee_id for span in matches)
        raise ValueError(
            f"customer {customer_id} has {len(matches)} assignment spans at {at.isoformat()} "
            f"(employees {owners}); the assignment history overlaps"
        )
    return matches[0] if matches else None


def plan_at(plans: Sequence[PlanSpan], employee_id: int, at: datetime) -> PlanSpan | None:
    """The employee's plan with `effective_from <= at < effective_to`, or None.

    Raises ValueError when several plans of the employee match (overlapping plans).
    """
    matches = [
        plan
        for plan in plans
        if plan.employee_id == employee_id
        and plan.effective_from <= at
        and (plan.effective_to is None or at < plan.effective_to)
    ]
    if len(matches) > 1:
        raise ValueError(
            f"employee {employee_id} has {len(matches)} commission plans in force at "
            f"{at.isoformat()}; plans overlap"
        )
    return matches[0] if matches else None


def _protection_of(protections: Sequence[Protection], request_id: int) -> Protection | None:
    # Identical copies (e.g. one per customer of a multi-customer request) are one protection.
    matches = {p for p in protections if p.request_id == request_id}
    if len(matches) > 1:
        raise ValueError(f"request {request_id} has {len(matches)} different protections")
    return next(iter(matches)) if matches else None


def _span_held_until(
    assignments: Sequence[AssignmentSpan], customer_id: int, employee_id: int, until: datetime
) -> AssignmentSpan:
    """The span employee `employee_id` held on the customer that ended at `until` (rule 7)."""
    matches = [
        span
        for span in assignments
        if span.customer_id == customer_id
        and span.employee_id == employee_id
        and span.end_at is not None
        and span.end_at == until
    ]
    if len(matches) != 1:
        raise ValueError(
            f"customer {customer_id}: expected one assignment span of original salesperson "
            f"{employee_id} ending at {until.isoformat()}, found {len(matches)}; cannot tell "
            "whether the original salesperson found the customer (rule 7)"
        )
    return matches[0]


def _rate(plans: Sequence[PlanSpan], employee_id: int, at: datetime, *, inherited: bool) -> int:
    plan = plan_at(plans, employee_id, at)
    if plan is None:
        return 0
    return plan.inherited_rate_bp if inherited else plan.base_rate_bp


def clawback_amount(refunded_before_fen: int, refund_fen: int, rate_bp: int,
                    share_bp: int) -> int:
    """A refund claws back what the refunded-so-far total earned, minus what earlier refunds
    already clawed back; so refunds that add up to the whole order net it to exactly zero."""
    after = commission_amount(refunded_before_fen + abs(refund_fen), rate_bp, share_bp)
    before = commission_amount(refunded_before_fen, rate_bp, share_bp)
    return -(after - before)


def _line_amount(order: OrderFact, rate_bp: int, share_bp: int) -> int:
    if order.is_refund:
        return clawback_amount(order.refunded_before_fen, order.amount_fen, rate_bp, share_bp)
    return commission_amount(order.amount_fen, rate_bp, share_bp)


def attribute(
    order: OrderFact,
    assignments: Sequence[AssignmentSpan],
    protections: Sequence[Protection],
    plans: Sequence[PlanSpan],
) -> list[Line]:
    """The commission lines of one order or refund. See the module docstring."""
    _validate(order, assignments, protections, plans)
    t = order.original_booked_at if order.is_refund else order.booked_at
    assert t is not None  # _validate
    customer_id = order.customer_id
    span = owner_at(assignments, customer_id, t)
    if span is None:
        return []

    # (employee, role, rule, rate, share, request) per line, PROTECTED_ORIGINAL first.
    parts: list[tuple[int, LineRole, Rule, int, int, int | None]] = []
    protection = None
    if span.request_id is not None:
        protection = _protection_of(protections, span.request_id)
        if protection is not None and not (
            protection.effective_at <= t < protection.protection_end
        ):
            protection = None
    if protection is not None:
        if protection.to_employee_id != span.employee_id:
            raise ValueError(
                f"customer {customer_id}: request {protection.request_id} moved the customer to "
                f"employee {protection.to_employee_id}, but the span at {t.isoformat()} belongs "
                f"to employee {span.employee_id}"
            )
        share = protection.share_bp
        if not 0 <= share <= FULL_SHARE_BP:
            raise ValueError(
                f"request {protection.request_id}: protection share {share} bp is outside "
                f"0..{FULL_SHARE_BP}"
            )
        original = protection.from_employee_id
        held = _span_held_until(assignments, customer_id, original, protection.effective_at)
        rate_a = _rate(plans, original, t, inherited=held.source != SpanSource.FOUND)
        rate_b = _rate(plans, span.employee_id, t, inherited=True)
        parts.append((original, LineRole.PROTECTED_ORIGINAL, Rule.PROTECTION_ORIGINAL,
                      rate_a, share, protection.request_id))
        parts.append((span.employee_id, LineRole.INHERITED_OWNER, Rule.PROTECTION_INHERITED,
                      rate_b, FULL_SHARE_BP - share, protection.request_id))
    elif span.source == SpanSource.FOUND:
        parts.append((span.employee_id, LineRole.OWNER, Rule.OWNER_BASE,
                      _rate(plans, span.employee_id, t, inherited=False), FULL_SHARE_BP,
                      span.request_id))
    else:
        parts.append((span.employee_id, LineRole.INHERITED_OWNER, Rule.OWNER_INHERITED,
                      _rate(plans, span.employee_id, t, inherited=True), FULL_SHARE_BP,
                      span.request_id))

    prefix = CLAWBACK_PREFIX if order.is_refund else ""
    return [
        Line(
            order_id=order.order_id,
            customer_id=customer_id,
            employee_id=employee_id,
            role=role,
            rule=prefix + rule.value,
            rate_bp=rate,
            share_bp=share_bp,
            base_amount_fen=order.amount_fen,
            amount_fen=_line_amount(order, rate, share_bp),
            request_id=request_id,
        )
        for employee_id, role, rule, rate, share_bp, request_id in parts
    ]
