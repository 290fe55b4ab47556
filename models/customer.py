"""Customers, the history of who owned them, and their orders."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index, event
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


class Customer(SQLModel, table=True):
    __tablename__ = "customer"
    # PostgreSQL only (pg_trgm, migration 0013): the "name or code contains" search
    __table_args__ = tuple(
        Index(f"ix_customer_{column}_trgm", column, postgresql_using="gin",
              postgresql_ops={column: "gin_trgm_ops"}).ddl_if(dialect="postgresql")
        for column in ("name", "code"))

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=40, unique=True)
    name: str = Field(max_length=200)
    found_by_employee_id: int | None = Field(default=None, foreign_key="employee.id")
    # contact details: personal information, masked for roles that do not work the customer
    contact_name: str | None = Field(default=None, max_length=200)
    contact_phone: str | None = Field(default=None, max_length=40)
    contact_email: str | None = Field(default=None, max_length=320)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AssignmentSource(StrEnum):
    FOUND = "FOUND"  # the owner found the customer: base rate
    REASSIGNMENT = "REASSIGNMENT"  # received through a request: inherited rate


class Assignment(SQLModel, table=True):
    """Who owned a customer from when to when. Never overwritten, only closed."""

    __tablename__ = "assignment"
    __table_args__ = (Index("ix_assignment_customer_start", "customer_id", "start_at"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id")
    employee_id: int = Field(foreign_key="employee.id", index=True)
    start_at: datetime = Field(sa_type=UTCDateTime)
    end_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    source: AssignmentSource = Field(default=AssignmentSource.FOUND, max_length=20)
    request_id: int | None = Field(default=None, foreign_key="reassignment_request.id", index=True)


class OrderKind(StrEnum):
    ORDER = "ORDER"
    REFUND = "REFUND"  # part or all of an earlier order's amount comes back
    CANCELLATION = "CANCELLATION"  # the whole remaining amount of an earlier order


class Order(SQLModel, table=True):
    """An order, or a refund/cancellation of one (negative amount, points at the original).

    `period` is the statement month (YYYY-MM) of `booked_at` in the organisation's timezone,
    fixed when the row is written so that set-based SQL never needs timezone arithmetic.
    """

    __tablename__ = "customer_order"
    __table_args__ = (
        Index("ix_order_customer_booked", "customer_id", "booked_at"),
        Index("ix_order_period", "period"),
    )

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=100, unique=True)
    kind: OrderKind = Field(default=OrderKind.ORDER, max_length=12)
    original_order_id: int | None = Field(default=None, foreign_key="customer_order.id",
                                          index=True)
    customer_id: int = Field(foreign_key="customer.id")
    amount_fen: int = Field(sa_type=BigInteger, description="negative for refunds")
    currency: str = Field(default="CNY", max_length=3)
    booked_at: datetime = Field(sa_type=UTCDateTime)
    period: str = Field(default="", max_length=7)
    product_line: str | None = Field(default=None, max_length=100)
    content_hash: str = Field(default="", max_length=64,
                              description="SHA-256 of the submitted content, for idempotency")
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


@event.listens_for(Order, "before_insert")
def _fill_period(_mapper: object, _connection: object, order: Order) -> None:
    # a safety net for ORM inserts; bulk loaders compute the period themselves
    if not order.period:
        from domain.periods import period_of
        from settings import get_settings

        order.period = period_of(order.booked_at, get_settings().org_timezone)
