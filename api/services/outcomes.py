"""The post-reassignment report as JSON and CSV, shared by the API and the HR page."""

from __future__ import annotations

import csv
import io
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from api.routes.statements import BOM
from domain.outcomes import (
    CaseOutcome,
    GroupOutcome,
    Satisfaction,
    ScoreKind,
    StabilityRate,
    WindowFigures,
)
from domain.spreadsheet import spreadsheet_safe
from models.outcomes import OutcomeReport


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def per_month(count: int, months: int) -> str:
    """Order frequency: orders per month over the window, two decimals."""
    return str((Decimal(count) / months).quantize(Decimal("0.01"), ROUND_HALF_UP))


def _window(figures: WindowFigures, months: int) -> dict[str, Any]:
    return {"revenue_fen": figures.revenue_fen, "order_count": figures.order_count,
            "orders_per_month": per_month(figures.order_count, months)}


def _satisfaction(s: Satisfaction) -> dict[str, Any]:
    return {"kind": s.kind.value, "before_avg": _dec(s.before_avg), "after_avg": _dec(s.after_avg),
            "before_count": s.before_count, "after_count": s.after_count}


def case_json(c: CaseOutcome, report: OutcomeReport) -> dict[str, Any]:
    f, w, months = c.facts, c.windows, report.months
    return {
        "request_id": f.request_id, "reason": f.reason, "stage": f.stage,
        "team_id": f.team_id, "team_name": report.team_names.get(f.team_id),
        "from_employee_id": f.from_employee_id,
        "from_employee_name": report.employee_names.get(f.from_employee_id),
        "to_employee_id": f.to_employee_id,
        "to_employee_name": report.employee_names.get(f.to_employee_id),
        "effective_at": w.effective_at, "customer_ids": list(f.customer_ids),
        "before": {"start": w.before_start, "end": w.effective_at, **_window(c.before, months)},
        "after": {"start": w.effective_at, "end": w.after_end, "complete": w.after_complete,
                  "elapsed_bp": w.after_elapsed_bp, **_window(c.after, months)},
        "revenue_change_bp": c.revenue_change_bp,
        "revenue_drop_threshold_bp": f.revenue_drop_threshold_bp,
        "flagged": c.flagged,
        "stability": [{"months": p.months, "at": p.at, "status": p.status.value,
                       "left_on": p.left_on} for p in c.stability],
        "satisfaction": [_satisfaction(s) for s in c.satisfaction],
        "receiver": {"from_moved_customers_after_fen": c.receiver_from_moved_fen,
                     "total_before": _window(c.receiver_before, months),
                     "total_after": _window(c.receiver_after, months)},
    }


def _rate(r: StabilityRate) -> dict[str, Any]:
    return {"months": r.months, "employed": r.employed, "left": r.left,
            "not_yet_known": r.not_yet_known, "rate_bp": r.rate_bp}


def group_json(g: GroupOutcome) -> dict[str, Any]:
    return {"cases": g.cases, "complete_cases": g.complete_cases, "flagged": g.flagged,
            "revenue_before_fen": g.revenue_before_fen, "revenue_after_fen": g.revenue_after_fen,
            "revenue_change_bp": g.revenue_change_bp, "orders_before": g.orders_before,
            "orders_after": g.orders_after, "stability": [_rate(r) for r in g.stability]}


def report_json(report: OutcomeReport) -> dict[str, Any]:
    return {
        "months": report.months, "as_of": report.now,
        "cases": [case_json(c, report) for c in report.cases],
        "by_team": [{"team_id": int(g.key), "team_name": report.team_names.get(int(g.key)),
                     **group_json(g)} for g in report.by_team],
        "by_reason": [{"reason": g.key, **group_json(g)} for g in report.by_reason],
        "overall": group_json(report.overall) if report.overall else None,
    }


CSV_COLUMNS = (
    "request_id", "reason", "stage", "team_id", "team_name", "from_employee_id",
    "from_employee_name", "to_employee_id", "to_employee_name", "effective_at",
    "after_window_end", "after_complete", "after_elapsed_bp", "customer_ids",
    "revenue_before_fen", "revenue_after_fen", "revenue_change_bp", "orders_before",
    "orders_after", "revenue_drop_threshold_bp", "flagged",
    "stability_3m", "stability_6m", "stability_12m", "left_on",
    "csat_before_avg", "csat_after_avg", "nps_before_avg", "nps_after_avg",
    "receiver_from_moved_after_fen", "receiver_total_before_fen", "receiver_total_after_fen",
)


def _avg(c: CaseOutcome, kind: ScoreKind, after: bool) -> str:
    for s in c.satisfaction:
        if s.kind == kind:
            value = s.after_avg if after else s.before_avg
            return "" if value is None else str(value)
    return ""


def case_row(c: CaseOutcome, report: OutcomeReport) -> list[Any]:
    f, w = c.facts, c.windows
    left_on = next((p.left_on for p in c.stability if p.left_on is not None), None)
    return [
        f.request_id, f.reason, f.stage, f.team_id,
        spreadsheet_safe(report.team_names.get(f.team_id, "")), f.from_employee_id,
        spreadsheet_safe(report.employee_names.get(f.from_employee_id, "")), f.to_employee_id,
        spreadsheet_safe(report.employee_names.get(f.to_employee_id, "")),
        w.effective_at.isoformat(), w.after_end.isoformat(), str(w.after_complete).lower(),
        w.after_elapsed_bp, " ".join(str(i) for i in f.customer_ids),
        c.before.revenue_fen, c.after.revenue_fen,
        "" if c.revenue_change_bp is None else c.revenue_change_bp,
        c.before.order_count, c.after.order_count, f.revenue_drop_threshold_bp,
        str(c.flagged).lower(), *(p.status.value for p in c.stability),
        left_on.isoformat() if left_on else "",
        _avg(c, ScoreKind.CSAT, False), _avg(c, ScoreKind.CSAT, True),
        _avg(c, ScoreKind.NPS, False), _avg(c, ScoreKind.NPS, True),
        c.receiver_from_moved_fen, c.receiver_before.revenue_fen, c.receiver_after.revenue_fen,
    ]


def report_csv(report: OutcomeReport) -> bytes:
    """One row per case; UTF-8 with a BOM so that Excel reads names correctly."""
    buffer = io.StringIO()
    buffer.write(BOM)
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(case_row(c, report) for c in report.cases)
    return buffer.getvalue().encode("utf-8")
