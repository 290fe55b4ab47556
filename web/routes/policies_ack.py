"""Reading and acknowledging the published reassignment policy (Labour Contract Law art. 4):
the versions a person may see, the rules in their language, and the acknowledge button.

Through models.policies like POST /api/v1/policies/{id}/acknowledge: the acknowledgement is
always the caller's own, a repeat changes nothing, a draft or retired version is refused.
Pages under /app/me (HR's policy drafts and publishing are another journey).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from api.deps import SessionDep, SessionFactoryDep
from api.problems import Problem
from api.routes.policies import _visible, _write
from api.security import Actor
from domain.permissions import Action
from models.policies import acknowledge, acknowledged_at, list_versions
from models.policy import PolicyStatus, PolicyVersion
from web.deps import page_permit
from web.me_labels import MeLabels
from web.render import current_locale, render

router = APIRouter()

POLICIES_PATH = "/app/me/policies"
LIST_SIZE = 50


def pending_policies(session: Session, employee_id: int) -> list[PolicyVersion]:
    """Published versions the employee has not acknowledged yet, newest first."""
    published, _n = list_versions(session, include_drafts=False, status=PolicyStatus.PUBLISHED,
                                  limit=LIST_SIZE)
    done = acknowledged_at(session, employee_id, [p.id for p in published if p.id is not None])
    return [p for p in published if p.id not in done]


@router.get(POLICIES_PATH)
def policies(request: Request, actor: Annotated[Actor, page_permit(Action.POLICY_READ)],
             session: SessionDep) -> Response:
    versions, total = list_versions(session, include_drafts=False, limit=LIST_SIZE)
    acked = acknowledged_at(session, actor.employee_id,
                            [p.id for p in versions if p.id is not None])
    pending = [p for p in versions if p.status == PolicyStatus.PUBLISHED and p.id not in acked]
    return render(request, "me/policies.html", {
        "versions": versions, "acked": acked, "pending": pending, "total": total})


def _policy_context(session: Session, actor: Actor, policy_id: int) -> dict[str, Any]:
    policy = _visible(session, actor, policy_id)  # 404 for a draft the caller may not see
    return {"policy": policy, "rules": policy.parsed_rules(),
            "acked_at": acknowledged_at(session, actor.employee_id, [policy_id]).get(policy_id)}


@router.get(POLICIES_PATH + "/{policy_id}")
def policy_page(request: Request, policy_id: int,
                actor: Annotated[Actor, page_permit(Action.POLICY_READ)], session: SessionDep,
                notice: Annotated[str | None, Query(max_length=30)] = None) -> Response:
    context = _policy_context(session, actor, policy_id)
    context["notice"] = notice if notice in ("acknowledged", "already") else None
    return render(request, "me/policy.html", context)


@router.post(POLICIES_PATH + "/{policy_id}/acknowledge")
def acknowledge_policy(request: Request, policy_id: int,
                       actor: Annotated[Actor, page_permit(Action.POLICY_ACKNOWLEDGE)],
                       sessions: SessionFactoryDep) -> Response:
    """The same write as the API: the caller's own acknowledgement, once."""
    try:
        with sessions() as session:
            _visible(session, actor, policy_id)  # a draft is as missing as for the API
        done = _write(sessions, lambda s: acknowledge(s, policy_id,
                                                      employee_id=actor.employee_id))
    except Problem as problem:
        if problem.status != 409:
            raise
        with sessions() as session:
            context = _policy_context(session, actor, policy_id)
        labels = MeLabels(current_locale(request))
        context["action_error"] = labels.problem(problem.slug, problem.detail)
        return render(request, "me/policy.html", context, status=409)
    notice = "acknowledged" if done.recorded_now else "already"
    return RedirectResponse(f"{POLICIES_PATH}/{policy_id}?notice={notice}", 303)
