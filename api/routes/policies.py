"""Policy versions: HR drafts and publishes; employees read and acknowledge.

Publishing asks every active salesperson to acknowledge the new version. No notification row
is written for that (NotificationRecord belongs to a request); HR follows up with
GET /policies/{id}/acknowledgements, whose `pending` lists who has not acknowledged yet.

Submission uses the newest PUBLISHED version of any name (api.services.reassignments), and a
request keeps its version for life: publishing only changes what new requests use.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from api.deps import SessionDep, SessionFactoryDep, permit
from api.problems import FieldError, Problem, problem_responses, validation_errors
from api.security import Actor
from api.services.scope import Scope
from domain.permissions import Action
from domain.policy import PolicyRules
from models.db import SessionFactory
from models.policies import (
    PolicyError,
    PolicyRulesIn,
    acknowledge,
    acknowledged_at,
    acknowledgement_overview,
    create_draft,
    describe_rules,
    get_version,
    list_versions,
    parse_rules,
    publish,
    update_draft,
)
from models.policy import PolicyStatus, PolicyVersion

RETRIES = 3  # concurrent first writes of one key: the loser retries and sees the winner

T = TypeVar("T")


# --- bodies --------------------------------------------------------------------------------


class PolicyDraftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, examples=["default"],
                      description="versions are numbered per name")
    rules: PolicyRulesIn


class PolicyRulesUpdateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: PolicyRulesIn


class PolicySummaryOut(BaseModel):
    id: int
    name: str
    version: int
    status: PolicyStatus
    created_at: datetime
    published_at: datetime | None
    acknowledged_at: datetime | None = Field(
        description="when the caller acknowledged this version; null: not (yet)")


class PolicyOut(PolicySummaryOut):
    rules: PolicyRules
    summary: list[str] = Field(description="the rules in plain English")


class PolicyPage(BaseModel):
    items: list[PolicySummaryOut]
    total: int
    limit: int
    offset: int


class PublishedOut(BaseModel):
    policy: PolicyOut
    retired_policy_version_ids: list[int]
    awaiting_acknowledgement: int = Field(
        description="active salespeople now asked to acknowledge it (see /acknowledgements)")


class AcknowledgementOut(BaseModel):
    policy_version_id: int
    employee_id: int
    acknowledged_at: datetime
    recorded_now: bool = Field(description="false: acknowledged before; that time is returned")


class AcknowledgedByOut(BaseModel):
    employee_id: int
    employee_no: str
    name: str
    acknowledged_at: datetime


class PendingOut(BaseModel):
    employee_id: int
    employee_no: str
    name: str
    org_unit_id: int


class AcknowledgementsOut(BaseModel):
    policy_version_id: int
    status: PolicyStatus
    acknowledged: list[AcknowledgedByOut]
    pending: list[PendingOut] = Field(
        description="active salespeople who have not acknowledged; empty unless PUBLISHED")
    acknowledged_count: int
    pending_count: int


# --- errors --------------------------------------------------------------------------------


def _invalid(detail: str, errors: list[FieldError]) -> Problem:
    return Problem(422, "validation-failed", "The policy is not valid",
                   f"Nothing was saved. {detail} Each entry in `errors` says what is wrong and "
                   "how to fix it.", errors=errors)


def _problem(exc: PolicyError) -> Problem:
    if exc.kind == "invalid":
        return _invalid(exc.message, [FieldError(field=p.field or None, code=p.code,
                                                 message=p.message, location="body")
                                      for p in exc.problems])
    if exc.kind == "not_found":
        return _not_found_message(exc.message)
    title = _CONFLICT_TITLES.get(exc.code, "The policy version cannot do that")
    return Problem(409, exc.code.lower().replace("_", "-"), title, exc.message)


_CONFLICT_TITLES = {
    "POLICY_IMMUTABLE": "A published or retired policy version never changes",
    "ALREADY_PUBLISHED": "Policy version already published",
    "POLICY_RETIRED": "Policy version retired",
    "NEWER_VERSION_PUBLISHED": "A newer version is already published",
    "POLICY_NOT_PUBLISHED": "Policy version not published",
}


def _not_found_message(detail: str) -> Problem:
    return Problem(404, "policy-not-found", "Policy version not found",
                   f"{detail} List the versions you may see at GET /api/v1/policies.")


def _explained(exc: RequestValidationError) -> Problem:
    """The body's validation errors, with the rules' ones explained by models.policies."""
    raw = exc.errors()
    about_rules = [e for e in raw if tuple(e.get("loc", ()))[:2] == ("body", "rules")]
    errors = validation_errors([e for e in raw if e not in about_rules])
    body = exc.body
    if about_rules and isinstance(body, dict) and "rules" in body:
        try:
            parse_rules(body["rules"])
        except PolicyError as invalid:
            errors += [FieldError(field=p.field or None, code=p.code, message=p.message,
                                  location="body") for p in invalid.problems]
        else:  # cannot happen: the same model decides; keep pydantic's word then
            errors += validation_errors(about_rules)
    else:
        errors += validation_errors(about_rules)
    fields = ", ".join(dict.fromkeys(e.field or e.location or "body" for e in errors))
    return _invalid(f"Fix these fields and send the policy again: {fields}.", errors)


class _PolicyRoute(APIRoute):
    """Answers a body that fails validation with messages that say how to fix the policy."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def explained(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                if not any(tuple(e.get("loc", ()))[:1] == ("body",) for e in exc.errors()):
                    raise
                raise _explained(exc) from exc

        return explained


router = APIRouter(prefix="/policies", tags=["policies"], route_class=_PolicyRoute)


# checked before the body, so 403 comes before 422
HrActor = Annotated[Actor, permit(Action.POLICY_MANAGE)]
PolicyReader = Annotated[Actor, permit(Action.POLICY_READ)]


# --- helpers -------------------------------------------------------------------------------


def _write(sessions: SessionFactory, work: Callable[[Session], T]) -> T:
    """Run `work` in a transaction; retry when a concurrent first write won a unique key."""
    for attempt in range(RETRIES):
        try:
            with sessions() as session:
                return work(session)
        except PolicyError as exc:
            raise _problem(exc) from exc
        except IntegrityError:
            if attempt == RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _summary(policy: PolicyVersion, acked: datetime | None) -> PolicySummaryOut:
    assert policy.id is not None
    return PolicySummaryOut(id=policy.id, name=policy.name, version=policy.version,
                            status=policy.status, created_at=policy.created_at,
                            published_at=policy.published_at, acknowledged_at=acked)


def _out(policy: PolicyVersion, acked: datetime | None) -> PolicyOut:
    rules = policy.parsed_rules()
    return PolicyOut(**_summary(policy, acked).model_dump(), rules=rules,
                     summary=describe_rules(rules))


def _visible(session: Session, actor: Actor, policy_id: int) -> PolicyVersion:
    """The version, or 404 when it does not exist or is a draft the caller may not see."""
    try:
        policy = get_version(session, policy_id)
    except PolicyError as exc:
        raise _problem(exc) from exc
    if policy.status == PolicyStatus.DRAFT and Scope(session, actor).policies() is not None:
        raise _not_found_message(f"There is no policy version {policy_id} that you may see.")
    return policy


# --- routes --------------------------------------------------------------------------------


@router.post("", response_model=PolicyOut, status_code=201,
             responses=problem_responses(401, 403, 422))
def post_policy(body: PolicyDraftIn, actor: HrActor, sessions: SessionFactoryDep) -> PolicyOut:
    """Draft a new version of the policy `name`, numbered 1 + its latest version (HR).

    Figures that make no sense (a share outside 0-100%, a window shorter than the legal
    minimum, an empty approval chain, a reminder after the SLA, a negative duration...) are
    answered 422, listing each problem with its field path and how to fix it.
    """
    policy = _write(sessions, lambda s: create_draft(
        s, name=body.name, rules=body.rules.model_dump(mode="json"),
        actor_id=actor.employee_id))
    return _out(policy, None)


@router.put("/{policy_id}", response_model=PolicyOut,
            responses=problem_responses(401, 403, 404, 409, 422))
def put_policy(policy_id: int, body: PolicyRulesUpdateIn, actor: HrActor,
               sessions: SessionFactoryDep) -> PolicyOut:
    """Replace a DRAFT's rules (HR). A published or retired version is immutable: 409."""
    policy = _write(sessions, lambda s: update_draft(
        s, policy_id, rules=body.rules.model_dump(mode="json"), actor_id=actor.employee_id))
    return _out(policy, None)


@router.post("/{policy_id}/publish", response_model=PublishedOut,
             responses=problem_responses(401, 403, 404, 409))
def post_publish(policy_id: int, actor: HrActor, sessions: SessionFactoryDep) -> PublishedOut:
    """DRAFT -> PUBLISHED (HR); the version of the same name published before is RETIRED.

    New requests are submitted under it from now on; running requests keep their version.
    Every active salesperson is asked to acknowledge it: see `pending` at
    GET /policies/{id}/acknowledgements. Publishing twice, or a retired version: 409.
    """
    done = _write(sessions, lambda s: publish(s, policy_id, actor_id=actor.employee_id))
    return PublishedOut(policy=_out(done.policy, None),
                        retired_policy_version_ids=[p.id for p in done.retired
                                                    if p.id is not None],
                        awaiting_acknowledgement=done.awaiting_acknowledgement)


@router.post("/{policy_id}/acknowledge", response_model=AcknowledgementOut,
             responses={**problem_responses(401, 404, 409),
                        201: {"description": "acknowledged now", "model": AcknowledgementOut}})
def post_acknowledge(policy_id: int,
                     actor: Annotated[Actor, permit(Action.POLICY_ACKNOWLEDGE)],
                     sessions: SessionFactoryDep,
                     response: Response) -> AcknowledgementOut:
    """The caller acknowledges that they read this published version (201).

    Always for the caller themselves (from the token). Repeating it changes nothing and
    returns the first acknowledgement (200). A draft or retired version: 409.
    """
    done = _write(sessions, lambda s: acknowledge(s, policy_id, employee_id=actor.employee_id))
    ack = done.acknowledgement
    response.status_code = 201 if done.recorded_now else 200
    return AcknowledgementOut(policy_version_id=ack.policy_version_id,
                              employee_id=ack.employee_id, acknowledged_at=ack.acknowledged_at,
                              recorded_now=done.recorded_now)


@router.get("", response_model=PolicyPage, responses=problem_responses(401, 403, 422))
def get_policies(
    actor: PolicyReader,
    session: SessionDep,
    name: Annotated[str | None, Query(max_length=100)] = None,
    status: PolicyStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> PolicyPage:
    """Policy versions, newest first, with when the caller acknowledged each.

    Drafts are listed for HR, legal and admin only; asking for status=DRAFT without one of
    those roles is 403.
    """
    may_see_drafts = Scope(session, actor).policies() is None
    if status == PolicyStatus.DRAFT and not may_see_drafts:
        raise Problem(403, "forbidden-role", "Role required",
                      "Draft policies are listed for HR, legal and admin only; leave out "
                      "status=DRAFT to see the published versions.")
    items, total = list_versions(session, include_drafts=may_see_drafts, name=name,
                                 status=status, limit=limit, offset=offset)
    acked = acknowledged_at(session, actor.employee_id,
                            [p.id for p in items if p.id is not None])
    return PolicyPage(items=[_summary(p, acked.get(p.id or 0)) for p in items], total=total,
                      limit=limit, offset=offset)


@router.get("/{policy_id}", response_model=PolicyOut, responses=problem_responses(401, 404))
def get_policy(policy_id: int, actor: PolicyReader, session: SessionDep) -> PolicyOut:
    """One version: its rules, in JSON and in plain English, and whether the caller
    acknowledged it. Drafts: HR, legal and admin only (404 for anyone else)."""
    policy = _visible(session, actor, policy_id)
    return _out(policy, acknowledged_at(session, actor.employee_id, [policy_id]).get(policy_id))


@router.get("/{policy_id}/acknowledgements", response_model=AcknowledgementsOut,
            responses=problem_responses(401, 403, 404))
def get_acknowledgements(policy_id: int, actor: HrActor,
                         session: SessionDep) -> AcknowledgementsOut:
    """Who acknowledged this version and when, and `pending`: the active salespeople (sales
    role, still employed) who have not yet (HR)."""
    try:
        overview = acknowledgement_overview(session, policy_id)
    except PolicyError as exc:
        raise _problem(exc) from exc
    assert overview.policy.id is not None
    acknowledged = [AcknowledgedByOut(employee_id=e.id or 0, employee_no=e.employee_no,
                                      name=e.name, acknowledged_at=at)
                    for e, at in overview.acknowledged]
    pending = [PendingOut(employee_id=e.id or 0, employee_no=e.employee_no, name=e.name,
                          org_unit_id=e.org_unit_id) for e in overview.pending]
    return AcknowledgementsOut(policy_version_id=overview.policy.id,
                               status=overview.policy.status, acknowledged=acknowledged,
                               pending=pending, acknowledged_count=len(acknowledged),
                               pending_count=len(pending))
