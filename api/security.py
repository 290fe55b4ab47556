"""Local accounts: argon2 password check with lock-out, and short-lived HS256 JWTs.

An access token carries the account's `token_version` ("ver") and its session id ("sid", the
refresh-token family). Every request compares both with the database, so a password change,
an administrator's action, a departure or a logout ends a token at once, not at its expiry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import jwt
from sqlalchemy import exists
from sqlmodel import Session, col, select

from domain.stages import Role
from models.audit import audit
from models.db import SessionFactory
from models.facts import employee_roles
from models.login import (
    LockoutPolicy,
    RefreshToken,
    current_lock,
    record_failure,
    record_success,
    username_key,
)
from models.org import Employee, EmploymentStatus, UserAccount
from models.passwords import hash_password, verify_password
from models.types import utcnow
from settings import Settings

ALGORITHM = "HS256"
BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="baton"'}


@dataclass(frozen=True)
class Actor:
    """Who is calling, as the token says. Every action's actor comes from here, never a body."""

    user_id: int
    employee_id: int
    username: str
    roles: frozenset[Role]
    token_version: int | None = None  # "ver": must equal the account's token_version
    session_id: str | None = None  # "sid": the refresh-token family; logout ends it

    def has_any(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))


class AuthError(Exception):
    """Credentials or token not acceptable; `detail` tells the client what to do."""

    def __init__(self, slug: str, title: str, detail: str, *, status: int = 401,
                 headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.slug, self.title, self.detail = slug, title, detail
        self.status = status
        self.headers: dict[str, str] = headers or {}
        self.extra: dict[str, Any] = extra or {}


INVALID_CREDENTIALS = ("invalid-credentials", "Wrong username or password",
                       "The username or password is wrong. Check both and try again.")


@dataclass(frozen=True)
class LoginAttempt:
    """Where a password attempt comes from, for the audit trail of a lock-out."""

    client_ip: str | None = None
    via: str = "login"


@lru_cache
def _dummy_hash() -> str:
    return hash_password("not-a-real-password")


def lockout_policy(settings: Settings) -> LockoutPolicy:
    return LockoutPolicy(settings.login_max_failures,
                         timedelta(minutes=settings.login_lockout_minutes))


def locked_error(locked_until: datetime, now: datetime, *, just_locked: bool) -> AuthError:
    """429 with Retry-After. Says the same for an unknown name as for a real one."""
    seconds = max(1, math.ceil((locked_until - now).total_seconds()))
    minutes = math.ceil(seconds / 60)
    when = locked_until.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    first = ("Too many failed logins: this username is now locked" if just_locked
             else "This username is locked after too many failed logins")
    return AuthError(
        "account-locked", "Too many failed logins",
        f"{first} until {when}. Try again in {minutes} minute{'s' if minutes != 1 else ''} "
        "(Retry-After gives the seconds), or ask an administrator to unlock the account.",
        status=429, headers={"Retry-After": str(seconds)},
        extra={"retry_at": locked_until.astimezone(UTC).isoformat()})


def authenticate(sessions: SessionFactory, settings: Settings, username: str, password: str,
                 *, now: datetime | None = None,
                 attempt: LoginAttempt = LoginAttempt()) -> Actor:
    """Check a username and password; raise AuthError when they may not log in.

    Every step an unknown name takes, a real one takes too (a lookup, a lock check, one argon2
    verification, one failure write), so neither the answers nor their timing tell them apart.
    Argon2 runs outside any transaction: on SQLite a transaction holds the write lock.
    """
    now = now or utcnow()
    policy = lockout_policy(settings)
    key = username_key(username, settings.jwt_secret)
    dummy = _dummy_hash()  # made once, never inside a transaction
    with sessions() as session:
        account = session.exec(
            select(UserAccount).where(UserAccount.username == username)).first()
        locked = current_lock(session, account, key, now)
        account_id = account.id if account is not None else None
        stored_hash = account.password_hash if account is not None else dummy
    if locked is not None:  # refused without looking at the password, right or wrong
        raise locked_error(locked, now, just_locked=False)
    # the dummy check costs what a real one costs: no user probing by timing
    password_ok = verify_password(password, stored_hash) and account_id is not None
    if not password_ok:
        with sessions() as session:
            outcome = record_failure(session, account_id=account_id, key=key, policy=policy,
                                     now=now)
            if outcome.locked_until is not None:
                _audit_lockout(session, account_id, username, key, outcome.failures,
                               outcome.locked_until, attempt, now)
        if outcome.locked_until is not None:
            raise locked_error(outcome.locked_until, now, just_locked=True)
        raise AuthError(*INVALID_CREDENTIALS)
    with sessions() as session:
        account = session.get(UserAccount, account_id)
        assert account is not None
        actor = active_actor(session, account, now=now)
        record_success(session, account, now)
    return actor


def _audit_lockout(session: Session, account_id: int | None, username: str, key: str,
                   failures: int, locked_until: datetime, attempt: LoginAttempt,
                   now: datetime) -> None:
    account = session.get(UserAccount, account_id) if account_id is not None else None
    detail: dict[str, Any] = {
        "failures": failures, "locked_until": locked_until.isoformat(),
        "client_ip": attempt.client_ip, "via": attempt.via,
    }
    if account is not None:
        entity: tuple[str, int | str | None] = ("user_account", account.id)
        detail |= {"employee_id": account.employee_id, "username": username}
    else:  # a mistyped password may sit in the username field: store only its HMAC
        entity = ("unknown_username", key)
    audit(session, "LOGIN_LOCKED_OUT", actor_id=None, entity=entity, detail=detail,
          occurred_at=now)


def _refuse_inactive(account_active: bool, employee_found: bool, status: str | None,
                     leave_date: datetime | None, now: datetime) -> None:
    if not account_active or not employee_found:
        raise AuthError("account-inactive", "Account disabled",
                        "This account is disabled. Ask an administrator to enable it.")
    if status != EmploymentStatus.EMPLOYED or (leave_date is not None and leave_date <= now):
        raise AuthError("account-inactive", "Employee has left",
                        "The employee behind this account has left the company, so it can no "
                        "longer log in or use its sessions. Their records are kept; HR can "
                        "export them.")


def active_actor(session: Session, account: UserAccount, *,
                 now: datetime | None = None) -> Actor:
    """The account as an Actor, if it may act now: enabled, and its employee has not left."""
    now = now or utcnow()
    employee = session.get(Employee, account.employee_id)
    _refuse_inactive(account.is_active, employee is not None,
                     employee.status if employee else None,
                     employee.leave_date if employee else None, now)
    assert account.id is not None and employee is not None and employee.id is not None
    return Actor(user_id=account.id, employee_id=employee.id, username=account.username,
                 roles=employee_roles(session, employee), token_version=account.token_version)


def issue_token(actor: Actor, settings: Settings, *, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(actor.user_id),  # RFC 7519: a string
        "emp": actor.employee_id,
        "name": actor.username,
        "roles": sorted(r.value for r in actor.roles),
        "ver": actor.token_version or 0,
        "iat": now,
        "exp": now + timedelta(minutes=settings.jwt_ttl_minutes),
    }
    if actor.session_id is not None:
        claims["sid"] = actor.session_id
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def decode_token(token: str, settings: Settings) -> Actor:
    try:
        claims = jwt.decode(token, settings.jwt_secret, algorithms=[ALGORITHM],
                            options={"require": ["exp", "sub", "emp"]})
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("token-expired", "Token expired",
                        "The access token has expired. Log in again at /api/v1/auth/login to "
                        "get a new one.") from exc
    except jwt.InvalidTokenError as exc:
        raise AuthError("invalid-token", "Invalid token",
                        "The access token is not valid. Log in at /api/v1/auth/login and send "
                        "the token as `Authorization: Bearer <token>`.") from exc
    if "ver" not in claims:  # checked here, not in `require`, so an expired one says so
        raise AuthError("invalid-token", "Invalid token",
                        "This access token is from an older version of Baton. Log in again at "
                        "/api/v1/auth/login.")
    try:
        return Actor(
            user_id=int(claims["sub"]),
            employee_id=int(claims["emp"]),
            username=str(claims.get("name", "")),
            roles=frozenset(Role(r) for r in claims.get("roles", [])
                            if r in Role._value2member_map_),
            token_version=int(claims["ver"]),
            session_id=str(claims["sid"]) if claims.get("sid") else None,
        )
    except (TypeError, ValueError) as exc:
        raise AuthError("invalid-token", "Invalid token",
                        "The access token's claims are malformed. Log in again.") from exc


def check_still_active(session: Session, actor: Actor, *, now: datetime | None = None) -> None:
    """Refuse a token as soon as we know it should end, not when it expires: its account is
    disabled or its employee has left, its version was bumped (password change, new roles,
    an administrator's reset), or its session was logged out or revoked.

    An Actor built without a token_version or session_id (another kind of token, e.g. the
    codec server's) is checked for the first only.
    """
    # every authenticated request runs this: one query (account, employee, session family)
    # without loading ORM objects, read fresh each time (no cache that could serve a
    # revoked or deactivated account)
    columns: list[Any] = [UserAccount.employee_id, UserAccount.is_active,
                          UserAccount.token_version, col(Employee.id).label("employee_found"),
                          Employee.status, Employee.leave_date]
    if actor.session_id is not None:
        columns.append(exists().where(
            RefreshToken.family_id == actor.session_id,
            col(RefreshToken.revoked_at).is_(None)).label("session_active"))
    account = session.exec(
        select(*columns).select_from(UserAccount)
        .outerjoin(Employee, col(Employee.id) == UserAccount.employee_id)
        .where(UserAccount.id == actor.user_id)).first()
    if account is None or account.employee_id != actor.employee_id:
        raise AuthError("invalid-token", "Invalid token",
                        "The account in this token no longer exists. Log in again.")
    _refuse_inactive(account.is_active, account.employee_found is not None, account.status,
                     account.leave_date, now or utcnow())
    if actor.token_version is not None and actor.token_version != account.token_version:
        raise AuthError("token-revoked", "Token revoked",
                        "This access token was revoked: the password, the roles or the "
                        "account's access changed since it was issued. Get a new one with your "
                        "refresh token (POST /api/v1/auth/refresh) or log in again.")
    if actor.session_id is not None and not account.session_active:
        raise AuthError("token-revoked", "Session ended",
                        "This session was logged out or revoked, so its tokens no longer work. "
                        "Log in again at POST /api/v1/auth/login.")
