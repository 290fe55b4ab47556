"""Login, refresh and logout (bearer tokens and browser sessions), and the caller's own
profile and password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import SessionFactoryDep, SettingsDep, auth_problem, permit, public
from api.problems import FieldError, Problem, problem_responses
from api.ratelimit import client_ip, limit_login_attempts
from api.schemas import LoginIn, MeOut, TokenOut
from api.schemas_auth import LogoutIn, PasswordChangeIn, RefreshIn, SessionOut
from api.security import Actor, AuthError, LoginAttempt, authenticate
from api.sessions import (
    CSRF_HEADER,
    REFRESH_COOKIE,
    IssuedSession,
    clear_session_cookies,
    end_session,
    refresh_session,
    set_session_cookies,
    start_session,
)
from domain.password_policy import PasswordIssue
from domain.permissions import Action
from models.accounts import PasswordRules, check_new_password, set_password
from models.db import SessionFactory, read_only_sessions
from models.org import Employee, UserAccount
from models.passwords import hash_password
from models.types import utcnow
from settings import Settings

router = APIRouter(tags=["auth"])

LoginRateLimit = Depends(limit_login_attempts)
LOGIN_ERRORS = problem_responses(401, 422, 429)


def password_rules(settings: Settings) -> PasswordRules:
    return PasswordRules(min_length=settings.password_min_length,
                         min_score=settings.password_min_score)


def weak_password_problem(issues: list[PasswordIssue], field: str) -> Problem:
    return Problem(
        422, "weak-password", "Password does not meet the policy",
        "Choose another password: " + "; ".join(i.message for i in issues) + ". The policy: "
        "at least the minimum length, not containing the username or employee number, and "
        "not a common or easily guessed password.",
        errors=[FieldError(field=field, location="body", code=i.code, message=i.message)
                for i in issues])


def _password_login(request: Request, sessions: SessionFactory, settings: Settings,
                    username: str, password: str, via: str) -> IssuedSession:
    try:
        actor = authenticate(sessions, settings, username, password,
                             attempt=LoginAttempt(client_ip(request), via))
    except AuthError as err:
        raise auth_problem(err) from err
    return start_session(sessions, settings, actor)


def _token_out(issued: IssuedSession) -> TokenOut:
    return TokenOut(access_token=issued.access_token, expires_in=issued.expires_in,
                    refresh_token=issued.refresh_token,
                    refresh_expires_in=issued.refresh_expires_in)


# Sync routes: argon2 is CPU-bound on purpose, so it runs in the thread pool.
@router.post("/auth/login", response_model=TokenOut, responses=LOGIN_ERRORS,
             dependencies=[public(Action.LOGIN), LoginRateLimit])
def login(body: LoginIn, request: Request, sessions: SessionFactoryDep,
          settings: SettingsDep) -> TokenOut:
    """Exchange a username and password for a short-lived bearer token and a refresh token.

    After `login_max_failures` wrong passwords in a row the username is locked for
    `login_lockout_minutes` (429 with Retry-After), and each client IP may try only so often.
    """
    return _token_out(_password_login(request, sessions, settings, body.username,
                                      body.password, "login"))


@router.post("/auth/token", response_model=TokenOut, responses=LOGIN_ERRORS,
             dependencies=[public(Action.LOGIN), LoginRateLimit])
def token(form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request,
          sessions: SessionFactoryDep, settings: SettingsDep) -> TokenOut:
    """The same login as an OAuth2 password form, for the Authorize button in /docs."""
    return _token_out(_password_login(request, sessions, settings, form.username,
                                      form.password, "token"))


@router.post("/auth/refresh", response_model=TokenOut, responses=problem_responses(401, 422),
             dependencies=[public(Action.REFRESH)])
def refresh(body: RefreshIn, request: Request, sessions: SessionFactoryDep,
            settings: SettingsDep) -> TokenOut:
    """A new access token and a new refresh token for a refresh token, which is then used up.

    Presenting a used refresh token again ends its whole session (someone may have copied it).
    """
    try:
        issued = refresh_session(sessions, settings, body.refresh_token,
                                 client_ip=client_ip(request))
    except AuthError as err:
        raise auth_problem(err) from err
    return _token_out(issued)


@router.post("/auth/logout", status_code=204, response_class=Response,
             responses=problem_responses(401, 422))
def logout(body: LogoutIn, actor: Annotated[Actor, permit(Action.LOGOUT)],
           sessions: SessionFactoryDep) -> Response:
    """End the session of this refresh token (one of the caller's): it stops working, and so
    do the access tokens issued in that session."""
    end_session(sessions, actor=actor, raw_refresh=body.refresh_token)
    return Response(status_code=204)


# --- browser sessions (the web UI) -------------------------------------------------------------


def _session_out(issued: IssuedSession, csrf: str) -> SessionOut:
    return SessionOut(csrf_token=csrf, expires_in=issued.expires_in,
                      refresh_expires_in=issued.refresh_expires_in,
                      user_id=issued.actor.user_id, employee_id=issued.actor.employee_id,
                      username=issued.actor.username, roles=sorted(issued.actor.roles))


@router.post("/auth/session", response_model=SessionOut, responses=LOGIN_ERRORS,
             dependencies=[public(Action.LOGIN), LoginRateLimit])
def create_session(body: LoginIn, request: Request, response: Response,
                   sessions: SessionFactoryDep, settings: SettingsDep) -> SessionOut:
    """Log a browser in: the access and refresh tokens go into HttpOnly cookies, and the CSRF
    token into a readable cookie and this body. Send it as X-CSRF-Token on unsafe methods."""
    issued = _password_login(request, sessions, settings, body.username, body.password,
                             "session")
    return _session_out(issued, set_session_cookies(response, request, settings, issued))


@router.post("/auth/session/refresh", response_model=SessionOut,
             responses=problem_responses(401, 403), dependencies=[public(Action.REFRESH)])
def refresh_browser_session(request: Request, response: Response, sessions: SessionFactoryDep,
                            settings: SettingsDep) -> SessionOut:
    """Renew a browser session's cookies with its refresh cookie (X-CSRF-Token required)."""
    raw = request.cookies.get(REFRESH_COOKIE)
    if not raw:
        raise Problem(401, "no-session", "No browser session",
                      "There is no session cookie to refresh. Log in with POST "
                      "/api/v1/auth/session.")
    try:
        issued = refresh_session(sessions, settings, raw, client_ip=client_ip(request),
                                 expect_csrf=request.headers.get(CSRF_HEADER, ""))
    except AuthError as err:
        raise auth_problem(err) from err
    return _session_out(issued, set_session_cookies(response, request, settings, issued))


@router.delete("/auth/session", status_code=204, response_class=Response,
               responses=problem_responses(400, 401, 403))
def delete_session(actor: Annotated[Actor, permit(Action.LOGOUT)], request: Request,
                   sessions: SessionFactoryDep, settings: SettingsDep) -> Response:
    """Log a browser out: end the cookie session and clear its cookies. (A bearer-token
    client logs out with POST /api/v1/auth/logout.)"""
    if getattr(request.state, "auth_via", None) != "cookie":
        raise Problem(400, "not-a-browser-session", "No browser session",
                      "This call ends a browser session and must be authenticated by its "
                      "session cookie. To end a session held as bearer tokens, call POST "
                      "/api/v1/auth/logout with its refresh token.")
    end_session(sessions, actor=actor)
    response = Response(status_code=204)
    clear_session_cookies(response, request, settings)
    return response


# --- the caller ------------------------------------------------------------------------------


@router.get("/me", response_model=MeOut, responses=problem_responses(401))
def me(actor: Annotated[Actor, permit(Action.OWN_PROFILE)],
       sessions: SessionFactoryDep) -> MeOut:
    with read_only_sessions(sessions)() as session:
        employee = session.get(Employee, actor.employee_id)
    if employee is None or employee.id is None:  # removed after the token was checked
        raise Problem(401, "invalid-token", "Invalid token", "Your employee record is gone.")
    return MeOut(user_id=actor.user_id, username=actor.username, employee_id=employee.id,
                 employee_no=employee.employee_no, name=employee.name,
                 roles=sorted(actor.roles), org_unit_id=employee.org_unit_id,
                 locale=employee.locale)


@router.post("/me/password", status_code=204, response_class=Response,
             responses=problem_responses(401, 403, 422, 429), dependencies=[LoginRateLimit])
def change_password(body: PasswordChangeIn, actor: Annotated[Actor, permit(Action.OWN_PASSWORD)],
                    request: Request, sessions: SessionFactoryDep,
                    settings: SettingsDep) -> Response:
    """Change one's own password. Every session ends, this one included: log in again with
    the new password. A wrong current password counts towards the lock-out like a login."""
    try:
        authenticate(sessions, settings, actor.username, body.current_password,
                     attempt=LoginAttempt(client_ip(request), "password-change"))
    except AuthError as err:
        if err.slug == "invalid-credentials":
            raise Problem(403, "wrong-password", "Current password is wrong",
                          "The current password is wrong, so the password was not changed. "
                          "Type your current password again; repeated failures lock the "
                          "account for a while.",
                          errors=[FieldError(field="current_password", location="body",
                                             code="wrong", message="is not your password")],
                          ) from err
        raise auth_problem(err) from err
    if body.new_password == body.current_password:
        raise weak_password_problem(
            [PasswordIssue("unchanged", "the new password must differ from the current one")],
            "new_password")
    with sessions() as session:
        account = session.get(UserAccount, actor.user_id)
        assert account is not None
        issues = check_new_password(body.new_password, username=account.username,
                                    employee=session.get(Employee, account.employee_id),
                                    rules=password_rules(settings))
    if issues:
        raise weak_password_problem(issues, "new_password")
    new_hash = hash_password(body.new_password)  # slow on purpose: outside the transaction
    with sessions() as session:
        account = session.get(UserAccount, actor.user_id)
        assert account is not None
        set_password(session, account, new_hash, actor_id=actor.employee_id, now=utcnow(),
                     by_admin=False)
    response = Response(status_code=204)
    if getattr(request.state, "auth_via", None) == "cookie":
        clear_session_cookies(response, request, settings)
    return response
