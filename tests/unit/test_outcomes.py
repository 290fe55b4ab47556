"""The monitoring report's pure arithmetic (domain/outcomes.py): windows, changes, flags,
stability and satisfaction, with hypothesis for the calendar and rounding rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from domain.outcomes import (
    CaseFacts,
    OrderFact,
    ScoreFact,
    ScoreKind,
    Stability,
    add_months,
    case_outcome,
    change_bp,
    fell_more_than,
    satisfaction,
    stability,
    windows,
)

SHANGHAI = "Asia/Shanghai"
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1),
                       timezones=st.just(UTC))
month_counts = st.integers(min_value=-24, max_value=24)
zones = st.sampled_from([SHANGHAI, "UTC", "Europe/Berlin"])


@given(moments, month_counts, zones)
def test_add_months_moves_the_local_calendar_month_and_clamps_the_day(
        moment: datetime, months: int, zone: str) -> None:
    tz = ZoneInfo(zone)
    local, moved = moment.astimezone(tz), add_months(moment, months, zone).astimezone(tz)
    assert (moved.year * 12 + moved.month) - (local.year * 12 + local.month) == months
    assert moved.day == local.day or (moved.day < local.day and (
        (moved + timedelta(days=1)).month != moved.month))  # clamped to the month's last day
    if zone != "Europe/Berlin":  # no daylight saving: the local time of day stays
        assert moved.time() == local.time()


@given(moments, st.integers(min_value=1, max_value=24))
def test_windows_are_whole_months_and_never_overlap(moment: datetime, months: int) -> None:
    w = windows(moment, months, SHANGHAI, now=moment + timedelta(days=800))
    assert 28 * months <= (w.effective_at - w.before_start).days <= 31 * months
    assert 28 * months <= (w.after_end - w.effective_at).days <= 31 * months + 1
    for probe in (w.before_start, w.effective_at - timedelta(microseconds=1), w.effective_at,
                  w.after_end - timedelta(microseconds=1), w.after_end):
        assert not (w.in_before(probe) and w.in_after(probe))
    assert w.in_before(w.before_start) and not w.in_before(w.effective_at)
    assert w.in_after(w.effective_at) and not w.in_after(w.after_end)


def test_three_months_from_the_end_of_a_month() -> None:
    may_31 = datetime(2026, 5, 31, 4, tzinfo=UTC)  # noon in Shanghai
    assert add_months(may_31, 3, SHANGHAI) == datetime(2026, 8, 31, 4, tzinfo=UTC)
    assert add_months(may_31, -3, SHANGHAI) == datetime(2026, 2, 28, 4, tzinfo=UTC)
    # 17:30 UTC on 28 Feb is 1 March in Shanghai: the local calendar counts (UTC
    # arithmetic would say 28 March)
    assert add_months(datetime(2026, 2, 28, 17, 30, tzinfo=UTC), 1, SHANGHAI) == datetime(
        2026, 3, 31, 17, 30, tzinfo=UTC)


@given(st.integers(min_value=1, max_value=10**12), st.integers(min_value=-10**12,
                                                               max_value=10**12),
       st.integers(min_value=0, max_value=10_000))
def test_the_flag_agrees_with_the_rounded_change(before: int, after: int,
                                                 threshold: int) -> None:
    change = change_bp(before, after)
    assert change is not None
    if fell_more_than(before, after, threshold):
        assert change <= -threshold
    else:
        assert change >= -threshold


def test_change_and_flag_edges() -> None:
    assert change_bp(0, 500) is None and not fell_more_than(0, 0, 2000)
    assert change_bp(600_000, 200_000) == -6667
    assert change_bp(3, 2) == -3333 and change_bp(3, 1) == -6667  # half away from zero
    assert not fell_more_than(100, 80, 2000)  # exactly 20 % is not more than 20 %
    assert fell_more_than(100_000, 79_999, 2000)


def _case(threshold_bp: int, effective: datetime, orders: list[OrderFact]) -> CaseFacts:
    return CaseFacts(request_id=1, reason="PERFORMANCE", stage="COMPLETED", from_employee_id=1,
                     to_employee_id=2, team_id=9, effective_at=effective, customer_ids=(5,),
                     orders=tuple(orders), receiver_orders=(), scores=(), from_left=False,
                     from_leave_date=None, revenue_drop_threshold_bp=threshold_bp)


def test_the_threshold_is_the_cases_own_and_a_running_window_is_never_flagged() -> None:
    eff = datetime(2026, 3, 10, 4, tzinfo=UTC)
    orders = [OrderFact(5, eff - timedelta(days=30), 100_000, True),
              OrderFact(5, eff + timedelta(days=30), 90_000, True)]  # fell by 10 %
    later = datetime(2026, 7, 1, tzinfo=UTC)
    assert not case_outcome(_case(2000, eff, orders), 3, SHANGHAI, later).flagged
    assert case_outcome(_case(500, eff, orders), 3, SHANGHAI, later).flagged
    running = case_outcome(_case(500, eff, orders), 3, SHANGHAI, eff + timedelta(days=45))
    assert not running.flagged and running.revenue_change_bp is None
    assert running.after.revenue_fen == 90_000 and 4000 < running.windows.after_elapsed_bp < 5500


def test_stability_answers() -> None:
    eff = datetime(2025, 1, 15, 4, tzinfo=UTC)
    now = datetime(2025, 9, 1, tzinfo=UTC)  # past 3 and 6 months, before 12

    def status(left: bool, leave: datetime | None) -> list[Stability]:
        return [stability(eff, m, SHANGHAI, now, left=left, leave_date=leave).status
                for m in (3, 6, 12)]

    assert status(False, None) == [Stability.EMPLOYED, Stability.EMPLOYED,
                                   Stability.NOT_YET_KNOWN]
    left_after_4 = datetime(2025, 5, 20, tzinfo=UTC)
    assert status(True, left_after_4) == [Stability.EMPLOYED, Stability.LEFT, Stability.LEFT]
    planned = datetime(2025, 12, 1, tzinfo=UTC)  # a departure recorded for the future
    assert status(False, planned) == [Stability.EMPLOYED, Stability.EMPLOYED,
                                      Stability.NOT_YET_KNOWN]
    assert status(True, None)[:2] == [Stability.LEFT, Stability.LEFT]


def test_a_score_on_the_effective_day_counts_after() -> None:
    eff = datetime(2026, 3, 10, 20, tzinfo=UTC)  # 11 March, 04:00 in Shanghai
    w = windows(eff, 3, SHANGHAI, now=datetime(2027, 1, 1, tzinfo=UTC))
    result = satisfaction([ScoreFact(1, date(2026, 3, 10), ScoreKind.CSAT, 2),
                           ScoreFact(1, date(2026, 3, 11), ScoreKind.CSAT, 5),
                           ScoreFact(1, date(2026, 3, 11), ScoreKind.CSAT, 4)], w, SHANGHAI)
    [csat] = result
    assert (str(csat.before_avg), str(csat.after_avg)) == ("2.00", "4.50")
    assert (csat.before_count, csat.after_count) == (1, 2)
