"""Post-reassignment monitoring: satisfaction scores in, the before/after report out.

- `POST /satisfaction`: a batch of CSAT/NPS scores, all-or-nothing and idempotent.
- `GET /outcomes`: every case that took effect, in the caller's scope, with its customers'
  revenue and orders N months before and after, the original salesperson's stability at 3, 6
  and 12 months, satisfaction before and after, the receiver's results and the flag; plus
  aggregates by team (the losing salesperson's org unit), by reason and overall.
- `GET /outcomes.csv`: the same cases, one row each.
"""

from __future__ import annotations

import datetime as dt
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from api.deps import SessionDep, SettingsDep, permit
from api.problems import Problem, problem_responses
from api.security import Actor
from api.services.outcomes import report_csv, report_json
from api.services.scope import Scope, org_today
from domain.outcomes import DEFAULT_MONTHS, MAX_MONTHS, ScoreKind
from domain.permissions import Action
from domain.stages import Reason
from models.outcomes import OutcomeReport, outcome_report
from models.satisfaction import MAX_BATCH, ScoreIn, ingest_scores
from settings import Settings

router = APIRouter(tags=["outcomes"])

ScoreWriter = Annotated[Actor, permit(Action.SATISFACTION_WRITE)]
OutcomeReader = Annotated[Actor, permit(Action.OUTCOMES_READ)]


class ScoreItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: int
    date: dt.date = Field(description="the survey date in the organisation's calendar; not in "
                                   "the future")
    kind: ScoreKind = Field(description="CSAT (1-5) or NPS (0-10)")
    score: int
    source: str = Field(min_length=1, max_length=100,
                        description="the survey or system; with customer, date and kind it "
                                    "names the score, so sending it again is a no-op")


class ScoresIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scores: list[ScoreItemIn] = Field(min_length=1, max_length=MAX_BATCH)


class ScoresOut(BaseModel):
    created: int
    duplicates: int


@router.post("/satisfaction", response_model=ScoresOut, status_code=201,
             responses={200: {"model": ScoresOut, "description": "every score was stored"},
                        **problem_responses(401, 403, 409, 422)})
def post_scores(body: ScoresIn, response: Response, actor: ScoreWriter, session: SessionDep,
                settings: SettingsDep) -> ScoresOut:
    """Store customer satisfaction scores. A batch is all-or-nothing: any bad item refuses it
    with 422 (409 when every problem is a different score stored under the same key), and
    `errors` lists each item by its index."""
    items = [ScoreIn(i.customer_id, i.date, i.kind, i.score, i.source) for i in body.scores]
    result = ingest_scores(session, items, today=org_today(settings.org_timezone),
                           actor_id=actor.employee_id)
    if not result.ok:
        session.rollback()
        errors = [e.as_dict() for e in result.errors]
        bad = len({e.index for e in result.errors})
        if result.only_conflicts:
            raise Problem(409, "satisfaction-conflict", "Another score is stored",
                          f"{bad} of {len(items)} scores differ from the score stored under the "
                          "same customer, date, kind and source. Nothing was written.",
                          extra={"errors": errors})
        raise Problem(422, "satisfaction-invalid", "The scores are not valid",
                      f"{bad} of {len(items)} scores are not valid, so nothing was written (a "
                      "batch is all-or-nothing). Fix every item listed in `errors` (by its "
                      "0-based index) and send the batch again.", extra={"errors": errors})
    response.status_code = 201 if result.created else 200
    return ScoresOut(created=result.created, duplicates=result.duplicates)


def _reason(reason: str | None) -> str | None:
    if not reason:
        return None
    if reason not in Reason._value2member_map_:
        known = ", ".join(r.value for r in Reason)
        raise Problem(422, "unknown-reason", "Unknown reason",
                      f"reason={reason!r} is not a reassignment reason; use one of: {known}.")
    return reason


def build_report(session: Session, actor: Actor, settings: Settings, *, months: int,
                 team: int | None, reason: str | None, flagged_only: bool) -> OutcomeReport:
    return outcome_report(session, scope=Scope(session, actor).outcome_cases(), months=months,
                          timezone=settings.org_timezone, now=datetime.now(UTC),
                          team_id=team, reason=_reason(reason), flagged_only=flagged_only)


Months = Annotated[int, Query(ge=1, le=MAX_MONTHS,
                              description="length of the before and after windows in months")]
Team = Annotated[int | None, Query(description="org unit id of the losing salesperson")]
ReasonQ = Annotated[str | None, Query(description="a reassignment reason code")]
FlaggedOnly = Annotated[bool, Query(description="only cases whose revenue fell by more than "
                                                "the policy's threshold")]


@router.get("/outcomes", responses=problem_responses(401, 403, 422))
def get_outcomes(actor: OutcomeReader, session: SessionDep, settings: SettingsDep,
                 months: Months = DEFAULT_MONTHS, team: Team = None, reason: ReasonQ = None,
                 flagged_only: FlaggedOnly = False,
                 limit: Annotated[int, Query(ge=1, le=500)] = 200,
                 offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
    """Before/after figures per case in scope and aggregated by team, by reason and overall.
    Money in fen, changes and rates in basis points; an after-window that has not ended is
    `complete: false` with the figures so far and never flagged. `limit`/`offset` page the
    cases (oldest transfer first); the aggregates always cover every case that matches."""
    body = report_json(build_report(session, actor, settings, months=months, team=team,
                                    reason=reason, flagged_only=flagged_only))
    body["total_cases"] = len(body["cases"])
    body["cases"] = body["cases"][offset:offset + limit]
    body["limit"], body["offset"] = limit, offset
    return body


@router.get("/outcomes.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}, **problem_responses(401, 403, 422)})
def get_outcomes_csv(actor: OutcomeReader, session: SessionDep, settings: SettingsDep,
                     months: Months = DEFAULT_MONTHS, team: Team = None, reason: ReasonQ = None,
                     flagged_only: FlaggedOnly = False) -> Response:
    """The cases of GET /outcomes, one row each (UTF-8 with BOM; text cells that a spreadsheet
    would run as a formula are prefixed with an apostrophe)."""
    report = build_report(session, actor, settings, months=months, team=team, reason=reason,
                          flagged_only=flagged_only)
    stamp = report.now.strftime("%Y%m%d")
    return Response(report_csv(report), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition":
                             f'attachment; filename="baton-outcomes-{months}m-{stamp}.csv"',
                             "Cache-Control": "no-store"})
