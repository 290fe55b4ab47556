"""The start page after login: what this person can do here, and their latest requests."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import SessionDep
from api.security import Actor
from api.services import reassignments as service
from api.services.directory import employees_by_id
from api.services.scope import Scope
from domain.permissions import Action, permitted
from web.deps import HOME, page_permit
from web.render import render

router = APIRouter()

RECENT = 5


@router.get(HOME)
def home(request: Request, actor: Annotated[Actor, page_permit(Action.OWN_PROFILE)],
         session: SessionDep) -> Response:
    recent = None
    names = {}
    if permitted(actor.roles, Action.REQUEST_READ):
        recent = service.list_requests(session, Scope(session, actor),
                                       service.RequestFilters(), RECENT, 0)
        names = employees_by_id(session, {i for r in recent.items
                                          for i in (r.from_employee_id, r.to_employee_id)})
    return render(request, "home.html", {
        "recent": recent, "names": names,
        "can": {a.name: permitted(actor.roles, a) for a in Action},
    })
