"""Reading typed form fields the way people type them: an amount in yuan, a percentage, a
duration as a number and a unit. Each reader returns the value, or None when the field is
empty, and raises FieldValueError (with a translatable message) when it cannot be read.

Only the reading is here; what a value may be (a share between 0 and 100 %, a deadline
longer than zero...) stays with the models that decide it (domain.policy, models.policies).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation

from web.i18n import N_

# duration units offered next to a number field, in the order of the select
UNITS: dict[str, int] = {"minutes": 60, "hours": 3_600, "days": 86_400, "seconds": 1}
UNIT_LABELS = {"seconds": N_("seconds"), "minutes": N_("minutes"), "hours": N_("hours"),
               "days": N_("days")}


class FieldValueError(ValueError):
    def __init__(self, message: str) -> None:  # marked with N_; translated by the caller
        super().__init__(message)
        self.message = message


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text.replace(",", "").replace("，", "").strip())
    except InvalidOperation as exc:
        raise FieldValueError(N_("Enter a number.")) from exc
    if not value.is_finite():
        raise FieldValueError(N_("Enter a number."))
    return value


def read_yuan(text: str) -> int | None:
    """'1,200.50' -> 120050 fen."""
    text = text.strip().lstrip("¥").strip()
    if not text:
        return None
    value = _decimal(text) * 100
    if value != value.to_integral_value():
        raise FieldValueError(N_("Enter an amount in yuan with at most two decimals."))
    return int(value)


def read_percent(text: str) -> int | None:
    """'50' or '3.25' (%) -> basis points 5000 or 325."""
    text = text.strip().rstrip("%").strip()
    if not text:
        return None
    value = _decimal(text) * 100
    if value != value.to_integral_value():
        raise FieldValueError(N_("Enter a percentage with at most two decimals."))
    return int(value)


def read_int(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    value = _decimal(text)
    if value != value.to_integral_value():
        raise FieldValueError(N_("Enter a whole number."))
    return int(value)


def read_duration(text: str, unit: str) -> timedelta | None:
    """'3' and 'days' -> 3 days; '1.5' and 'minutes' -> 90 seconds."""
    text = text.strip()
    if not text:
        return None
    if unit not in UNITS:
        raise FieldValueError(N_("Choose a unit."))
    seconds = _decimal(text) * UNITS[unit]
    if seconds != seconds.to_integral_value():
        raise FieldValueError(N_("Enter a duration in whole seconds."))
    return timedelta(seconds=int(seconds))


def split_duration(value: timedelta | None) -> tuple[str, str]:
    """A duration as the form shows it: the largest unit that fits exactly."""
    if value is None:
        return "", "days"
    seconds = int(value.total_seconds())
    for unit in ("days", "hours", "minutes"):
        size = UNITS[unit]
        if seconds and seconds % size == 0:
            return str(seconds // size), unit
    return str(seconds), "seconds" if seconds else "days"


def show_percent(bp: int | None) -> str:
    if bp is None:
        return ""
    whole, rest = divmod(bp, 100)
    return str(whole) if rest == 0 else f"{whole}.{rest:02d}".rstrip("0")


def show_yuan(fen: int | None) -> str:
    if fen is None:
        return ""
    whole, cents = divmod(fen, 100)
    return str(whole) if cents == 0 else f"{whole}.{cents:02d}"
