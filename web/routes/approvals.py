"""The approver's journey: the inbox of approvals that wait for me, a request's review page
(the assessment, the history, the policy in force) and the decision: approve, or reject with
a reason.

Who an approval waits for is read from the approval steps the workflow writes: the open
(PENDING) level's approver, its escalation approvers, and, under a delegation valid today
(api.services.scope.Scope.delegators), the approvers the caller stands in for. The list goes
through the caller's data scope like every other list. The decision is the workflow Update
through api.services.actions.act (decision=True adds `on_behalf_of` under a delegation), so
the workflow's validators (four eyes, stage, already decided) have the last word; a refusal
is shown in place of the form, with the request's state read again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import and_, bindparam, case, func, or_, text
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from api.deps import (
    OptionalTemporalClientDep,
    ReadSessionDep,
    SessionFactoryDep,
    SettingsDep,
)
from api.problems import Problem
from api.security import Actor
from api.services.actions import act
from api.services.directory import employees_by_id
from api.services.scope import Scope, org_today
from domain.permissions import Action
from domain.policy import PolicyRules
from domain.stages import Stage
from domain.workflow_dto import ActionInput, LevelStatus, ReasonedActionInput, ReassignmentState
from models.db import SessionFactory
from models.reassignment import ApprovalStep, ReassignmentRequest
from settings import Settings
from web.deps import page_permit
from web.errors import is_htmx
from web.policy_text import describe_rules
from web.render import current_locale, render, t
from web.routes.requests import DetailView, _detail_context, _load
from web.timeline import Timeline

router = APIRouter()

APPROVALS_PATH = "/app/approvals"
COMMENT_MAX = 2000
RECENT_DECISIONS = 10
INBOX_PAGE_SIZE = 50
NOTICES = {"approved", "rejected"}


# --- what waits for me -------------------------------------------------------------------------


@dataclass(frozen=True)
class Waiting:
    """One open approval level that waits for the caller."""

    request: ReassignmentRequest
    step: ApprovalStep
    capacity: str  # "approver", "escalation" or "delegate"
    on_behalf_of: int | None  # the approver a delegate stands in for
    overdue: bool


def _capacity(me: int, delegators: list[int], step: ApprovalStep) -> tuple[str, int | None] | None:
    """In which capacity an open level waits for `me`, like actions.target decides it."""
    eligible = [step.approver_id, *(step.escalated_to or [])]
    if me == step.approver_id:
        return "approver", None
    if me in eligible:
        return "escalation", None
    stand_in = next((e for e in eligible if e in delegators), None)
    if stand_in is not None:
        return "delegate", stand_in
    return None


def _escalated_to_any(ids: list[int], dialect: str) -> Any:
    """SQL: the step's escalated_to (a JSON array of employee ids) holds one of `ids`."""
    if dialect == "postgresql":
        sql = ("EXISTS (SELECT 1 FROM json_array_elements_text(approval_step.escalated_to) "
               "AS escalated(id) WHERE escalated.id::bigint IN :escalation_ids)")
    else:
        sql = ("EXISTS (SELECT 1 FROM json_each(approval_step.escalated_to) "
               "WHERE json_each.value IN :escalation_ids)")
    return text(sql).bindparams(bindparam("escalation_ids", value=ids, expanding=True))


def _waiting_clauses(scope: Scope) -> list[Any]:
    """The open levels of requests in scope that wait for the caller, as SQL, so that the page
    and the badge count them in the database (_capacity says in which capacity)."""
    me = scope.actor.employee_id
    mine = [me, *scope.delegators]  # as approver, or standing in for one
    clauses: list[Any] = [
        ApprovalStep.status == LevelStatus.PENDING.value,
        ReassignmentRequest.stage == Stage.PENDING_APPROVAL,
        ReassignmentRequest.requester_id != me,  # the four-eyes rule: never one's own request
        or_(col(ApprovalStep.approver_id).in_(mine),
            and_(func.json_array_length(ApprovalStep.escalated_to) > 0,
                 _escalated_to_any(mine, scope.session.get_bind().dialect.name))),
    ]
    clause = scope.requests()
    if clause is not None:
        clauses.append(clause)
    return clauses


def _waiting_from(query: Any) -> Any:
    return query.join(ReassignmentRequest,
                      col(ReassignmentRequest.id) == ApprovalStep.request_id)


@dataclass(frozen=True)
class WaitingPage:
    rows: list[Waiting]
    total: int
    overdue: int


def waiting_for(scope: Scope, now: datetime, *, limit: int, offset: int = 0) -> WaitingPage:
    """One page of the open levels that wait for the caller: overdue first, then by the SLA's
    due time, then the oldest request (overdue levels are due earliest, so ordering by the due
    time puts them first), with how many there are in all and how many are overdue."""
    me = scope.actor.employee_id
    delegators = scope.delegators
    clauses = _waiting_clauses(scope)
    total, overdue = scope.session.exec(_waiting_from(
        select(func.count(), func.count(case((col(ApprovalStep.due_at) < now, 1))))
        .select_from(ApprovalStep)).where(*clauses)).one()
    query = (_waiting_from(select(ApprovalStep, ReassignmentRequest)).where(*clauses)
             .order_by(col(ApprovalStep.due_at).is_(None), col(ApprovalStep.due_at),
                       col(ReassignmentRequest.id))
             .limit(limit).offset(offset))
    rows = []
    for step, request in scope.session.exec(query).all():
        found = _capacity(me, delegators, step) or ("approver", None)  # the SQL chose it
        due = _aware(step.due_at)
        rows.append(Waiting(request=request, step=step, capacity=found[0],
                            on_behalf_of=found[1], overdue=due is not None and due < now))
    return WaitingPage(rows=rows, total=int(total), overdue=int(overdue))


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def waiting_count(session: Session, actor: Actor, settings: Settings) -> int:
    """The navigation's badge: how many approvals wait for this person (web.nav)."""
    scope = Scope(session, actor, org_today(settings.org_timezone))
    count = session.exec(_waiting_from(select(func.count()).select_from(ApprovalStep))
                         .where(*_waiting_clauses(scope))).one()
    return int(count)


def _recent_decisions(session: Session, me: int) -> list[tuple[ApprovalStep, ReassignmentRequest]]:
    rows = session.exec(
        select(ApprovalStep, ReassignmentRequest)
        .join(ReassignmentRequest, col(ReassignmentRequest.id) == ApprovalStep.request_id)
        .where(ApprovalStep.decided_by_id == me,
               col(ApprovalStep.status).in_([LevelStatus.APPROVED.value,
                                             LevelStatus.REJECTED.value]))
        .order_by(col(ApprovalStep.decided_at).desc()).limit(RECENT_DECISIONS)).all()
    return [(s, r) for s, r in rows]


@router.get(APPROVALS_PATH)
def inbox(request: Request, actor: Annotated[Actor, page_permit(Action.REQUEST_DECIDE)],
          session: ReadSessionDep, settings: SettingsDep,
          page: Annotated[int, Query(ge=1, le=10_000)] = 1) -> Response:
    now = datetime.now(UTC)
    scope = Scope(session, actor, org_today(settings.org_timezone))
    found = waiting_for(scope, now, limit=INBOX_PAGE_SIZE, offset=(page - 1) * INBOX_PAGE_SIZE)
    waiting = found.rows
    recent = _recent_decisions(session, actor.employee_id)
    ids = {i for w in waiting for i in (w.request.from_employee_id, w.request.to_employee_id,
                                        w.request.requester_id, w.on_behalf_of or 0)}
    ids |= {i for _s, r in recent for i in (r.from_employee_id, r.to_employee_id)}
    return render(request, "approvals/inbox.html", {
        "waiting": waiting, "recent": recent, "names": employees_by_id(session, ids),
        "total": found.total, "overdue": found.overdue, "page": page,
        "pages": max(1, -(-found.total // INBOX_PAGE_SIZE)),
        "delegating_for": employees_by_id(session, scope.delegators),
    })


# --- one request -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MyPart:
    """What the open level asks of the caller, as far as the page can tell (the workflow's
    validators decide)."""

    level: int | None = None
    role: str | None = None
    due_at: datetime | None = None
    capacity: str | None = None  # approver, escalation, delegate; None: not waiting for me
    on_behalf_of: int | None = None
    own_request: bool = False
    decided: tuple[int, str] | None = None  # (level, APPROVED/REJECTED) the caller decided


def _my_decision(actor: Actor, view: DetailView,
                 live: ReassignmentState | None) -> tuple[int, str] | None:
    me = actor.employee_id
    if live is not None:
        for lv in live.levels:
            if me in (lv.decided_by, lv.decided_for) and lv.status in (LevelStatus.APPROVED,
                                                                        LevelStatus.REJECTED):
                return lv.level, lv.status.value
        return None
    for st in view.record.approval_steps:
        if st.decided_by_id == me and st.status in ("APPROVED", "REJECTED"):
            return st.level, st.status
    return None


def _my_part(sessions: SessionFactory, settings: Settings, actor: Actor, view: DetailView,
             live: ReassignmentState | None, timeline: Timeline) -> MyPart:
    decided = _my_decision(actor, view, live)
    if timeline.stage != Stage.PENDING_APPROVAL:
        return MyPart(decided=decided)
    r = view.record.request
    if live is not None:
        pending = next((lv for lv in live.levels if lv.status == LevelStatus.PENDING), None)
        if pending is None:
            return MyPart(decided=decided)
        step = ApprovalStep(request_id=r.id, level=pending.level, role=pending.role.value,
                            approver_id=pending.approver_id, escalated_to=pending.escalated_to,
                            due_at=pending.due_at)
    else:
        stored = next((s for s in view.record.approval_steps
                       if s.status == LevelStatus.PENDING.value), None)
        if stored is None:
            return MyPart(decided=decided)
        step = ApprovalStep(request_id=r.id, level=stored.level, role=stored.role,
                            approver_id=stored.approver_id, escalated_to=stored.escalated_to,
                            due_at=stored.due_at)
    found = _capacity(actor.employee_id, [], step)
    if found is None:  # not the approver themselves: a delegation from one of them, today?
        with sessions() as session:
            delegators = Scope(session, actor, org_today(settings.org_timezone)).delegators
        found = _capacity(actor.employee_id, delegators, step)
    return MyPart(level=step.level, role=step.role, due_at=step.due_at,
                  capacity=found[0] if found else None,
                  on_behalf_of=found[1] if found else None,
                  own_request=r.requester_id == actor.employee_id, decided=decided)


def names_of(sessions: SessionFactory, ids: set[int]) -> dict[int, Any]:
    """Employees by id, in a transaction of its own (call it in the thread pool: never block
    the event loop on SQLite's write lock)."""
    with sessions() as session:
        return employees_by_id(session, ids)


def policy_lines(view: DetailView, locale: str) -> list[str]:
    """The request's policy version (kept for life) in plain words, in the reader's language."""
    if view.policy is None:
        return []
    try:
        rules = PolicyRules.model_validate(view.policy.rules)
    except ValueError:
        return []
    return describe_rules(rules, locale)


async def _review_context(request: Request, request_id: int, actor: Actor,
                          sessions: SessionFactory, settings: Settings,
                          client: Any) -> dict[str, Any]:
    view, live, live_error, timeline = await _load(request_id, actor, sessions, client)
    context = _detail_context(actor, view, live, live_error, timeline)
    part = await run_in_threadpool(_my_part, sessions, settings, actor, view, live, timeline)
    if part.on_behalf_of and part.on_behalf_of not in view.names:
        view.names.update(await run_in_threadpool(names_of, sessions, {part.on_behalf_of}))
    context.update(part=part, policy_lines=policy_lines(view, current_locale(request)),
                   decision_problem=None, decision_errors={}, comment="", outcome=None)
    return context


@router.get(APPROVALS_PATH + "/{request_id}")
async def review(
    request: Request, request_id: int,
    actor: Annotated[Actor, page_permit(Action.REQUEST_DECIDE)],
    sessions: SessionFactoryDep, settings: SettingsDep, client: OptionalTemporalClientDep,
    notice: Annotated[str | None, Query(max_length=30)] = None,
) -> Response:
    context = await _review_context(request, request_id, actor, sessions, settings, client)
    context["notice"] = notice if notice in NOTICES else None
    return render(request, "approvals/review.html", context)


async def _decide(request: Request, request_id: int, actor: Actor, sessions: SessionFactory,
                  settings: Settings, client: Any, decision: str) -> Response:
    """Approve or reject through the workflow Update; a refusal, or a reason left out, is
    drawn in place of the form (htmx) or on the whole page, with the state read again."""
    form = await request.form()
    comment = str(form.get("comment") or "").strip()
    errors: dict[str, str] = {}
    if decision == "reject" and not comment:
        errors["comment"] = t(request, "Give a reason for rejecting: the requester and the "
                                       "salesperson see it.")
    elif len(comment) > COMMENT_MAX:
        errors["comment"] = t(request, "The comment may be at most 2,000 characters.")
    problem: Problem | None = None
    if not errors:
        try:
            if decision == "approve":
                await act(request_id, actor, sessions, settings, client, "approve",
                          lambda who: ActionInput(**who, comment=comment or None),
                          decision=True)
            else:
                await act(request_id, actor, sessions, settings, client, "reject",
                          lambda who: ReasonedActionInput(**who, reason=comment),
                          decision=True)
        except Problem as refused:
            if refused.status == 404:
                raise
            problem = refused
        else:
            done = "approved" if decision == "approve" else "rejected"
            target = f"{APPROVALS_PATH}/{request_id}?notice={done}"
            if is_htmx(request):
                return Response(status_code=200, headers={"HX-Redirect": target})
            return RedirectResponse(target, status_code=303)
    context = await _review_context(request, request_id, actor, sessions, settings, client)
    context.update(decision_problem=problem, decision_errors=errors, comment=comment,
                   outcome=decision)
    status = problem.status if problem is not None else 422
    template = "approvals/_decision.html" if is_htmx(request) else "approvals/review.html"
    return render(request, template, context, status=status)


@router.post(APPROVALS_PATH + "/{request_id}/approve")
async def approve(request: Request, request_id: int,
                  actor: Annotated[Actor, page_permit(Action.REQUEST_DECIDE)],
                  sessions: SessionFactoryDep, settings: SettingsDep,
                  client: OptionalTemporalClientDep) -> Response:
    return await _decide(request, request_id, actor, sessions, settings, client, "approve")


@router.post(APPROVALS_PATH + "/{request_id}/reject")
async def reject(request: Request, request_id: int,
                 actor: Annotated[Actor, page_permit(Action.REQUEST_DECIDE)],
                 sessions: SessionFactoryDep, settings: SettingsDep,
                 client: OptionalTemporalClientDep) -> Response:
    return await _decide(request, request_id, actor, sessions, settings, client, "reject")
