"""Pydantic models that cross the workflow boundary: inputs, actions, state, activity records.

Tables never cross it; these do (DESIGN.md, "Conventions").
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, field_validator

from domain.policy import PolicyRules, Terms
from domain.stages import Reason, Role, Stage

TASK_QUEUE = "baton"


def workflow_id_for(request_id: int) -> str:
    return f"reassignment-{request_id}"


class ApprovalLevel(BaseModel):
    level: int
    role: Role
    approver_id: int
    sla: timedelta
    reminder_after: timedelta


class ViolationOut(BaseModel):
    code: str
    message: str
    field: str | None = None


class ReassignmentInput(BaseModel):
    request_id: int


class RequestContext(BaseModel):
    """What the workflow needs to run, read once from the database when it starts."""

    request_id: int
    workflow_id: str
    requester_id: int
    from_employee_id: int
    to_employee_id: int
    customer_ids: list[int]
    reason: Reason
    policy_version_id: int
    rules: PolicyRules
    terms: Terms
    chain: list[ApprovalLevel]
    value_fen: int
    violations: list[ViolationOut] = Field(default_factory=list)
    hr_ids: list[int] = Field(default_factory=list)
    # set for EMPLOYEE_DEPARTURE: the owner's leave date, when the handover takes effect
    departure_effective_at: datetime | None = None


# --- human actions (Updates) ---------------------------------------------------------------


class ActionInput(BaseModel):
    """The actor always comes from the API's token, never from a request body."""

    actor_id: int
    actor_roles: list[Role] = Field(default_factory=list)
    comment: str | None = Field(default=None, max_length=2000)
    # set by the API only when the actor holds a delegation from this approver for today
    on_behalf_of: int | None = None


class ReasonedActionInput(ActionInput):
    reason: str = Field(min_length=1, max_length=2000)

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("reason must not be blank")
        return value.strip()


class ReassignApprovalInput(ReasonedActionInput):
    """HR hands the open approval level to another approver (e.g. the approver is absent)."""

    new_approver_id: int
    level: int | None = Field(default=None, description="the open level; checked when given")


class AppealOutcome(StrEnum):
    UPHOLD = "UPHOLD"
    AMEND = "AMEND"
    CANCEL = "CANCEL"


class ResolveAppealInput(ActionInput):
    outcome: AppealOutcome
    amended_terms: Terms | None = None


class SignInput(ActionInput):
    typed_name: str = Field(min_length=1, max_length=200)
    method: str = "session"
    ip: str | None = None
    user_agent: str | None = None
    document_hash: str | None = None
    credential_id: str | None = None


# --- state (Query) -------------------------------------------------------------------------


class LevelStatus(StrEnum):
    WAITING = "WAITING"
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class LevelState(BaseModel):
    level: int
    role: Role
    approver_id: int
    escalated_to: list[int] = Field(default_factory=list)
    status: LevelStatus = LevelStatus.WAITING
    opened_at: datetime | None = None
    reminder_at: datetime | None = None
    due_at: datetime | None = None
    reminded: bool = False
    decided_by: int | None = None
    decided_for: int | None = None  # the approver a delegate decided on behalf of
    decided_at: datetime | None = None
    comment: str | None = None

    @property
    def eligible(self) -> list[int]:
        return [self.approver_id, *self.escalated_to]


class HistoryEntry(BaseModel):
    seq: int
    at: datetime
    event: str
    stage: Stage
    actor_id: int | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class AppealState(BaseModel):
    appellant_id: int
    reason: str
    opened_at: datetime
    outcome: AppealOutcome | None = None
    resolved_by: int | None = None
    resolved_at: datetime | None = None


class ReassignmentState(BaseModel):
    request_id: int
    stage: Stage
    requester_id: int | None = None
    from_employee_id: int | None = None
    to_employee_id: int | None = None
    customer_ids: list[int] = Field(default_factory=list)
    current_level: int | None = None
    levels: list[LevelState] = Field(default_factory=list)
    pending_approvers: list[int] = Field(default_factory=list)
    stage_deadline: datetime | None = None
    terms: Terms | None = None
    appeals: list[AppealState] = Field(default_factory=list)
    report_sha256: str | None = None
    agreement_version: int | None = None
    agreement_sha256: str | None = None  # the version the salesperson must sign
    sealed_sha256: str | None = None
    signed_at: datetime | None = None
    declined_at: datetime | None = None
    effective_at: datetime | None = None
    protection_end: datetime | None = None
    history: list[HistoryEntry] = Field(default_factory=list)


# --- activity records ----------------------------------------------------------------------


class ApprovalWrite(BaseModel):
    level: int
    role: Role
    approver_id: int
    status: LevelStatus
    due_at: datetime | None = None
    escalated_to: list[int] = Field(default_factory=list)
    decided_by: int | None = None
    decided_for: int | None = None
    comment: str | None = None


class AppealWrite(BaseModel):
    number: int  # 1-based, per request
    appellant_id: int
    reason: str
    outcome: AppealOutcome | None = None
    resolved_by: int | None = None
    comment: str | None = None


class SignatureWrite(BaseModel):
    signer_id: int
    decision: str  # SIGNED or DECLINED
    typed_name: str | None = None
    reason: str | None = None
    method: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    document_hash: str | None = None
    credential_id: str | None = None


class OwnershipTransfer(BaseModel):
    workflow_id: str
    request_id: int
    from_employee_id: int
    to_employee_id: int
    customer_ids: list[int]
    effective_at: datetime


class TransitionRecord(BaseModel):
    """One step of the lifecycle, written in one transaction, keyed by (workflow_id, seq)."""

    workflow_id: str
    seq: int
    request_id: int
    at: datetime
    event: str
    from_stage: Stage
    to_stage: Stage
    actor_id: int | None = None
    on_behalf_of: int | None = None
    stage_deadline: datetime | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    approval: ApprovalWrite | None = None
    approval_plan: list[ApprovalWrite] = Field(default_factory=list)
    appeal: AppealWrite | None = None
    signature: SignatureWrite | None = None
    terms: Terms | None = None
    effective_at: datetime | None = None
    protection_end: datetime | None = None
    ownership_transfer: OwnershipTransfer | None = None


class EscalationRequest(BaseModel):
    workflow_id: str
    seq: int
    request_id: int
    at: datetime
    level: int
    pending_approver_id: int
    excluded_ids: list[int]
    stage_deadline: datetime | None = None


class EscalationResult(BaseModel):
    escalation_approver_id: int | None


class Notification(BaseModel):
    workflow_id: str
    key: str  # unique per workflow; a retried activity writes nothing twice
    request_id: int
    kind: str
    message: str
    recipient_ids: list[int] = Field(default_factory=list)
    recipient_role: Role | None = None


class NotificationDeliveryInput(BaseModel):
    """Send the notice (workflow_id, key) by e-mail and to group robots (issue 9)."""

    workflow_id: str
    key: str  # the Notification's key: its in-app records name the recipients
    request_id: int
    kind: str
    # ids, stage codes and ISO times for the templates; free text (a reason) only reaches the
    # recipients' personal e-mail, never a group robot
    params: dict[str, str | int] = Field(default_factory=dict)


class NotificationDeliveryResult(BaseModel):
    sent: int = 0
    failed: int = 0  # gave up for good (e.g. no e-mail address on record)


class ActionRejection(StrEnum):
    """Why an Update validator refused an action. The API maps WRONG_ACTOR to 403, others 409."""

    WRONG_ACTOR = "WRONG_ACTOR"  # acting for someone else, or without the needed role
    WRONG_STAGE = "WRONG_STAGE"
    ALREADY_DONE = "ALREADY_DONE"  # a repeated action
    FOUR_EYES = "FOUR_EYES"  # requester approving, or one person approving two levels
    INVALID = "INVALID"  # the input itself is wrong (e.g. AMEND without terms)
    STALE_DOCUMENT = "STALE_DOCUMENT"  # signing a document version that is no longer current


HTTP_STATUS_FOR_REJECTION = {
    ActionRejection.WRONG_ACTOR: 403,
    ActionRejection.WRONG_STAGE: 409,
    ActionRejection.ALREADY_DONE: 409,
    ActionRejection.FOUR_EYES: 409,
    ActionRejection.INVALID: 422,
    ActionRejection.STALE_DOCUMENT: 409,
}


# --- commission settlement -------------------------------------------------------------------


class SettlementInput(BaseModel):
    trigger: str = "schedule"  # or "manual"
    requested_by: int | None = None
    finalize: bool = True
    grace: timedelta = timedelta(days=3)  # after a month ends, before it is finalised
    skip_grace: bool = False


class PeriodToClose(BaseModel):
    period: str
    not_before: datetime  # the month's end in the org timezone plus the grace period


class SettlementPlan(BaseModel):
    open_period: str
    closed_through: str | None
    to_close: list[PeriodToClose]


class FinalizeRequest(BaseModel):
    period: str
    run_key: str
    trigger: str
    requested_by: int | None = None


class FinalizeResult(BaseModel):
    period: str
    lines_written: int
    statements_finalized: int


class AgreementRef(BaseModel):
    """A rendered agreement version: what a signature must name."""

    version: int
    sha256: str
