"""Delegating one's approvals to a colleague for a date range (an approver's page): the
delegations given and received, a form to create one, and revoking one given.

The rules are models.delegation's, as in api/routes/delegations.py: a colleague who holds an
approver role and is still employed, not oneself, an end not before the start nor in the past,
at most MAX_DELEGATION_DAYS days, and a reason; days run by the office calendar
(settings.org_timezone). A refused field comes back next to that field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from api.deps import SessionFactoryDep, SettingsDep
from api.problems import Problem
from api.security import Actor
from api.services.directory import employees_by_id
from api.services.scope import org_today
from domain.permissions import APPROVERS, Action
from models.db import SessionFactory
from models.delegation import (
    MAX_DELEGATION_DAYS,
    ApprovalDelegation,
    DelegationError,
    create_delegation,
    delegations_of,
    revoke_delegation,
)
from models.org import Employee, EmploymentStatus, UserAccount
from settings import Settings
from web.deps import page_permit
from web.i18n import N_
from web.render import render, t

router = APIRouter()

DELEGATIONS_PATH = "/app/delegations"
REASON_MAX = 500
NOTICES = {"created", "revoked"}

# models.delegation's refusals by code, in the reader's language
REFUSALS = {
    "self": N_("You cannot delegate to yourself."),
    "unknown": N_("Choose a colleague from the list."),
    "not-an-approver": N_("This colleague holds no approver role (manager, director, HR or "
                          "legal), so cannot decide for you."),
    "before-start": N_("The last day cannot be before the first day."),
    "in-the-past": N_("The delegation would end in the past."),
    "too-long": N_("A delegation lasts at most %(days)s days; for a longer absence ask HR to "
                   "hand your approvals to someone else."),
}


def approver_choices(session: Session, *, exclude: set[int]) -> list[Employee]:
    """Employed colleagues who hold an approver role (by job or account), by employee number:
    who may stand in for an approver, or take over an approval. One query."""
    rows = session.exec(
        select(Employee, UserAccount.roles)
        .outerjoin(UserAccount, col(UserAccount.employee_id) == Employee.id)
        .where(Employee.status == EmploymentStatus.EMPLOYED)
        .order_by(col(Employee.employee_no))).all()
    approver_roles = {r.value for r in APPROVERS}
    chosen: dict[int, Employee] = {}
    for employee, account_roles in rows:
        if employee.id is None or employee.id in exclude:
            continue
        roles = {employee.role, *(account_roles or [])}
        if roles & approver_roles:
            chosen[employee.id] = employee
    return list(chosen.values())


@dataclass
class DelegationForm:
    delegate_id: str = ""
    starts_on: str = ""
    ends_on: str = ""
    reason: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, form: FormData) -> DelegationForm:
        return cls(delegate_id=str(form.get("delegate_id") or "").strip(),
                   starts_on=str(form.get("starts_on") or "").strip(),
                   ends_on=str(form.get("ends_on") or "").strip(),
                   reason=str(form.get("reason") or "").strip())

    def values(self, request: Request) -> tuple[int, date, date, str] | None:
        """The typed fields, or None with self.errors filled in (what the API's body model
        refuses: a missing or malformed field, a blank or too long reason)."""
        delegate = int(self.delegate_id) if self.delegate_id.isdigit() else None
        if delegate is None:
            self.errors["delegate_id"] = t(request, "Choose a colleague from the list.")
        starts = _date(self.starts_on)
        if starts is None:
            self.errors["starts_on"] = t(request, "Enter the first day.")
        ends = _date(self.ends_on)
        if ends is None:
            self.errors["ends_on"] = t(request, "Enter the last day.")
        if not self.reason:
            self.errors["reason"] = t(request, "Give a reason, e.g. annual leave.")
        elif len(self.reason) > REASON_MAX:
            self.errors["reason"] = t(request, "The reason may be at most 500 characters.")
        if self.errors or delegate is None or starts is None or ends is None:
            return None
        return delegate, starts, ends, self.reason


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _context(sessions: SessionFactory, actor: Actor, today: date,
             form: DelegationForm) -> dict[str, Any]:
    with sessions() as session:
        rows = delegations_of(session, actor.employee_id)
        ids = {d.delegate_id for d in rows} | {d.delegator_id for d in rows}
        return {
            "given": [d for d in rows if d.delegator_id == actor.employee_id],
            "received": [d for d in rows if d.delegate_id == actor.employee_id],
            "names": employees_by_id(session, ids),
            "colleagues": approver_choices(session, exclude={actor.employee_id}),
            "today": today, "form": form, "max_days": MAX_DELEGATION_DAYS,
        }


def is_active(delegation: ApprovalDelegation, today: date) -> bool:
    return (delegation.revoked_at is None
            and delegation.starts_on <= today <= delegation.ends_on)


@router.get(DELEGATIONS_PATH)
def delegations(request: Request, actor: Annotated[Actor, page_permit(Action.OWN_DELEGATIONS)],
                sessions: SessionFactoryDep, settings: SettingsDep,
                notice: Annotated[str | None, Query(max_length=30)] = None) -> Response:
    today = org_today(settings.org_timezone)
    form = DelegationForm(starts_on=today.isoformat(), ends_on=today.isoformat())
    context = _context(sessions, actor, today, form)
    context.update(notice=notice if notice in NOTICES else None, is_active=is_active)
    return render(request, "delegations/list.html", context)


@router.post(DELEGATIONS_PATH)
async def create(request: Request, actor: Annotated[Actor, page_permit(Action.OWN_DELEGATIONS)],
                 sessions: SessionFactoryDep, settings: SettingsDep) -> Response:
    form = DelegationForm.parse(await request.form())
    # the database work in the thread pool: never block the event loop on SQLite's lock
    return await run_in_threadpool(_create, request, actor, sessions, settings, form)


def _create(request: Request, actor: Actor, sessions: SessionFactory, settings: Settings,
            form: DelegationForm) -> Response:
    today = org_today(settings.org_timezone)
    values = form.values(request)
    if values is not None:
        delegate, starts, ends, reason = values
        refused: DelegationError | None = None
        with sessions() as session:
            try:  # refused before anything is written
                create_delegation(session, delegator_id=actor.employee_id, delegate_id=delegate,
                                  starts_on=starts, ends_on=ends, reason=reason, today=today)
            except DelegationError as exc:  # (frozen: never let it leave a `with`)
                refused = exc
        if refused is None:
            return RedirectResponse(f"{DELEGATIONS_PATH}?notice=created", status_code=303)
        message = REFUSALS.get(refused.code)
        form.errors[refused.field] = (t(request, message, days=MAX_DELEGATION_DAYS)
                                      if message else refused.message)
    context = _context(sessions, actor, today, form)
    context.update(notice=None, is_active=is_active)
    return render(request, "delegations/list.html", context, status=422)


@router.post(DELEGATIONS_PATH + "/{delegation_id}/revoke")
def revoke(request: Request, delegation_id: int,
           actor: Annotated[Actor, page_permit(Action.OWN_DELEGATIONS)],
           sessions: SessionFactoryDep) -> Response:
    """End a delegation one gave, at once (like DELETE /api/v1/me/delegations/{id})."""
    with sessions() as session:
        delegation = session.get(ApprovalDelegation, delegation_id)
        if delegation is None or delegation.delegator_id != actor.employee_id:
            raise Problem(404, "delegation-not-found", "Delegation not found",
                          f"You gave no delegation {delegation_id}.")
        revoke_delegation(session, delegation, actor.employee_id)
    return RedirectResponse(f"{DELEGATIONS_PATH}?notice=revoked", status_code=303)

