"""Errors on pages are pages: the API's problem+json stays for /api and /codec, while a
page path answers HTML with the same status, in the reader's language.

- LoginRequired -> 303 to /login?next=... (htmx: HX-Redirect, so the whole window goes there)
- Problem -> the error page with the problem's status; the response header X-Problem-Type
  carries the problem type (e.g. https://baton.dev/problems/forbidden-role for a role refusal,
  which tests/api/test_permissions.py checks on every page route).
- HTTPException (a path with no page, a wrong method) and unexpected errors likewise.
- The database being down -> the error page with 503 (the API: 503 problem+json).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.problems import (
    PROBLEM_BASE,
    Problem,
    database_unavailable,
    database_unavailable_problem,
)
from web.deps import LoginRequired, login_url

log = logging.getLogger(__name__)

PAGE_PREFIXES = ("/app", "/login", "/logout")
PROBLEM_HEADER = "X-Problem-Type"


def is_page(request: Request) -> bool:
    path = request.url.path
    return path == "/" or any(path == p or path.startswith(p + "/") for p in PAGE_PREFIXES)


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def login_redirect(request: Request, next_url: str) -> Response:
    target = login_url(next_url)
    if is_htmx(request):
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def problem_page(request: Request, problem: Problem) -> Response:
    from web.render import render  # render imports deps; imported late to keep this light

    headers = {k: v for k, v in problem.headers.items() if k.lower() != "www-authenticate"}
    headers[PROBLEM_HEADER] = PROBLEM_BASE + problem.slug
    template = "_error.html" if is_htmx(request) else "error.html"
    return render(request, template, {"problem": problem}, status=problem.status,
                  headers=headers)


def install_error_pages(app: FastAPI) -> None:
    """Wrap the API's handlers: page paths get pages, everything else what it got before."""
    handlers: dict[Any, Any] = app.exception_handlers
    api_problem = handlers[Problem]
    api_http = handlers[StarletteHTTPException]
    api_validation = handlers[RequestValidationError]
    api_unexpected = handlers[Exception]
    api_database = handlers[DBAPIError]

    async def on_login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        return login_redirect(request, exc.next_url)

    async def on_problem(request: Request, exc: Exception) -> Response:
        if not is_page(request):
            return await api_problem(request, exc)  # type: ignore[no-any-return]
        assert isinstance(exc, Problem)
        return problem_page(request, exc)

    async def on_http(request: Request, exc: Exception) -> Response:
        if not is_page(request):
            return await api_http(request, exc)  # type: ignore[no-any-return]
        assert isinstance(exc, StarletteHTTPException)
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code,
                                                                  f"http-{exc.status_code}")
        detail = exc.detail if isinstance(exc.detail, str) else ""
        return problem_page(request, Problem(exc.status_code, slug, "", detail,
                                             headers=exc.headers))

    async def on_validation(request: Request, exc: Exception) -> Response:
        if not is_page(request):
            return await api_validation(request, exc)  # type: ignore[no-any-return]
        return problem_page(request, Problem(422, "validation-failed", "", ""))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        if not is_page(request):
            return await api_unexpected(request, exc)  # type: ignore[no-any-return]
        log.exception("unhandled error on page %s %s", request.method, request.url.path,
                      exc_info=exc)
        return problem_page(request, Problem(500, "internal-error", "", ""))

    async def on_database_error(request: Request, exc: Exception) -> Response:
        if not is_page(request):
            return await api_database(request, exc)  # type: ignore[no-any-return]
        if not database_unavailable(exc):
            return await on_unexpected(request, exc)
        log.warning("database unavailable on page %s %s", request.method, request.url.path)
        return problem_page(request, database_unavailable_problem())

    app.add_exception_handler(LoginRequired, on_login_required)
    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(DBAPIError, on_database_error)
    app.add_exception_handler(PoolTimeoutError, on_database_error)
    app.add_exception_handler(Exception, on_unexpected)
