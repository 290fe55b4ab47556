"""Chart data for inline SVG bars, drawn by templates/macros/charts.html: no JavaScript, no
library, nothing the Content-Security-Policy has to allow (SVG presentation attributes, not
style attributes). Each chart is also written out as figures next to it, so the bars only
illustrate what the text says.

Widths are percentages of the widest bar, so the bars scale with the screen (375 px phones
included) while their labels stay HTML text.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.impact import Assessment
from domain.policy import Terms


@dataclass(frozen=True)
class Segment:
    key: str  # css class suffix: kept, compensation, loss, revenue, expected
    fen: int
    x: float  # percent
    width: float  # percent


@dataclass(frozen=True)
class Bar:
    label: str
    total_fen: int
    segments: list[Segment]
    note: str = ""  # e.g. a compensation option's kind code
    suggested: bool = False


def _stack(label: str, parts: list[tuple[str, int]], scale: int, **extra: object) -> Bar:
    segments, x = [], 0.0
    for key, fen in parts:
        width = 100.0 * max(fen, 0) / scale if scale > 0 else 0.0
        segments.append(Segment(key, fen, round(x, 2), round(width, 2)))
        x += width
    return Bar(label=label, total_fen=sum(f for _k, f in parts), segments=segments,
               **extra)  # type: ignore[arg-type]


def assessment_charts(assessment: Assessment, terms: Terms) -> dict[str, list[Bar]]:
    """Three charts: each customer's revenue (last 12 months and expected), the
    salesperson's projected commission split into kept / compensated / lost under the offered
    terms, and the same split for every compensation option."""
    customers = assessment.customers
    widest = max([1, *(max(c.t12m_revenue_fen, c.expected_revenue_fen) for c in customers)])
    values = []
    for c in customers:
        values.append(_stack(c.customer_code or f"#{c.customer_id}",
                             [("revenue", c.t12m_revenue_fen)], widest))
        values.append(_stack(c.customer_code or f"#{c.customer_id}",
                             [("expected", c.expected_revenue_fen)], widest))

    projected = assessment.projected_commission_fen
    offered_comp = terms.compensation_fen
    offered_kept = assessment.kept_through_protection_fen
    offered_loss = max(projected - offered_kept - offered_comp, 0)
    options = assessment.alternatives
    scale = max([projected, 1, offered_kept + offered_comp + offered_loss,
                 *(o.kept_through_protection_fen + o.terms.compensation_fen
                   + o.remaining_loss_fen for o in options)])
    impact = [_stack("offered", [("kept", offered_kept), ("compensation", offered_comp),
                                 ("loss", offered_loss)], scale)]
    alternatives = [
        _stack(o.kind.value, [("kept", o.kept_through_protection_fen),
                              ("compensation", o.terms.compensation_fen),
                              ("loss", o.remaining_loss_fen)], scale,
               note=o.kind.value, suggested=o.kind == assessment.suggested.kind)
        for o in options]
    return {"values": values, "impact": impact, "alternatives": alternatives}
