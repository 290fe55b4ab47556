"""Human actions on a request's workflow (approve, reject, withdraw, ...): one code path for the
API routes and the web pages.

Scope first (404 outside it), then the input with the actor from the token (plus
`on_behalf_of` under a delegation), then the workflow Update, whose validators decide whether
this person may act on this request right now (problems 403/409 otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlmodel import select
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

from api.problems import Problem, temporal_unavailable_problem, validation_errors
from api.security import Actor
from api.services.scope import Scope, org_today
from api.services.workflow_calls import closed_problem, execute_action
from domain.stages import Stage
from domain.workflow_dto import ActionInput, LevelStatus, ReassignmentState
from models.db import SessionFactory
from models.reassignment import ApprovalStep
from settings import Settings


@dataclass(frozen=True)
class Target:
    workflow_id: str | None
    stage: Stage
    on_behalf_of: int | None = None


def target(sessions: SessionFactory, settings: Settings, actor: Actor, request_id: int, *,
           decision: bool) -> Target:
    """The request's workflow, 404 when out of scope; for a decision, the approver the actor
    stands in for when they are not an approver of the open level themselves."""
    with sessions() as session:
        scope = Scope(session, actor, org_today(settings.org_timezone))
        request = scope.request(request_id)
        on_behalf_of = None
        if decision and scope.delegators:
            step = session.exec(select(ApprovalStep).where(
                ApprovalStep.request_id == request_id,
                ApprovalStep.status == LevelStatus.PENDING.value)).first()
            if step is not None:
                eligible = [step.approver_id, *(step.escalated_to or [])]
                if actor.employee_id not in eligible:
                    on_behalf_of = next((e for e in eligible if e in scope.delegators), None)
        return Target(request.workflow_id, Stage(request.stage), on_behalf_of)


async def act(
    request_id: int, actor: Actor, sessions: SessionFactory, settings: Settings,
    client: Client | None, update: str, build: Callable[[dict[str, Any]], ActionInput],
    *, decision: bool = False,
) -> ReassignmentState:
    """Shared path of every action: 404 out of scope, build the input (actor from the token,
    plus `on_behalf_of` under a delegation), then the workflow Update."""
    found = await run_in_threadpool(target, sessions, settings, actor, request_id,
                                    decision=decision)
    if found.workflow_id is None:
        raise closed_problem(request_id, found.stage)
    who = {"actor_id": actor.employee_id, "actor_roles": sorted(actor.roles),
           "on_behalf_of": found.on_behalf_of}
    try:
        arg = build(who)
    except ValidationError as exc:
        raise Problem(422, "validation-failed", "The action is not valid",
                      "Fix the fields listed in `errors` and send the action again.",
                      errors=validation_errors(exc.errors())) from exc
    with_nul = sorted(name for name, value in arg.model_dump().items()
                      if isinstance(value, str) and "\x00" in value)
    if with_nul:  # PostgreSQL cannot store it: the activity would retry its write forever
        raise Problem(422, "text-contains-nul", "Text contains a NUL character",
                      f"Remove the NUL character (U+0000) from: {', '.join(with_nul)}.")
    if client is None:
        raise temporal_unavailable_problem()
    return await execute_action(client, request_id=request_id, workflow_id=found.workflow_id,
                                stage=found.stage, update=update, arg=arg)
