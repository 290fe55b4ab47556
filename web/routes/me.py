"""The salesperson's journey: "My cases" (the requests that would move their customers away,
the ones that bring them customers, and published rules to acknowledge), and one case's page:
where it stands, what they can do now (read the report, appeal during the communication
window, sign or decline), with its deadline as a countdown.

A case page is the affected salesperson's own: anyone else (the receiver, their manager, a
colleague) gets 404, as for a request that does not exist; they follow the request on
/app/requests/{id}. Actions go through api.services.actions.act, like the API's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from api.deps import OptionalTemporalClientDep, SessionDep, SessionFactoryDep, SettingsDep
from api.problems import Problem
from api.security import Actor
from api.services import reassignments as service
from api.services.actions import act
from api.services.directory import employees_by_id
from api.services.scope import Scope, request_not_found
from domain.permissions import Action, permitted
from domain.policy import Terms
from domain.stages import Stage
from domain.workflow_dto import ReasonedActionInput
from models.customer import Customer
from models.db import SessionFactory
from models.policy import PolicyVersion
from models.reassignment import ReassignmentRequest, RequestDocument, SignatureRecord
from web.deps import page_permit
from web.errors import is_htmx
from web.render import render, t
from web.routes.policies_ack import pending_policies

router = APIRouter()

ME_PATH = "/app/me"
CASES_PATH = ME_PATH + "/requests"
POLL_SECONDS = 5
LIST_SIZE = 50
SIGNABLE = frozenset({Stage.COMMUNICATION, Stage.AWAITING_SIGNATURE})
NOTICES = {"appealed", "signed", "declined"}
REASON_LIMIT = 2000


def my_request(session: Session, actor: Actor, request_id: int) -> ReassignmentRequest:
    """The request if the caller is its affected salesperson; 404 otherwise (out of scope,
    or in scope as the receiver, requester or manager: not theirs to sign or appeal)."""
    request = Scope(session, actor).request(request_id)
    if request.from_employee_id != actor.employee_id:
        raise request_not_found(request_id)
    return request


def _signatures(session: Session, ids: list[int]) -> dict[int, SignatureRecord]:
    if not ids:
        return {}
    rows = session.exec(select(SignatureRecord).where(
        col(SignatureRecord.request_id).in_(ids))).all()
    return {s.request_id: s for s in rows}


def _cases(session: Session, actor: Actor) -> dict[str, Any]:
    scope = Scope(session, actor)
    leaving = service.list_requests(session, scope, service.RequestFilters(
        from_employee_id=actor.employee_id), LIST_SIZE, 0)
    coming = service.list_requests(session, scope, service.RequestFilters(
        to_employee_id=actor.employee_id), LIST_SIZE, 0)
    names = employees_by_id(session, {i for r in [*leaving.items, *coming.items]
                                      for i in (r.from_employee_id, r.to_employee_id)})
    signatures = _signatures(session, [r.id for r in leaving.items])
    open_cases = [r for r in leaving.items if not r.stage.is_terminal]
    return {"leaving": leaving.items, "coming": coming.items, "names": names,
            "signatures": signatures, "open_cases": open_cases,
            "to_act": [r for r in open_cases
                       if r.stage in SIGNABLE and r.id not in signatures]}


@router.get(ME_PATH)
def my_cases(request: Request, actor: Annotated[Actor, page_permit(Action.REQUEST_SIGN)],
             session: SessionDep) -> Response:
    context = _cases(session, actor)
    context["pending_policies"] = pending_policies(session, actor.employee_id)
    context["can_statements"] = permitted(actor.roles, Action.STATEMENTS_READ)
    return render(request, "me/cases.html", context)


@router.get(ME_PATH + "/summary")
def summary(request: Request, actor: Annotated[Actor, page_permit(Action.REQUEST_SIGN)],
            session: SessionDep) -> Response:
    """For the start page (htmx): rules to acknowledge and cases waiting for a decision."""
    context = _cases(session, actor)
    context["pending_policies"] = pending_policies(session, actor.employee_id)
    return render(request, "me/_summary.html", context)


# --- one case ------------------------------------------------------------------------------


@dataclass
class Case:
    r: ReassignmentRequest
    names: dict[int, Any]
    customers: list[Customer]
    terms: Terms | None
    policy: PolicyVersion | None
    record: service.DetailRecord
    report_version: int | None
    agreement_version: int | None

    @property
    def stage(self) -> Stage:
        return Stage(self.r.stage)

    @property
    def signed(self) -> bool:
        return self.record.signature is not None and self.record.signature.decision == "SIGNED"

    @property
    def decided(self) -> bool:
        return self.record.signature is not None

    @property
    def may_appeal(self) -> bool:
        return self.stage == Stage.COMMUNICATION and not self.decided

    @property
    def may_sign(self) -> bool:
        return self.stage in SIGNABLE and not self.decided and self.agreement_version is not None

    @property
    def open_appeal(self) -> Any:
        return next((a for a in self.record.appeals if a.status == "OPEN"), None)


def _latest_version(session: Session, request_id: int, kind: str) -> int | None:
    """The newest stored version number of a document (no content is read here)."""
    return session.exec(select(RequestDocument.version).where(
        RequestDocument.request_id == request_id, RequestDocument.kind == kind)
        .order_by(col(RequestDocument.version).desc())).first()


def load_case(session: Session, actor: Actor, request_id: int) -> Case:
    r = my_request(session, actor, request_id)
    record = service.detail_record(Scope(session, actor), request_id)
    ids = {r.requester_id, r.from_employee_id, r.to_employee_id}
    ids.update(a.resolved_by_id or 0 for a in record.appeals)
    customers = list(session.exec(select(Customer).where(
        col(Customer.id).in_(r.customer_ids)).order_by(col(Customer.code))).all())
    try:
        terms = Terms.model_validate(r.terms) if r.terms else None
    except ValidationError:
        terms = None
    return Case(r=r, names=employees_by_id(session, ids), customers=customers, terms=terms,
                policy=session.get(PolicyVersion, r.policy_version_id), record=record,
                report_version=_latest_version(session, request_id, "REPORT"),
                agreement_version=_latest_version(session, request_id, "AGREEMENT"))


def _load(sessions: SessionFactory, actor: Actor, request_id: int) -> Case:
    with sessions() as session:
        return load_case(session, actor, request_id)


def case_context(case: Case) -> dict[str, Any]:
    return {"case": case, "r": case.r, "names": case.names, "poll_seconds": POLL_SECONDS}


@router.get(CASES_PATH + "/{request_id}")
async def case_page(
    request: Request, request_id: int,
    actor: Annotated[Actor, page_permit(Action.REQUEST_READ)], sessions: SessionFactoryDep,
    notice: Annotated[str | None, Query(max_length=30)] = None,
) -> Response:
    case = await run_in_threadpool(_load, sessions, actor, request_id)
    context = case_context(case)
    context["notice"] = notice if notice in NOTICES else None
    return render(request, "me/case.html", context)


@router.get(CASES_PATH + "/{request_id}/state")
def case_state(
    request: Request, request_id: int,
    actor: Annotated[Actor, page_permit(Action.REQUEST_READ)], session: SessionDep,
    stage: Annotated[str | None, Query(max_length=30)] = None,
    decided: Annotated[int | None, Query(ge=0, le=1)] = None,
) -> Response:
    """Polled by the case page: 204, with HX-Refresh when the stage or decision changed
    since the page was drawn (so its actions always match the stage)."""
    r = my_request(session, actor, request_id)
    now_decided = session.exec(select(SignatureRecord.id).where(
        SignatureRecord.request_id == request_id)).first() is not None
    changed = stage != r.stage.value or (decided is not None and bool(decided) != now_decided)
    headers = {"HX-Refresh": "true"} if changed and is_htmx(request) else {}
    return Response(status_code=204, headers=headers)


def reason_error(request: Request, reason: str) -> str | None:
    if not reason:
        return t(request, "Give a reason: HR reads it.")
    if len(reason) > REASON_LIMIT:
        return t(request, "The reason may be at most 2,000 characters.")
    return None


@router.post(CASES_PATH + "/{request_id}/appeal")
async def appeal(request: Request, request_id: int,
                 actor: Annotated[Actor, page_permit(Action.REQUEST_APPEAL)],
                 sessions: SessionFactoryDep, settings: SettingsDep,
                 client: OptionalTemporalClientDep) -> Response:
    """Appeal during the communication window: the same Update as POST .../appeal. A
    refusal (the window closed meanwhile, say) shows what happened on the fresh page."""
    form = await request.form()
    reason = str(form.get("reason") or "").strip()
    await run_in_threadpool(_load, sessions, actor, request_id)  # 404 unless theirs
    problem: Problem | None = None
    error = reason_error(request, reason)
    if error is None:
        try:
            await act(request_id, actor, sessions, settings, client, "appeal",
                      lambda who: ReasonedActionInput(**who, reason=reason))
        except Problem as refused:
            if refused.status == 404:
                raise
            problem = refused
        else:
            return RedirectResponse(f"{CASES_PATH}/{request_id}?notice=appealed", 303)
    case = await run_in_threadpool(_load, sessions, actor, request_id)
    context = case_context(case)
    context.update(action_problem=problem, appeal_error=error, appeal_reason=reason)
    return render(request, "me/case.html", context,
                  status=problem.status if problem is not None else 422)
