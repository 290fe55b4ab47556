"""Lifecycle stages of a reassignment request (DESIGN.md, "Reassignment lifecycle")."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    SUBMITTED = "SUBMITTED"
    PENDING_APPROVAL = "PENDING_APPROVAL"
    # departure handover only: approved, waiting for the owner's leave date
    SCHEDULED = "SCHEDULED"
    COMMUNICATION = "COMMUNICATION"
    APPEAL_REVIEW = "APPEAL_REVIEW"
    AWAITING_SIGNATURE = "AWAITING_SIGNATURE"
    EFFECTIVE = "EFFECTIVE"
    PROTECTION = "PROTECTION"
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"
    WITHDRAWN = "WITHDRAWN"
    CANCELLED = "CANCELLED"
    DECLINED = "DECLINED"
    EXPIRED_NO_CONSENT = "EXPIRED_NO_CONSENT"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STAGES

    @property
    def before_effective(self) -> bool:
        """Withdraw and cancel are allowed only while ownership has not moved."""
        return self in PRE_EFFECTIVE_STAGES


TERMINAL_STAGES = frozenset(
    {
        Stage.COMPLETED,
        Stage.REJECTED,
        Stage.WITHDRAWN,
        Stage.CANCELLED,
        Stage.DECLINED,
        Stage.EXPIRED_NO_CONSENT,
    }
)

PRE_EFFECTIVE_STAGES = frozenset(
    {
        Stage.SUBMITTED,
        Stage.PENDING_APPROVAL,
        Stage.SCHEDULED,
        Stage.COMMUNICATION,
        Stage.APPEAL_REVIEW,
        Stage.AWAITING_SIGNATURE,
    }
)


class Reason(StrEnum):
    """Reasons a policy may allow. EMPLOYEE_DEPARTURE follows the handover path."""

    TERRITORY_REALIGNMENT = "TERRITORY_REALIGNMENT"
    PERFORMANCE = "PERFORMANCE"
    WORKLOAD_BALANCING = "WORKLOAD_BALANCING"
    CUSTOMER_REQUEST = "CUSTOMER_REQUEST"
    EMPLOYEE_DEPARTURE = "EMPLOYEE_DEPARTURE"


class Role(StrEnum):
    SALES = "sales"
    MANAGER = "manager"
    DIRECTOR = "director"
    HR = "hr"
    LEGAL = "legal"
    FINANCE = "finance"
    ADMIN = "admin"
