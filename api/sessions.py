"""Sessions: a login starts one, a refresh continues it, a logout ends it; and the browser's
flavour of the same session, in cookies guarded against CSRF.

A session is a refresh-token family (models/login.py); its id is the "sid" claim of every
access token issued in it, so ending the family ends its access tokens on their next use.

Browser sessions (POST /api/v1/auth/session) keep the access token in an HttpOnly cookie and
the refresh token in an HttpOnly cookie sent only to the cookie refresh endpoint. A third,
readable cookie holds the CSRF token: an HMAC of the session id under jwt_secret, so it cannot
be made up or planted from another session. A request authenticated by the cookie with an
unsafe method must repeat it in the X-CSRF-Token header, which another site cannot set.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request, Response

from api.problems import Problem
from api.security import Actor, AuthError, active_actor, issue_token
from models.audit import audit
from models.db import SessionFactory
from models.login import (
    RefreshStatus,
    RevokeReason,
    find_refresh_token,
    new_refresh_token,
    revoke_family,
    rotate,
)
from models.org import UserAccount
from models.types import utcnow
from settings import Settings

ACCESS_COOKIE = "baton_access"
REFRESH_COOKIE = "baton_refresh"
CSRF_COOKIE = "baton_csrf"
CSRF_HEADER = "X-CSRF-Token"
# the refresh cookie goes to this one endpoint only (api/routes/auth.py serves it)
SESSION_REFRESH_PATH = "/api/v1/auth/session/refresh"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


@dataclass(frozen=True)
class IssuedSession:
    actor: Actor  # with session_id set
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int

    @property
    def session_id(self) -> str:
        assert self.actor.session_id is not None
        return self.actor.session_id


def _refresh_ttl(settings: Settings) -> timedelta:
    return timedelta(days=settings.refresh_ttl_days)


def _issue(actor: Actor, raw_refresh: str, expires_at: datetime, settings: Settings,
           now: datetime) -> IssuedSession:
    return IssuedSession(
        actor=actor, access_token=issue_token(actor, settings, now=now),
        expires_in=settings.jwt_ttl_minutes * 60, refresh_token=raw_refresh,
        refresh_expires_in=int((expires_at - now).total_seconds()))


def start_session(sessions: SessionFactory, settings: Settings, actor: Actor, *,
                  now: datetime | None = None) -> IssuedSession:
    """A new session for an actor who just proved who they are."""
    now = now or utcnow()
    with sessions() as session:
        raw, row = new_refresh_token(session, actor.user_id, ttl=_refresh_ttl(settings),
                                     now=now)
    return _issue(replace(actor, session_id=row.family_id), raw, row.expires_at, settings, now)


_REFRESH_ERRORS = {
    RefreshStatus.UNKNOWN: ("invalid-refresh-token", "Invalid refresh token",
                            "This refresh token is not known. Log in again at "
                            "POST /api/v1/auth/login."),
    RefreshStatus.EXPIRED: ("refresh-token-expired", "Refresh token expired",
                            "This refresh token has expired. Log in again at "
                            "POST /api/v1/auth/login."),
    RefreshStatus.REVOKED: ("refresh-token-revoked", "Refresh token revoked",
                            "This session was ended (logout, a password change, or an "
                            "administrator's action), so its refresh token no longer works. "
                            "Log in again."),
    RefreshStatus.REUSED: ("refresh-token-reused", "Refresh token already used",
                           "This refresh token was already exchanged once. A second use means "
                           "someone else may hold a copy, so the whole session was ended. Log "
                           "in again; if you did not use the token twice, change your "
                           "password."),
}


def refresh_session(sessions: SessionFactory, settings: Settings, raw: str, *,
                    now: datetime | None = None, client_ip: str | None = None,
                    expect_csrf: str | None = None) -> IssuedSession:
    """Exchange a refresh token for a new access token and the token's successor.

    `expect_csrf`: for the cookie flavour, the X-CSRF-Token sent, checked against the
    token's own session before anything changes.
    """
    now = now or utcnow()
    failure: AuthError | Problem | None = None
    with sessions() as session:
        found = find_refresh_token(session, raw, now)
        if found.status == RefreshStatus.REUSED and found.token is not None:
            _audit_reuse(session, found.token.account_id, found.token.family_id,
                         found.revoked_now, client_ip, now)
        if found.status != RefreshStatus.OK or found.token is None:
            failure = AuthError(*_REFRESH_ERRORS[found.status])
        elif expect_csrf is not None and not csrf_matches(
                expect_csrf, found.token.family_id, settings):
            failure = csrf_problem(missing=not expect_csrf)
        else:
            account = session.get(UserAccount, found.token.account_id)
            assert account is not None
            try:
                actor = active_actor(session, account, now=now)
            except AuthError as err:  # disabled or left: the session cannot go on
                revoke_family(session, found.token.family_id, RevokeReason.ACCOUNT_DISABLED,
                              now)
                failure = err
            else:
                new_raw, successor = rotate(session, found.token,
                                            ttl=_refresh_ttl(settings), now=now)
                actor = replace(actor, session_id=successor.family_id)
                expires_at = successor.expires_at
    # raised after the block, so the reuse revocation and the audit event are committed
    if failure is not None:
        raise failure
    return _issue(actor, new_raw, expires_at, settings, now)


def _audit_reuse(session: Any, account_id: int, family_id: str, revoked: int,
                 client_ip: str | None, now: datetime) -> None:
    account = session.get(UserAccount, account_id)
    audit(session, "REFRESH_TOKEN_REUSED", actor_id=None, entity=("user_account", account_id),
          detail={"employee_id": account.employee_id if account is not None else None,
                  "session_id": family_id, "refresh_tokens_revoked": revoked,
                  "client_ip": client_ip},
          occurred_at=now)


def end_session(sessions: SessionFactory, *, actor: Actor, raw_refresh: str | None = None,
                now: datetime | None = None) -> None:
    """Log out: end the session of the given refresh token (it must be the caller's), or
    else the session of the caller's access token (the cookie flavour). Ending an ended
    session is no error."""
    now = now or utcnow()
    with sessions() as session:
        family = actor.session_id
        if raw_refresh:
            found = find_refresh_token(session, raw_refresh, now)
            if found.token is None or found.token.account_id != actor.user_id:
                raise Problem(422, "invalid-refresh-token", "Not your refresh token",
                              "The refresh_token given is not one of your sessions. Send the "
                              "refresh token you got at login, or leave it out to end the "
                              "session of this access token.")
            family = found.token.family_id
        if family is not None:
            revoke_family(session, family, RevokeReason.LOGOUT, now)


# --- browser cookies and CSRF ----------------------------------------------------------------


def csrf_token(session_id: str, settings: Settings) -> str:
    mac = hmac.new(settings.jwt_secret.encode(), b"csrf:" + session_id.encode(),
                   hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def csrf_matches(sent: str, session_id: str, settings: Settings) -> bool:
    return bool(sent) and hmac.compare_digest(sent, csrf_token(session_id, settings))


def csrf_problem(*, missing: bool) -> Problem:
    what = "has no" if missing else "has a wrong"
    return Problem(403, "csrf-token-invalid" if not missing else "csrf-token-missing",
                   "CSRF token required",
                   f"This request is authenticated by the session cookie and {what} "
                   f"{CSRF_HEADER} header. Send {CSRF_HEADER} with the value of the "
                   f"{CSRF_COOKIE} cookie (also returned as csrf_token by POST "
                   "/api/v1/auth/session) on every POST, PUT, PATCH and DELETE, or call with "
                   "an Authorization: Bearer token instead.")


def check_csrf(request: Request, actor: Actor, settings: Settings) -> None:
    """For a cookie-authenticated request with an unsafe method: the header must equal the
    CSRF cookie, and both the value bound to this session."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not sent:
        raise csrf_problem(missing=True)
    if (actor.session_id is None or not hmac.compare_digest(sent, cookie)
            or not csrf_matches(sent, actor.session_id, settings)):
        raise csrf_problem(missing=False)


def cookie_secure(request: Request, settings: Settings) -> bool:
    if settings.session_cookie_secure is not None:
        return settings.session_cookie_secure
    return request.url.scheme == "https"


def set_session_cookies(response: Response, request: Request, settings: Settings,
                        issued: IssuedSession) -> str:
    """Set the three cookies; returns the CSRF token (the client may also read the cookie)."""
    secure = cookie_secure(request, settings)
    token = csrf_token(issued.session_id, settings)
    response.set_cookie(ACCESS_COOKIE, issued.access_token, max_age=issued.expires_in,
                        path="/", secure=secure, httponly=True, samesite="lax")
    response.set_cookie(REFRESH_COOKIE, issued.refresh_token,
                        max_age=issued.refresh_expires_in, path=SESSION_REFRESH_PATH,
                        secure=secure, httponly=True, samesite="strict")
    # readable by the page's script, which copies it into the header
    response.set_cookie(CSRF_COOKIE, token, max_age=issued.refresh_expires_in, path="/",
                        secure=secure, httponly=False, samesite="lax")
    return token


def clear_session_cookies(response: Response, request: Request, settings: Settings) -> None:
    secure = cookie_secure(request, settings)
    response.delete_cookie(ACCESS_COOKIE, path="/", secure=secure, httponly=True,
                           samesite="lax")
    response.delete_cookie(REFRESH_COOKIE, path=SESSION_REFRESH_PATH, secure=secure,
                           httponly=True, samesite="strict")
    response.delete_cookie(CSRF_COOKIE, path="/", secure=secure, httponly=False,
                           samesite="lax")
