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
* Refund and cancellation lines carry rule "R4_CLAWBACK:" + the mirrored rule.
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


def attribute(
    order: OrderFact,
    assignments: Sequence[AssignmentSpan],
    protections: Sequence[Protection],
    plans: Sequence[PlanSpan],
) -> list[Line]:
    """The commission lines of one order or refund. See the module docstring."""
    raise NotImplementedError  # implemented alongside its tests
