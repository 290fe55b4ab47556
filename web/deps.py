"""Page dependencies: who is looking, what they may do, and CSRF for form posts.

Every page route declares its action exactly like an API route, with the page flavour of the
dependency (tests/api/test_permissions.py finds it, as PagePermit subclasses api.deps.Permit):

    @router.get("/app/things")
    def things(request: Request, actor: Annotated[Actor, page_permit(Action.X)]) -> Response:

- Not logged in (or the session ended): 303 to /login?next=<this page> (an htmx request gets
  `HX-Redirect` instead, so the whole page goes to the login form, not a fragment).
- Logged in without a role that may do the action: the 403 page, with the response header
  `X-Problem-Type: https://baton.dev/problems/forbidden-role` (web/errors.py renders it).
- Unsafe methods authenticated by the session cookie must prove CSRF: the `X-CSRF-Token`
  header (htmx sends it, see static/js/app.js) or the hidden form field `csrf_token` (plain
  form posts; templates write it with `{{ csrf_field() }}`), checked against the session id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request

from api.deps import (
    Permit,
    Public,
    SessionFactoryDep,
    SettingsDep,
    authenticate_request,
    oauth2_scheme,
)
from api.problems import Problem
from api.security import Actor
from api.sessions import CSRF_HEADER, SAFE_METHODS, csrf_matches, csrf_problem
from domain.permissions import Action
from models.db import read_only_sessions
from models.org import Employee
from web.nav import nav_counts

CSRF_FIELD = "csrf_token"
HOME = "/app"
LOGIN = "/login"


@dataclass(frozen=True)
class PageUser:
    """The logged-in person as the page header shows them."""

    employee_id: int
    name: str
    employee_no: str
    locale: str
    roles: frozenset[str]


class LoginRequired(Exception):  # noqa: N818  (a condition: answered with a redirect)
    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def safe_next(value: str | None, default: str = HOME) -> str:
    """A local path to go to after login; anything else (another site, //host) -> default."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def login_url(next_url: str) -> str:
    return f"{LOGIN}?next={quote(next_url, safe='/')}"


def _page_to_return_to(request: Request) -> str:
    """After login, come back here: this page for a GET, else the page the form was on."""
    if request.method == "GET" and not request.headers.get("HX-Request"):
        query = f"?{request.url.query}" if request.url.query else ""
        return f"{request.url.path}{query}"
    for header in ("HX-Current-URL", "Referer"):
        value = request.headers.get(header)
        if value:
            parts = urlsplit(value)
            if parts.netloc in ("", request.url.netloc):
                return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))
    return HOME


@dataclass(frozen=True)
class _Identity:
    actor: Actor
    via_cookie: bool


def _page_identity(request: Request, token: Annotated[str | None, Depends(oauth2_scheme)],
                   settings: SettingsDep, sessions: SessionFactoryDep) -> _Identity:
    """Authenticate like the API (Bearer or the session cookie); a 401 becomes the login
    redirect. Loads the person for the page header (request.state.page_user)."""
    try:
        actor, via_cookie = authenticate_request(request, token, settings, sessions)
    except Problem as problem:
        if problem.status == 401:
            raise LoginRequired(_page_to_return_to(request)) from problem
        raise
    with read_only_sessions(sessions)() as session:  # every page: no write lock on SQLite
        employee = session.get(Employee, actor.employee_id)
        if employee is None:
            raise LoginRequired(_page_to_return_to(request))
        request.state.page_user = PageUser(
            employee_id=actor.employee_id, name=employee.name,
            employee_no=employee.employee_no, locale=employee.locale,
            roles=frozenset(r.value for r in actor.roles))
        if request.headers.get("HX-Request") != "true":  # a whole page: the header's badges
            request.state.nav_counts = nav_counts(session, actor, settings)
    request.state.actor = actor
    return _Identity(actor, via_cookie)


async def get_page_actor(request: Request,
                         identity: Annotated[_Identity, Depends(_page_identity)],
                         settings: SettingsDep) -> Actor:
    """The page's caller; an unsafe request by cookie must carry the CSRF token."""
    actor = identity.actor
    if identity.via_cookie and request.method not in SAFE_METHODS:
        sent: Any = request.headers.get(CSRF_HEADER)
        if not sent:
            sent = (await request.form()).get(CSRF_FIELD)
        if not isinstance(sent, str) or not sent:
            raise csrf_problem(missing=True)
        if actor.session_id is None or not csrf_matches(sent, actor.session_id, settings):
            raise csrf_problem(missing=False)
    return actor


PageActor = Annotated[Actor, Depends(get_page_actor)]


class PagePermit(Permit):
    """api.deps.Permit for pages: the same permission table and the same 403 problem (shown
    as the HTML 403 page); the caller comes from get_page_actor (login redirect, form CSRF)."""

    def __call__(self, actor: PageActor) -> Actor:  # type: ignore[override]
        return super().__call__(actor)


class PagePublic(Public):
    """A page that needs no login (the login form)."""


def page_permit(action: Action) -> Any:
    """`actor: Annotated[Actor, page_permit(Action.X)]` in a page route's signature."""
    return Depends(PagePermit(action))


def page_public(action: Action) -> Any:
    """`dependencies=[page_public(Action.LOGIN)]` on a page that needs no login."""
    return Depends(PagePublic(action))
