"""Commission plans, commission lines and monthly statements."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


class CommissionPlan(SQLModel, table=True):
    """An employee's rates from `effective_from` (inclusive) to `effective_to` (exclusive)."""

    __tablename__ = "commission_plan"
    __table_args__ = (Index("ix_plan_employee_from", "employee_id", "effective_from"),)

    id: int | None = Field(default=None, primary_key=True)
    employee_id: int = Field(foreign_key="employee.id")
    effective_from: datetime = Field(sa_type=UTCDateTime)
    effective_to: datetime | None = Field(default=None, sa_type=UTCDateTime)
    base_rate_bp: int = Field(ge=0, le=10_000, description="on customers the employee found")
    inherited_rate_bp: int = Field(ge=0, le=10_000,
                                   description="on customers received by reassignment")
    created_by: int | None = Field(default=None, foreign_key="employee.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CommissionLine(SQLModel, table=True):
    """One employee's share of one order (or refund), as booked on one statement month.

    `origin_period` is the order's own month; `period` differs from it only for adjustments
    of a month whose statement was already final.
    """

    __tablename__ = "commission_line"
    __table_args__ = (
        UniqueConstraint("order_id", "employee_id", "role", "period"),
        Index("ix_line_employee_period", "employee_id", "period"),
        # the statements of a month: distinct employees of one period (migration 0012)
        Index("ix_line_period_employee", "period", "employee_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="customer_order.id")
    customer_id: int = Field(foreign_key="customer.id", index=True)
    employee_id: int = Field(foreign_key="employee.id")
    role: str = Field(max_length=20, description="OWNER, PROTECTED_ORIGINAL, INHERITED_OWNER")
    rule: str = Field(max_length=40)
    rate_bp: int
    share_bp: int
    base_amount_fen: int = Field(sa_type=BigInteger)
    amount_fen: int = Field(sa_type=BigInteger)
    origin_period: str = Field(max_length=7)
    period: str = Field(max_length=7)
    is_adjustment: bool = False
    request_id: int | None = Field(default=None, foreign_key="reassignment_request.id")
    computed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class StatementStatus(StrEnum):
    DRAFT = "DRAFT"
    FINAL = "FINAL"


class Statement(SQLModel, table=True):
    __tablename__ = "statement"
    __table_args__ = (UniqueConstraint("employee_id", "period"),)

    id: int | None = Field(default=None, primary_key=True)
    employee_id: int = Field(foreign_key="employee.id", index=True)
    period: str = Field(max_length=7, index=True)
    status: StatementStatus = Field(default=StatementStatus.DRAFT, max_length=10)
    total_fen: int = Field(default=0, sa_type=BigInteger)
    line_count: int = 0
    finalized_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SettlementRun(SQLModel, table=True):
    """One settlement: which month it recomputed and which it finalised. Keyed for retries."""

    __tablename__ = "settlement_run"

    id: int | None = Field(default=None, primary_key=True)
    run_key: str = Field(max_length=100, unique=True)
    open_period: str = Field(max_length=7)
    finalized_period: str | None = Field(default=None, max_length=7)
    trigger: str = Field(max_length=20, description="schedule or manual")
    requested_by: int | None = Field(default=None, foreign_key="employee.id")
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    lines_written: int = 0
    statements_finalized: int = 0
