"""Approval delegation: an approver lets a colleague decide for them over a date range.

Decisions taken under a delegation are recorded "on behalf of" the approver (the audit event's
`on_behalf_of` and the approval step's `decided_on_behalf_of_id`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.deps import SessionDep, SettingsDep, permit
from api.problems import FieldError, Problem, problem_responses
from api.security import Actor
from api.services.scope import org_today
from domain.permissions import Action
from models.delegation import (
    ApprovalDelegation,
    DelegationError,
    create_delegation,
    delegations_of,
    revoke_delegation,
)

router = APIRouter(prefix="/me/delegations", tags=["delegations"])

Delegator = Annotated[Actor, permit(Action.OWN_DELEGATIONS)]


class DelegationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delegate_id: int = Field(description="the colleague who decides for you")
    starts_on: date = Field(description="first day, in the organisation's time zone")
    ends_on: date = Field(description="last day (included)")
    reason: str = Field(min_length=1, max_length=500, examples=["annual leave"])

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class DelegationOut(BaseModel):
    id: int
    delegator_id: int
    delegate_id: int
    starts_on: date
    ends_on: date
    reason: str
    created_at: datetime
    revoked_at: datetime | None
    active_today: bool


class DelegationList(BaseModel):
    given: list[DelegationOut]
    received: list[DelegationOut]


def _out(delegation: ApprovalDelegation, today: date) -> DelegationOut:
    assert delegation.id is not None
    active = (delegation.revoked_at is None
              and delegation.starts_on <= today <= delegation.ends_on)
    return DelegationOut(id=delegation.id, delegator_id=delegation.delegator_id,
                         delegate_id=delegation.delegate_id, starts_on=delegation.starts_on,
                         ends_on=delegation.ends_on, reason=delegation.reason,
                         created_at=delegation.created_at, revoked_at=delegation.revoked_at,
                         active_today=active)


@router.post("", response_model=DelegationOut, status_code=201,
             responses=problem_responses(401, 403, 422))
def post_delegation(body: DelegationIn, actor: Delegator, session: SessionDep,
                    settings: SettingsDep) -> DelegationOut:
    """Let a colleague approve or reject in your place from `starts_on` to `ends_on`."""
    today = org_today(settings.org_timezone)
    try:
        delegation = create_delegation(session, delegator_id=actor.employee_id,
                                       delegate_id=body.delegate_id, starts_on=body.starts_on,
                                       ends_on=body.ends_on, reason=body.reason, today=today)
    except DelegationError as exc:
        raise Problem(422, "delegation-invalid", "The delegation is not valid", exc.message,
                      errors=[FieldError(field=exc.field, code=exc.code, message=exc.message,
                                         location="body")]) from exc
    return _out(delegation, today)


@router.get("", response_model=DelegationList, responses=problem_responses(401, 403))
def get_delegations(actor: Delegator, session: SessionDep,
                    settings: SettingsDep) -> DelegationList:
    """Delegations you gave and received, newest first."""
    today = org_today(settings.org_timezone)
    rows = delegations_of(session, actor.employee_id)
    return DelegationList(
        given=[_out(d, today) for d in rows if d.delegator_id == actor.employee_id],
        received=[_out(d, today) for d in rows if d.delegate_id == actor.employee_id])


@router.delete("/{delegation_id}", status_code=204, response_class=Response,
               responses=problem_responses(401, 403, 404))
def delete_delegation(delegation_id: int, actor: Delegator, session: SessionDep) -> Response:
    """End a delegation you gave, at once. Decisions already taken under it stay recorded."""
    delegation = session.get(ApprovalDelegation, delegation_id)
    if delegation is None or delegation.delegator_id != actor.employee_id:
        raise Problem(404, "delegation-not-found", "Delegation not found",
                      f"You gave no delegation {delegation_id}; list yours at "
                      "GET /api/v1/me/delegations.")
    revoke_delegation(session, delegation, actor.employee_id)
    return Response(status_code=204)
