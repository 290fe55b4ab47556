"""Bodies of the session, password, account and offboarding endpoints."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from domain.stages import Role


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RefreshIn(_Body):
    refresh_token: str = Field(min_length=1, max_length=200)


class LogoutIn(_Body):
    refresh_token: str = Field(min_length=1, max_length=200,
                               description="the refresh token of the session to end")


class SessionOut(BaseModel):
    """A browser session: the tokens are in HttpOnly cookies, not here."""

    csrf_token: str = Field(description="send as X-CSRF-Token on POST, PUT, PATCH and DELETE; "
                                        "the baton_csrf cookie holds the same value")
    expires_in: int = Field(description="seconds until the access cookie expires; then call "
                                        "POST /api/v1/auth/session/refresh")
    refresh_expires_in: int
    user_id: int
    employee_id: int
    username: str
    roles: list[Role]


class PasswordChangeIn(_Body):
    current_password: str = Field(min_length=1, max_length=1000)
    new_password: str = Field(min_length=1, max_length=1000)


class PasswordResetIn(_Body):
    new_password: str = Field(min_length=1, max_length=1000)


class AccountCreateIn(_Body):
    employee_id: int
    username: str = Field(min_length=3, max_length=100, pattern=r"^[A-Za-z0-9._@-]+$")
    roles: list[Role] = Field(min_length=1, description="one or more of the roles")
    password: str = Field(min_length=1, max_length=1000,
                          description="the initial password; the password policy applies")


class RolesIn(_Body):
    roles: list[Role] = Field(min_length=1)


class ReasonOptIn(_Body):
    reason: str | None = Field(default=None, max_length=2000)


class AccountOut(BaseModel):
    id: int
    username: str
    employee_id: int
    employee_no: str
    name: str
    roles: list[Role] = Field(description="roles granted on the account")
    effective_roles: list[Role] = Field(description="granted roles plus the job role")
    is_active: bool
    locked: bool
    locked_until: datetime | None
    failed_login_count: int
    employee_status: str
    leave_date: datetime | None
    created_at: datetime
    password_changed_at: datetime | None
    last_login_at: datetime | None


class AccountPage(BaseModel):
    items: list[AccountOut]
    total: int
    limit: int
    offset: int


class OffboardIn(_Body):
    leave_date: AwareDatetime = Field(
        description="when the employee leaves, with a time zone, e.g. 2026-12-31T18:00:00+08:00"
                    ". Now or past: they leave now. Future: they keep their access until then")
    reason: str | None = Field(default=None, max_length=2000)


class OffboardOut(BaseModel):
    employee_id: int
    status: str
    leave_date: datetime
    left_now: bool = Field(description="false when a future leave date was recorded")
    account_id: int | None
    refresh_tokens_revoked: int
