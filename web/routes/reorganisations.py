"""HR's bulk reorganisation pages: upload a CSV, read the dry run, start it, follow its progress
bar (an htmx fragment that polls while it runs), cancel it.

Everything goes through api.services.reorganisations, as the API and the CLI do. The checked
file travels back in the start form (a hidden field), so what starts is exactly what was checked:
the start plans it again and refuses it if anything changed meanwhile.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.deps import OptionalTemporalClientDep, SessionFactoryDep, SettingsDep
from api.problems import Problem
from api.security import Actor
from api.services import reorganisations as service
from api.services.directory import employees_by_id
from domain.bulk import BulkStatus
from domain.permissions import Action
from domain.stages import Reason
from models.db import SessionFactory
from web.deps import page_permit
from web.i18n import N_, gettext
from web.render import render

router = APIRouter()

PATH = "/app/reorganisations"
POLL_SECONDS = 2
MAX_ROW_ERRORS_SHOWN = 300

# row problems of a reorganisation file (domain/bulk.py, plus the policy's own codes)
ROW_PROBLEMS = {
    "UNKNOWN_CUSTOMER": N_("No such customer."),
    "UNKNOWN_EMPLOYEE": N_("No such employee."),
    "DUPLICATE_ROW": N_("This customer is already moved in an earlier row."),
    "CUSTOMER_INACTIVE": N_("The customer has no current owner."),
    "EXPECTED_OWNER_MISMATCH": N_("The customer's owner is not the one the file expects."),
    "SAME_EMPLOYEE": N_("The new owner is the current owner."),
    "RECEIVER_NOT_ACTIVE": N_("The new owner has left the company."),
    "RECEIVER_NOT_SALES": N_("The new owner is not a salesperson."),
    "OWNER_LEFT": N_("The current owner has left: use the reason “Salesperson is leaving”."),
    "NO_DEPARTURE": N_("This reason needs a leave date on the current owner."),
    "IN_PROTECTION": N_("The customer is inside a protection period."),
    "OPEN_REQUEST": N_("The customer is already in an open request."),
    "COOLING_OFF": N_("The customer was reassigned too often recently (cooling-off)."),
    "BOTH_ID_AND_CODE": N_("Fill either the id or the code, not both."),
    "NOT_AN_ID": N_("An id must be a whole number."),
    "MISSING_VALUE": N_("A required cell is empty."),
    "TOO_MANY_CELLS": N_("The row has more cells than the header."),
    "NOTE_TOO_LONG": N_("The note is too long."),
}

STATUS_LABELS = {
    BulkStatus.RUNNING: N_("running"),
    BulkStatus.CANCELLING: N_("cancelling"),
    BulkStatus.COMPLETED: N_("every group started"),
    BulkStatus.CANCELLED: N_("cancelled"),
}


def _helpers(request: Request) -> dict[str, Any]:
    def row_problem(locale: str, code: str) -> str:
        return gettext(locale, ROW_PROBLEMS[code]) if code in ROW_PROBLEMS else code

    def status_label(locale: str, status: str) -> str:
        label = STATUS_LABELS.get(BulkStatus(status))
        return gettext(locale, label) if label else status

    return {"row_problem": row_problem, "status_label": status_label,
            "reasons": list(Reason), "poll_seconds": POLL_SECONDS}


def _page_context(sessions: SessionFactory, **more: Any) -> dict[str, Any]:
    with sessions() as session:
        recent = service.list_recent(session)
        people: set[int] = {r.created_by_id for r in recent}
        plan = more.get("plan")
        if plan is not None:
            people |= {o.employee_id for o in plan.totals.owners}
        names = employees_by_id(session, people)
    return {"recent": recent, "names": names, **more}


@router.get(PATH)
def reorganisations_page(request: Request,
                         actor: Annotated[Actor, page_permit(Action.REORGANISATION_READ)],
                         sessions: SessionFactoryDep) -> Response:
    return render(request, "hr/reorganisations.html",
                  {**_helpers(request), **_page_context(sessions, plan=None, problem=None)})


async def _upload_from_form(request: Request) -> service.Upload:
    form = await request.form(max_files=1, max_fields=10)
    try:
        reason = Reason(str(form.get("reason") or ""))
    except ValueError as exc:
        raise Problem(422, "validation-failed", "Reason missing",
                      "Choose the reorganisation's reason.") from exc
    note = str(form.get("note") or "").strip()[:2000] or None
    file = form.get("file")
    name: str | None
    if isinstance(file, UploadFile) and file.filename:
        text = service.decode_upload(await file.read(service.MAX_FILE_BYTES + 1))
        name = file.filename[:200]
    else:  # the start form carries the checked file back
        text = str(form.get("csv_text") or "")
        name = str(form.get("file_name") or "")[:200] or None
    if not text.strip():
        raise Problem(422, "file-invalid", "No file", "Choose the CSV file to check.")
    return service.Upload(reason=reason, note=note, csv_text=text, file_name=name)


@router.post(f"{PATH}/check")
async def check(request: Request,
                actor: Annotated[Actor, page_permit(Action.REORGANISATION_RUN)],
                sessions: SessionFactoryDep) -> Response:
    """The dry run, drawn: totals, each losing salesperson's impact, every bad row."""
    plan = problem = upload = None
    try:
        upload = await _upload_from_form(request)
        plan = await run_in_threadpool(service.dry_run, sessions, upload)
    except Problem as refused:
        problem = refused
    context = await run_in_threadpool(lambda: _page_context(
        sessions, plan=plan, problem=problem, upload=upload, key=uuid.uuid4().hex,
        row_errors=plan.row_errors[:MAX_ROW_ERRORS_SHOWN] if plan else []))
    return render(request, "hr/reorganisations.html", {**_helpers(request), **context},
                  status=200 if problem is None else problem.status)


@router.post(f"{PATH}/start")
async def start(request: Request, actor: Annotated[Actor, page_permit(Action.REORGANISATION_RUN)],
                sessions: SessionFactoryDep, settings: SettingsDep,
                client: OptionalTemporalClientDep) -> Response:
    form = await request.form(max_files=1, max_fields=10)
    key = str(form.get("key") or "")[:200] or uuid.uuid4().hex
    try:
        upload = await _upload_from_form(request)
        created = await run_in_threadpool(service.create, sessions, actor, upload, key)
        await service.start(client, settings, created.reorganisation)
    except Problem as refused:
        problem = refused
        context = await run_in_threadpool(lambda: _page_context(
            sessions, plan=None, problem=problem))
        return render(request, "hr/reorganisations.html", {**_helpers(request), **context},
                      status=problem.status)
    return RedirectResponse(f"{PATH}/{created.reorganisation.id}", 303)


async def _progress_context(sessions: SessionFactory, client: Any, reorganisation_id: int
                            ) -> dict[str, Any]:
    out = await service.read(sessions, client, reorganisation_id)
    done = out.progress.started_groups + out.progress.failed_groups
    return {"r": out, "done_groups": done, "running": out.status in (
        BulkStatus.RUNNING, BulkStatus.CANCELLING)}


@router.get(PATH + "/{reorganisation_id}")
async def reorganisation_page(request: Request, reorganisation_id: int,
                              actor: Annotated[Actor, page_permit(Action.REORGANISATION_READ)],
                              sessions: SessionFactoryDep,
                              client: OptionalTemporalClientDep) -> Response:
    context = await _progress_context(sessions, client, reorganisation_id)
    names = await run_in_threadpool(lambda: _page_context(sessions)["names"])
    return render(request, "hr/reorganisation.html",
                  {**_helpers(request), **context, "names": names, "problem": None})


@router.get(PATH + "/{reorganisation_id}/progress")
async def progress_fragment(request: Request, reorganisation_id: int,
                            actor: Annotated[Actor, page_permit(Action.REORGANISATION_READ)],
                            sessions: SessionFactoryDep,
                            client: OptionalTemporalClientDep) -> Response:
    """The progress bar alone; htmx asks again every few seconds while the run goes on."""
    context = await _progress_context(sessions, client, reorganisation_id)
    return render(request, "hr/_reorganisation_progress.html", {**_helpers(request), **context})


@router.post(PATH + "/{reorganisation_id}/cancel")
async def cancel(request: Request, reorganisation_id: int,
                 actor: Annotated[Actor, page_permit(Action.REORGANISATION_RUN)],
                 sessions: SessionFactoryDep, settings: SettingsDep,
                 client: OptionalTemporalClientDep) -> Response:
    form = await request.form()
    reason = str(form.get("reason") or "").strip()[:2000]
    try:
        if not reason:
            raise Problem(422, "validation-failed", "Reason missing",
                          "Say why the reorganisation is cancelled.")
        await service.cancel(sessions, client, settings, actor, reorganisation_id, reason)
    except Problem as refused:
        context = await _progress_context(sessions, client, reorganisation_id)
        names = await run_in_threadpool(lambda: _page_context(sessions)["names"])
        return render(request, "hr/reorganisation.html",
                      {**_helpers(request), **context, "names": names, "problem": refused},
                      status=refused.status)
    return RedirectResponse(f"{PATH}/{reorganisation_id}", 303)
