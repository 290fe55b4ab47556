"""Stuck-case monitoring: `GET /api/v1/monitor/stuck` (api/services/monitor.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import SessionFactoryDep, SettingsDep, TemporalClientDep, permit
from api.problems import FieldError, Problem, problem_responses
from api.security import Actor
from api.services import monitor
from domain.permissions import Action
from domain.stages import Stage
from models.db import SessionFactory

router = APIRouter(prefix="/monitor", tags=["monitoring"])


class PersonRef(BaseModel):
    id: int
    name: str | None = Field(description="from the database; null when unknown")


class CaseRecord(BaseModel):
    """The request as the database holds it (only for requests in the caller's scope)."""

    stage: str
    requester: PersonRef
    from_employee: PersonRef
    to_employee: PersonRef
    approval_level: int | None = Field(description="the open approval level, if any")
    approver: PersonRef | None
    escalated_to: list[PersonRef]
    baton_url: str = Field(description="the case page in Baton's HR pages")


class OverdueItem(BaseModel):
    workflow_id: str
    run_id: str
    request_id: int | None
    stage: str = Field(description="BatonStage as Temporal indexes it")
    deadline: datetime = Field(description="BatonStageDeadline, UTC")
    overdue_by_seconds: int
    pending_approver_ids: list[int]
    pending_approvers: list[PersonRef] = Field(
        description="with names when the request is in the caller's scope, else ids only")
    temporal_ui_url: str
    request: CaseRecord | None = Field(
        description="null when the request is outside the caller's scope or not in the "
                    "database")


class FailingItem(BaseModel):
    workflow_id: str
    run_id: str
    workflow_type: str
    problems: list[str] = Field(description="TemporalReportedProblems, e.g. "
                                            "category=WorkflowTaskFailed")
    started_at: datetime
    task_queue: str
    request_id: int | None
    temporal_ui_url: str


class OverdueSection(BaseModel):
    query: str = Field(description="the exact visibility query that was run")
    temporal_ui_url: str = Field(description="the Temporal UI's list with that query")
    truncated: bool = Field(description="more matched than `limit`")
    items: list[OverdueItem]


class FailingSection(BaseModel):
    query: str
    temporal_ui_url: str
    truncated: bool
    items: list[FailingItem]


class StuckOut(BaseModel):
    checked_at: datetime
    overdue: OverdueSection
    failing: FailingSection


def _enrich(sessions: SessionFactory, actor: Actor,
            overdue: monitor.Listing[monitor.OverdueCase]) -> list[OverdueItem]:
    pending = {c.request_id: c.pending_approver_ids for c in overdue.items
               if c.request_id is not None}
    with sessions() as session:
        details = monitor.request_details(session, actor, pending)
    items = []
    for case in overdue.items:
        detail = details.get(case.request_id) if case.request_id is not None else None
        names = {i: e.name for i, e in detail.people.items()} if detail is not None else {}

        def person(employee_id: int, names: dict[int, str] = names) -> PersonRef:
            return PersonRef(id=employee_id, name=names.get(employee_id))

        record = None
        if detail is not None:
            r, step = detail.request, detail.pending_step
            record = CaseRecord(
                stage=Stage(r.stage).value,
                requester=person(r.requester_id), from_employee=person(r.from_employee_id),
                to_employee=person(r.to_employee_id),
                approval_level=step.level if step is not None else None,
                approver=person(step.approver_id) if step is not None else None,
                escalated_to=[person(e) for e in step.escalated_to] if step is not None else [],
                baton_url=f"/app/hr/cases/{r.id}")
        items.append(OverdueItem(
            workflow_id=case.workflow_id, run_id=case.run_id, request_id=case.request_id,
            stage=case.stage, deadline=case.deadline,
            overdue_by_seconds=max(int(case.overdue_by.total_seconds()), 0),
            pending_approver_ids=case.pending_approver_ids,
            pending_approvers=[person(p) for p in case.pending_approver_ids],
            temporal_ui_url=case.temporal_ui_url, request=record))
    return items


@router.get("/stuck", response_model=StuckOut, responses=problem_responses(401, 403, 422, 502,
                                                                             503))
async def stuck(actor: Annotated[Actor, permit(Action.MONITOR_STUCK)],
                client: TemporalClientDep, settings: SettingsDep, sessions: SessionFactoryDep,
                stage: Annotated[list[Stage] | None, Query(
                    description="Only these stages (repeat the parameter). Stages with a "
                                "deadline: PENDING_APPROVAL, SCHEDULED, COMMUNICATION, "
                                "AWAITING_SIGNATURE, PROTECTION. Default: all of them.")] = None,
                grace_minutes: Annotated[int, Query(
                    ge=0, le=7 * 24 * 60,
                    description="Stages that end on the workflow's own timer (all but "
                                "PENDING_APPROVAL) count only this long after their deadline.",
                )] = int(monitor.DEFAULT_TIMER_GRACE.total_seconds() // 60),
                limit: Annotated[int, Query(ge=1, le=500, description="per section")] = 100,
                ) -> StuckOut:
    """Cases overdue in their stage and workflows whose tasks keep failing, from Temporal's
    visibility store, each with a link into the Temporal UI. Names come from the database and
    only for requests in your scope; Temporal holds ids only."""
    wanted = list(dict.fromkeys(stage or monitor.DEADLINE_STAGES))
    without = [s.value for s in wanted if s not in monitor.DEADLINE_STAGES]
    if without:
        raise Problem(422, "validation-failed", "Stage without a deadline",
                      f"Stage(s) {', '.join(without)} have no deadline, so nothing in them is "
                      "overdue. Ask for stages among: "
                      + ", ".join(s.value for s in monitor.DEADLINE_STAGES) + ".",
                      errors=[FieldError(field="stage", code="no_deadline", location="query",
                                         message=f"{v} has no deadline") for v in without])
    now = datetime.now(UTC)
    overdue, failing = await monitor.find_stuck(
        client, settings, now=now, stages=wanted, timer_grace=timedelta(minutes=grace_minutes),
        limit=limit)
    items = await run_in_threadpool(_enrich, sessions, actor, overdue)
    return StuckOut(
        checked_at=now,
        overdue=OverdueSection(query=overdue.query, temporal_ui_url=overdue.temporal_ui_url,
                               truncated=overdue.truncated, items=items),
        failing=FailingSection(query=failing.query, temporal_ui_url=failing.temporal_ui_url,
                               truncated=failing.truncated,
                               items=[FailingItem(**vars(f)) for f in failing.items]))
