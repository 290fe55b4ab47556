"""Commission plans: effective-dated rates per employee, managed by HR."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import SessionDep, SessionFactoryDep, permit
from api.problems import FieldError, Problem, problem_responses
from api.schemas_orders import PlanCreatedOut, PlanIn, PlanOut, PlanPage
from api.security import Actor
from api.services.scope import Scope
from domain.permissions import Action
from models.commission import CommissionPlan
from models.plans import PlanError, create_plan, list_plans

router = APIRouter(prefix="/commission-plans", tags=["commission plans"])

PlanManager = Annotated[Actor, permit(Action.PLANS_MANAGE)]
PlanReader = Annotated[Actor, permit(Action.PLANS_READ)]


def _out(plan: CommissionPlan) -> PlanOut:
    assert plan.id is not None
    return PlanOut(id=plan.id, employee_id=plan.employee_id,
                   effective_from=plan.effective_from, effective_to=plan.effective_to,
                   base_rate_bp=plan.base_rate_bp, inherited_rate_bp=plan.inherited_rate_bp,
                   created_by=plan.created_by, created_at=plan.created_at)


@router.post("", response_model=PlanCreatedOut, status_code=201,
             responses=problem_responses(401, 403, 409, 422))
def post_plan(body: PlanIn, actor: PlanManager, sessions: SessionFactoryDep) -> PlanCreatedOut:
    """Add a plan from `effective_from` on; the plan open at that time ends there.

    A plan must start after the start of the employee's latest plan (409 otherwise): plans are
    appended, history is not rewritten. Commission from `effective_from` on is recomputed in
    the same transaction.
    """
    try:
        with sessions() as session:
            created = create_plan(session, employee_id=body.employee_id,
                                  effective_from=body.effective_from,
                                  base_rate_bp=body.base_rate_bp,
                                  inherited_rate_bp=body.inherited_rate_bp,
                                  created_by=actor.employee_id)
    except PlanError as exc:
        if exc.kind == "conflict":
            raise Problem(409, "plan-not-after-latest", "Plans are appended, not rewritten",
                          exc.message) from exc
        raise Problem(422, "validation-failed", "The plan is not valid", exc.message,
                      errors=[FieldError(field=exc.field, code=exc.code, message=exc.message,
                                         location="body")]) from exc
    return PlanCreatedOut(plan=_out(created.plan),
                          closed_plan=_out(created.closed_plan) if created.closed_plan else None,
                          recomputed_lines=created.recomputed_lines)


@router.get("", response_model=PlanPage, responses=problem_responses(401, 403, 422))
def get_plans(
    actor: PlanReader,
    session: SessionDep,
    employee_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> PlanPage:
    """Plans, newest start first. HR, finance and admin see all; anyone else their own."""
    if Scope(session, actor).plan_employees() is not None:
        if employee_id is not None and employee_id != actor.employee_id:
            raise Problem(403, "forbidden-scope", "Not your plans",
                          "You may see only your own commission plans; leave employee_id out "
                          "or set it to your own employee id.")
        employee_id = actor.employee_id
    items, total = list_plans(session, employee_id=employee_id, limit=limit, offset=offset)
    return PlanPage(items=[_out(p) for p in items], total=total, limit=limit, offset=offset)
