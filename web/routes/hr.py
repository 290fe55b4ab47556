"""HR's journey: the dashboard (requests by stage, stuck or overdue approvals with a link into
the Temporal UI, open appeals, cases nearing their signature deadline), and a case page to
resolve an appeal (uphold, amend the terms, cancel), hand a pending approval to another
approver, and download the evidence bundle.

The dashboard reads the database only: a few aggregate queries through HR's data scope. The
actions are the workflow Updates of the API, through api.services.actions.act; the workflow's
validators decide. The pages declare REQUEST_RESOLVE_APPEAL, an action only HR holds.

Links into the Temporal UI carry ids only (search attributes are not encrypted, so they hold
no names; workflows/search_attributes.py), e.g.
`BatonStage = 'PENDING_APPROVAL' AND BatonRequestId = '42'`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import and_, func, or_
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from api.deps import OptionalTemporalClientDep, SessionDep, SessionFactoryDep, SettingsDep
from api.problems import Problem
from api.routes.reassignments import _check_new_approver
from api.security import Actor
from api.services.actions import act
from api.services.directory import employees_by_id
from api.services.scope import Scope
from domain.permissions import Action
from domain.policy import Terms
from domain.stages import TERMINAL_STAGES, Stage
from domain.workflow_dto import (
    AppealOutcome,
    LevelStatus,
    ReassignApprovalInput,
    ResolveAppealInput,
)
from models.db import SessionFactory
from models.reassignment import Appeal, ApprovalStep, ReassignmentRequest
from settings import Settings
from web.deliveries import failed_deliveries
from web.deps import page_permit
from web.forms import (
    UNIT_LABELS,
    UNITS,
    FieldValueError,
    read_duration,
    read_percent,
    read_yuan,
    show_percent,
    show_yuan,
    split_duration,
)
from web.me_labels import MeLabels
from web.render import current_locale, render, t
from web.routes.approvals import names_of, policy_lines
from web.routes.delegations import approver_choices
from web.routes.requests import _detail_context, _load

router = APIRouter()

HR_PATH = "/app/hr"
CASES_PATH = HR_PATH + "/cases"
LIST_LIMIT = 50
# an open request whose stage deadline passed this long ago without the stage moving on
STUCK_AFTER = timedelta(minutes=15)
NEAR_SIGNATURE = timedelta(days=2)
COMMENT_MAX = 2000
NOTICES = {"resolved", "reassigned"}
# the dashboard's order of stages: the path of a request, then how it can end
STAGE_ORDER = [Stage.SUBMITTED, Stage.PENDING_APPROVAL, Stage.SCHEDULED, Stage.COMMUNICATION,
               Stage.APPEAL_REVIEW, Stage.AWAITING_SIGNATURE, Stage.EFFECTIVE, Stage.PROTECTION,
               Stage.COMPLETED, Stage.REJECTED, Stage.WITHDRAWN, Stage.CANCELLED,
               Stage.DECLINED, Stage.EXPIRED_NO_CONSENT]

R = ReassignmentRequest


# --- links into the Temporal UI ----------------------------------------------------------------


def temporal_ui_link(settings: Settings, query: str) -> str:
    """The Temporal UI's workflow list, already filtered by a search-attribute query."""
    base = settings.temporal_ui_url.rstrip("/")
    namespace = quote(settings.temporal_namespace, safe="")
    return f"{base}/namespaces/{namespace}/workflows?query={quote(query, safe='')}"


def pending_approval_query(request_id: int) -> str:
    return f"BatonStage = 'PENDING_APPROVAL' AND BatonRequestId = '{int(request_id)}'"


def request_query(request_id: int) -> str:
    return f"BatonRequestId = '{int(request_id)}'"


def overdue_approvals_query(now: datetime) -> str:
    moment = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"BatonStage = 'PENDING_APPROVAL' AND BatonStageDeadline < '{moment}'"


# --- the dashboard ------------------------------------------------------------------------------


@dataclass
class Dashboard:
    counts: list[tuple[Stage, int]]
    open_total: int
    overdue: list[tuple[ApprovalStep, ReassignmentRequest]]
    stuck: list[ReassignmentRequest]
    appeals: list[tuple[Appeal, ReassignmentRequest]]
    signatures: list[ReassignmentRequest]


def dashboard(session: Session, scope: Scope, now: datetime) -> Dashboard:
    clause = scope.requests()
    within = [clause] if clause is not None else []
    by_stage = {Stage(s): int(n) for s, n in session.exec(
        select(R.stage, func.count()).where(*within).group_by(R.stage)).all()}
    counts = [(s, by_stage.get(s, 0)) for s in STAGE_ORDER]
    open_total = sum(n for s, n in counts if s not in TERMINAL_STAGES)
    overdue = session.exec(
        select(ApprovalStep, R).join(R, col(R.id) == ApprovalStep.request_id)
        .where(ApprovalStep.status == LevelStatus.PENDING.value,
               R.stage == Stage.PENDING_APPROVAL, col(ApprovalStep.due_at) < now, *within)
        .order_by(col(ApprovalStep.due_at)).limit(LIST_LIMIT)).all()
    closed = [s.value for s in TERMINAL_STAGES]
    stuck = session.exec(
        select(R).where(
            col(R.stage).not_in([*closed, Stage.PENDING_APPROVAL.value]),
            or_(and_(col(R.stage_deadline).is_not(None), col(R.stage_deadline) < now - STUCK_AFTER),
                and_(R.stage == Stage.SUBMITTED, col(R.created_at) < now - STUCK_AFTER)),
            *within)
        .order_by(col(R.id)).limit(LIST_LIMIT)).all()
    appeals = session.exec(
        select(Appeal, R).join(R, col(R.id) == Appeal.request_id)
        .where(Appeal.status == "OPEN", *within)
        .order_by(col(Appeal.opened_at)).limit(LIST_LIMIT)).all()
    signatures = session.exec(
        select(R).where(R.stage == Stage.AWAITING_SIGNATURE,
                        col(R.stage_deadline).is_not(None),
                        col(R.stage_deadline) <= now + NEAR_SIGNATURE, *within)
        .order_by(col(R.stage_deadline)).limit(LIST_LIMIT)).all()
    return Dashboard(counts=counts, open_total=open_total,
                     overdue=[(s, r) for s, r in overdue], stuck=list(stuck),
                     appeals=[(a, r) for a, r in appeals], signatures=list(signatures))


@router.get(HR_PATH)
def hr_dashboard(request: Request,
                 actor: Annotated[Actor, page_permit(Action.REQUEST_RESOLVE_APPEAL)],
                 session: SessionDep, settings: SettingsDep) -> Response:
    now = datetime.now(UTC)
    board = dashboard(session, Scope(session, actor), now)
    ids: set[int] = set()
    for step, r in board.overdue:
        ids |= {step.approver_id, *step.escalated_to, r.from_employee_id, r.to_employee_id}
    for appeal, r in board.appeals:
        ids |= {appeal.appellant_id, r.to_employee_id}
    for r in [*board.stuck, *board.signatures]:
        ids |= {r.from_employee_id, r.to_employee_id}
    return render(request, "hr/dashboard.html", {
        "board": board, "names": employees_by_id(session, ids), "now": now,
        "approval_link": lambda rid: temporal_ui_link(settings, pending_approval_query(rid)),
        "request_link": lambda rid: temporal_ui_link(settings, request_query(rid)),
        "all_overdue_link": temporal_ui_link(settings, overdue_approvals_query(now)),
        "stuck_after": STUCK_AFTER,
        "deliveries": failed_deliveries(session, Scope(session, actor)),
        "delivery_kind": MeLabels(current_locale(request)).notification,
    })


# --- one case -----------------------------------------------------------------------------------


@dataclass
class AppealForm:
    """The resolution as typed; the amended terms are read only for AMEND."""

    outcome: str = ""
    comment: str = ""
    compensation: str = ""
    protection_value: str = ""
    protection_unit: str = "days"
    protection_share: str = ""
    inherited_rate: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_terms(cls, terms: Terms | None) -> AppealForm:
        if terms is None:
            return cls()
        value, unit = split_duration(terms.protection_period)
        return cls(compensation=show_yuan(terms.compensation_fen), protection_value=value,
                   protection_unit=unit, protection_share=show_percent(terms.protection_share_bp),
                   inherited_rate=show_percent(terms.inherited_rate_bp))

    @classmethod
    def parse(cls, form: FormData) -> AppealForm:
        def text(name: str) -> str:
            return str(form.get(name) or "").strip()

        return cls(outcome=text("outcome"), comment=text("comment"),
                   compensation=text("compensation"), protection_value=text("protection_value"),
                   protection_unit=text("protection_unit") or "days",
                   protection_share=text("protection_share"),
                   inherited_rate=text("inherited_rate"))

    def read(self, request: Request) -> tuple[AppealOutcome, Terms | None, str | None] | None:
        if self.outcome not in AppealOutcome._value2member_map_:
            self.errors["outcome"] = t(request, "Choose how to resolve the appeal.")
        if len(self.comment) > COMMENT_MAX:
            self.errors["comment"] = t(request, "The comment may be at most 2,000 characters.")
        terms = None
        if self.outcome == AppealOutcome.AMEND.value:
            terms = self._terms(request)
        if self.errors:
            return None
        return AppealOutcome(self.outcome), terms, self.comment or None

    def _terms(self, request: Request) -> Terms | None:
        values: dict[str, Any] = {}
        readers = {
            "compensation_fen": ("compensation", lambda: read_yuan(self.compensation)),
            "protection_period": ("protection_value",
                                  lambda: read_duration(self.protection_value,
                                                        self.protection_unit)),
            "protection_share_bp": ("protection_share",
                                    lambda: read_percent(self.protection_share)),
            "inherited_rate_bp": ("inherited_rate", lambda: read_percent(self.inherited_rate)),
        }
        for key, (name, reader) in readers.items():
            try:
                value = reader()
            except FieldValueError as bad:
                self.errors[name] = t(request, bad.message)
                continue
            if value is None:
                self.errors[name] = t(request, "Fill in the amended terms.")
            else:
                values[key] = value
        # what could be read is checked by the model too (an unreadable field stands in as 0)
        try:
            terms = Terms.model_validate({**dict.fromkeys(readers, 0), **values})
        except ValidationError as exc:
            for err in exc.errors():
                key = str(err["loc"][0]) if err.get("loc") else ""
                name = readers.get(key, ("outcome", None))[0]
                if name in self.errors:
                    continue
                if key.endswith("_bp"):
                    self.errors[name] = t(request, "Enter a percentage between 0 and 100.")
                else:
                    self.errors[name] = t(request, "Enter zero or more.")
            return None
        return None if self.errors else terms


@dataclass
class ReassignForm:
    new_approver_id: str = ""
    level: str = ""
    reason: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, form: FormData) -> ReassignForm:
        return cls(new_approver_id=str(form.get("new_approver_id") or "").strip(),
                   level=str(form.get("level") or "").strip(),
                   reason=str(form.get("reason") or "").strip())

    def read(self, request: Request) -> tuple[int, int | None, str] | None:
        if not self.new_approver_id.isdigit():
            self.errors["new_approver_id"] = t(request, "Choose the new approver.")
        if not self.reason:
            self.errors["reassign_reason"] = t(request, "Give a reason: the approvers see it.")
        elif len(self.reason) > COMMENT_MAX:
            self.errors["reassign_reason"] = t(request, "The reason may be at most 2,000 "
                                                        "characters.")
        if self.errors:
            return None
        level = int(self.level) if self.level.isdigit() and int(self.level) >= 1 else None
        return int(self.new_approver_id), level, self.reason


async def _case_context(request: Request, request_id: int, actor: Actor,
                        sessions: SessionFactory, settings: Settings,
                        client: Any) -> dict[str, Any]:
    view, live, live_error, timeline = await _load(request_id, actor, sessions, client)
    context = _detail_context(actor, view, live, live_error, timeline)
    record = view.record
    pending = None
    if timeline.stage == Stage.PENDING_APPROVAL:
        if live is not None:
            pending = next((lv for lv in live.levels if lv.status == LevelStatus.PENDING), None)
        if pending is None:
            pending = next((s for s in record.approval_steps
                            if s.status == LevelStatus.PENDING.value), None)
    open_appeal: Any = next((a for a in reversed(record.appeals) if a.status == "OPEN"), None)
    if open_appeal is None and live is not None and timeline.stage == Stage.APPEAL_REVIEW:
        open_appeal = next((a for a in reversed(live.appeals) if a.outcome is None), None)
    r = record.request
    current_terms = live.terms if live is not None and live.terms is not None else (
        context["terms"])

    def choices() -> list[Any]:
        with sessions() as session:
            parties = {r.requester_id, r.from_employee_id, r.to_employee_id}
            if pending is not None:
                parties.add(pending.approver_id)
            return approver_choices(session, exclude=parties)

    approvers = await run_in_threadpool(choices) if pending is not None else []
    missing = {a.appellant_id for a in record.appeals} - set(view.names)
    if missing:
        view.names.update(await run_in_threadpool(names_of, sessions, missing))
    context.update(
        pending=pending, open_appeal=open_appeal, current_terms=current_terms,
        approvers=approvers, policy_lines=policy_lines(view, current_locale(request)),
        appeal_form=AppealForm.from_terms(current_terms),
        reassign_form=ReassignForm(level=str(getattr(pending, "level", "") or "")),
        action_problem=None, action=None, units=UNITS, unit_labels=UNIT_LABELS,
        temporal_link=temporal_ui_link(settings, request_query(request_id)),
        evidence_url=f"/api/v1/reassignments/{request_id}/evidence",
        outcomes=list(AppealOutcome))
    return context


@router.get(CASES_PATH + "/{request_id}")
async def case(request: Request, request_id: int,
               actor: Annotated[Actor, page_permit(Action.REQUEST_RESOLVE_APPEAL)],
               sessions: SessionFactoryDep, settings: SettingsDep,
               client: OptionalTemporalClientDep,
               notice: Annotated[str | None, Query(max_length=30)] = None) -> Response:
    context = await _case_context(request, request_id, actor, sessions, settings, client)
    context["notice"] = notice if notice in NOTICES else None
    return render(request, "hr/case.html", context)


async def _refused(request: Request, request_id: int, actor: Actor, sessions: SessionFactory,
                   settings: Settings, client: Any, *, action: str,
                   problem: Problem | None, **forms: Any) -> Response:
    context = await _case_context(request, request_id, actor, sessions, settings, client)
    context.update(action=action, action_problem=problem, notice=None, **forms)
    return render(request, "hr/case.html", context,
                  status=problem.status if problem is not None else 422)


@router.post(CASES_PATH + "/{request_id}/resolve-appeal")
async def resolve_appeal(request: Request, request_id: int,
                         actor: Annotated[Actor, page_permit(Action.REQUEST_RESOLVE_APPEAL)],
                         sessions: SessionFactoryDep, settings: SettingsDep,
                         client: OptionalTemporalClientDep) -> Response:
    """Uphold, amend or cancel, through the same Update as POST .../resolve-appeal."""
    form = AppealForm.parse(await request.form())
    read = form.read(request)
    problem = None
    if read is not None:
        outcome, terms, comment = read
        try:
            await act(request_id, actor, sessions, settings, client, "resolve_appeal",
                      lambda who: ResolveAppealInput(**who, outcome=outcome,
                                                     amended_terms=terms, comment=comment))
        except Problem as refused:
            if refused.status == 404:
                raise
            problem = refused
        else:
            return RedirectResponse(f"{CASES_PATH}/{request_id}?notice=resolved", 303)
    return await _refused(request, request_id, actor, sessions, settings, client,
                          action="resolve", problem=problem, appeal_form=form)


@router.post(CASES_PATH + "/{request_id}/reassign-approval")
async def reassign_approval(
        request: Request, request_id: int,
        actor: Annotated[Actor, page_permit(Action.REQUEST_REASSIGN_APPROVAL)],
        sessions: SessionFactoryDep, settings: SettingsDep,
        client: OptionalTemporalClientDep) -> Response:
    """Hand the open approval level to another approver, like POST .../reassign-approval:
    the new approver is checked (employed), then the workflow Update decides."""
    form = ReassignForm.parse(await request.form())
    read = form.read(request)
    problem = None
    if read is not None:
        new_approver, level, reason = read
        try:
            await run_in_threadpool(_check_new_approver, sessions, new_approver)
            await act(request_id, actor, sessions, settings, client, "reassign_approval",
                      lambda who: ReassignApprovalInput(**who, new_approver_id=new_approver,
                                                        level=level, reason=reason))
        except Problem as refused:
            if refused.status == 404:
                raise
            if refused.slug == "approver-unknown":
                form.errors["new_approver_id"] = t(request, "Choose an employed colleague "
                                                            "from the list.")
            else:
                problem = refused
        else:
            return RedirectResponse(f"{CASES_PATH}/{request_id}?notice=reassigned", 303)
    return await _refused(request, request_id, actor, sessions, settings, client,
                          action="reassign", problem=problem, reassign_form=form)
