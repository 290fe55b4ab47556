"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from domain.impact import Assessment
from domain.policy import Terms
from domain.stages import Reason, Role, Stage
from domain.workflow_dto import AppealOutcome, ReassignmentState


class _Body(BaseModel):
    # Unknown fields are refused, so nobody can believe that e.g. "actor_id" in a body counts.
    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL cannot store U+0000: refused here, before a workflow's activity would
        # retry its write forever (the API's other bodies: api/problems.py answers 422)
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain the NUL character (U+0000)")
        return value


# --- auth -----------------------------------------------------------------------------------


class LoginIn(_Body):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1000)


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the token expires")
    refresh_token: str = Field(description="exchange it at POST /api/v1/auth/refresh for a new "
                                           "access token (and a new refresh token) before it "
                                           "expires; single use")
    refresh_expires_in: int = Field(description="seconds until the refresh token expires")


class MeOut(BaseModel):
    user_id: int
    username: str
    employee_id: int
    employee_no: str
    name: str
    roles: list[Role]
    org_unit_id: int
    locale: str


# --- reassignments --------------------------------------------------------------------------


def _strip_nonblank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


class SubmitIn(_Body):
    from_employee_id: int = Field(description="the salesperson who owns the customers now (A)")
    to_employee_id: int = Field(description="the salesperson who receives them (B)")
    customer_ids: list[int] = Field(min_length=1, max_length=200)
    reason: Reason
    note: str | None = Field(default=None, max_length=2000)


class RequestOut(BaseModel):
    id: int
    workflow_id: str | None
    requester_id: int
    from_employee_id: int
    to_employee_id: int
    customer_ids: list[int]
    reason: str
    note: str | None
    stage: Stage
    stage_deadline: datetime | None
    policy_version_id: int
    terms: dict[str, Any]
    value_fen: int
    assessment: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    effective_at: datetime | None
    protection_end: datetime | None
    closed_at: datetime | None


class RequestPage(BaseModel):
    items: list[RequestOut]
    total: int
    limit: int
    offset: int


class ApprovalStepOut(BaseModel):
    level: int
    role: str
    approver_id: int
    escalated_to: list[int]
    status: str
    due_at: datetime | None
    decided_by_id: int | None
    decided_at: datetime | None
    comment: str | None


class AppealOut(BaseModel):
    number: int
    appellant_id: int
    reason: str
    opened_at: datetime
    status: str
    resolved_by_id: int | None
    resolved_at: datetime | None
    resolution_comment: str | None


class SignatureOut(BaseModel):
    signer_id: int
    decision: str
    at: datetime
    typed_name: str | None
    reason: str | None
    method: str | None
    document_hash: str | None


class RequestDetail(RequestOut):
    approval_steps: list[ApprovalStepOut]
    appeals: list[AppealOut]
    signature: SignatureOut | None
    live: ReassignmentState | None = Field(
        description="the workflow's own view (query get_state); null when unavailable")
    live_error: str | None = None


class AuditEventOut(BaseModel):
    chain_index: int
    occurred_at: datetime
    event_type: str
    workflow_id: str | None
    transition_seq: int | None
    actor_id: int | None
    on_behalf_of: int | None
    from_stage: str | None
    to_stage: str | None
    detail: dict[str, Any]
    # what, before/after and why; None on events written before migration 0005
    entity_type: str | None = None
    entity_id: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    reason: str | None = None
    prev_hash: str
    hash: str


class AuditList(BaseModel):
    request_id: int
    items: list[AuditEventOut]


# --- actions (the actor is the token's, never the body's) ----------------------------------


class ApproveIn(_Body):
    comment: str | None = Field(default=None, max_length=2000)


class ReasonIn(_Body):
    reason: str = Field(min_length=1, max_length=2000)

    _nonblank = field_validator("reason")(_strip_nonblank)


class ReassignApprovalIn(_Body):
    new_approver_id: int = Field(description="the employee who decides the open level now")
    level: int | None = Field(default=None, ge=1,
                              description="the open level, as a check; leave out to mean it")
    reason: str = Field(min_length=1, max_length=2000)

    _nonblank = field_validator("reason")(_strip_nonblank)


class ResolveAppealIn(_Body):
    outcome: AppealOutcome
    amended_terms: Terms | None = Field(default=None, description="required when outcome is AMEND")
    comment: str | None = Field(default=None, max_length=2000)


class SignIn(_Body):
    """Signing needs a fresh re-authentication: a one-time code (POST .../sign/otp) or a
    passkey assertion (options from POST .../sign/passkey/options), both for this document."""

    typed_name: str = Field(min_length=1, max_length=200,
                            description="your full name, typed as your statement of consent")
    document_sha256: str = Field(pattern=r"^[0-9a-f]{64}$",
                                 description="SHA-256 (hex) of the agreement version you sign")
    method: Literal["otp", "passkey"]
    otp_code: str | None = Field(default=None, pattern=r"^[0-9]{6}$",
                                 description="the code sent to you (method otp)")
    passkey_assertion: dict[str, Any] | None = Field(
        default=None, description="navigator.credentials.get()'s AuthenticationCredential as "
                                  "JSON (method passkey)")

    _nonblank = field_validator("typed_name")(_strip_nonblank)

    @model_validator(mode="after")
    def _proof_matches_method(self) -> SignIn:
        if self.method == "otp" and (self.otp_code is None or self.passkey_assertion):
            raise ValueError("method otp needs otp_code (and no passkey_assertion)")
        if self.method == "passkey" and (self.passkey_assertion is None or self.otp_code):
            raise ValueError("method passkey needs passkey_assertion (and no otp_code)")
        return self


# --- health ---------------------------------------------------------------------------------


class HealthOut(BaseModel):
    status: Literal["ok", "degraded", "down"]
    database: Literal["ok", "unavailable"]
    temporal: Literal["ok", "unavailable"]


class PreviewOut(BaseModel):
    """What a submit would record, without recording anything."""

    policy_version_id: int
    terms: Terms
    assessment: Assessment
