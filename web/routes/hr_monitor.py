"""The HR dashboard's "stuck in Temporal" panel (issue 9): an htmx fragment loaded by the
dashboard, so the dashboard itself never waits for Temporal.

It runs the stuck monitor's visibility queries (api/services/monitor.py, the same as
GET /api/v1/monitor/stuck): cases overdue in their stage and workflows whose tasks keep
failing, each query shown as text with a link that opens the Temporal UI's list with it
pre-filled. When Temporal is down the panel says so and still offers the queries and links.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.deps import OptionalTemporalClientDep, SessionFactoryDep, SettingsDep
from api.problems import Problem
from api.security import Actor
from api.services import monitor
from domain.permissions import Action
from models.db import SessionFactory
from web.deps import page_permit
from web.render import render

router = APIRouter()

STUCK_PANEL_PATH = "/app/hr/stuck"
PANEL_LIMIT = 20  # the API (limit up to 500) and the Temporal UI list the rest


def _details(sessions: SessionFactory, actor: Actor,
             overdue: list[monitor.OverdueCase]) -> dict[int, monitor.RequestDetail]:
    pending = {c.request_id: c.pending_approver_ids for c in overdue
               if c.request_id is not None}
    with sessions() as session:
        return monitor.request_details(session, actor, pending)


@router.get(STUCK_PANEL_PATH)
async def stuck_panel(request: Request,
                      actor: Annotated[Actor, page_permit(Action.MONITOR_STUCK)],
                      sessions: SessionFactoryDep, settings: SettingsDep,
                      client: OptionalTemporalClientDep) -> Response:
    now = datetime.now(UTC)
    overdue_query, failing_query = monitor.overdue_query(now), monitor.failing_query()
    context: dict[str, Any] = {
        "overdue_query": overdue_query, "failing_query": failing_query,
        "overdue_link": monitor.ui_list_link(settings, overdue_query),
        "failing_link": monitor.ui_list_link(settings, failing_query),
        "grace": monitor.DEFAULT_TIMER_GRACE, "overdue": None, "failing": None,
        "details": {}, "unavailable": False, "refused": None,
    }
    if client is None:
        context["unavailable"] = True
        return render(request, "hr/_stuck.html", context)
    try:
        overdue, failing = await monitor.find_stuck(client, settings, now=now,
                                                    limit=PANEL_LIMIT)
    except Problem as problem:
        if problem.status == 503:
            context["unavailable"] = True
        else:  # e.g. the search attributes are not registered: say what Temporal said
            context["refused"] = problem.detail
        return render(request, "hr/_stuck.html", context)
    context.update(overdue=overdue, failing=failing,
                   details=await run_in_threadpool(_details, sessions, actor, overdue.items))
    return render(request, "hr/_stuck.html", context)
