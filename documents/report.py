"""The personal analysis report: what a reassignment means for the salesperson who loses customers.

`render_report(data, language)` turns a `ReportData` into HTML (Jinja2, autoescaped) and PDF
(WeasyPrint), and returns both with the SHA-256 of the PDF bytes. Rendering is pure: the same
data gives the same bytes (no clock, no random ids, no external resources), so a retried
activity can recognise a document it already stored.

Chinese text needs a CJK font. The stylesheet asks for Noto Sans CJK SC (Debian
`fonts-noto-cjk`, installed by `make install`); when no installed font has a glyph that the
report needs, rendering fails with `MissingGlyphsError` instead of producing boxes ("tofu").
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from functools import lru_cache, partial
from math import ceil
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import BaseModel, Field, field_validator

from documents import font_subset_cache
from documents import formatting as fmt
from documents.charts import bar_chart
from documents.messages import LANGUAGES, translate
from domain.impact import DAYS_PER_MONTH, Assessment, CompensationOption, CustomerValue, half_up
from domain.policy import Terms

Language = Literal["zh-CN", "en"]
TEMPLATES = Path(__file__).resolve().parent / "templates"
POLICY_PATH = "/api/v1/policies/{id}"
APPEAL_PATH = "/api/v1/reassignments/{id}/appeal"
# WeasyPrint does not promise thread safety, and activities run on a thread pool: one PDF at a
# time per process (a report takes a second or two, and few are rendered).
_RENDER_LOCK = threading.Lock()
REVENUE_COLOR = "#2563eb"
ORDERS_COLOR = "#0d9488"


# --- what the report is made from ----------------------------------------------------------


class Person(BaseModel):
    id: int
    name: str
    employee_no: str = ""


class MonthFigures(BaseModel):
    """One calendar month (organisation timezone) of one customer's orders."""

    period: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    orders: int = Field(default=0, ge=0)  # orders booked, refunds and cancellations not counted
    revenue_fen: int = 0  # order amounts net of refunds booked that month


class ReportCustomer(BaseModel):
    id: int
    code: str
    name: str
    history: list[MonthFigures]  # oldest first, every month of the window (zeros included)


class PolicyRef(BaseModel):
    id: int
    name: str
    version: int
    published_at: datetime | None = None

    @property
    def path(self) -> str:
        return POLICY_PATH.format(id=self.id)


class ReportData(BaseModel):
    """Everything the report says, already loaded. Times are UTC-aware."""

    request_id: int
    submitted_at: datetime
    reason: str
    note: str | None = None
    salesperson: Person  # the affected salesperson (the reader)
    requester: Person
    receiver: Person
    customers: list[ReportCustomer] = Field(min_length=1)
    window_end: datetime  # the end of the communication window: the appeal deadline
    signature_deadline_at: datetime | None = None
    effective_at: datetime | None = None  # None: not yet; estimated as the window's end
    terms: Terms
    assessment: Assessment | None = None  # None: the assessment is pending
    policy: PolicyRef
    timezone: str = "Asia/Shanghai"

    @field_validator("submitted_at", "window_end", "signature_deadline_at", "effective_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("times must be timezone-aware (UTC)")
        return value


@dataclass(frozen=True)
class RenderedDocument:
    html: str
    pdf: bytes
    sha256: str


class MissingGlyphsError(RuntimeError):
    """The PDF would show empty boxes: no installed font has these characters."""


# --- the protection period in money ------------------------------------------------------


@dataclass(frozen=True)
class ProtectionRow:
    number: int
    start: datetime
    end: datetime
    months: Fraction  # how much of an (average) month the row covers: 1 except the last
    expected_fen: int
    without_move_fen: int
    kept_fen: int

    @property
    def difference_fen(self) -> int:
        return self.without_move_fen - self.kept_fen


@dataclass(frozen=True)
class CustomerMonthly:
    customer_id: int
    code: str
    name: str
    rate_bp: int
    expected_fen: int  # per average month
    without_move_fen: int
    kept_fen: int


@dataclass(frozen=True)
class ProtectionSchedule:
    rows: list[ProtectionRow]
    by_customer: list[CustomerMonthly]
    expected_fen: int
    without_move_fen: int
    kept_fen: int
    beyond_horizon: bool

    @property
    def difference_fen(self) -> int:
        return self.without_move_fen - self.kept_fen


def _spread(total_fen: int, exact_rows: list[Fraction]) -> list[int]:
    """Round rows so that they add up to `total_fen`: cumulative half-up rounding, and the
    last row absorbs the difference between per-customer and whole-sum rounding."""
    rows, done, cumulative = [], 0, Fraction(0)
    for exact in exact_rows:
        cumulative += exact
        rounded = half_up(cumulative)
        rows.append(rounded - done)
        done = rounded
    if rows:
        rows[-1] += total_fen - done
    return rows


def protection_schedule(assessment: Assessment, terms: Terms,
                        effective_at: datetime) -> ProtectionSchedule | None:
    """What the salesperson keeps in each month of protection, as the assessment projects it.

    Expected revenue is spread evenly over the horizon (domain.impact), so each average month
    of protection keeps expected / horizon × rate × share. The totals are computed per customer
    exactly as `domain.impact.assess` does, so `kept_fen` equals the assessment's figure for
    the same terms.
    """
    if terms.protection_period <= timedelta(0):
        return None
    horizon = assessment.horizon_months
    days = Fraction(int(terms.protection_period.total_seconds()), 86_400)
    months = min(days / DAYS_PER_MONTH, Fraction(horizon))
    share = terms.protection_share_bp
    customers: list[CustomerValue] = assessment.customers

    def monthly(c: CustomerValue) -> Fraction:
        return Fraction(c.expected_revenue_fen, horizon)

    by_customer = [
        CustomerMonthly(
            customer_id=c.customer_id, code=c.customer_code, name=c.customer_name,
            rate_bp=c.rate_bp, expected_fen=half_up(monthly(c)),
            without_move_fen=half_up(monthly(c) * c.rate_bp / 10_000),
            kept_fen=half_up(monthly(c) * c.rate_bp * share / 100_000_000))
        for c in customers
    ]
    per_month_expected = sum((monthly(c) for c in customers), Fraction(0))
    per_month_without = sum((monthly(c) * c.rate_bp / 10_000 for c in customers), Fraction(0))
    per_month_kept = per_month_without * share / 10_000
    total_expected = sum(half_up(monthly(c) * months) for c in customers)
    total_without = sum(half_up(monthly(c) * months * c.rate_bp / 10_000) for c in customers)
    total_kept = sum(half_up(monthly(c) * months * c.rate_bp * share / 100_000_000)
                     for c in customers)

    fractions = [min(Fraction(1), months - i) for i in range(ceil(months))]
    expected_rows = _spread(total_expected, [per_month_expected * f for f in fractions])
    without_rows = _spread(total_without, [per_month_without * f for f in fractions])
    kept_rows = _spread(total_kept, [per_month_kept * f for f in fractions])
    month_seconds = DAYS_PER_MONTH * 86_400
    end_of_all = effective_at + timedelta(seconds=int(months * month_seconds))
    rows = []
    for i, f in enumerate(fractions):
        start = effective_at + timedelta(seconds=int(i * month_seconds))
        end = min(effective_at + timedelta(seconds=int((i + 1) * month_seconds)), end_of_all)
        rows.append(ProtectionRow(number=i + 1, start=start, end=end, months=f,
                                  expected_fen=expected_rows[i],
                                  without_move_fen=without_rows[i], kept_fen=kept_rows[i]))
    return ProtectionSchedule(rows=rows, by_customer=by_customer, expected_fen=total_expected,
                              without_move_fen=total_without, kept_fen=total_kept,
                              beyond_horizon=days / DAYS_PER_MONTH > horizon)


# --- rendering -----------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                       keep_trailing_newline=True)


def _charts(customer: ReportCustomer, language: str, t: Any) -> tuple[Any, Any]:
    labels = [fmt.month_label(m.period, language) for m in customer.history]
    years = []
    for i, m in enumerate(customer.history):
        year, month = m.period.split("-")
        first = i == 0 or month == "01"
        years.append((f"{year}年" if language == "zh-CN" else year) if first else "")
    revenue = bar_chart([m.revenue_fen for m in customer.history], labels,
                        title=t("chart_revenue"), color=REVENUE_COLOR,
                        value_label=partial(fmt.money_compact, language=language),
                        year_labels=years, empty_text=t("no_orders"))
    orders = bar_chart([m.orders for m in customer.history], labels,
                       title=t("chart_orders"), color=ORDERS_COLOR, value_label=str,
                       year_labels=years, empty_text=t("no_orders"))
    return revenue, orders


def _option_terms(option: CompensationOption, language: str, t: Any) -> str:
    return str(t("terms_cell", period=fmt.duration(option.terms.protection_period, language),
                 share=fmt.percent_bp(option.terms.protection_share_bp)))


def render_html(data: ReportData, language: Language = "zh-CN") -> str:
    """The report as a standalone HTML page (inline CSS and SVG; readable on a phone)."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}")
    t = partial(translate, language)
    tz = data.timezone
    effective = data.effective_at or data.window_end
    schedule = (protection_schedule(data.assessment, data.terms, effective)
                if data.assessment is not None else None)
    values = {c.customer_id: c for c in data.assessment.customers} if data.assessment else {}
    customers = []
    for c in data.customers:
        revenue_chart, orders_chart = _charts(c, language, t)
        customers.append({
            "c": c, "value": values.get(c.id), "revenue_chart": revenue_chart,
            "orders_chart": orders_chart, "orders": sum(m.orders for m in c.history),
            "revenue_fen": sum(m.revenue_fen for m in c.history),
        })
    history = data.customers[0].history
    template = _environment().get_template("report.html.j2")
    return template.render(
        d=data, lang=language, t=t, customers=customers, schedule=schedule,
        a=data.assessment, effective=effective,
        protection_end=effective + data.terms.protection_period,
        history_first=fmt.month_long(history[0].period, language) if history else "",
        history_last=fmt.month_long(history[-1].period, language) if history else "",
        history_months=len(history),
        appeal_path=APPEAL_PATH.format(id=data.request_id),
        money=fmt.money, pct=fmt.percent_bp, months=fmt.months_fraction,
        duration=partial(fmt.duration, language=language),
        moment=partial(fmt.moment, language=language, timezone=tz),
        day=partial(fmt.day, language=language, timezone=tz),
        short_day=partial(fmt.short_day, language=language, timezone=tz),
        tz_name=fmt.timezone_name(tz, language),
        option_terms=partial(_option_terms, language=language, t=t),
    )


class _NotdefCollector(logging.Handler):
    """Collects WeasyPrint's '.notdef glyph rendered' warnings from the current thread."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.missing: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread and ".notdef glyph" in str(record.msg):
            self.missing.append(record.getMessage())


@contextmanager
def _glyph_check() -> Iterator[_NotdefCollector]:
    logger = logging.getLogger("weasyprint")
    collector = _NotdefCollector()
    logger.addHandler(collector)
    try:
        yield collector
    finally:
        logger.removeHandler(collector)


def _no_fetching() -> Any:
    """The report embeds everything; it never loads a URL (not even file://)."""
    import weasyprint

    fetcher_class = getattr(weasyprint, "URLFetcher", None)
    if fetcher_class is not None:
        return fetcher_class(allowed_protocols=())

    def refuse(url: str, *args: Any, **kwargs: Any) -> Any:
        raise ValueError(f"the report loads no external resources ({url})")

    return refuse


@lru_cache(maxsize=1)
def _font_configuration() -> Any:
    """One FontConfiguration per process, used under _RENDER_LOCK: the same PDF bytes as a new
    one per render, and about 8% less CPU per document (Pango keeps its loaded fonts). Our
    documents have no @font-face, so it holds nothing that differs between documents."""
    from weasyprint.text.fonts import FontConfiguration

    return FontConfiguration()


def html_to_pdf(html: str) -> bytes:
    """PDF bytes of `html`, deterministic for the same input and installed fonts."""
    from weasyprint import HTML  # imported here: loading pango takes a moment

    font_subset_cache.install()
    with _RENDER_LOCK, _glyph_check() as check:
        pdf = HTML(string=html, url_fetcher=_no_fetching()).write_pdf(
            font_config=_font_configuration())
    if check.missing:
        chars = "; ".join(dict.fromkeys(check.missing))
        raise MissingGlyphsError(
            f"No installed font has some characters of the report ({chars}). Install a CJK "
            "font, e.g. `apt-get install fonts-noto-cjk` (`make install` does this).")
    assert pdf is not None
    return pdf


def render_report(data: ReportData, language: Language = "zh-CN") -> RenderedDocument:
    """HTML and PDF of the personal analysis report, with the SHA-256 of the PDF bytes."""
    html = render_html(data, language)
    pdf = html_to_pdf(html)
    return RenderedDocument(html=html, pdf=pdf, sha256=hashlib.sha256(pdf).hexdigest())
