"""Commission settlement runs: HR or finance can start one by hand and list past runs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlmodel import col, func, select

from api.deps import SessionDep, SettingsDep, TemporalClientDep, permit
from api.problems import problem_responses
from api.security import Actor
from domain.permissions import Action
from domain.workflow_dto import SettlementInput
from domain.workflow_text import settlement_summary
from models.commission import SettlementRun

router = APIRouter(prefix="/settlements", tags=["commission settlement"])

SettlementRunner = Annotated[Actor, permit(Action.SETTLEMENT_RUN)]
SettlementReader = Annotated[Actor, permit(Action.SETTLEMENT_READ)]


class SettlementStartIn(BaseModel):
    model_config = {"extra": "forbid"}

    finalize: bool = Field(default=True, description="also finalise months whose grace ended")
    skip_grace: bool = Field(default=False,
                             description="finalise past months now, without waiting for "
                                         "late orders")


class SettlementStartedOut(BaseModel):
    workflow_id: str


class SettlementRunOut(BaseModel):
    id: int
    run_key: str
    open_period: str
    finalized_period: str | None
    trigger: str
    requested_by: int | None
    started_at: datetime
    finished_at: datetime | None
    lines_written: int
    statements_finalized: int


class SettlementRunPage(BaseModel):
    items: list[SettlementRunOut]
    total: int
    limit: int
    offset: int


@router.post("", response_model=SettlementStartedOut, status_code=202,
             responses=problem_responses(401, 403, 503))
async def start_settlement(body: SettlementStartIn, actor: SettlementRunner,
                           client: TemporalClientDep,
                           settings: SettingsDep) -> SettlementStartedOut:
    """Run the monthly settlement now. Watch it in the Temporal UI under the returned id."""
    workflow_id = f"settlement-manual-{uuid.uuid4().hex[:12]}"
    await client.start_workflow(
        "CommissionSettlementWorkflow",
        SettlementInput(trigger="manual", requested_by=actor.employee_id,
                        finalize=body.finalize, skip_grace=body.skip_grace),
        id=workflow_id, task_queue=settings.task_queue,
        static_summary=settlement_summary("manual", actor.employee_id))
    return SettlementStartedOut(workflow_id=workflow_id)


@router.get("", response_model=SettlementRunPage, responses=problem_responses(401, 403))
def list_settlements(actor: SettlementReader, session: SessionDep,
                     limit: Annotated[int, Query(ge=1, le=200)] = 50,
                     offset: Annotated[int, Query(ge=0)] = 0) -> SettlementRunPage:
    total = session.exec(select(func.count()).select_from(SettlementRun)).one()
    runs = session.exec(select(SettlementRun).order_by(col(SettlementRun.id).desc())
                        .offset(offset).limit(limit)).all()
    return SettlementRunPage(
        items=[SettlementRunOut.model_validate(r, from_attributes=True) for r in runs],
        total=total, limit=limit, offset=offset)
