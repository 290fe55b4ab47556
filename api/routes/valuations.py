"""Customer valuation refreshes: HR starts one on demand (a Schedule runs one nightly)."""

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
from domain.valuation import ValuationRefreshInput
from domain.workflow_text import valuation_summary
from models.valuation import ValuationRun

router = APIRouter(prefix="/valuations", tags=["customer valuation"])


class ValuationStartIn(BaseModel):
    model_config = {"extra": "forbid"}

    horizon_months: int = Field(default=12, ge=1, le=60)
    label: str | None = Field(default=None, max_length=200)


class ValuationStartedOut(BaseModel):
    workflow_id: str


class ValuationRunOut(BaseModel):
    id: int
    run_key: str
    as_of: datetime
    horizon_months: int
    started_at: datetime
    finished_at: datetime | None
    customers: int
    fitted_customers: int
    note: str | None


class ValuationRunPage(BaseModel):
    items: list[ValuationRunOut]
    total: int
    limit: int
    offset: int


@router.post("", response_model=ValuationStartedOut, status_code=202,
             responses=problem_responses(401, 403, 422, 503))
async def start_valuation(body: ValuationStartIn,
                          actor: Annotated[Actor, permit(Action.VALUATION_RUN)],
                          client: TemporalClientDep,
                          settings: SettingsDep) -> ValuationStartedOut:
    """Refresh every customer's valuation now. Requests already running keep their figures."""
    workflow_id = f"valuation-manual-{uuid.uuid4().hex[:12]}"
    await client.start_workflow(
        "ValuationRefreshWorkflow",
        ValuationRefreshInput(horizon_months=body.horizon_months, label=body.label,
                              trigger="manual"),
        id=workflow_id, task_queue=settings.task_queue,
        static_summary=valuation_summary("manual", body.horizon_months))
    return ValuationStartedOut(workflow_id=workflow_id)


@router.get("", response_model=ValuationRunPage, responses=problem_responses(401, 403))
def list_valuations(
        actor: Annotated[Actor, permit(Action.VALUATION_READ)], session: SessionDep,
                    limit: Annotated[int, Query(ge=1, le=200)] = 50,
                    offset: Annotated[int, Query(ge=0)] = 0) -> ValuationRunPage:
    total = session.exec(select(func.count()).select_from(ValuationRun)).one()
    runs = session.exec(select(ValuationRun).order_by(col(ValuationRun.id).desc())
                        .offset(offset).limit(limit)).all()
    return ValuationRunPage(
        items=[ValuationRunOut.model_validate(r, from_attributes=True) for r in runs],
        total=total, limit=limit, offset=offset)
