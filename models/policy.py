"""Published policy versions. A request stores the version it was submitted under."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from domain.policy import PolicyRules
from models.types import UTCDateTime, utcnow


class PolicyStatus(StrEnum):
    DRAFT = "DRAFT"
    PUBLISHED = "PUBLISHED"
    RETIRED = "RETIRED"


class PolicyVersion(SQLModel, table=True):
    __tablename__ = "policy_version"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    version: int
    status: PolicyStatus = Field(default=PolicyStatus.DRAFT, max_length=10)
    rules: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    published_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    def parsed_rules(self) -> PolicyRules:
        return PolicyRules.model_validate(self.rules)


class PolicyAcknowledgement(SQLModel, table=True):
    """An employee has read a published policy version (DESIGN.md: rules must be published)."""

    __tablename__ = "policy_acknowledgement"
    __table_args__ = (UniqueConstraint("policy_version_id", "employee_id"),)

    id: int | None = Field(default=None, primary_key=True)
    policy_version_id: int = Field(foreign_key="policy_version.id", index=True)
    employee_id: int = Field(foreign_key="employee.id", index=True)
    acknowledged_at: datetime = Field(sa_type=UTCDateTime)
