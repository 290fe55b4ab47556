"""Dated customer valuation snapshots, and the refresh runs that write them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


class ValuationRun(SQLModel, table=True):
    """One refresh: the model fitted on the whole customer base, and what it produced."""

    __tablename__ = "valuation_run"

    id: int | None = Field(default=None, primary_key=True)
    run_key: str = Field(max_length=100, unique=True)
    as_of: datetime = Field(sa_type=UTCDateTime)
    horizon_months: int = 12
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    customers: int = 0
    fitted_customers: int = 0  # valued by BG/NBD + Gamma-Gamma; the rest by the fallback
    model_params: dict[str, Any] = Field(default_factory=dict,
                                         sa_column=Column(JSON, nullable=False))
    note: str | None = Field(default=None, max_length=2000)


class ValuationSnapshot(SQLModel, table=True):
    """A customer's value as of one run. Every figure carries its method and inputs."""

    __tablename__ = "valuation_snapshot"
    __table_args__ = (
        UniqueConstraint("run_id", "customer_id"),
        Index("ix_valuation_customer_run", "customer_id", "run_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="valuation_run.id")
    customer_id: int = Field(foreign_key="customer.id")
    as_of: datetime = Field(sa_type=UTCDateTime)
    lifetime_revenue_fen: int = Field(default=0, sa_type=BigInteger)
    t12m_revenue_fen: int = Field(default=0, sa_type=BigInteger)
    order_count: int = 0
    orders_per_month: float = 0.0
    avg_order_value_fen: int = Field(default=0, sa_type=BigInteger)
    recency_days: int | None = None
    owner_tenure_days: int | None = None
    expected_purchases: float = 0.0
    expected_revenue_fen: int = Field(default=0, sa_type=BigInteger)
    method: str = Field(max_length=20, description="BG_NBD_GG or RUN_RATE")
    tier: str = Field(max_length=1, description="A, B or C by percentile of expected revenue")
    inputs: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
