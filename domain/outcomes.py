"""Post-reassignment monitoring: did a reassignment work? Pure arithmetic, no I/O.

For one case (a request that took effect at `effective_at`) the customers' figures are
compared over two windows of N calendar months in the organisation's timezone:
before = [effective_at - N months, effective_at), after = [effective_at, effective_at + N months).
A window "month" is a calendar month of the local clock, so 3 months from 31 March end on
30 June (the day is clamped to the month's length).

Revenue is the sum of every order row booked in the window: orders positive, refunds and
cancellations negative, booked when they happen (as the commission engine books them), so a
refund in the after-window lowers the after-window. The order count (order frequency) counts
ORDER rows only.

An after-window that has not ended yet is *incomplete*: its figures are what has been booked
so far, shown with the share of the window elapsed; an incomplete case is never flagged and
is left out of aggregate revenue changes (a partial window would read as a fall).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

DEFAULT_MONTHS = 3
MAX_MONTHS = 24
STABILITY_MONTHS = (3, 6, 12)
BP = 10_000


class ScoreKind(StrEnum):
    CSAT = "CSAT"  # 1..5
    NPS = "NPS"  # 0..10, "how likely are you to recommend us"


SCORE_RANGE: dict[ScoreKind, tuple[int, int]] = {ScoreKind.CSAT: (1, 5), ScoreKind.NPS: (0, 10)}


class Stability(StrEnum):
    EMPLOYED = "EMPLOYED"
    LEFT = "LEFT"
    NOT_YET_KNOWN = "NOT_YET_KNOWN"  # the checkpoint lies in the future


# --- calendar arithmetic -----------------------------------------------------------------------


def add_months(moment: datetime, months: int, timezone: str) -> datetime:
    """`moment` moved by whole calendar months on the organisation's local clock (the day is
    clamped to the target month's length), returned in UTC."""
    if moment.tzinfo is None:
        raise ValueError("add_months needs an aware datetime")
    local = moment.astimezone(ZoneInfo(timezone))
    index = local.year * 12 + (local.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    day = min(local.day, _month_length(year, month))
    moved = local.replace(year=year, month=month, day=day)
    return moved.astimezone(UTC)


def _month_length(year: int, month: int) -> int:
    following = date(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


@dataclass(frozen=True)
class Windows:
    before_start: datetime
    effective_at: datetime
    after_end: datetime
    now: datetime

    @property
    def after_complete(self) -> bool:
        return self.now >= self.after_end

    @property
    def after_elapsed_bp(self) -> int:
        """How much of the after-window has passed, in basis points (10000 once complete)."""
        if self.after_complete:
            return BP
        if self.now <= self.effective_at:
            return 0
        total = (self.after_end - self.effective_at).total_seconds()
        return int(BP * (self.now - self.effective_at).total_seconds() // total)

    def in_before(self, moment: datetime) -> bool:
        return self.before_start <= moment < self.effective_at

    def in_after(self, moment: datetime) -> bool:
        return self.effective_at <= moment < min(self.after_end, max(self.now, self.effective_at))


def windows(effective_at: datetime, months: int, timezone: str, now: datetime) -> Windows:
    if not 1 <= months <= MAX_MONTHS:
        raise ValueError(f"months must be between 1 and {MAX_MONTHS}")
    return Windows(before_start=add_months(effective_at, -months, timezone),
                   effective_at=effective_at.astimezone(UTC),
                   after_end=add_months(effective_at, months, timezone), now=now)


# --- facts handed in ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderFact:
    customer_id: int
    booked_at: datetime
    amount_fen: int  # negative for refunds and cancellations
    is_order: bool  # an ORDER row (counted for frequency), not a refund or cancellation
    owner_id: int | None = None  # who owned the customer at booked_at


@dataclass(frozen=True)
class ScoreFact:
    customer_id: int
    on: date  # the survey date, in the organisation's calendar
    kind: ScoreKind
    score: int


@dataclass(frozen=True)
class CaseFacts:
    request_id: int
    reason: str
    stage: str
    from_employee_id: int
    to_employee_id: int
    team_id: int  # the losing salesperson's org unit
    effective_at: datetime
    customer_ids: tuple[int, ...]
    orders: tuple[OrderFact, ...]  # the moved customers' orders, any time
    receiver_orders: tuple[OrderFact, ...]  # orders of customers the receiver owned then
    scores: tuple[ScoreFact, ...]
    from_left: bool  # the losing salesperson's status is LEFT
    from_leave_date: datetime | None
    revenue_drop_threshold_bp: int


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowFigures:
    revenue_fen: int
    order_count: int


@dataclass(frozen=True)
class StabilityPoint:
    months: int
    at: datetime
    status: Stability
    left_on: datetime | None = None


@dataclass(frozen=True)
class Satisfaction:
    kind: ScoreKind
    before_avg: Decimal | None
    after_avg: Decimal | None
    before_count: int
    after_count: int


@dataclass(frozen=True)
class CaseOutcome:
    facts: CaseFacts
    windows: Windows
    before: WindowFigures
    after: WindowFigures
    revenue_change_bp: int | None  # None: no revenue before, or the after-window is incomplete
    flagged: bool
    stability: tuple[StabilityPoint, ...]
    satisfaction: tuple[Satisfaction, ...]
    receiver_from_moved_fen: int  # the receiver's revenue from the moved customers, after
    receiver_before: WindowFigures  # the receiver's whole book, before
    receiver_after: WindowFigures  # ... and after (to date while incomplete)

    @property
    def complete(self) -> bool:
        return self.windows.after_complete


def window_figures(orders: Iterable[OrderFact], inside: Callable[[datetime], bool]
                   ) -> WindowFigures:
    revenue = count = 0
    for o in orders:
        if inside(o.booked_at):
            revenue += o.amount_fen
            count += o.is_order
    return WindowFigures(revenue, count)


def change_bp(before_fen: int, after_fen: int) -> int | None:
    """(after - before) / before in basis points, half away from zero; None without a base."""
    if before_fen <= 0:
        return None
    ratio = Decimal(after_fen - before_fen) * BP / Decimal(before_fen)
    return int(ratio.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def fell_more_than(before_fen: int, after_fen: int, threshold_bp: int) -> bool:
    """Revenue fell by strictly more than threshold_bp of the before-figure (exact, no
    rounding: (before - after) / before > threshold / 10000)."""
    if before_fen <= 0:
        return False
    return (before_fen - after_fen) * BP > threshold_bp * before_fen


def stability(effective_at: datetime, months: int, timezone: str, now: datetime, *,
              left: bool, leave_date: datetime | None) -> StabilityPoint:
    at = add_months(effective_at, months, timezone)
    # a departure that already happened, before the checkpoint, is known even when the
    # checkpoint itself is still in the future
    if leave_date is not None and leave_date <= at and leave_date <= now:
        return StabilityPoint(months, at, Stability.LEFT, leave_date)
    if at > now:
        return StabilityPoint(months, at, Stability.NOT_YET_KNOWN)
    if left and leave_date is None:
        return StabilityPoint(months, at, Stability.LEFT)  # left, date not recorded
    return StabilityPoint(months, at, Stability.EMPLOYED)


def _average(values: Sequence[int]) -> Decimal | None:
    if not values:
        return None
    return (Decimal(sum(values)) / len(values)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def satisfaction(scores: Iterable[ScoreFact], w: Windows, timezone: str
                 ) -> tuple[Satisfaction, ...]:
    """Average score per kind and window. A score's date counts as after from the local day
    the transfer took effect."""
    tz = ZoneInfo(timezone)
    start = w.before_start.astimezone(tz).date()
    effective = w.effective_at.astimezone(tz).date()
    end = w.after_end.astimezone(tz).date()
    found: dict[ScoreKind, tuple[list[int], list[int]]] = {}
    for s in scores:
        before, after = found.setdefault(s.kind, ([], []))
        if start <= s.on < effective:
            before.append(s.score)
        elif effective <= s.on < end:
            after.append(s.score)
    return tuple(Satisfaction(kind, _average(found[kind][0]), _average(found[kind][1]),
                              len(found[kind][0]), len(found[kind][1]))
                 for kind in ScoreKind if kind in found)


def case_outcome(facts: CaseFacts, months: int, timezone: str, now: datetime) -> CaseOutcome:
    w = windows(facts.effective_at, months, timezone, now)
    before = window_figures(facts.orders, w.in_before)
    after = window_figures(facts.orders, w.in_after)
    complete = w.after_complete
    moved = [o for o in facts.orders if o.owner_id == facts.to_employee_id]
    return CaseOutcome(
        facts=facts, windows=w, before=before, after=after,
        revenue_change_bp=change_bp(before.revenue_fen, after.revenue_fen) if complete else None,
        flagged=complete and fell_more_than(before.revenue_fen, after.revenue_fen,
                                            facts.revenue_drop_threshold_bp),
        stability=tuple(stability(facts.effective_at, m, timezone, now, left=facts.from_left,
                                  leave_date=facts.from_leave_date) for m in STABILITY_MONTHS),
        satisfaction=satisfaction(facts.scores, w, timezone),
        receiver_from_moved_fen=window_figures(moved, w.in_after).revenue_fen,
        receiver_before=window_figures(facts.receiver_orders, w.in_before),
        receiver_after=window_figures(facts.receiver_orders, w.in_after),
    )


# --- aggregates ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StabilityRate:
    months: int
    employed: int
    left: int
    not_yet_known: int

    @property
    def rate_bp(self) -> int | None:
        """Share still employed among the known answers, in basis points (half up)."""
        known = self.employed + self.left
        if not known:
            return None
        return int((Decimal(self.employed) * BP / known).quantize(Decimal(1), ROUND_HALF_UP))


@dataclass(frozen=True)
class GroupOutcome:
    key: str  # the team's org-unit id or the reason code
    cases: int
    complete_cases: int
    flagged: int
    # complete cases only: an incomplete after-window would read as a fall
    revenue_before_fen: int
    revenue_after_fen: int
    orders_before: int
    orders_after: int
    stability: tuple[StabilityRate, ...] = field(default_factory=tuple)

    @property
    def revenue_change_bp(self) -> int | None:
        return change_bp(self.revenue_before_fen, self.revenue_after_fen)


def stability_rates(cases: Sequence[CaseOutcome]) -> tuple[StabilityRate, ...]:
    rates = []
    for i, months in enumerate(STABILITY_MONTHS):
        statuses = [c.stability[i].status for c in cases]
        rates.append(StabilityRate(months, statuses.count(Stability.EMPLOYED),
                                   statuses.count(Stability.LEFT),
                                   statuses.count(Stability.NOT_YET_KNOWN)))
    return tuple(rates)


def aggregate(cases: Sequence[CaseOutcome], key: Callable[[CaseOutcome], str]
              ) -> list[GroupOutcome]:
    groups: dict[str, list[CaseOutcome]] = {}
    for c in cases:
        groups.setdefault(key(c), []).append(c)
    result = []
    for name in sorted(groups):
        members = groups[name]
        complete = [c for c in members if c.complete]
        result.append(GroupOutcome(
            key=name, cases=len(members), complete_cases=len(complete),
            flagged=sum(c.flagged for c in members),
            revenue_before_fen=sum(c.before.revenue_fen for c in complete),
            revenue_after_fen=sum(c.after.revenue_fen for c in complete),
            orders_before=sum(c.before.order_count for c in complete),
            orders_after=sum(c.after.order_count for c in complete),
            stability=stability_rates(members)))
    return result
