"""FastAPI dependencies: settings, database sessions, the caller, the Temporal client."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlmodel import Session
from temporalio.client import Client

from api.problems import Problem, temporal_unavailable_problem
from api.security import BEARER_CHALLENGE, Actor, AuthError, check_still_active, decode_token
from api.sessions import ACCESS_COOKIE, check_csrf
from api.temporal import TemporalConnector, TemporalUnavailable
from domain.permissions import ACTION_SUMMARY, PERMISSIONS, PUBLIC_ACTIONS, Action, permitted
from domain.stages import Role
from models.db import SessionFactory, read_only_sessions
from settings import Settings

API_PREFIX = "/api/v1"

# auto_error=False: a missing token is answered with our own problem+json 401.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=f"{API_PREFIX}/auth/token", auto_error=False)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session_factory(request: Request) -> SessionFactory:
    sessions: SessionFactory = request.app.state.sessions
    return sessions


def get_session(sessions: Annotated[SessionFactory, Depends(get_session_factory)]
                ) -> Iterator[Session]:
    """One transactional session per request (commit on success, roll back on error).

    Keep it out of routes that await Temporal: on SQLite every transaction holds the write
    lock, and the worker's activities need it to finish the very update being awaited.
    """
    with sessions() as session:
        yield session


def get_read_session(sessions: Annotated[SessionFactory, Depends(get_session_factory)]
                     ) -> Iterator[Session]:
    """A read-only session for a route that only reads: on SQLite it does not take (or wait
    for) the write lock, so concurrent readers do not queue behind each other and the writers."""
    with read_only_sessions(sessions)() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionFactoryDep = Annotated[SessionFactory, Depends(get_session_factory)]
SessionDep = Annotated[Session, Depends(get_session)]
ReadSessionDep = Annotated[Session, Depends(get_read_session)]


def auth_problem(err: AuthError) -> Problem:
    headers = err.headers or (BEARER_CHALLENGE if err.status == 401 else {})
    return Problem(err.status, err.slug, err.title, err.detail, headers=headers,
                   extra=err.extra)


def authenticate_request(
    request: Request, token: str | None, settings: Settings, sessions: SessionFactory,
) -> tuple[Actor, bool]:
    """The caller and whether the session cookie (not a Bearer header) authenticated them.

    Raises 401 problems; checks no CSRF (the caller's flavour decides how: see
    get_current_actor here and web/deps.py for pages, which also accept a form field).
    """
    via_cookie = False
    if not token:
        token = request.cookies.get(ACCESS_COOKIE)
        via_cookie = bool(token)
    if not token:
        raise Problem(401, "not-authenticated", "Not authenticated",
                      "Send an access token as `Authorization: Bearer <token>`; get one from "
                      "POST /api/v1/auth/login (or log in a browser with POST "
                      "/api/v1/auth/session).", headers=BEARER_CHALLENGE)
    try:
        actor = decode_token(token, settings)
        # short: never hold a DB transaction across a request; read-only: every request does
        # this, so it must not take SQLite's write lock
        with read_only_sessions(sessions)() as session:
            check_still_active(session, actor)
    except AuthError as err:
        raise auth_problem(err) from err
    request.state.auth_via = "cookie" if via_cookie else "bearer"
    return actor, via_cookie


def get_current_actor(
    request: Request,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    settings: SettingsDep,
    sessions: SessionFactoryDep,
) -> Actor:
    """The caller, from `Authorization: Bearer` or else the browser session cookie.

    A cookie is sent by the browser on its own, so a cookie-authenticated unsafe request must
    also carry the session's CSRF token (api/sessions.py); a Bearer header needs none.
    """
    actor, via_cookie = authenticate_request(request, token, settings, sessions)
    if via_cookie:
        check_csrf(request, actor, settings)
    return actor


CurrentActor = Annotated[Actor, Depends(get_current_actor)]


class Permit:
    """Dependency: the caller, if the permission table lets one of their roles do `action`.

    The role x endpoint test finds these instances on each route, so every endpoint declares
    exactly one action; the scope filter then narrows which records the caller sees.
    """

    def __init__(self, action: Action) -> None:
        self.action = action

    def __call__(self, actor: CurrentActor) -> Actor:
        if not permitted(actor.roles, self.action):
            need = ", ".join(sorted(r.value for r in PERMISSIONS[self.action]))
            raise Problem(403, "forbidden-role", "Role required",
                          f"To {ACTION_SUMMARY[self.action]} you need one of the roles: {need}. "
                          f"Your roles: {', '.join(sorted(actor.roles)) or 'none'}.",
                          extra={"action": self.action.value})
        return actor


class Public:
    """Marker dependency for the few endpoints that need no login (login, refresh, health)."""

    def __init__(self, action: Action) -> None:
        assert action in PUBLIC_ACTIONS, action
        self.action = action

    def __call__(self) -> None:
        return None


def permit(action: Action) -> Any:
    """`actor: Annotated[Actor, permit(Action.X)]` in a route's signature."""
    return Depends(Permit(action))


def public(action: Action) -> Any:
    """`dependencies=[public(Action.LOGIN)]` on a route that needs no login."""
    return Depends(Public(action))


def require_roles(actor: Actor, *roles: Role, action: str) -> None:
    if not actor.has_any(*roles):
        need = ", ".join(r.value for r in roles)
        raise Problem(403, "forbidden-role", "Role required",
                      f"To {action} you need one of the roles: {need}. Your roles: "
                      f"{', '.join(sorted(actor.roles)) or 'none'}.")


def _connector(request: Request) -> TemporalConnector:
    connector: TemporalConnector = request.app.state.temporal
    return connector


async def get_temporal_client(request: Request) -> Client:
    """The Temporal client, connected on first use. Tests override this dependency."""
    try:
        return await _connector(request).get()
    except TemporalUnavailable as exc:
        raise temporal_unavailable_problem() from exc


async def get_optional_temporal_client(request: Request) -> Client | None:
    """Like get_temporal_client, but None when Temporal is down, for routes that degrade.

    Honours an override of get_temporal_client (overrides are plain callables in practice),
    so a test that swaps the client swaps it everywhere.
    """
    override: Any = request.app.dependency_overrides.get(get_temporal_client)
    try:
        if override is not None:
            result = override()
            return await result if inspect.isawaitable(result) else result  # type: ignore[no-any-return]
        return await _connector(request).get()
    except (TemporalUnavailable, Problem):
        return None


TemporalClientDep = Annotated[Client, Depends(get_temporal_client)]
OptionalTemporalClientDep = Annotated[Client | None, Depends(get_optional_temporal_client)]
