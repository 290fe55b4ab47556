"""Reassignment requests: submit, list, read, act on, audit."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

from api.deps import (
    OptionalTemporalClientDep,
    ReadSessionDep,
    SessionDep,
    SessionFactoryDep,
    SettingsDep,
    permit,
)
from api.problems import (
    FieldError,
    Problem,
    problem_responses,
)
from api.routes.signing import sign_agreement
from api.schemas import (
    ApproveIn,
    AuditList,
    PreviewOut,
    ReasonIn,
    ReassignApprovalIn,
    RequestDetail,
    RequestOut,
    RequestPage,
    ResolveAppealIn,
    SignIn,
    SubmitIn,
)
from api.security import Actor
from api.services import reassignments as service
from api.services.actions import act as _act
from api.services.scope import Scope
from api.services.workflow_calls import live_state
from domain.permissions import Action
from domain.stages import Stage
from domain.workflow_dto import (
    ActionInput,
    ReasonedActionInput,
    ReassignApprovalInput,
    ReassignmentState,
    ResolveAppealInput,
)
from models.db import SessionFactory, read_only_sessions
from models.org import Employee, EmploymentStatus

router = APIRouter(prefix="/reassignments", tags=["reassignments"])

MAX_KEY_LENGTH = 200  # the column's width
MAX_WAIT_SECONDS = 30  # a long-poll's longest wait: below common proxy read timeouts (60 s)
AGREEMENT_CHECK_S = 0.5
SHA256_PATTERN = r"^[0-9a-f]{64}$"

# the caller, once the permission table allows the action (domain/permissions.py)
RequestAppealActor = Annotated[Actor, permit(Action.REQUEST_APPEAL)]
RequestAuditReadActor = Annotated[Actor, permit(Action.REQUEST_AUDIT_READ)]
RequestCancelActor = Annotated[Actor, permit(Action.REQUEST_CANCEL)]
RequestDecideActor = Annotated[Actor, permit(Action.REQUEST_DECIDE)]
RequestReadActor = Annotated[Actor, permit(Action.REQUEST_READ)]
RequestReassignApprovalActor = Annotated[Actor, permit(Action.REQUEST_REASSIGN_APPROVAL)]
RequestResolveAppealActor = Annotated[Actor, permit(Action.REQUEST_RESOLVE_APPEAL)]
RequestSignActor = Annotated[Actor, permit(Action.REQUEST_SIGN)]
RequestSubmitActor = Annotated[Actor, permit(Action.REQUEST_SUBMIT)]
RequestWithdrawActor = Annotated[Actor, permit(Action.REQUEST_WITHDRAW)]


def _check_key(key: str | None) -> str:
    if key is None or not key.strip():
        raise Problem(400, "idempotency-key-missing", "Idempotency-Key header required",
                      "Send an `Idempotency-Key` header with a unique value (e.g. a UUID) per "
                      "new request. Reuse the same key when retrying the same request, so it "
                      "is never recorded twice.")
    if len(key) > MAX_KEY_LENGTH:
        raise Problem(400, "idempotency-key-invalid", "Idempotency-Key too long",
                      f"The Idempotency-Key may be at most {MAX_KEY_LENGTH} characters; a UUID "
                      "is a good choice.")
    return key.strip()


@router.post(
    "",
    response_model=RequestOut,
    status_code=201,
    responses={200: {"model": RequestOut, "description": "repeat of an earlier submit"},
               **problem_responses(400, 401, 403, 409, 422, 503)},
)
async def submit(
    body: SubmitIn,
    request: Request,
    response: Response,
    actor: RequestSubmitActor,
    sessions: SessionFactoryDep,
    settings: SettingsDep,
    client: OptionalTemporalClientDep,
    idempotency_key: Annotated[str | None, Header(
        alias="Idempotency-Key",
        description="REQUIRED. A unique value per new request; reuse it to retry safely.",
    )] = None,
) -> RequestOut:
    """Propose moving customers from A to B. Idempotent per (requester, Idempotency-Key)."""
    key = _check_key(idempotency_key)
    submission = await run_in_threadpool(service.submit_request, sessions, actor, body, key)
    out = submission.request
    await service.start_submitted(client, settings, submission)
    response.status_code = 201 if submission.created else 200
    response.headers["Location"] = str(request.url_for("get_request", request_id=out.id).path)
    return out


@router.post("/preview", response_model=PreviewOut, responses=problem_responses(401, 403, 409, 422))
def preview(body: SubmitIn, actor: RequestSubmitActor, sessions: SessionFactoryDep) -> PreviewOut:
    """The customers' value, the salesperson's projected loss and the compensation options,
    exactly as a submit would store them. Nothing is written."""
    policy_id, terms, assessment = service.preview_request(sessions, actor, body)
    return PreviewOut(policy_version_id=policy_id, terms=terms, assessment=assessment)


@router.get("", response_model=RequestPage, responses=problem_responses(401, 422))
def list_requests(
    actor: RequestReadActor,
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    stage: Stage | None = None,
    from_employee_id: int | None = None,
    to_employee_id: int | None = None,
    customer_id: int | None = None,
    requester_id: int | None = None,
) -> RequestPage:
    """Requests within the caller's scope, newest first."""
    filters = service.RequestFilters(stage=stage, from_employee_id=from_employee_id,
                                     to_employee_id=to_employee_id, customer_id=customer_id,
                                     requester_id=requester_id)
    return service.list_requests(session, Scope(session, actor), filters, limit, offset)


def _detail(sessions: SessionFactory, actor: Actor, request_id: int) -> service.DetailRecord:
    with read_only_sessions(sessions)() as session:
        return service.detail_record(Scope(session, actor), request_id)


def _agreement_progress(sessions: SessionFactory, request_id: int) -> tuple[Stage, str | None]:
    with read_only_sessions(sessions)() as session:
        return service.agreement_progress(session, request_id)


async def _wait_for_agreement(
    sessions: SessionFactory, client: Client, workflow_id: str, request_id: int,
    seen: str | None, wait_seconds: float,
) -> tuple[ReassignmentState | None, str | None] | None:
    """Returns once the workflow names an agreement other than `seen`, the request ends, or
    `wait_seconds` pass: with the workflow's state when the wait ended on reading it (the
    answer then needs no second query), else None. The check is two indexed reads every
    AGREEMENT_CHECK_S; the workflow is queried only once the database holds such an agreement
    (it records the version before the workflow's state names it)."""
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        stage, newest = await run_in_threadpool(_agreement_progress, sessions, request_id)
        if stage.is_terminal:
            return None
        if newest is not None and newest != seen:
            live, live_error = await live_state(client, workflow_id)
            if live is None or live.agreement_sha256 == newest:
                return live, live_error
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return None
        await asyncio.sleep(min(AGREEMENT_CHECK_S, remaining))


@router.get("/{request_id}", name="get_request", response_model=RequestDetail,
            responses=problem_responses(401, 404, 422))
async def get_request(
    request_id: int, actor: RequestReadActor, sessions: SessionFactoryDep,
    client: OptionalTemporalClientDep,
    wait_for: Annotated[Literal["agreement"] | None, Query(
        description="Long-poll: answer once the workflow names an agreement to sign (other "
                    "than `seen_agreement_sha256`), the request has ended, or `wait_seconds` "
                    "have passed, whichever comes first. The signing page waits this way "
                    "instead of asking again and again.")] = None,
    seen_agreement_sha256: Annotated[str | None, Query(
        pattern=SHA256_PATTERN, description="With `wait_for=agreement`: the version already "
                                            "shown, to wait for a newer one")] = None,
    wait_seconds: Annotated[float, Query(
        gt=0, le=MAX_WAIT_SECONDS, description="With `wait_for`: the longest wait")] = 20.0,
) -> RequestDetail:
    """The stored record, plus `live`: the workflow's own state, when Temporal answers."""
    record = await run_in_threadpool(_detail, sessions, actor, request_id)  # 404 before waiting
    workflow_id = record.request.workflow_id
    waited: tuple[ReassignmentState | None, str | None] | None = None
    if wait_for == "agreement" and client is not None and workflow_id:
        waited = await _wait_for_agreement(sessions, client, workflow_id, request_id,
                                           seen_agreement_sha256, wait_seconds)
        record = await run_in_threadpool(_detail, sessions, actor, request_id)
    live: ReassignmentState | None = None
    live_error: str | None = "the workflow service (Temporal) is unavailable"
    if waited is not None:
        live, live_error = waited
    elif client is not None and workflow_id:
        live, live_error = await live_state(client, workflow_id)
    return RequestDetail(**record.request.model_dump(), approval_steps=record.approval_steps,
                         appeals=record.appeals, signature=record.signature, live=live,
                         live_error=live_error)


@router.get("/{request_id}/audit", response_model=AuditList,
            responses=problem_responses(401, 404))
def get_audit(request_id: int, actor: RequestAuditReadActor, session: SessionDep) -> AuditList:
    """The request's audit events, in chain order."""
    return AuditList(request_id=request_id,
                     items=service.audit_events(Scope(session, actor), request_id))


# --- actions ---------------------------------------------------------------------------------

ACTION_RESPONSES = problem_responses(401, 403, 404, 409, 422, 503, 504)


@router.post("/{request_id}/approve", response_model=ReassignmentState,
             responses=ACTION_RESPONSES)
async def approve(request_id: int, body: ApproveIn, actor: RequestDecideActor,
                  sessions: SessionFactoryDep, settings: SettingsDep,
                  client: OptionalTemporalClientDep) -> ReassignmentState:
    """Approve the level you are the (or an escalation) approver of."""
    return await _act(request_id, actor, sessions, settings, client, "approve",
                      lambda who: ActionInput(**who, comment=body.comment), decision=True)


@router.post("/{request_id}/reject", response_model=ReassignmentState,
             responses=ACTION_RESPONSES)
async def reject(request_id: int, body: ReasonIn, actor: RequestDecideActor,
                 sessions: SessionFactoryDep, settings: SettingsDep,
                 client: OptionalTemporalClientDep) -> ReassignmentState:
    """Reject at your approval level; the request ends REJECTED."""
    return await _act(request_id, actor, sessions, settings, client, "reject",
                      lambda who: ReasonedActionInput(**who, reason=body.reason), decision=True)


@router.post("/{request_id}/withdraw", response_model=ReassignmentState,
             responses=ACTION_RESPONSES)
async def withdraw(request_id: int, body: ReasonIn, actor: RequestWithdrawActor,
                   sessions: SessionFactoryDep, settings: SettingsDep,
                   client: OptionalTemporalClientDep) -> ReassignmentState:
    """The requester takes the request back (before it takes effect)."""
    return await _act(request_id, actor, sessions, settings, client, "withdraw",
                      lambda who: ReasonedActionInput(**who, reason=body.reason))


@router.post("/{request_id}/cancel", response_model=ReassignmentState,
             responses=ACTION_RESPONSES)
async def cancel(request_id: int, body: ReasonIn, actor: RequestCancelActor,
                 sessions: SessionFactoryDep, settings: SettingsDep,
                 client: OptionalTemporalClientDep) -> ReassignmentState:
    """HR (or another authorised role) stops the request before it takes effect."""
    return await _act(request_id, actor, sessions, settings, client, "cancel",
                      lambda who: ReasonedActionInput(**who, reason=body.reason))


@router.post("/{request_id}/appeal", response_model=ReassignmentState,
             responses=ACTION_RESPONSES)
async def appeal(request_id: int, body: ReasonIn, actor: RequestAppealActor,
                 sessions: SessionFactoryDep, settings: SettingsDep,
                 client: OptionalTemporalClientDep) -> ReassignmentState:
    """The affected salesperson appeals during the communication window."""
    return await _act(request_id, actor, sessions, settings, client, "appeal",
                      lambda who: ReasonedActionInput(**who, reason=body.reason))


@router.post("/{request_id}/resolve-appeal", response_model=ReassignmentState,
             responses=ACTION_RESPONSES)
async def resolve_appeal(request_id: int, body: ResolveAppealIn, actor: RequestResolveAppealActor,
                         sessions: SessionFactoryDep, settings: SettingsDep,
                         client: OptionalTemporalClientDep) -> ReassignmentState:
    """HR upholds the request, amends its terms, or cancels it."""
    return await _act(request_id, actor, sessions, settings, client, "resolve_appeal",
                      lambda who: ResolveAppealInput(**who, outcome=body.outcome,
                                                 amended_terms=body.amended_terms,
                                                 comment=body.comment))


@router.post("/{request_id}/sign", response_model=ReassignmentState,
             responses=ACTION_RESPONSES)
async def sign(request_id: int, body: SignIn, http: Request, actor: RequestSignActor,
               sessions: SessionFactoryDep, settings: SettingsDep,
               client: OptionalTemporalClientDep) -> ReassignmentState:
    """The affected salesperson signs one agreement version, after re-authenticating by a
    one-time code or a passkey for that version (routes/signing.py); the evidence is taken
    from this call."""
    return await sign_agreement(request_id, body, http, actor, sessions, settings, client)


@router.post("/{request_id}/decline", response_model=ReassignmentState,
             responses=ACTION_RESPONSES)
async def decline(request_id: int, body: ReasonIn, actor: RequestSignActor,
                  sessions: SessionFactoryDep, settings: SettingsDep,
                  client: OptionalTemporalClientDep) -> ReassignmentState:
    """The affected salesperson declines; ownership does not move."""
    return await _act(request_id, actor, sessions, settings, client, "decline",
                      lambda who: ReasonedActionInput(**who, reason=body.reason))


def _check_new_approver(sessions: SessionFactory, employee_id: int) -> None:
    with sessions() as session:
        employee = session.get(Employee, employee_id)
        if employee is None or employee.status != EmploymentStatus.EMPLOYED:
            raise Problem(422, "approver-unknown", "No such approver",
                          f"Employee {employee_id} does not exist or has left; choose an "
                          "employed colleague as the new approver.",
                          errors=[FieldError(field="new_approver_id", code="unknown",
                                             message="not an employed employee",
                                             location="body")])


@router.post("/{request_id}/reassign-approval", response_model=ReassignmentState,
             responses=ACTION_RESPONSES)
async def reassign_approval(
    request_id: int, body: ReassignApprovalIn,
    actor: RequestReassignApprovalActor,
    sessions: SessionFactoryDep, settings: SettingsDep, client: OptionalTemporalClientDep,
) -> ReassignmentState:
    """HR hands the open approval level to another approver (e.g. the approver is away).
    The SLA clock keeps running; the new approver is notified."""
    await run_in_threadpool(_check_new_approver, sessions, body.new_approver_id)
    return await _act(request_id, actor, sessions, settings, client, "reassign_approval",
                      lambda who: ReassignApprovalInput(**who, new_approver_id=body.new_approver_id,
                                                        level=body.level, reason=body.reason))
