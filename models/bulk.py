"""Bulk reorganisations: the batch HR started and each of its rows (issue 9).

A dry run stores nothing; these rows exist once HR starts a reorganisation. Each row keeps its
place in the file, the group (future request) it went into, the request made for that group,
and what became of it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


class RowStatus(StrEnum):
    PLANNED = "PLANNED"  # valid at the start, its group not yet requested
    REQUESTED = "REQUESTED"  # in a request whose workflow is being started
    STARTED = "STARTED"  # its request's workflow runs
    FAILED = "FAILED"  # could not be moved when its group's turn came (see error)
    CANCELLED = "CANCELLED"  # the reorganisation was cancelled before it took effect
    NOT_STARTED = "NOT_STARTED"  # the reorganisation was cancelled before its group's turn


class Reorganisation(SQLModel, table=True):
    __tablename__ = "reorganisation"
    __table_args__ = (UniqueConstraint("created_by_id", "idempotency_key"),)

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: str | None = Field(default=None, max_length=100, unique=True)
    idempotency_key: str = Field(max_length=200)
    created_by_id: int = Field(foreign_key="employee.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    reason: str = Field(max_length=40)
    note: str | None = Field(default=None, max_length=2000)
    source: str = Field(max_length=10, description="CSV or RULE")
    file_name: str | None = Field(default=None, max_length=200)
    file_sha256: str | None = Field(default=None, max_length=64)
    policy_version_id: int = Field(foreign_key="policy_version.id")
    status: str = Field(default="RUNNING", max_length=12, index=True)
    total_rows: int = 0
    total_groups: int = 0
    started_groups: int = 0
    failed_groups: int = 0
    started_rows: int = 0
    failed_rows: int = 0
    # the dry run's impact totals at the start (domain.bulk.ImpactTotals)
    totals: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    cancelled_by_id: int | None = Field(default=None, foreign_key="employee.id")
    cancel_reason: str | None = Field(default=None, max_length=2000)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ReorganisationRow(SQLModel, table=True):
    __tablename__ = "reorganisation_row"
    __table_args__ = (UniqueConstraint("reorganisation_id", "row_number"),)

    id: int | None = Field(default=None, primary_key=True)
    reorganisation_id: int = Field(foreign_key="reorganisation.id", index=True)
    row_number: int
    group_no: int = Field(index=True)
    customer_id: int = Field(foreign_key="customer.id")
    from_employee_id: int = Field(foreign_key="employee.id")
    to_employee_id: int = Field(foreign_key="employee.id")
    note: str | None = Field(default=None, max_length=2000)
    status: str = Field(default=RowStatus.PLANNED.value, max_length=12)
    error: str | None = Field(default=None, max_length=2000)
    request_id: int | None = Field(default=None, foreign_key="reassignment_request.id",
                                   index=True)
