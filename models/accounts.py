"""Account administration and offboarding, shared by the API and the CLI.

Every change appends an audit event about ("user_account", id) or ("employee", id) with the
record before and after (never a password or its hash). Changes that should end a person's
sessions bump `UserAccount.token_version` (access tokens carry it) and revoke their refresh
tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from domain.password_policy import PasswordIssue, password_issues
from domain.stages import Role
from models.audit import audit
from models.login import RevokeReason, end_all_sessions, unlock
from models.org import Employee, EmploymentStatus, UserAccount


class AccountError(Exception):
    """A change that cannot be made; `kind` maps to an HTTP status, `message` says why."""

    def __init__(self, kind: str, code: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.code, self.message = kind, code, message  # kind: not-found, conflict


@dataclass(frozen=True)
class PasswordRules:
    min_length: int = 12
    min_score: int = 3


def check_new_password(password: str, *, username: str, employee: Employee | None,
                       rules: PasswordRules) -> list[PasswordIssue]:
    others: list[str] = []
    if employee is not None:
        others = [employee.name, employee.email or ""]
    return password_issues(password, username=username,
                           employee_no=employee.employee_no if employee else "",
                           other_inputs=[o for o in others if o],
                           min_length=rules.min_length, min_score=rules.min_score)


def normalise_roles(roles: Iterable[str]) -> list[str]:
    """Known roles, each once, in the table's order; raises for an unknown one."""
    wanted = {r.strip().lower() for r in roles if r.strip()}
    unknown = sorted(wanted - set(Role._value2member_map_))
    if unknown:
        valid = ", ".join(r.value for r in Role)
        raise AccountError("invalid", "unknown-role",
                           f"unknown role(s) {', '.join(unknown)}; use {valid}")
    if not wanted:
        raise AccountError("invalid", "no-roles", "give the account at least one role")
    return [r.value for r in Role if r.value in wanted]


def account_view(account: UserAccount) -> dict[str, Any]:
    """What an audit event records of an account (no password hash)."""
    return {
        "username": account.username,
        "employee_id": account.employee_id,
        "roles": list(account.roles),
        "is_active": account.is_active,
        "locked_until": _iso(account.locked_until),
        "failed_login_count": account.failed_login_count,
        "token_version": account.token_version,
        "password_changed_at": _iso(account.password_changed_at),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _audit(session: Session, event_type: str, *, actor_id: int | None, now: datetime,
           entity: tuple[str, int | None], before: Mapping[str, Any] | None,
           after: Mapping[str, Any] | None, reason: str | None = None, **detail: Any) -> None:
    audit(session, event_type, actor_id=actor_id, entity=entity, before=before, after=after,
          reason=reason, detail=detail, occurred_at=now)


def get_account(session: Session, account_id: int, *, for_update: bool = False) -> UserAccount:
    query = select(UserAccount).where(UserAccount.id == account_id)
    account = session.exec(query.with_for_update() if for_update else query).first()
    if account is None:
        raise AccountError("not-found", "no-account", f"there is no account {account_id}")
    return account


def create_account(session: Session, *, employee: Employee, username: str, roles: list[str],
                   password_hash: str, actor_id: int | None, now: datetime,
                   via: str = "api") -> UserAccount:
    if session.exec(select(UserAccount).where(UserAccount.username == username)).first():
        raise AccountError("conflict", "username-taken",
                           f"the username {username} is taken; choose another")
    if session.exec(select(UserAccount).where(UserAccount.employee_id == employee.id)).first():
        raise AccountError("conflict", "employee-has-account",
                           f"employee {employee.employee_no} already has an account; change "
                           "its roles or enable it instead")
    if employee.status != EmploymentStatus.EMPLOYED:
        raise AccountError("conflict", "employee-left",
                           f"employee {employee.employee_no} has left the company")
    assert employee.id is not None
    account = UserAccount(username=username, password_hash=password_hash,
                          employee_id=employee.id, roles=roles, created_at=now,
                          password_changed_at=now)
    session.add(account)
    session.flush()
    _audit(session, "ACCOUNT_CREATED", actor_id=actor_id, now=now,
           entity=("user_account", account.id), before=None, after=account_view(account),
           via=via)
    return account


def set_roles(session: Session, account: UserAccount, roles: list[str], *, actor_id: int,
              now: datetime) -> UserAccount:
    """New roles take effect at once: tokens carrying the old ones stop working (a refresh
    token still works and gets an access token with the new roles)."""
    before = account_view(account)
    if sorted(roles) == sorted(account.roles):
        return account
    account.roles = roles
    account.token_version += 1
    session.add(account)
    _audit(session, "ACCOUNT_ROLES_CHANGED", actor_id=actor_id, now=now,
           entity=("user_account", account.id), before=before, after=account_view(account))
    return account


def set_active(session: Session, account: UserAccount, active: bool, *, actor_id: int,
               now: datetime, reason: str | None = None) -> UserAccount:
    if account.is_active == active:
        return account
    before = account_view(account)
    account.is_active = active
    revoked = 0
    if not active:
        revoked = end_all_sessions(session, account, RevokeReason.ACCOUNT_DISABLED, now)
    session.add(account)
    _audit(session, "ACCOUNT_ENABLED" if active else "ACCOUNT_DISABLED", actor_id=actor_id,
           now=now, entity=("user_account", account.id), before=before,
           after=account_view(account), reason=reason, refresh_tokens_revoked=revoked)
    return account


def unlock_account(session: Session, account: UserAccount, *, actor_id: int,
                   now: datetime) -> UserAccount:
    before = account_view(account)
    unlock(account)
    session.add(account)
    _audit(session, "ACCOUNT_UNLOCKED", actor_id=actor_id, now=now,
           entity=("user_account", account.id), before=before, after=account_view(account))
    return account


def set_password(session: Session, account: UserAccount, password_hash: str, *,
                 actor_id: int, now: datetime, by_admin: bool) -> UserAccount:
    """A new password ends every session; an administrator's reset also lifts a lock."""
    before = account_view(account)
    account.password_hash = password_hash
    account.password_changed_at = now
    if by_admin:
        unlock(account)
    reason = RevokeReason.PASSWORD_RESET if by_admin else RevokeReason.PASSWORD_CHANGED
    revoked = end_all_sessions(session, account, reason, now)
    session.add(account)
    _audit(session, "ACCOUNT_PASSWORD_RESET" if by_admin else "PASSWORD_CHANGED",
           actor_id=actor_id, now=now, entity=("user_account", account.id), before=before,
           after=account_view(account), refresh_tokens_revoked=revoked)
    return account


@dataclass(frozen=True)
class Offboarding:
    employee: Employee
    account: UserAccount | None
    left_now: bool  # False: a future leave date was recorded; logins end on that date
    refresh_tokens_revoked: int


def employee_view(employee: Employee) -> dict[str, Any]:
    return {"status": employee.status.value if employee.status else None,
            "leave_date": _iso(employee.leave_date)}


def offboard(session: Session, employee: Employee, *, leave_date: datetime, actor_id: int,
             now: datetime, reason: str | None = None) -> Offboarding:
    """Record a departure. Records stay; only the person's access ends.

    A leave date now or past marks the employee LEFT and ends their sessions at once. A future
    one is only recorded: they keep working (and logging in) until then, a departure handover
    can be scheduled for that date, and every login or token check refuses them from that
    moment on (api.security compares leave_date on each request).
    """
    if employee.status == EmploymentStatus.LEFT:
        raise AccountError("conflict", "already-left",
                           f"employee {employee.employee_no} already left on "
                           f"{_iso(employee.leave_date) or 'an unknown date'}")
    before = employee_view(employee)
    account = session.exec(
        select(UserAccount).where(UserAccount.employee_id == employee.id).with_for_update()
    ).first()
    left_now = leave_date <= now
    employee.leave_date = leave_date
    revoked = 0
    if left_now:
        employee.status = EmploymentStatus.LEFT
        if account is not None:
            revoked = end_all_sessions(session, account, RevokeReason.OFFBOARDED, now)
    session.add(employee)
    _audit(session, "EMPLOYEE_OFFBOARDED", actor_id=actor_id, now=now,
           entity=("employee", employee.id), before=before, after=employee_view(employee),
           reason=reason, account_id=account.id if account else None,
           refresh_tokens_revoked=revoked)
    return Offboarding(employee, account, left_now, revoked)
