"""Org units, employees and user accounts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


class EmploymentStatus(StrEnum):
    EMPLOYED = "EMPLOYED"
    LEFT = "LEFT"


class OrgUnit(SQLModel, table=True):
    __tablename__ = "org_unit"

    id: int | None = Field(default=None, primary_key=True)
    # the natural key of `cli.py import org-units` (the code in the system migrated from)
    code: str | None = Field(default=None, max_length=40, unique=True)
    name: str = Field(max_length=200)
    function: str = Field(max_length=20, description="company, sales, team, hr or legal")
    parent_id: int | None = Field(default=None, foreign_key="org_unit.id", index=True)
    # no foreign key: units and employees refer to each other
    head_employee_id: int | None = Field(default=None, index=True)


class Employee(SQLModel, table=True):
    __tablename__ = "employee"

    id: int | None = Field(default=None, primary_key=True)
    employee_no: str = Field(max_length=40, unique=True)
    name: str = Field(max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)
    role: str = Field(max_length=20, description="job role: sales, manager, director, hr, legal")
    org_unit_id: int = Field(foreign_key="org_unit.id", index=True)
    manager_id: int | None = Field(default=None, foreign_key="employee.id", index=True)
    status: EmploymentStatus = Field(default=EmploymentStatus.EMPLOYED, max_length=10)
    hired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    leave_date: datetime | None = Field(default=None, sa_type=UTCDateTime)
    locale: str = Field(default="zh-CN", max_length=10)


class UserAccount(SQLModel, table=True):
    __tablename__ = "user_account"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=100, unique=True)
    password_hash: str = Field(max_length=300)
    employee_id: int = Field(foreign_key="employee.id", unique=True)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    is_active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # login hardening (models/login.py): consecutive failures and the lock they caused
    failed_login_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_failed_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # carried in every access token ("ver"); bumping it ends every session of the account
    token_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    password_changed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
