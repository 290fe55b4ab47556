"""Logging in and out of the pages, through the same session code as POST/DELETE
/api/v1/auth/session (api/security.authenticate, api/sessions start/end_session and the
session cookies); only the answers differ: a form with errors, or a redirect."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import SessionFactoryDep, SettingsDep, authenticate_request
from api.problems import Problem
from api.ratelimit import client_ip, limit_login_attempts
from api.security import Actor, AuthError, LoginAttempt, authenticate
from api.sessions import (
    clear_session_cookies,
    cookie_secure,
    end_session,
    set_session_cookies,
    start_session,
)
from domain.permissions import Action
from web.deps import HOME, LOGIN, page_permit, page_public, safe_next
from web.i18n import N_
from web.render import render, t

router = APIRouter()

# Login CSRF: the form carries a random value that must equal this cookie's (double submit),
# so another site cannot log a browser into someone else's account.
LOGIN_CSRF_COOKIE = "baton_login_csrf"
LOGIN_CSRF_FIELD = "login_csrf"

LOGIN_ERRORS = {
    "invalid-credentials": N_("Wrong username or password."),
    "account-locked": N_("Too many failed attempts: this account is locked for a while. "
                         "Try again later."),
    "rate-limited": N_("Too many login attempts from your address. Wait a minute and try "
                       "again."),
    "account-inactive": N_("This account is disabled. Ask an administrator."),
    "form-expired": N_("The login form had expired. Please log in again."),
}


@router.get("/", dependencies=[page_permit(Action.OWN_PROFILE)])
def root() -> Response:
    return RedirectResponse(HOME, status_code=303)


def _login_form(request: Request, *, next_url: str, username: str = "",
                errors: dict[str, str] | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", {
        "next": next_url, "username": username, "errors": errors or {},
        "login_csrf": token, "login_csrf_field": LOGIN_CSRF_FIELD,
    }, status=status)
    settings = request.app.state.settings
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, path=LOGIN,
                        secure=cookie_secure(request, settings), httponly=True,
                        samesite="strict")
    return response


@router.get(LOGIN, dependencies=[page_public(Action.LOGIN)])
def login_page(request: Request, settings: SettingsDep, sessions: SessionFactoryDep,
               next: str | None = None) -> Response:
    next_url = safe_next(next)
    try:  # already logged in: straight on
        authenticate_request(request, None, settings, sessions)
    except Problem:
        return _login_form(request, next_url=next_url)
    return RedirectResponse(next_url, status_code=303)


@router.post(LOGIN, dependencies=[page_public(Action.LOGIN)])
def login(
    request: Request, settings: SettingsDep, sessions: SessionFactoryDep,
    username: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
    login_csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """The login form's post: the same checks, lock-out and rate limit as the API's login."""
    next_url = safe_next(next)
    username = username.strip()
    errors: dict[str, str] = {}
    if not username:
        errors["username"] = t(request, "Enter your username.")
    if not password:
        errors["password"] = t(request, "Enter your password.")
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not errors and (not expected or not secrets.compare_digest(expected, login_csrf)):
        errors["form"] = t(request, LOGIN_ERRORS["form-expired"])
    if not errors:
        try:
            limit_login_attempts(request)
            actor: Actor = authenticate(sessions, settings, username, password,
                                        attempt=LoginAttempt(client_ip(request), "page"))
        except Problem:  # the per-IP limit
            errors["form"] = t(request, LOGIN_ERRORS["rate-limited"])
        except AuthError as err:
            message = LOGIN_ERRORS.get(err.slug, LOGIN_ERRORS["invalid-credentials"])
            errors["password" if err.slug == "invalid-credentials" else "form"] = t(
                request, message)
    if errors:
        return _login_form(request, next_url=next_url, username=username, errors=errors,
                           status=422)
    issued = start_session(sessions, settings, actor)
    response = RedirectResponse(next_url, status_code=303)
    set_session_cookies(response, request, settings, issued)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=LOGIN)
    return response


@router.post("/logout")
def logout(request: Request, actor: Annotated[Actor, page_permit(Action.LOGOUT)],
           settings: SettingsDep, sessions: SessionFactoryDep) -> Response:
    """End this browser's session (its access tokens stop working at once)."""
    if getattr(request.state, "auth_via", None) == "cookie":
        end_session(sessions, actor=actor)
    response = RedirectResponse(LOGIN, status_code=303)
    clear_session_cookies(response, request, settings)
    return response
