"""HR's post-reassignment report: did the reassignments work?

The API's report (models.outcomes via api.routes.outcomes.build_report, same scope and
filters) drawn as inline SVG bars (templates/macros/charts.html; no script, no style
attribute): the customers' revenue before and after per team and per reason, the share of
original salespeople still employed at 3, 6 and 12 months, and the table of cases with the
flag. The CSV link is the API's export with the same filters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlmodel import col, select

from api.deps import SessionDep, SettingsDep
from api.problems import Problem
from api.routes.outcomes import build_report
from api.security import Actor
from api.services.scope import Scope
from documents.formatting import percent_bp
from domain.outcomes import BP, DEFAULT_MONTHS, MAX_MONTHS, GroupOutcome
from domain.permissions import Action
from domain.stages import Reason
from models.org import Employee, OrgUnit
from web.charts import Bar, Segment
from web.deps import page_permit
from web.render import render

router = APIRouter()

OUTCOMES_PATH = "/app/hr/outcomes"
MONTH_CHOICES = (1, 3, 6, 12)


@dataclass(frozen=True)
class GroupBars:
    label: str
    group: GroupOutcome
    before: Bar
    after: Bar


def _bar(label: str, key: str, fen: int, scale: int) -> Bar:
    width = round(100.0 * max(fen, 0) / scale, 2) if scale > 0 else 0.0
    return Bar(label=label, total_fen=fen, segments=[Segment(key, fen, 0.0, width)])


def revenue_bars(groups: list[GroupOutcome], labels: dict[str, str]) -> list[GroupBars]:
    """Before and after revenue per group, scaled to the largest figure of the chart."""
    scale = max([1, *(max(g.revenue_before_fen, g.revenue_after_fen) for g in groups)])
    return [GroupBars(labels.get(g.key, g.key), g,
                      _bar(g.key, "before", g.revenue_before_fen, scale),
                      _bar(g.key, "after", g.revenue_after_fen, scale)) for g in groups]


def signed_pct(bp: int) -> str:
    """A change in basis points as a signed percentage: -6667 -> '-66.67%'."""
    return ("-" if bp < 0 else "+" if bp > 0 else "") + percent_bp(abs(bp))


def rate_bar(rate_bp: int | None) -> Bar:
    fen = rate_bp or 0  # the Bar's amount field carries basis points here
    return Bar(label="", total_fen=fen,
               segments=[Segment("stable", fen, 0.0, round(100.0 * fen / BP, 2))])


def _teams(session: SessionDep, scope: Scope) -> list[tuple[int, str]]:
    """The sales teams the filter offers: every team for HR, the caller's subtree otherwise."""
    query = select(OrgUnit.id, OrgUnit.name).where(OrgUnit.function == "team")
    if scope.outcome_cases() is not None:
        units = select(Employee.org_unit_id).where(col(Employee.id).in_(scope.team_ids or {-1}))
        query = query.where(col(OrgUnit.id).in_(units))
    return [(int(i), str(n)) for i, n in session.exec(query.order_by(col(OrgUnit.name))).all()
            if i is not None]


@router.get(OUTCOMES_PATH)
def outcomes_page(
    request: Request, actor: Annotated[Actor, page_permit(Action.OUTCOMES_READ)],
    session: SessionDep, settings: SettingsDep,
    months: Annotated[int, Query(ge=1, le=MAX_MONTHS)] = DEFAULT_MONTHS,
    team: Annotated[str, Query()] = "", reason: Annotated[str, Query()] = "",
    flagged_only: Annotated[bool, Query()] = False,
) -> Response:
    team_id = int(team) if team.isdigit() else None
    if reason and reason not in Reason._value2member_map_:
        raise Problem(422, "unknown-reason", "Unknown reason", f"{reason!r} is not a reason.")
    report = build_report(session, actor, settings, months=months, team=team_id,
                          reason=reason or None, flagged_only=flagged_only)
    team_labels = {str(k): v for k, v in report.team_names.items()}
    filters = {"months": months, "team": team_id or "", "reason": reason,
               "flagged_only": "true" if flagged_only else ""}
    query = urlencode({k: v for k, v in filters.items() if v != ""})
    return render(request, "hr/outcomes.html", {
        "report": report, "filters": filters, "month_choices": MONTH_CHOICES,
        "teams": _teams(session, Scope(session, actor)), "reasons": list(Reason),
        "team_bars": revenue_bars(report.by_team, team_labels),
        "reason_bars": revenue_bars(report.by_reason, {}),
        "stability": [(r, rate_bar(r.rate_bp)) for r in report.overall.stability]
        if report.overall else [],
        "names": report.employee_names, "team_names": report.team_names,
        "csv_href": f"/api/v1/outcomes.csv?{query}", "signed_pct": signed_pct,
    })
