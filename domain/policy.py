"""Policy rules and the checks a request must pass before it may start.

Pure: the caller hands in snapshots of the facts, these functions only decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, Field, field_validator, model_validator

from domain.stages import Reason, Role


class ApprovalLevelRule(BaseModel):
    """One level of the approval chain, as the policy sets it."""

    role: Role
    sla: timedelta
    reminder_after: timedelta

    @model_validator(mode="after")
    def _reminder_before_breach(self) -> ApprovalLevelRule:
        if not timedelta(0) < self.reminder_after < self.sla:
            raise ValueError("reminder_after must be positive and shorter than the SLA")
        return self


class PolicyRules(BaseModel):
    """Everything a request's timers and checks depend on. Stored with each policy version."""

    allowed_reasons: list[Reason]
    communication_window: timedelta
    signature_deadline: timedelta  # counted from the end of the communication window
    signature_reminders_before: list[timedelta] = Field(default_factory=list)
    approval_levels: list[ApprovalLevelRule]
    legal_level: ApprovalLevelRule | None = None
    legal_threshold_fen: int = 0  # legal approves when the customers' value reaches this
    protection_period: timedelta
    protection_share_bp: int = Field(ge=0, le=10_000)
    inherited_rate_bp: int = Field(ge=0, le=10_000)
    compensation_pct_of_loss_bp: int = Field(default=0, ge=0, le=10_000)
    cooling_off_max: int = Field(default=2, ge=1)
    cooling_off_window: timedelta = timedelta(days=90)
    # valuation and impact (issue "customer value, income impact and compensation")
    valuation_horizon_months: int = Field(default=12, ge=1, le=60)
    # legal also approves when a customer's value tier is at or above this (A is the top tier)
    legal_tier_threshold: str | None = Field(default=None, pattern="^[ABC]$")
    # ... or when the salesperson's projected loss reaches this
    legal_loss_threshold_fen: int | None = Field(default=None, ge=0)
    # the communication window may not be shorter than this (the policy's own legal minimum)
    legal_minimum_window: timedelta = timedelta(0)
    # compensation alternatives offered beside the lump sum
    compensation_extra_protection: timedelta = timedelta(0)
    compensation_extra_share_bp: int = Field(default=0, ge=0, le=10_000)
    # post-reassignment monitoring flags a case whose customers' revenue fell by more than this
    # (after vs before the transfer); versions stored before it existed read the default
    revenue_drop_flag_bp: int = Field(default=2_000, ge=0, le=10_000)

    @model_validator(mode="after")
    def _durations_make_sense(self) -> PolicyRules:
        zero = timedelta(0)
        if self.communication_window < zero or self.protection_period < zero:
            raise ValueError("communication_window and protection_period must not be negative")
        if self.signature_deadline <= zero:
            raise ValueError("signature_deadline must be positive")
        if self.cooling_off_window <= zero:
            raise ValueError("cooling_off_window must be positive")
        if self.legal_threshold_fen < 0:
            raise ValueError("legal_threshold_fen must not be negative")
        if self.legal_minimum_window < zero or self.compensation_extra_protection < zero:
            raise ValueError("legal_minimum_window and compensation_extra_protection must not "
                             "be negative")
        if self.communication_window < self.legal_minimum_window:
            raise ValueError("communication_window is shorter than the policy's legal minimum "
                             "window; lengthen the window or lower legal_minimum_window")
        if self.protection_share_bp + self.compensation_extra_share_bp > 10_000:
            raise ValueError("protection_share_bp plus compensation_extra_share_bp exceeds "
                             "100%")
        for before in self.signature_reminders_before:
            if not zero < before < self.signature_deadline:
                raise ValueError("signature_reminders_before must be positive and shorter than "
                                 "signature_deadline")
        return self

    @field_validator("approval_levels")
    @classmethod
    def _at_least_one_level(cls, levels: list[ApprovalLevelRule]) -> list[ApprovalLevelRule]:
        if not levels:
            raise ValueError("a policy needs at least one approval level")
        return levels


class Terms(BaseModel):
    """The terms offered to the salesperson who loses the customers. HR may amend them."""

    protection_period: timedelta
    protection_share_bp: int = Field(ge=0, le=10_000)
    inherited_rate_bp: int = Field(ge=0, le=10_000)
    compensation_fen: int = Field(default=0, ge=0)

    @field_validator("protection_period")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("protection_period must not be negative")
        return value


def default_terms(rules: PolicyRules, compensation_fen: int = 0) -> Terms:
    return Terms(
        protection_period=rules.protection_period,
        protection_share_bp=rules.protection_share_bp,
        inherited_rate_bp=rules.inherited_rate_bp,
        compensation_fen=compensation_fen,
    )


# --- facts the checks look at --------------------------------------------------------------


@dataclass(frozen=True)
class EmployeeFacts:
    id: int
    active: bool
    roles: frozenset[Role]
    leave_date: datetime | None = None


@dataclass(frozen=True)
class CustomerFacts:
    id: int
    current_owner_id: int | None
    # start times of earlier reassignments of this customer (effective or still running)
    recent_reassignments: tuple[datetime, ...] = ()
    protection_ends_at: datetime | None = None
    # other requests for this customer that have not yet taken effect or closed
    open_request_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Violation:
    code: str
    message: str
    field: str | None = None


def check_request(
    *,
    rules: PolicyRules,
    reason: Reason,
    from_employee: EmployeeFacts | None,
    to_employee: EmployeeFacts | None,
    customer_ids: list[int],
    customers: dict[int, CustomerFacts],
    now: datetime,
) -> list[Violation]:
    """Return every reason the request may not start; empty means it may."""
    violations: list[Violation] = []
    if reason not in rules.allowed_reasons:
        allowed = ", ".join(r.value for r in rules.allowed_reasons)
        violations.append(Violation("REASON_NOT_ALLOWED",
                                    f"reason {reason} is not allowed; use one of: {allowed}",
                                    "reason"))
    if from_employee is None:
        violations.append(Violation("UNKNOWN_EMPLOYEE", "the current owner does not exist",
                                    "from_employee_id"))
    if to_employee is None:
        violations.append(Violation("UNKNOWN_EMPLOYEE", "the receiving salesperson does not exist",
                                    "to_employee_id"))
    if from_employee and to_employee and from_employee.id == to_employee.id:
        violations.append(Violation("SAME_EMPLOYEE",
                                    "the receiving salesperson must differ from the current owner",
                                    "to_employee_id"))
    if to_employee is not None:
        if not to_employee.active:
            violations.append(Violation("RECEIVER_NOT_ACTIVE",
                                        "the receiving salesperson has left the company",
                                        "to_employee_id"))
        elif Role.SALES not in to_employee.roles:
            violations.append(Violation("RECEIVER_NOT_SALES",
                                        "the receiving employee is not a salesperson",
                                        "to_employee_id"))
    if reason != Reason.EMPLOYEE_DEPARTURE and from_employee is not None and (
        not from_employee.active
    ):
        violations.append(Violation("OWNER_LEFT",
                                    "the current owner has left; use reason EMPLOYEE_DEPARTURE",
                                    "reason"))
    if reason == Reason.EMPLOYEE_DEPARTURE and from_employee is not None and (
        from_employee.active and from_employee.leave_date is None
    ):
        violations.append(Violation("NO_DEPARTURE",
                                    "EMPLOYEE_DEPARTURE needs a leave date on the current owner",
                                    "reason"))
    if not customer_ids:
        violations.append(Violation("NO_CUSTOMERS", "name at least one customer", "customer_ids"))
    if len(set(customer_ids)) != len(customer_ids):
        violations.append(Violation("DUPLICATE_CUSTOMER", "a customer is listed twice",
                                    "customer_ids"))
    for cid in dict.fromkeys(customer_ids):
        facts = customers.get(cid)
        if facts is None:
            violations.append(Violation("UNKNOWN_CUSTOMER", f"customer {cid} does not exist",
                                        "customer_ids"))
            continue
        if from_employee is not None and facts.current_owner_id != from_employee.id:
            violations.append(Violation("NOT_OWNER",
                                        f"customer {cid} is not currently owned by employee "
                                        f"{from_employee.id}", "customer_ids"))
        if facts.protection_ends_at is not None and facts.protection_ends_at > now:
            violations.append(Violation("IN_PROTECTION",
                                        f"customer {cid} is inside a protection period until "
                                        f"{facts.protection_ends_at.isoformat()}",
                                        "customer_ids"))
        if facts.open_request_ids:
            others = ", ".join(str(r) for r in facts.open_request_ids)
            violations.append(Violation("OPEN_REQUEST",
                                        f"customer {cid} is already in open request {others}; "
                                        "withdraw or finish it first", "customer_ids"))
        window_start = now - rules.cooling_off_window
        recent = [t for t in facts.recent_reassignments if t >= window_start]
        if len(recent) >= rules.cooling_off_max:
            window = describe_duration(rules.cooling_off_window)
            violations.append(Violation("COOLING_OFF",
                                        f"customer {cid} was already reassigned {len(recent)} "
                                        f"time(s) within {window} (limit "
                                        f"{rules.cooling_off_max})", "customer_ids"))
    return violations


def describe_duration(value: timedelta) -> str:
    """'90 days', '2 hours', '15 minutes': whole units where they fit, else the exact value."""
    seconds = int(value.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return str(value)
