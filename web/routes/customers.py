"""The customers in the caller's scope (a manager: their team's), with their owner and value;
a manager selects some of one salesperson's customers here to start a request."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlmodel import Session

from api.deps import ReadSessionDep
from api.security import Actor
from api.services.directory import (
    customer_figures,
    customer_rows,
    employee_rows,
    employees_by_id,
    open_requests,
)
from api.services.scope import Scope
from domain.permissions import Action, permitted
from domain.stages import Role
from models.org import EmploymentStatus
from web.deps import page_permit
from web.i18n import N_
from web.render import render

router = APIRouter()

PAGE_SIZE = 100
CUSTOMERS_PATH = "/app/customers"


def list_title(actor: Actor) -> str:
    if actor.has_any(Role.MANAGER, Role.DIRECTOR):
        return N_("My team's customers")
    if actor.has_any(Role.HR, Role.LEGAL, Role.FINANCE):
        return N_("Customers")
    return N_("My customers")


def customers_context(session: Session, actor: Actor, *, q: str | None = None,
                      owner: int | None = None, page: int = 1,
                      selected: list[int] | None = None,
                      error: str | None = None) -> dict[str, Any]:
    """Everything customers.html shows; the new-request form re-renders it with an error."""
    scope = Scope(session, actor)
    offset = (max(page, 1) - 1) * PAGE_SIZE
    rows, total = customer_rows(session, scope, q=q or None, owner_employee_id=owner,
                                limit=PAGE_SIZE, offset=offset)
    ids = [c.id for c, _owner in rows if c.id is not None]
    figures = customer_figures(session, ids, datetime.now(UTC))
    in_request = open_requests(session, ids)
    owners = employees_by_id(session, {o for _c, o in rows if o is not None})
    salespeople, _n = employee_rows(session, scope, role=Role.SALES.value,
                                    status=EmploymentStatus.EMPLOYED, limit=500)
    return {
        "title": list_title(actor),
        "rows": [{"customer": c, "owner": owners.get(o) if o is not None else None,
                  "owner_id": o, "figures": figures.get(c.id or 0),
                  "open_request": in_request.get(c.id or 0)} for c, o in rows],
        "total": total, "page": max(page, 1), "pages": max(1, -(-total // PAGE_SIZE)),
        "q": q or "", "owner": owner, "salespeople": salespeople,
        "can_submit": permitted(actor.roles, Action.REQUEST_SUBMIT),
        "selected": set(selected or []), "error": error,
        # the valuation columns only once a valuation run has valued some customer
        "valued": any(f.tier is not None for f in figures.values()),
    }


@router.get(CUSTOMERS_PATH)
def customers(
    request: Request, actor: Annotated[Actor, page_permit(Action.CUSTOMERS_READ)],
    session: ReadSessionDep,
    q: Annotated[str | None, Query(max_length=100)] = None,
    owner: Annotated[str | None, Query(max_length=20)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    owner_id = int(owner) if owner and owner.isdigit() else None
    return render(request, "customers.html",
                  customers_context(session, actor, q=q, owner=owner_id, page=page))
