"""Commission statements as pages: the months (newest first) and one month's statement, with
its lines per customer and per rule, and the protection income called out.

Scope and audit are the API's (api/routes/statements.py): a salesperson sees their own, a
manager their team's, HR and finance everyone; the list is a STATEMENTS_LISTED event and a
statement a STATEMENT_READ one, written by the same functions; the CSV is the API's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.deps import SessionDep, SessionFactoryDep
from api.routes.statements import get_statement_csv, read_list, read_statement
from api.security import Actor
from api.services.directory import employees_by_id
from api.services.scope import Scope
from domain.permissions import Action
from models.statements import PERIOD_PATTERN
from web.deps import page_permit
from web.me_labels import MeLabels
from web.render import current_locale, render

router = APIRouter()

STATEMENTS_PATH = "/app/statements"
PAGE_SIZE = 24
Period = Annotated[str, Path(pattern=PERIOD_PATTERN)]


@router.get(STATEMENTS_PATH)
def statements(
    request: Request, actor: Annotated[Actor, page_permit(Action.STATEMENTS_READ)],
    session: SessionDep,
    show: Annotated[str | None, Query(pattern="^(mine|all)$")] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    allowed = Scope(session, actor).statement_employees()  # None: everyone
    others = allowed is None or allowed != {actor.employee_id}  # a team, or everyone
    show = show if others and show else "mine"
    items, total = read_list(session, actor,
                             employee_id=actor.employee_id if show == "mine" else None,
                             limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    return render(request, "statements/list.html", {
        "items": items, "total": total, "show": show, "others": others, "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "names": employees_by_id(session, {h.employee_id for h in items}),
    })


@router.get(STATEMENTS_PATH + "/{employee_id}/{period}.csv")
def statement_csv(employee_id: int, period: Period,
                  actor: Annotated[Actor, page_permit(Action.STATEMENTS_READ)],
                  sessions: SessionFactoryDep) -> Response:
    """GET /api/v1/statements/{employee_id}/{period}.csv itself."""
    return get_statement_csv(employee_id, period, actor, sessions)


@router.get(STATEMENTS_PATH + "/{employee_id}/{period}")
async def statement(request: Request, employee_id: int, period: Period,
                    actor: Annotated[Actor, page_permit(Action.STATEMENTS_READ)],
                    sessions: SessionFactoryDep) -> Response:
    detail = await run_in_threadpool(read_statement, sessions, actor, employee_id, period,
                                     "html")
    labels = MeLabels(current_locale(request))
    protection = [x for x in detail.by_rule if labels.is_protection(x.rule)]
    protected_customers = {x.customer_id for x in detail.lines if labels.is_protection(x.rule)}
    return render(request, "statements/detail.html", {
        "d": detail, "h": detail.header, "me_labels": labels, "own": employee_id ==
        actor.employee_id, "protection_rules": protection,
        "protected_customers": protected_customers,
    })
