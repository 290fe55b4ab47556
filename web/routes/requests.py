"""The manager's journey: new request (form, live preview, submit), the request page with its
timeline, withdraw, and the list of requests.

Everything goes through the API's services (api/services/): the same scope, the same checks,
the same submit and the same workflow calls; this module only reads forms and renders pages.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from api.deps import OptionalTemporalClientDep, SessionDep, SessionFactoryDep, SettingsDep
from api.problems import FieldError, Problem
from api.schemas import SubmitIn
from api.security import Actor
from api.services import reassignments as service
from api.services.actions import act
from api.services.directory import (
    customer_figures,
    customer_rows,
    employee_rows,
    employees_by_id,
)
from api.services.scope import Scope
from api.services.workflow_calls import live_state
from domain.impact import Assessment
from domain.permissions import Action, permitted
from domain.policy import Terms
from domain.stages import Reason, Role, Stage
from domain.workflow_dto import ReasonedActionInput, ReassignmentState
from models.db import SessionFactory
from models.org import Employee, EmploymentStatus
from models.policy import PolicyVersion
from web import charts
from web.deps import page_permit
from web.errors import is_htmx
from web.labels import Labels
from web.render import current_locale, render, t
from web.routes.customers import customers_context
from web.timeline import Timeline, build_timeline

router = APIRouter()

REQUESTS_PATH = "/app/requests"
PAGE_SIZE = 50
POLL_SECONDS = 3
NOTICES = {"submitted", "already-submitted", "start-failed", "withdrawn", "started"}


# --- the new-request form --------------------------------------------------------------------


@dataclass
class RequestForm:
    """The new-request form's fields as typed (strings), and what is wrong with them."""

    customer_ids: list[int] = field(default_factory=list)
    from_employee_id: int | None = None
    to_employee_id: int | None = None
    reason: str = ""
    note: str = ""
    idempotency_key: str = ""
    errors: dict[str, str] = field(default_factory=dict)  # field -> translated message

    @classmethod
    def parse(cls, form: FormData) -> RequestForm:
        return cls(
            customer_ids=[int(v) for v in form.getlist("customer_ids")
                          if isinstance(v, str) and v.isdigit()],
            from_employee_id=_int(form.get("from_employee_id")),
            to_employee_id=_int(form.get("to_employee_id")),
            reason=str(form.get("reason") or ""),
            note=str(form.get("note") or "").strip(),
            idempotency_key=str(form.get("idempotency_key") or "")[:200],
        )

    def body(self, request: Request) -> SubmitIn | None:
        """The API's SubmitIn, or None with self.errors filled in."""
        if self.to_employee_id is None:
            self.errors["to_employee_id"] = t(request, "Choose the receiving salesperson.")
        if self.reason not in Reason._value2member_map_:
            self.errors["reason"] = t(request, "Choose a reason.")
        if not self.customer_ids or self.from_employee_id is None:
            self.errors["customers"] = t(request, "Select at least one customer.")
        if len(self.note) > 2000:
            self.errors["note"] = t(request, "The note may be at most 2,000 characters.")
        if self.errors:
            return None
        try:
            return SubmitIn(from_employee_id=self.from_employee_id,
                            to_employee_id=self.to_employee_id,
                            customer_ids=self.customer_ids, reason=Reason(self.reason),
                            note=self.note or None)
        except ValidationError:
            self.errors["customers"] = t(request, "Select between 1 and 200 customers.")
            return None


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() else None


FIELD_OF = {"to_employee_id": "to_employee_id", "reason": "reason", "customer_ids": "customers",
            "from_employee_id": "customers", "note": "note"}
_CUSTOMER_IN_MESSAGE = re.compile(r"customer (\d+)")


def problem_errors(request: Request, problem: Problem, customers: dict[int, str]) -> dict[str, str]:
    """A refused submit or preview as messages next to the form's fields."""
    labels = Labels(current_locale(request))
    errors: dict[str, list[str]] = {}
    for error in problem.errors or []:
        assert isinstance(error, FieldError)
        message = labels.violation(error.code)
        if message == error.code:  # not a policy code we know: the API's own words
            message = error.message
        found = _CUSTOMER_IN_MESSAGE.search(error.message)
        if found and int(found.group(1)) in customers:
            message = f"{message} ({customers[int(found.group(1))]})"
        errors.setdefault(FIELD_OF.get(error.field or "", "form"), []).append(message)
    if not errors:
        errors["form"] = [labels.problem(problem.slug, problem.detail)]
    return {k: " ".join(dict.fromkeys(v)) for k, v in errors.items()}


class SelectionError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def new_request_context(request: Request, session: Session, actor: Actor,
                        form: RequestForm) -> dict[str, Any]:
    """The form's context: the selected customers (all of one salesperson, in scope), the
    salespeople who may receive them, the reasons the policy allows."""
    scope = Scope(session, actor)
    ids = list(dict.fromkeys(form.customer_ids))
    if not ids:
        raise SelectionError(t(request, "Select at least one customer."))
    rows, _total = customer_rows(session, scope, ids=ids, limit=len(ids) + 1)
    if len(rows) != len(ids):
        raise SelectionError(t(request, "Some selected customers are not in your scope."))
    owners = {o for _c, o in rows}
    if len(owners) != 1 or None in owners:
        raise SelectionError(t(request, "Select customers of one salesperson: a request moves "
                                        "customers from one salesperson to another."))
    [from_id] = owners
    assert from_id is not None
    if not scope.may_submit_for(from_id):
        raise SelectionError(t(request, "These customers' salesperson is outside your team."))
    form.from_employee_id = from_id
    receivers, _n = employee_rows(session, scope, role=Role.SALES.value,
                                  status=EmploymentStatus.EMPLOYED, limit=500)
    policy = service.newest_published_policy(session)
    reasons = list(policy.parsed_rules().allowed_reasons) if policy else list(Reason)
    figures = customer_figures(session, ids, datetime.now(UTC))
    return {
        "form": form,
        "from_employee": session.get(Employee, from_id),
        "customers": [{"customer": c, "figures": figures.get(c.id or 0)} for c, _o in rows],
        "receivers": [e for e in receivers if e.id != from_id],
        "reasons": reasons,
        "policy": policy,
        "result": None,
    }


def _customer_labels(session: Session, ids: list[int]) -> dict[int, str]:
    from models.customer import Customer

    if not ids:
        return {}
    rows = session.exec(select(Customer).where(col(Customer.id).in_(ids))).all()
    return {c.id: f"{c.code} {c.name}" for c in rows if c.id is not None}


def _labels(sessions: SessionFactory, ids: list[int]) -> dict[int, str]:
    """For async routes, through run_in_threadpool: never wait on the database in the loop."""
    with sessions() as session:
        return _customer_labels(session, ids)


def _form_page(request: Request, sessions: SessionFactory, actor: Actor,
               form: RequestForm) -> Response:
    """The new-request form again, with the form's errors (422), or the customer list when
    the selection itself is wrong. Sync: run it in the thread pool from async routes."""
    with sessions() as session:
        try:
            context = new_request_context(request, session, actor, form)
        except SelectionError as error:
            return _render_selection_error(request, session, actor, form, error)
        return render(request, "requests/new.html", context, status=422)


def _render_selection_error(request: Request, session: Session, actor: Actor,
                            form: RequestForm, error: SelectionError) -> Response:
    context = customers_context(session, actor, selected=form.customer_ids, error=error.message)
    return render(request, "customers.html", context, status=422)


@router.get(f"{REQUESTS_PATH}/new")
def new_request(
    request: Request, actor: Annotated[Actor, page_permit(Action.REQUEST_SUBMIT)],
    session: SessionDep,
    customer: Annotated[list[str] | None, Query(max_length=20)] = None,
) -> Response:
    form = RequestForm(customer_ids=[int(c) for c in customer or [] if c.isdigit()],
                       idempotency_key=str(uuid.uuid4()))
    try:
        context = new_request_context(request, session, actor, form)
    except SelectionError as error:
        return _render_selection_error(request, session, actor, form, error)
    return render(request, "requests/new.html", context)


@router.post(f"{REQUESTS_PATH}/preview")
async def preview(request: Request, actor: Annotated[Actor, page_permit(Action.REQUEST_SUBMIT)],
                  sessions: SessionFactoryDep) -> Response:
    """The live preview (an htmx fragment): value, income impact, compensation options."""
    form = RequestForm.parse(await request.form())
    context: dict[str, Any] = {"form": form, "result": None}
    if form.to_employee_id is None or not form.reason:
        # not chosen yet: no errors, just the invitation to choose
        return render(request, "requests/_preview.html", context)
    body = form.body(request)
    if body is not None:
        try:
            policy_id, terms, assessment = await run_in_threadpool(
                service.preview_request, sessions, actor, body)
        except Problem as problem:
            if problem.status not in (403, 409, 422):
                raise
            names = await run_in_threadpool(_labels, sessions, form.customer_ids)
            form.errors = problem_errors(request, problem, names)
        else:
            names = await run_in_threadpool(_labels, sessions, form.customer_ids)
            context["result"] = {"terms": terms, "assessment": assessment,
                                 "charts": charts.assessment_charts(assessment, terms),
                                 "customer_names": names}
    return render(request, "requests/_preview.html", context)


@router.post(REQUESTS_PATH)
async def submit(request: Request, actor: Annotated[Actor, page_permit(Action.REQUEST_SUBMIT)],
                 sessions: SessionFactoryDep, settings: SettingsDep,
                 client: OptionalTemporalClientDep) -> Response:
    """Submit through service.submit_request with the form's idempotency key, then start the
    workflow like POST /api/v1/reassignments; Temporal down: the saved request, with a note."""
    form = RequestForm.parse(await request.form())
    if not form.idempotency_key:
        form.idempotency_key = str(uuid.uuid4())
    body = form.body(request)
    submission = None
    if body is not None:
        try:
            submission = await run_in_threadpool(service.submit_request, sessions, actor, body,
                                                 form.idempotency_key)
        except Problem as problem:
            if problem.status not in (403, 409, 422):
                raise
            existing = problem.extra.get("request_id")
            if problem.slug == "idempotency-key-reused" and existing:
                return RedirectResponse(
                    f"{REQUESTS_PATH}/{existing}?notice=already-submitted", 303)
            names = await run_in_threadpool(_labels, sessions, form.customer_ids)
            form.errors = problem_errors(request, problem, names)
    if submission is None:
        return await run_in_threadpool(_form_page, request, sessions, actor, form)
    notice = "submitted"
    try:
        await service.start_submitted(client, settings, submission)
    except Problem as problem:
        if problem.slug != "temporal-unavailable":
            raise
        notice = "start-failed"
    return RedirectResponse(f"{REQUESTS_PATH}/{submission.request.id}?notice={notice}", 303)


# --- the list --------------------------------------------------------------------------------


@router.get(REQUESTS_PATH)
def list_requests(
    request: Request, actor: Annotated[Actor, page_permit(Action.REQUEST_READ)],
    session: SessionDep,
    show: Annotated[str | None, Query(pattern="^(mine|all)$")] = None,
    stage: Annotated[str | None, Query(max_length=30)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    can_submit = permitted(actor.roles, Action.REQUEST_SUBMIT)
    show = show or ("mine" if can_submit else "all")
    stage_filter = Stage(stage) if stage in Stage._value2member_map_ else None
    filters = service.RequestFilters(
        stage=stage_filter, requester_id=actor.employee_id if show == "mine" else None)
    result = service.list_requests(session, Scope(session, actor), filters, PAGE_SIZE,
                                   (page - 1) * PAGE_SIZE)
    names = employees_by_id(session, {i for r in result.items
                                      for i in (r.from_employee_id, r.to_employee_id,
                                                r.requester_id)})
    return render(request, "requests/list.html", {
        "result": result, "names": names, "show": show, "stage": stage_filter,
        "stages": list(Stage), "can_submit": can_submit, "page": page,
        "pages": max(1, -(-result.total // PAGE_SIZE)),
    })


# --- one request -----------------------------------------------------------------------------


@dataclass
class DetailView:
    record: service.DetailRecord
    names: dict[int, Employee]
    customers: list[dict[str, Any]]
    policy: PolicyVersion | None


def _detail_view(sessions: SessionFactory, actor: Actor, request_id: int) -> DetailView:
    with sessions() as session:
        record = service.detail_record(Scope(session, actor), request_id)  # 404 out of scope
        r = record.request
        ids = {r.requester_id, r.from_employee_id, r.to_employee_id}
        for step in record.approval_steps:
            ids.update([step.approver_id, step.decided_by_id or 0, *step.escalated_to])
        ids.update(a.appellant_id for a in record.appeals)
        if record.signature:
            ids.add(record.signature.signer_id)
        labels = _customer_labels(session, r.customer_ids)
        values = {c["customer_id"]: c for c in r.assessment.get("customers", [])}
        customers = [{"id": cid, "label": labels.get(cid, f"#{cid}"),
                      "value": values.get(cid)} for cid in r.customer_ids]
        return DetailView(record=record, names=employees_by_id(session, ids),
                          customers=customers,
                          policy=session.get(PolicyVersion, r.policy_version_id))


async def _load(request_id: int, actor: Actor, sessions: SessionFactory,
                client: Any) -> tuple[DetailView, ReassignmentState | None, str | None,
                                      Timeline]:
    view = await run_in_threadpool(_detail_view, sessions, actor, request_id)
    live: ReassignmentState | None = None
    live_error: str | None = "unavailable"
    if client is not None and view.record.request.workflow_id:
        live, live_error = await live_state(client, view.record.request.workflow_id)
    if live is not None:
        missing = {i for lv in live.levels for i in (lv.approver_id, lv.decided_by or 0,
                                                      *lv.escalated_to)}
        missing |= {h.actor_id for h in live.history if h.actor_id}
        missing -= set(view.names)
        if missing:  # in the thread pool: never block the event loop on SQLite's lock
            def names() -> dict[int, Employee]:
                with sessions() as session:
                    return employees_by_id(session, missing)

            view.names.update(await run_in_threadpool(names))
    timeline = build_timeline(view.record, live, view.names, now=datetime.now(UTC))
    return view, live, live_error, timeline


def _may_withdraw(actor: Actor, view: DetailView, timeline: Timeline) -> bool:
    r = view.record.request
    return (permitted(actor.roles, Action.REQUEST_WITHDRAW)
            and r.requester_id == actor.employee_id and timeline.stage.before_effective
            and r.workflow_id is not None)


def _detail_context(actor: Actor, view: DetailView, live: ReassignmentState | None,
                    live_error: str | None, timeline: Timeline) -> dict[str, Any]:
    r = view.record.request
    assessment = terms = chart_data = None
    try:
        terms = Terms.model_validate(r.terms) if r.terms else None
        if r.assessment and terms is not None:
            assessment = Assessment.model_validate(r.assessment)
            chart_data = charts.assessment_charts(assessment, terms)
    except ValidationError:  # a record from an older shape: show the rest
        assessment = chart_data = None
    not_started = (timeline.stage == Stage.SUBMITTED and live is None)
    return {
        "r": r, "view": view, "names": view.names, "live": live, "live_error": live_error,
        "timeline": timeline, "assessment": assessment, "terms": terms,
        "charts_data": chart_data,
        "may_withdraw": _may_withdraw(actor, view, timeline),
        "not_started": not_started,
        "may_start": not_started and r.requester_id == actor.employee_id
        and permitted(actor.roles, Action.REQUEST_SUBMIT),
        "poll_seconds": POLL_SECONDS,
    }


@router.get(REQUESTS_PATH + "/{request_id}")
async def request_page(
    request: Request, request_id: int,
    actor: Annotated[Actor, page_permit(Action.REQUEST_READ)],
    sessions: SessionFactoryDep, client: OptionalTemporalClientDep,
    notice: Annotated[str | None, Query(max_length=30)] = None,
) -> Response:
    view, live, live_error, timeline = await _load(request_id, actor, sessions, client)
    context = _detail_context(actor, view, live, live_error, timeline)
    context["notice"] = notice if notice in NOTICES else None
    return render(request, "requests/detail.html", context)


@router.get(REQUESTS_PATH + "/{request_id}/timeline")
async def timeline_fragment(
    request: Request, request_id: int,
    actor: Annotated[Actor, page_permit(Action.REQUEST_READ)],
    sessions: SessionFactoryDep, client: OptionalTemporalClientDep,
    stage: Annotated[str | None, Query(max_length=30)] = None,
) -> Response:
    """The timeline alone, polled by htmx. When the stage moved on since the page was drawn,
    the whole page reloads (HX-Refresh), so its actions match the new stage."""
    view, live, live_error, timeline = await _load(request_id, actor, sessions, client)
    if is_htmx(request) and stage and stage != timeline.stage.value:
        return Response(status_code=204, headers={"HX-Refresh": "true"})
    context = _detail_context(actor, view, live, live_error, timeline)
    return render(request, "requests/_timeline.html", context)


@router.post(REQUESTS_PATH + "/{request_id}/withdraw")
async def withdraw(request: Request, request_id: int,
                   actor: Annotated[Actor, page_permit(Action.REQUEST_WITHDRAW)],
                   sessions: SessionFactoryDep, settings: SettingsDep,
                   client: OptionalTemporalClientDep) -> Response:
    """Withdraw through the same workflow Update as POST /api/v1/reassignments/{id}/withdraw.
    A refusal (e.g. the request moved on meanwhile) shows what happened on the fresh page."""
    form = await request.form()
    reason = str(form.get("reason") or "").strip()
    problem: Problem | None = None
    field_error = None
    if not reason:
        field_error = t(request, "Give a reason: the salesperson and the approvers see it.")
    elif len(reason) > 2000:
        field_error = t(request, "The reason may be at most 2,000 characters.")
    else:
        try:
            await act(request_id, actor, sessions, settings, client, "withdraw",
                      lambda who: ReasonedActionInput(**who, reason=reason))
        except Problem as refused:
            if refused.status == 404:
                raise
            problem = refused
        else:
            return RedirectResponse(f"{REQUESTS_PATH}/{request_id}?notice=withdrawn", 303)
    view, live, live_error, timeline = await _load(request_id, actor, sessions, client)
    context = _detail_context(actor, view, live, live_error, timeline)
    context.update(action_problem=problem, withdraw_error=field_error, withdraw_reason=reason)
    status = problem.status if problem is not None else 422
    return render(request, "requests/detail.html", context, status=status)


@router.post(REQUESTS_PATH + "/{request_id}/start")
async def start(request: Request, request_id: int,
                actor: Annotated[Actor, page_permit(Action.REQUEST_SUBMIT)],
                sessions: SessionFactoryDep, settings: SettingsDep,
                client: OptionalTemporalClientDep) -> Response:
    """Start a saved request whose workflow could not be started: the same submit again with
    the same idempotency key (the API's retry), which finds the request and starts it."""

    def repeat() -> service.Submission:
        with sessions() as session:
            row = Scope(session, actor).request(request_id)
            if row.requester_id != actor.employee_id:
                raise Problem(403, "action-wrong_actor", "Not yours to do",
                              "Only the requester can start their request.")
            body = SubmitIn(from_employee_id=row.from_employee_id,
                            to_employee_id=row.to_employee_id,
                            customer_ids=list(row.customer_ids), reason=Reason(row.reason),
                            note=row.note)
            key = row.idempotency_key
        return service.submit_request(sessions, actor, body, key)

    submission = await run_in_threadpool(repeat)
    notice = "started"
    try:
        await service.start_submitted(client, settings, submission)
    except Problem as problem:
        if problem.slug != "temporal-unavailable":
            raise
        notice = "start-failed"
    return RedirectResponse(f"{REQUESTS_PATH}/{request_id}?notice={notice}", 303)
