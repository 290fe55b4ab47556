"""Stuck-case monitoring from Temporal's visibility store (issue 9).

Two visibility queries, each also offered as a link that opens the Temporal UI's workflow list
with the query pre-filled:
- overdue: running reassignments whose `BatonStageDeadline` passed. An approval level is
  overdue as soon as its SLA ends (escalation keeps the level's deadline; it only adds an
  approver). The other stages with a deadline end on a timer that the workflow fires itself, so
  they count as stuck only after a grace period: a late one means no worker runs it.
- failing: running workflows of any type whose workflow tasks keep failing or timing out.
  The server sets `TemporalReportedProblems` after
  `system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute` consecutive problems
  (temporal_client.DEV_SERVER_DYNAMIC_CONFIG) and clears it once a task succeeds.

Search attributes hold ids only; names come from the database, through the caller's scope.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar
from urllib.parse import quote

from sqlmodel import Session, col, select
from temporalio.client import Client, WorkflowExecution
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

from api.problems import Problem, temporal_unavailable_problem
from api.security import Actor
from api.services.directory import employees_by_id
from api.services.scope import Scope
from domain.stages import Stage
from domain.workflow_dto import LevelStatus
from models.org import Employee
from models.reassignment import ApprovalStep, ReassignmentRequest
from settings import Settings
from workflows import search_attributes as sa

# a person must act: late as soon as the deadline passes
APPROVAL_STAGES: tuple[Stage, ...] = (Stage.PENDING_APPROVAL,)
# the workflow's own timer ends these; late only when nothing ran it
TIMER_STAGES: tuple[Stage, ...] = (Stage.SCHEDULED, Stage.COMMUNICATION,
                                   Stage.AWAITING_SIGNATURE, Stage.PROTECTION)
DEADLINE_STAGES: tuple[Stage, ...] = APPROVAL_STAGES + TIMER_STAGES
DEFAULT_TIMER_GRACE = timedelta(minutes=15)
# Temporal's system search attribute (server >= 1.28): "category=...", "cause=..." values
REPORTED_PROBLEMS = SearchAttributeKey.for_keyword_list("TemporalReportedProblems")
PROBLEM_CATEGORIES = ("category=WorkflowTaskFailed", "category=WorkflowTaskTimedOut")
VISIBILITY_TIMEOUT = timedelta(seconds=10)
_UNAVAILABLE = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED,
                RPCStatusCode.CANCELLED, RPCStatusCode.RESOURCE_EXHAUSTED}


# --- queries and links ---------------------------------------------------------------------


def rfc3339(moment: datetime) -> str:
    """Whole seconds in UTC, as the visibility query language compares Datetime attributes."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stage_list(stages: Iterable[Stage]) -> str:
    return ", ".join(f"'{Stage(s).value}'" for s in stages)


def overdue_query(now: datetime, stages: Sequence[Stage] = DEADLINE_STAGES,
                  timer_grace: timedelta = DEFAULT_TIMER_GRACE) -> str:
    """Running reassignments past their stage deadline (stage names and a time: no ids)."""
    wanted = [s for s in DEADLINE_STAGES if s in set(stages)]
    if not wanted:
        raise ValueError("no stage with a deadline was asked for")
    approval = [s for s in wanted if s in APPROVAL_STAGES]
    timer = [s for s in wanted if s in TIMER_STAGES]
    groups: list[tuple[list[Stage], datetime]] = []
    if timer_grace == timedelta(0):
        groups.append((wanted, now))
    else:
        groups += [(g, at) for g, at in ((approval, now), (timer, now - timer_grace)) if g]
    clauses = [f"BatonStage IN ({_stage_list(g)}) AND BatonStageDeadline < '{rfc3339(at)}'"
               for g, at in groups]
    condition = clauses[0] if len(clauses) == 1 else " OR ".join(f"({c})" for c in clauses)
    if len(clauses) > 1:
        condition = f"({condition})"
    return f"ExecutionStatus = 'Running' AND {condition}"


def failing_query() -> str:
    """Running workflows (any type) whose workflow tasks keep failing or timing out."""
    categories = ", ".join(f"'{c}'" for c in PROBLEM_CATEGORIES)
    return f"ExecutionStatus = 'Running' AND TemporalReportedProblems IN ({categories})"


def ui_list_link(settings: Settings, query: str) -> str:
    """The Temporal UI's workflow list with `query` pre-filled."""
    base = settings.temporal_ui_url.rstrip("/")
    namespace = quote(settings.temporal_namespace, safe="")
    return f"{base}/namespaces/{namespace}/workflows?query={quote(query, safe='')}"


def ui_workflow_link(settings: Settings, workflow_id: str, run_id: str | None) -> str:
    """One workflow run's page (its history) in the Temporal UI."""
    base = settings.temporal_ui_url.rstrip("/")
    namespace = quote(settings.temporal_namespace, safe="")
    path = f"{base}/namespaces/{namespace}/workflows/{quote(workflow_id, safe='')}"
    return f"{path}/{quote(run_id, safe='')}/history" if run_id else path


# --- what Temporal lists -------------------------------------------------------------------


@dataclass
class OverdueCase:
    workflow_id: str
    run_id: str
    request_id: int | None
    stage: str
    deadline: datetime
    overdue_by: timedelta
    pending_approver_ids: list[int]
    temporal_ui_url: str


@dataclass
class FailingWorkflow:
    workflow_id: str
    run_id: str
    workflow_type: str
    problems: list[str]
    started_at: datetime
    task_queue: str
    request_id: int | None
    temporal_ui_url: str


T = TypeVar("T")


@dataclass
class Listing(Generic[T]):
    query: str
    temporal_ui_url: str
    items: list[T] = field(default_factory=list)
    truncated: bool = False


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


async def _list(client: Client, query: str, limit: int) -> tuple[list[WorkflowExecution], bool]:
    """Up to `limit` executions and whether there were more. Maps outages to 503."""
    try:
        found = [w async for w in client.list_workflows(
            query, limit=limit + 1, page_size=min(limit + 1, 1000),
            rpc_timeout=VISIBILITY_TIMEOUT)]
    except RPCError as exc:
        if exc.status in _UNAVAILABLE:
            raise temporal_unavailable_problem(
                f"The workflow service (Temporal) did not answer the visibility query "
                f"({exc.message}). Try again in a moment.") from exc
        raise Problem(502, "temporal-visibility-error", "The visibility query was refused",
                      f"Temporal refused the query {query!r}: {exc.message}. Are Baton's "
                      "search attributes registered on this namespace (python cli.py dev "
                      "registers them; docker compose: the temporal-init service)?",
                      extra={"query": query}) from exc
    except TimeoutError as exc:
        raise temporal_unavailable_problem(
            "The workflow service (Temporal) did not answer the visibility query in time. "
            "Try again in a moment.") from exc
    return found[:limit], len(found) > limit


async def find_overdue(client: Client, settings: Settings, *, now: datetime,
                       stages: Sequence[Stage] = DEADLINE_STAGES,
                       timer_grace: timedelta = DEFAULT_TIMER_GRACE,
                       limit: int = 100) -> Listing[OverdueCase]:
    query = overdue_query(now, stages, timer_grace)
    listing: Listing[OverdueCase] = Listing(query, ui_list_link(settings, query))
    executions, listing.truncated = await _list(client, query, limit)
    for w in executions:
        attrs = w.typed_search_attributes
        deadline = attrs.get(sa.STAGE_DEADLINE)
        if deadline is None:  # the index moved on between the query and the read
            continue
        if deadline.tzinfo is None:
            deadline = deadline.replace(tzinfo=UTC)
        listing.items.append(OverdueCase(
            workflow_id=w.id, run_id=w.run_id,
            request_id=_int_or_none(attrs.get(sa.REQUEST_ID)),
            stage=attrs.get(sa.STAGE) or "", deadline=deadline, overdue_by=now - deadline,
            pending_approver_ids=[int(p) for p in attrs.get(sa.PENDING_APPROVERS) or []
                                  if p.isdigit()],
            temporal_ui_url=ui_workflow_link(settings, w.id, w.run_id)))
    listing.items.sort(key=lambda c: c.deadline)  # the longest overdue first
    return listing


async def find_failing(client: Client, settings: Settings, *,
                       limit: int = 100) -> Listing[FailingWorkflow]:
    query = failing_query()
    listing: Listing[FailingWorkflow] = Listing(query, ui_list_link(settings, query))
    executions, listing.truncated = await _list(client, query, limit)
    for w in executions:
        attrs = w.typed_search_attributes
        listing.items.append(FailingWorkflow(
            workflow_id=w.id, run_id=w.run_id, workflow_type=w.workflow_type,
            problems=sorted(attrs.get(REPORTED_PROBLEMS) or []), started_at=w.start_time,
            task_queue=w.task_queue, request_id=_int_or_none(attrs.get(sa.REQUEST_ID)),
            temporal_ui_url=ui_workflow_link(settings, w.id, w.run_id)))
    return listing


async def find_stuck(client: Client, settings: Settings, *, now: datetime,
                     stages: Sequence[Stage] = DEADLINE_STAGES,
                     timer_grace: timedelta = DEFAULT_TIMER_GRACE,
                     limit: int = 100) -> tuple[Listing[OverdueCase], Listing[FailingWorkflow]]:
    """Both lists, queried concurrently."""
    return await asyncio.gather(
        find_overdue(client, settings, now=now, stages=stages, timer_grace=timer_grace,
                     limit=limit),
        find_failing(client, settings, limit=limit))


# --- what the database adds, within the caller's scope -------------------------------------


@dataclass
class RequestDetail:
    """A listed case as the database knows it; only for requests in the caller's scope."""

    request: ReassignmentRequest
    pending_step: ApprovalStep | None
    people: dict[int, Employee]  # the parties and approvers, by id


def request_details(session: Session, actor: Actor,
                    pending: Mapping[int, Iterable[int]]) -> dict[int, RequestDetail]:
    """Requests the caller may see (`pending`: request id -> the pending approver ids that
    Temporal listed), with the open approval step and the people's names.

    A request outside the scope (or not in this database) is left out: its item keeps the
    ids that Temporal holds, which carry no names."""
    wanted = set(pending)
    if not wanted:
        return {}
    clause = Scope(session, actor).requests()
    query = select(ReassignmentRequest).where(col(ReassignmentRequest.id).in_(wanted))
    if clause is not None:
        query = query.where(clause)
    requests = {r.id: r for r in session.exec(query).all() if r.id is not None}
    steps = {s.request_id: s for s in session.exec(
        select(ApprovalStep).where(col(ApprovalStep.request_id).in_(requests),
                                   ApprovalStep.status == LevelStatus.PENDING.value)).all()}
    people: set[int] = set()
    for rid, r in requests.items():
        people |= {r.requester_id, r.from_employee_id, r.to_employee_id, *pending[rid]}
        step = steps.get(rid)
        if step is not None:
            people |= {step.approver_id, *step.escalated_to}
    employees = employees_by_id(session, people)
    return {rid: RequestDetail(request=r, pending_step=steps.get(rid), people=employees)
            for rid, r in requests.items()}
