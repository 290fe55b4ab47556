"""Reassignment requests: idempotent submission, listing, detail, audit trail.

The functions that touch the database are sync and take a session factory or a session; the
routes run them in the thread pool. None of them holds a transaction while Temporal is awaited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.problems import FieldError, Problem, temporal_unavailable_problem
from api.schemas import (
    AppealOut,
    ApprovalStepOut,
    AuditEventOut,
    RequestOut,
    RequestPage,
    SignatureOut,
    SubmitIn,
)
from api.security import Actor
from api.services.scope import Scope, request_not_found
from domain import workflow_text
from domain.impact import Assessment
from domain.policy import PolicyRules, Terms, check_request, default_terms
from domain.stages import Stage
from domain.workflow_dto import ReassignmentInput
from models.assessment import build_assessment
from models.audit import AuditEvent
from models.db import SessionFactory
from models.facts import customer_facts, employee_facts
from models.policy import PolicyStatus, PolicyVersion
from models.reassignment import (
    Appeal,
    ApprovalStep,
    ReassignmentRequest,
    RequestCustomer,
    RequestDocument,
    SignatureRecord,
)
from models.submission import canonical_hash, find_by_key, insert_request
from settings import Settings
from workflows import search_attributes

WORKFLOW_TYPE = "ReassignmentWorkflow"  # by name: the API never imports workflow code
VALUE_WINDOW = timedelta(days=365)
# clock skew allowed between the API host and the Temporal server
STALE_RUN_MARGIN = timedelta(seconds=5)

log = logging.getLogger(__name__)


def payload_hash(body: SubmitIn) -> str:
    """SHA-256 of the body's canonical JSON: the same request always hashes the same."""
    return canonical_hash(body.model_dump(mode="json"))


def to_out(request: ReassignmentRequest) -> RequestOut:
    return RequestOut.model_validate(request, from_attributes=True)


@dataclass(frozen=True)
class Submission:
    request: RequestOut
    created: bool  # False: an earlier submit with the same Idempotency-Key

    @property
    def needs_start(self) -> bool:
        # Past SUBMITTED, the workflow's own activities moved it: it certainly runs or ran.
        return self.request.stage == Stage.SUBMITTED


def _find_by_key(session: Session, requester_id: int, key: str) -> ReassignmentRequest | None:
    return find_by_key(session, requester_id, key)


def _repeat(existing: ReassignmentRequest, digest: str) -> Submission:
    if existing.payload_hash != digest:
        raise Problem(
            409, "idempotency-key-reused", "Idempotency-Key reused with a different body",
            f"Idempotency-Key was already used for request {existing.id} with a different body. "
            "Send the same body to get that request back, or use a new key for a new request.",
            extra={"request_id": existing.id},
        )
    return Submission(request=to_out(existing), created=False)


def newest_published_policy(session: Session) -> PolicyVersion | None:
    return session.exec(
        select(PolicyVersion)
        .where(PolicyVersion.status == PolicyStatus.PUBLISHED)
        .order_by(col(PolicyVersion.published_at).desc(), col(PolicyVersion.id).desc())
    ).first()


def submit_request(
    sessions: SessionFactory, actor: Actor, body: SubmitIn, idempotency_key: str,
    *, now: datetime | None = None,
) -> Submission:
    """Validate and record a request, or return the one this key already made.

    The route checked the role; problems (403, 409, 422) are raised before anything is written.
    """
    now = now or datetime.now(UTC)
    digest = payload_hash(body)
    try:
        with sessions() as session:
            existing = _find_by_key(session, actor.employee_id, idempotency_key)
            if existing is not None:
                return _repeat(existing, digest)
            request = _validate_and_insert(session, actor, body, idempotency_key, digest, now)
            session.flush()  # a unique-key race surfaces here, still inside the try
            out = to_out(request)
    except IntegrityError:
        # Two submits with one key raced; the other one won. Answer as a repeat.
        with sessions() as session:
            existing = _find_by_key(session, actor.employee_id, idempotency_key)
            if existing is None:
                raise
            return _repeat(existing, digest)
    return Submission(request=out, created=True)


def preview_request(sessions: SessionFactory, actor: Actor, body: SubmitIn,
                    *, now: datetime | None = None) -> tuple[int, Terms, Assessment]:
    """Everything a submit would check and store, writing nothing: (policy id, terms, figures)."""
    now = now or datetime.now(UTC)
    with sessions() as session:
        policy, rules = _validate(session, actor, body, now)
        terms, assessment = _assessed_terms(session, body, rules, now)
        assert policy.id is not None
        return policy.id, terms, assessment


def _assessed_terms(session: Session, body: SubmitIn, rules: PolicyRules,
                    now: datetime) -> tuple[Terms, Assessment]:
    customer_ids = list(dict.fromkeys(body.customer_ids))
    assessment = build_assessment(session, owner_id=body.from_employee_id,
                                  customer_ids=customer_ids, rules=rules,
                                  terms=default_terms(rules), as_of=now)
    # the offered terms carry the suggested compensation; the figures are stored alongside
    terms = assessment.suggested.terms
    return terms, assessment


def _validate(session: Session, actor: Actor, body: SubmitIn,
              now: datetime) -> tuple[PolicyVersion, PolicyRules]:
    policy = newest_published_policy(session)
    if policy is None or policy.id is None:
        raise Problem(409, "no-published-policy", "No published policy",
                      "No reassignment policy is published, so no request can start. Ask HR "
                      "to publish a policy version.")
    rules = policy.parsed_rules()
    from_facts = employee_facts(session, body.from_employee_id)
    # An unknown owner is reported with the other violations below, not as a scope refusal.
    if from_facts is not None and not Scope(session, actor).may_submit_for(
            body.from_employee_id):
        raise Problem(403, "out-of-scope", "Outside your org unit",
                      f"Employee {body.from_employee_id} is outside your org unit, so you may "
                      "not move their customers. Ask their manager or HR.")
    violations = check_request(
        rules=rules,
        reason=body.reason,
        from_employee=from_facts,
        to_employee=employee_facts(session, body.to_employee_id),
        customer_ids=body.customer_ids,
        customers=customer_facts(session, body.customer_ids),
        now=now,
    )
    if violations:
        summary = "; ".join(v.message for v in violations)
        raise Problem(
            422, "policy-violation", "The request breaks the reassignment policy",
            f"The request was not recorded: {summary}. Fix these and submit again (the same "
            "Idempotency-Key may be reused once the body is fixed, as nothing was stored).",
            errors=[FieldError(field=v.field, code=v.code, message=v.message)
                    for v in violations],
        )
    return policy, rules


def _validate_and_insert(
    session: Session, actor: Actor, body: SubmitIn, key: str, digest: str, now: datetime,
) -> ReassignmentRequest:
    policy, rules = _validate(session, actor, body, now)
    assert policy.id is not None
    terms, assessment = _assessed_terms(session, body, rules, now)
    return insert_request(
        session, requester_id=actor.employee_id, from_employee_id=body.from_employee_id,
        to_employee_id=body.to_employee_id, customer_ids=body.customer_ids, reason=body.reason,
        note=body.note, key=key, digest=digest, policy_version_id=policy.id, terms=terms,
        assessment=assessment, now=now)


async def start_workflow(
    client: Client, settings: Settings, request: RequestOut, *, fresh: bool
) -> None:
    """Start the request's workflow; already started (or finished) is success.

    REJECT_DUPLICATE: a repeat submit long after the workflow closed must not run it again.
    `fresh` says the request was just created, so an existing run must be younger than it.
    Raises RPCError when Temporal cannot be reached.
    """
    assert request.workflow_id is not None
    try:
        await client.start_workflow(
            WORKFLOW_TYPE,
            ReassignmentInput(request_id=request.id),
            id=request.workflow_id,
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=search_attributes.initial(
                request_id=request.id,
                customer_ids=request.customer_ids,
                from_employee_id=request.from_employee_id,
                to_employee_id=request.to_employee_id,
            ),
            # the Temporal UI's summary: ids and codes only (domain/workflow_text.py)
            static_summary=workflow_text.reassignment_summary(
                request.id, len(request.customer_ids), request.from_employee_id,
                request.to_employee_id),
            static_details=workflow_text.reassignment_details(
                request_id=request.id, requester_id=request.requester_id,
                from_employee_id=request.from_employee_id,
                to_employee_id=request.to_employee_id, customer_ids=request.customer_ids,
                reason=request.reason, policy_version_id=request.policy_version_id),
        )
    except WorkflowAlreadyStartedError:
        if fresh:
            await _refuse_stale_workflow(client, request)


async def start_submitted(client: Client | None, settings: Settings,
                          submission: Submission) -> None:
    """After a submit: start the request's workflow unless it certainly runs or ran.

    The row is committed first: if Temporal is down it stays SUBMITTED, and a retry with the
    same Idempotency-Key finds it and starts the workflow. Raises the 503 problem (with the
    saved request's id) when Temporal cannot be reached.
    """
    if not submission.needs_start:
        return
    out = submission.request
    retry = (f"Request {out.id} was saved, but its workflow could not be started. Send "
             "the same request again with the same Idempotency-Key to start it.")
    if client is None:
        raise temporal_unavailable_problem(retry).with_extra(request_id=out.id)
    try:
        await start_workflow(client, settings, out, fresh=submission.created)
    except RPCError as exc:
        raise temporal_unavailable_problem(f"{retry} ({exc.message})").with_extra(
            request_id=out.id) from exc


async def _refuse_stale_workflow(client: Client, request: RequestOut) -> None:
    """A run older than the request belongs to another database's request with the same id
    (e.g. the database was reset but Temporal kept its history). Say so instead of
    silently leaving the new request SUBMITTED forever.
    """
    assert request.workflow_id is not None
    try:
        described = await client.get_workflow_handle(request.workflow_id).describe()
    except RPCError:
        return  # cannot tell; a concurrent repeat submit may simply have started it
    if described.start_time >= request.created_at - STALE_RUN_MARGIN:
        return  # a concurrent repeat submit started it: fine
    log.error("workflow %s already exists (started %s) before request %s was created (%s)",
              request.workflow_id, described.start_time, request.id, request.created_at)
    raise Problem(
        500, "workflow-id-collision", "Workflow id already in use",
        f"Request {request.id} was saved, but Temporal already holds workflow "
        f"{request.workflow_id}, started {described.start_time.isoformat()}, before this "
        "request existed. The database and the Temporal namespace are out of step (was the "
        "database reset while Temporal kept its history?). An operator must fix this; "
        "retrying will not help.",
        extra={"request_id": request.id},
    )


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestFilters:
    stage: Stage | None = None
    from_employee_id: int | None = None
    to_employee_id: int | None = None
    customer_id: int | None = None
    requester_id: int | None = None


def list_requests(
    session: Session, scope: Scope, filters: RequestFilters, limit: int, offset: int
) -> RequestPage:
    conditions = []
    clause = scope.requests()
    if clause is not None:
        conditions.append(clause)
    if filters.stage is not None:
        conditions.append(ReassignmentRequest.stage == filters.stage)
    if filters.from_employee_id is not None:
        conditions.append(ReassignmentRequest.from_employee_id == filters.from_employee_id)
    if filters.to_employee_id is not None:
        conditions.append(ReassignmentRequest.to_employee_id == filters.to_employee_id)
    if filters.requester_id is not None:
        conditions.append(ReassignmentRequest.requester_id == filters.requester_id)
    if filters.customer_id is not None:
        conditions.append(col(ReassignmentRequest.id).in_(
            select(RequestCustomer.request_id).where(
                RequestCustomer.customer_id == filters.customer_id)
        ))
    total = session.exec(
        select(func.count()).select_from(ReassignmentRequest).where(*conditions)
    ).one()
    rows = session.exec(
        select(ReassignmentRequest).where(*conditions)
        .order_by(col(ReassignmentRequest.id).desc()).limit(limit).offset(offset)
    ).all()
    return RequestPage(items=[to_out(r) for r in rows], total=int(total), limit=limit,
                       offset=offset)


def get_existing(session: Session, request_id: int) -> ReassignmentRequest:
    request = session.get(ReassignmentRequest, request_id)
    if request is None:
        raise request_not_found(request_id)
    return request


@dataclass(frozen=True)
class DetailRecord:
    request: RequestOut
    approval_steps: list[ApprovalStepOut]
    appeals: list[AppealOut]
    signature: SignatureOut | None


def detail_record(scope: Scope, request_id: int) -> DetailRecord:
    session = scope.session
    request = scope.request(request_id)
    steps = session.exec(select(ApprovalStep).where(ApprovalStep.request_id == request_id)
                         .order_by(col(ApprovalStep.level))).all()
    appeals = session.exec(select(Appeal).where(Appeal.request_id == request_id)
                           .order_by(col(Appeal.number))).all()
    signature = session.exec(select(SignatureRecord)
                             .where(SignatureRecord.request_id == request_id)).first()
    return DetailRecord(
        request=to_out(request),
        approval_steps=[ApprovalStepOut.model_validate(s, from_attributes=True) for s in steps],
        appeals=[AppealOut.model_validate(a, from_attributes=True) for a in appeals],
        signature=SignatureOut.model_validate(signature, from_attributes=True)
        if signature else None,
    )


def agreement_progress(session: Session, request_id: int) -> tuple[Stage, str | None]:
    """The stored stage and the newest agreement's SHA-256 (None before one is rendered): what a
    signer waiting for the agreement checks, two indexed reads, no audit (nothing is shown)."""
    stage = session.exec(select(ReassignmentRequest.stage)
                         .where(ReassignmentRequest.id == request_id)).one()
    sha = session.exec(select(RequestDocument.sha256)
                       .where(RequestDocument.request_id == request_id,
                              RequestDocument.kind == "AGREEMENT")
                       .order_by(col(RequestDocument.version).desc()).limit(1)).first()
    return Stage(stage), sha


def audit_events(scope: Scope, request_id: int) -> list[AuditEventOut]:
    session = scope.session
    scope.request(request_id)
    events = session.exec(select(AuditEvent).where(AuditEvent.request_id == request_id)
                          .order_by(col(AuditEvent.chain_index))).all()
    return [AuditEventOut.model_validate(e, from_attributes=True) for e in events]
