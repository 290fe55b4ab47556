"""Statement periods: calendar months in the organisation's timezone (DESIGN.md rule 9)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo


def period_of(moment: datetime, timezone: str) -> str:
    """'YYYY-MM' of `moment` in `timezone`. 2026-02-28T17:30Z is '2026-03' in Asia/Shanghai."""
    if moment.tzinfo is None:
        raise ValueError("period_of needs an aware datetime")
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m")


def next_period(period: str) -> str:
    year, month = (int(part) for part in period.split("-"))
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def previous_period(period: str) -> str:
    year, month = (int(part) for part in period.split("-"))
    return f"{year - (month == 1):04d}-{(month - 2) % 12 + 1:02d}"


def period_bounds(period: str, timezone: str) -> tuple[datetime, datetime]:
    """[start, end) of the month in UTC."""
    year, month = (int(part) for part in period.split("-"))
    tz = ZoneInfo(timezone)
    start = datetime(year, month, 1, tzinfo=tz)
    ny, nm = (int(part) for part in next_period(period).split("-"))
    end = datetime(ny, nm, 1, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)
