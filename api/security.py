"""Local accounts: argon2 password check and short-lived HS256 JWTs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import jwt
from sqlmodel import Session, select

from domain.stages import Role
from models.facts import employee_roles
from models.org import Employee, EmploymentStatus, UserAccount
from models.passwords import hash_password, verify_password
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

    def has_any(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))


class AuthError(Exception):
    """Credentials or token not acceptable; `detail` tells the client what to do."""

    def __init__(self, slug: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.slug, self.title, self.detail = slug, title, detail


@lru_cache
def _dummy_hash() -> str:
    return hash_password("not-a-real-password")


def authenticate(session: Session, username: str, password: str) -> Actor:
    """Check a username and password; raise AuthError when they may not log in."""
    account = session.exec(select(UserAccount).where(UserAccount.username == username)).first()
    if account is None:
        verify_password(password, _dummy_hash())  # same cost as a real check: no user probing
        raise AuthError("invalid-credentials", "Wrong username or password",
                        "The username or password is wrong. Check both and try again.")
    if not verify_password(password, account.password_hash):
        raise AuthError("invalid-credentials", "Wrong username or password",
                        "The username or password is wrong. Check both and try again.")
    return _active_actor(session, account)


def _active_actor(session: Session, account: UserAccount) -> Actor:
    employee = session.get(Employee, account.employee_id)
    if not account.is_active or employee is None:
        raise AuthError("account-inactive", "Account disabled",
                        "This account is disabled. Ask an administrator to enable it.")
    if employee.status != EmploymentStatus.EMPLOYED:
        raise AuthError("account-inactive", "Employee has left",
                        "The employee behind this account has left the company, so it cannot "
                        "log in.")
    assert account.id is not None and employee.id is not None
    return Actor(user_id=account.id, employee_id=employee.id, username=account.username,
                 roles=employee_roles(session, employee))


def issue_token(actor: Actor, settings: Settings, *, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(actor.user_id),  # RFC 7519: a string
        "emp": actor.employee_id,
        "name": actor.username,
        "roles": sorted(r.value for r in actor.roles),
        "iat": now,
        "exp": now + timedelta(minutes=settings.jwt_ttl_minutes),
    }
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
    try:
        return Actor(
            user_id=int(claims["sub"]),
            employee_id=int(claims["emp"]),
            username=str(claims.get("name", "")),
            roles=frozenset(Role(r) for r in claims.get("roles", [])
                            if r in Role._value2member_map_),
        )
    except (TypeError, ValueError) as exc:
        raise AuthError("invalid-token", "Invalid token",
                        "The access token's claims are malformed. Log in again.") from exc


def check_still_active(session: Session, actor: Actor) -> None:
    """A token outlives a departure by at most its TTL; refuse it as soon as we know."""
    account = session.get(UserAccount, actor.user_id)
    if account is None or account.employee_id != actor.employee_id:
        raise AuthError("invalid-token", "Invalid token",
                        "The account in this token no longer exists. Log in again.")
    _active_actor(session, account)
