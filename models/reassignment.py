"""Reassignment requests and what happens to them: approvals, appeals, signatures, notices."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from domain.stages import Stage
from models.types import UTCDateTime, utcnow


class ReassignmentRequest(SQLModel, table=True):
    __tablename__ = "reassignment_request"
    __table_args__ = (UniqueConstraint("requester_id", "idempotency_key"),)

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: str | None = Field(default=None, max_length=100, unique=True)
    idempotency_key: str = Field(max_length=200)
    payload_hash: str = Field(max_length=64, description="SHA-256 of the submitted body")
    requester_id: int = Field(foreign_key="employee.id", index=True)
    from_employee_id: int = Field(foreign_key="employee.id", index=True)
    to_employee_id: int = Field(foreign_key="employee.id", index=True)
    customer_ids: list[int] = Field(sa_column=Column(JSON, nullable=False))
    reason: str = Field(max_length=40)
    note: str | None = Field(default=None, max_length=2000)
    stage: Stage = Field(default=Stage.SUBMITTED, max_length=30, index=True)
    # seq of the transition that set `stage`; an older write that lands late never wins
    last_transition_seq: int = 0
    stage_deadline: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    policy_version_id: int = Field(foreign_key="policy_version.id")
    terms: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    value_fen: int = Field(default=0, sa_type=BigInteger)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    effective_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    protection_end: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # copied from terms when the transfer takes effect: attribution SQL reads a plain column
    protection_share_bp: int | None = None
    # value, income impact and compensation with inputs and explanation (domain.impact)
    assessment: dict[str, Any] = Field(default_factory=dict,
                                       sa_column=Column(JSON, nullable=False, server_default="{}"))
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RequestCustomer(SQLModel, table=True):
    """One row per customer of a request, for lookups such as cooling-off limits."""

    __tablename__ = "request_customer"

    request_id: int = Field(foreign_key="reassignment_request.id", primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", primary_key=True, index=True)


class ApprovalStep(SQLModel, table=True):
    __tablename__ = "approval_step"
    __table_args__ = (UniqueConstraint("request_id", "level"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="reassignment_request.id", index=True)
    level: int
    role: str = Field(max_length=20)
    approver_id: int = Field(foreign_key="employee.id", index=True)
    escalated_to: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="WAITING", max_length=10, index=True)
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    decided_by_id: int | None = Field(default=None, foreign_key="employee.id")
    # set when a delegate decided: the approver they stood in for ("on behalf of")
    decided_on_behalf_of_id: int | None = Field(default=None, foreign_key="employee.id")
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    comment: str | None = Field(default=None, max_length=2000)


class Appeal(SQLModel, table=True):
    __tablename__ = "appeal"
    __table_args__ = (UniqueConstraint("request_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="reassignment_request.id", index=True)
    number: int
    appellant_id: int = Field(foreign_key="employee.id")
    reason: str = Field(max_length=2000)
    opened_at: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(default="OPEN", max_length=10)
    resolved_by_id: int | None = Field(default=None, foreign_key="employee.id")
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolution_comment: str | None = Field(default=None, max_length=2000)


class SignatureRecord(SQLModel, table=True):
    """The salesperson's decision on the agreement, with the evidence of how it was made."""

    __tablename__ = "signature_record"

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="reassignment_request.id", unique=True)
    signer_id: int = Field(foreign_key="employee.id")
    decision: str = Field(max_length=10)
    at: datetime = Field(sa_type=UTCDateTime)
    typed_name: str | None = Field(default=None, max_length=200)
    reason: str | None = Field(default=None, max_length=2000)
    method: str | None = Field(default=None, max_length=40)
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=500)
    document_hash: str | None = Field(default=None, max_length=64)
    credential_id: str | None = Field(default=None, max_length=500)


class NotificationRecord(SQLModel, table=True):
    """A notice to one employee. Email delivery comes later; the record is the source."""

    __tablename__ = "notification"
    __table_args__ = (UniqueConstraint("workflow_id", "key", "recipient_id"),)

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: str = Field(max_length=100)
    key: str = Field(max_length=100)
    request_id: int = Field(foreign_key="reassignment_request.id", index=True)
    recipient_id: int = Field(foreign_key="employee.id", index=True)
    kind: str = Field(max_length=40)
    message: str = Field(max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    read_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RequestDocument(SQLModel, table=True):
    """A rendered document of a request (the personal report, the agreement), kept as evidence.

    Stored in the database so that the bytes whose SHA-256 is on record cannot drift from it.
    """

    __tablename__ = "request_document"
    __table_args__ = (UniqueConstraint("request_id", "kind", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="reassignment_request.id", index=True)
    kind: str = Field(max_length=20, description="REPORT, AGREEMENT or SEALED_AGREEMENT")
    version: int = 1
    language: str = Field(default="zh-CN", max_length=10)
    sha256: str = Field(max_length=64)
    pdf: bytes = Field(sa_type=LargeBinary)
    html: str = Field(sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
