"""Money, percentages, durations and dates as the report shows them, in either language.

Money is integer fen and is formatted exactly (no floats): 123456 -> "¥1,234.56".
Times are UTC-aware and shown in the organisation's timezone with Babel's calendar data.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time, get_timezone_name

from domain.impact import DAYS_PER_MONTH

BABEL_LOCALES = {"zh-CN": "zh_CN", "en": "en"}


def money(fen: int) -> str:
    """Exact yuan with thousands separators: 123456 -> '¥1,234.56', -5 -> '-¥0.05'."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"


def money_compact(fen: int, language: str) -> str:
    """A short label for a chart bar: '1.2万' / '12.3k'. Display only, never a figure of record."""
    yuan = fen / 100
    size = abs(yuan)
    if language == "zh-CN":
        if size >= 100_000_000:
            return f"{yuan / 100_000_000:.1f}亿"
        if size >= 10_000:
            return f"{yuan / 10_000:.1f}万"
        return f"{yuan:.0f}"
    if size >= 1_000_000:
        return f"{yuan / 1_000_000:.1f}M"
    if size >= 1_000:
        return f"{yuan / 1_000:.1f}k"
    return f"{yuan:.0f}"


def percent_bp(bp: int) -> str:
    """Basis points as a percentage, exact: 5000 -> '50%', 325 -> '3.25%'."""
    whole, rest = divmod(bp, 100)
    return f"{whole}%" if rest == 0 else f"{whole}.{rest:02d}".rstrip("0") + "%"


def months_fraction(value: Fraction) -> str:
    """0.91 (two decimals, trailing zeros dropped): how much of a month a row covers."""
    hundredths = int((value * 100 * 2 + 1) // 2)
    whole, rest = divmod(hundredths, 100)
    return str(whole) if rest == 0 else f"{whole}.{rest:02d}".rstrip("0")


_UNITS = {
    "zh-CN": {"day": "{n} 天", "hour": "{n} 小时", "minute": "{n} 分钟", "second": "{n} 秒"},
    "en": {"day": "{n} day{s}", "hour": "{n} hour{s}", "minute": "{n} minute{s}",
           "second": "{n} second{s}"},
}
_ABOUT_MONTHS = {"zh-CN": "（约 {m} 个月）", "en": " (about {m} months)"}


def duration(value: timedelta, language: str) -> str:
    """'180 天（约 5.9 个月）', '30 minutes': the largest whole unit that fits exactly."""
    seconds = int(value.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0 or unit == "second":
            count = seconds // size
            text = _UNITS[language][unit].format(n=count, s="" if count == 1 else "s")
            if unit == "day" and count >= 45:
                months = Fraction(count) / DAYS_PER_MONTH
                text += _ABOUT_MONTHS[language].format(m=f"{float(months):.1f}")
            return text
    raise AssertionError("unreachable")


def local(moment: datetime, timezone: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("the report needs aware datetimes (UTC)")
    return moment.astimezone(ZoneInfo(timezone))


def day(moment: datetime | date, language: str, timezone: str) -> str:
    """'2026年3月31日' / 'March 31, 2026' in the organisation's timezone."""
    if isinstance(moment, datetime):
        moment = local(moment, timezone).date()
    return format_date(moment, "long", locale=BABEL_LOCALES[language])


def short_day(moment: datetime, language: str, timezone: str) -> str:
    """'2026-03-31': compact, for table cells."""
    return local(moment, timezone).strftime("%Y-%m-%d")


def timezone_name(timezone: str, language: str) -> str:
    """'中国标准时间' / 'China Standard Time'."""
    return get_timezone_name(ZoneInfo(timezone), "long", locale=BABEL_LOCALES[language],
                             zone_variant="standard")


def moment(value: datetime, language: str, timezone: str) -> str:
    """Date, time and zone: '2026年3月31日 18:00（中国标准时间）'."""
    at = local(value, timezone)
    locale = BABEL_LOCALES[language]
    on, clock = format_date(at.date(), "long", locale=locale), format_time(at, "HH:mm",
                                                                         locale=locale)
    zone = timezone_name(timezone, language)
    return f"{on} {clock}（{zone}）" if language == "zh-CN" else f"{on}, {clock} ({zone})"


def month_label(period: str, language: str) -> str:
    """'2025-04' -> '4月' / 'Apr'."""
    year, month = (int(p) for p in period.split("-"))
    return format_date(date(year, month, 1), "MMM", locale=BABEL_LOCALES[language])


def month_long(period: str, language: str) -> str:
    """'2025-04' -> '2025年4月' / 'April 2025'."""
    year, month = (int(p) for p in period.split("-"))
    pattern = "y年M月" if language == "zh-CN" else "MMMM y"
    return format_date(date(year, month, 1), pattern, locale=BABEL_LOCALES[language])
