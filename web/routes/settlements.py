"""Triggering the monthly commission settlement by hand (HR, finance), and the recent runs.

The run is api/routes/settlements.py's start_settlement, called as it is: a manual
CommissionSettlementWorkflow that recomputes the open month (the current one, in the
organisation's timezone) and finalises the earlier months whose grace period ended (or all
earlier months at once, without waiting for late orders). The workflow takes no period: the
page shows which months a run would touch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from temporalio.service import RPCError

from api.deps import OptionalTemporalClientDep, SessionDep, SessionFactoryDep, SettingsDep
from api.problems import Problem, temporal_unavailable_problem
from api.routes.settlements import SettlementStartIn, start_settlement
from api.security import Actor
from api.services.directory import employees_by_id
from domain.periods import period_of
from domain.permissions import Action
from models.commission import SettlementRun
from models.commission_engine import closed_through
from settings import Settings
from web.deps import page_permit
from web.render import render

router = APIRouter()

SETTLEMENTS_PATH = "/app/settlements"
RECENT_RUNS = 20


def _context(session: Session, settings: Settings, **more: object) -> dict[str, object]:
    runs = session.exec(select(SettlementRun).order_by(col(SettlementRun.id).desc())
                        .limit(RECENT_RUNS)).all()
    return {"runs": runs, "open_period": period_of(datetime.now(UTC), settings.org_timezone),
            "closed_through": closed_through(session),
            "names": employees_by_id(session, {r.requested_by for r in runs
                                               if r.requested_by is not None}),
            **more}


@router.get(SETTLEMENTS_PATH)
def settlements(request: Request, actor: Annotated[Actor, page_permit(Action.SETTLEMENT_RUN)],
                session: SessionDep, settings: SettingsDep,
                started: Annotated[str | None, Query(max_length=100)] = None) -> Response:
    return render(request, "hr/settlements.html",
                  _context(session, settings, started=started, problem=None))


@router.post(SETTLEMENTS_PATH)
async def run_settlement(request: Request,
                         actor: Annotated[Actor, page_permit(Action.SETTLEMENT_RUN)],
                         sessions: SessionFactoryDep, settings: SettingsDep,
                         client: OptionalTemporalClientDep) -> Response:
    form = await request.form()
    body = SettlementStartIn(finalize=form.get("finalize") == "on",
                             skip_grace=form.get("skip_grace") == "on")
    problem: Problem | None = None
    try:
        if client is None:
            raise temporal_unavailable_problem()
        try:
            started = await start_settlement(body, actor, client, settings)
        except RPCError as exc:
            raise temporal_unavailable_problem(
                f"The settlement could not be started: {exc.message}") from exc
    except Problem as refused:
        problem = refused
    else:
        return RedirectResponse(f"{SETTLEMENTS_PATH}?started={started.workflow_id}", 303)
    def refused_context() -> dict[str, object]:
        with sessions() as session:
            return _context(session, settings, started=None, problem=problem)

    context = await run_in_threadpool(refused_context)  # never block the loop on the DB
    return render(request, "hr/settlements.html", context, status=problem.status)
