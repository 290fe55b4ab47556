"""Login state that must survive a restart: failure streaks, lock-outs and refresh tokens.

- A failure streak and its lock live on the account (`UserAccount.failed_login_count`,
  `locked_until`). Usernames without an account get the very same bookkeeping in
  `login_failure`, keyed by an HMAC of the name, so that from outside an unknown name locks
  out exactly like a real one; the HMAC keeps a password typed into the username field out
  of the database.
- A refresh token is 256 random bits; only its SHA-256 is stored (no slow hash needed at that
  entropy). Each login starts a family (the session id, claim "sid" of its access tokens);
  each refresh revokes the used token and issues its successor in the same family. A revoked
  token presented again means two parties hold it, so the whole family is revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, Session, SQLModel, col, select

from models.org import UserAccount
from models.types import UTCDateTime, utcnow

# a failure streak is forgotten after a day without failures (for real and unknown names alike)
FAILURE_MEMORY = timedelta(days=1)


class RefreshToken(SQLModel, table=True):
    __tablename__ = "refresh_token"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="user_account.id", index=True)
    family_id: str = Field(max_length=32, index=True, description="the session id (sid)")
    token_hash: str = Field(max_length=64, unique=True, description="SHA-256 hex")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoke_reason: str | None = Field(default=None, max_length=30)
    replaced_by: int | None = Field(default=None, description="the token that rotated this one")


class LoginFailure(SQLModel, table=True):
    """Failure streaks of usernames that have no account (see the module docstring)."""

    __tablename__ = "login_failure"

    username_key: str = Field(primary_key=True, max_length=64, description="HMAC-SHA256 hex")
    failed_count: int = 0
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_failed_at: datetime = Field(sa_type=UTCDateTime, index=True)


class RevokeReason(StrEnum):
    ROTATED = "rotated"
    LOGOUT = "logout"
    REUSE_DETECTED = "reuse-detected"
    PASSWORD_CHANGED = "password-changed"
    PASSWORD_RESET = "password-reset"
    ACCOUNT_DISABLED = "account-disabled"
    OFFBOARDED = "offboarded"


# --- failure streaks and lock-out -------------------------------------------------------------


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int
    lockout: timedelta


def username_key(username: str, secret: str) -> str:
    return hmac.new(secret.encode(), b"login:" + username.encode(), hashlib.sha256).hexdigest()


def current_lock(session: Session, account: UserAccount | None, key: str,
                 now: datetime) -> datetime | None:
    """When the lock on this username ends, if it is locked now."""
    if account is not None:
        until = account.locked_until
    else:
        row = session.get(LoginFailure, key)
        until = row.locked_until if row is not None else None
    return until if until is not None and until > now else None


@dataclass(frozen=True)
class FailureOutcome:
    failures: int
    locked_until: datetime | None  # set when this failure locked the username


def _count_failure(count: int, last_failed_at: datetime | None, locked_until: datetime | None,
                   policy: LockoutPolicy, now: datetime) -> tuple[int, datetime | None]:
    """(new count, new lock end): a lapsed lock or an old streak starts over."""
    if (locked_until is not None and locked_until <= now) or (
            last_failed_at is not None and now - last_failed_at > FAILURE_MEMORY):
        count = 0
    count += 1
    if count >= policy.max_failures:
        return count, now + policy.lockout
    return count, None


def record_failure(session: Session, *, account_id: int | None, key: str, policy: LockoutPolicy,
                   now: datetime) -> FailureOutcome:
    """Count one failed login; lock the username when the streak reaches the limit."""
    if account_id is not None:
        account = session.exec(
            select(UserAccount).where(UserAccount.id == account_id).with_for_update()
        ).one()
        count, lock = _count_failure(account.failed_login_count, account.last_failed_login_at,
                                     account.locked_until, policy, now)
        account.failed_login_count = count
        account.last_failed_login_at = now
        if lock is not None:
            account.locked_until = lock
        session.add(account)
        return FailureOutcome(count, lock)
    # unknown username: the same arithmetic on its own row, created race-free
    session.exec(_insert_ignore(session, key, now))  # type: ignore[call-overload]
    row = session.exec(
        select(LoginFailure).where(LoginFailure.username_key == key).with_for_update()
    ).one()
    count, lock = _count_failure(row.failed_count, row.last_failed_at, row.locked_until,
                                 policy, now)
    row.failed_count, row.last_failed_at = count, now
    if lock is not None:
        row.locked_until = lock
    session.add(row)
    # keep the table small: streaks that are over and forgotten go
    session.exec(delete(LoginFailure).where(  # type: ignore[call-overload]
        col(LoginFailure.last_failed_at) < now - FAILURE_MEMORY,
        col(LoginFailure.username_key) != key))
    return FailureOutcome(count, lock)


def _insert_ignore(session: Session, key: str, now: datetime) -> Any:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert(LoginFailure).values(
        username_key=key, failed_count=0, last_failed_at=now,
    ).on_conflict_do_nothing(index_elements=["username_key"])


def record_success(session: Session, account: UserAccount, now: datetime) -> None:
    account.failed_login_count = 0
    account.locked_until = None
    account.last_failed_login_at = None
    account.last_login_at = now
    session.add(account)


def unlock(account: UserAccount) -> None:
    account.failed_login_count = 0
    account.locked_until = None
    account.last_failed_login_at = None


# --- refresh tokens ------------------------------------------------------------------------------


def hash_refresh_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def new_refresh_token(session: Session, account_id: int, *, ttl: timedelta, now: datetime,
                      family_id: str | None = None) -> tuple[str, RefreshToken]:
    """A fresh token (raw value, row); a new family unless one is given."""
    raw = secrets.token_urlsafe(32)
    row = RefreshToken(account_id=account_id, family_id=family_id or uuid.uuid4().hex,
                       token_hash=hash_refresh_token(raw), created_at=now, expires_at=now + ttl)
    session.add(row)
    session.flush()
    return raw, row


class RefreshStatus(StrEnum):
    OK = "ok"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED = "revoked"  # logged out, password changed, ...: the family is already over
    REUSED = "reused"  # a rotated token came back: theft is likely, the family was revoked


@dataclass(frozen=True)
class RefreshLookup:
    status: RefreshStatus
    token: RefreshToken | None = None
    revoked_now: int = 0  # tokens this lookup revoked (reuse detection)


def find_refresh_token(session: Session, raw: str, now: datetime) -> RefreshLookup:
    """Find and lock the token; on reuse, revoke its family in the caller's transaction."""
    row = session.exec(
        select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(raw))
        .with_for_update()
    ).first()
    if row is None:
        return RefreshLookup(RefreshStatus.UNKNOWN)
    if row.revoked_at is not None:
        revoked = revoke_family(session, row.family_id, RevokeReason.REUSE_DETECTED, now)
        reused = row.revoke_reason == RevokeReason.ROTATED
        return RefreshLookup(RefreshStatus.REUSED if reused else RefreshStatus.REVOKED, row,
                             revoked)
    if row.expires_at <= now:
        return RefreshLookup(RefreshStatus.EXPIRED, row)
    return RefreshLookup(RefreshStatus.OK, row)


def rotate(session: Session, row: RefreshToken, *, ttl: timedelta,
           now: datetime) -> tuple[str, RefreshToken]:
    """Revoke `row` and issue its successor in the same family (same session id)."""
    raw, successor = new_refresh_token(session, row.account_id, ttl=ttl, now=now,
                                       family_id=row.family_id)
    row.revoked_at, row.revoke_reason, row.replaced_by = now, RevokeReason.ROTATED, successor.id
    session.add(row)
    return raw, successor


def revoke_family(session: Session, family_id: str, reason: RevokeReason, now: datetime) -> int:
    result = session.exec(update(RefreshToken).where(  # type: ignore[call-overload]
        col(RefreshToken.family_id) == family_id, col(RefreshToken.revoked_at).is_(None),
    ).values(revoked_at=now, revoke_reason=reason.value))
    return int(result.rowcount or 0)


def end_all_sessions(session: Session, account: UserAccount, reason: RevokeReason,
                     now: datetime) -> int:
    """Invalidate every access token (bump token_version) and refresh token of the account."""
    account.token_version += 1
    session.add(account)
    result = session.exec(update(RefreshToken).where(  # type: ignore[call-overload]
        col(RefreshToken.account_id) == account.id, col(RefreshToken.revoked_at).is_(None),
    ).values(revoked_at=now, revoke_reason=reason.value))
    return int(result.rowcount or 0)
