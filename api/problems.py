"""RFC 9457 problem details: every error the API answers is application/problem+json."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://baton.dev/problems/"


class FieldError(BaseModel):
    field: str | None = None
    code: str
    message: str
    location: str | None = None  # body, query, header, path


class ProblemDetails(BaseModel):
    """The body of every error response (documented in OpenAPI)."""

    type: str = Field(examples=[PROBLEM_BASE + "validation-failed"])
    title: str
    status: int
    detail: str
    instance: str
    errors: list[FieldError] | None = None


class Problem(Exception):  # noqa: N818  (a problem is the answer, not a bug)
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        errors: Sequence[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {slug}: {detail}")
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def with_extra(self, **members: Any) -> Problem:
        """Add extension members (RFC 9457 section 3.2), e.g. the id of a saved request."""
        self.extra.update(members)
        return self


def problem_response(request: Request, problem: Problem) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + problem.slug,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.url.path,
    }
    if problem.errors is not None:
        body["errors"] = [e.model_dump(exclude_none=True) for e in problem.errors]
    body.update(problem.extra)
    return JSONResponse(body, status_code=problem.status, headers=problem.headers,
                        media_type=PROBLEM_MEDIA_TYPE)


# Generic problems for HTTPExceptions raised by FastAPI/Starlette themselves (404 route, 405...).
_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "content-too-large",
    415: "unsupported-media-type",
    422: "validation-failed",
    429: "too-many-requests",
    500: "internal-error",
    503: "service-unavailable",
}

_HINTS = {
    404: "No resource at this path. See /docs for the API's routes.",
    405: "This path does not accept that HTTP method. See /docs for the allowed methods.",
}


def _status_title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _field_path(loc: Sequence[Any]) -> tuple[str | None, str | None]:
    """('body', 'customer_ids', 0) -> ('body', 'customer_ids.0')."""
    if not loc:
        return None, None
    location = str(loc[0]) if loc[0] in ("body", "query", "header", "path", "cookie") else None
    rest = loc[1:] if location else loc
    return location, ".".join(str(p) for p in rest) or None


def validation_errors(raw: Sequence[Any]) -> list[FieldError]:
    errors = []
    for err in raw:
        location, field = _field_path(err.get("loc", ()))
        errors.append(FieldError(field=field, location=location,
                                 code=str(err.get("type", "invalid")),
                                 message=str(err.get("msg", "invalid value"))))
    return errors


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(request, exc)


# api/middleware.py's BodyLimitMiddleware puts the request's body limit in the scope.
MAX_BODY_SCOPE_KEY = "baton.max_body_size"
# FastAPI's answer when decoding a JSON body fails for another reason than bad syntax
_UNPARSABLE_BODY = "There was an error parsing the body"


def too_large_problem(limit: int | None) -> Problem:
    size = f"at most {limit:,} bytes" if isinstance(limit, int) else "a smaller body"
    return Problem(413, "content-too-large", "Content too large",
                   f"The request body is too large: this endpoint accepts {size}. Send less "
                   "data per request (split a batch or a file).")


def _unparsable_body_detail(cause: BaseException | None) -> str:
    """Say why the body could not be read: FastAPI chains the decoder's error."""
    if isinstance(cause, UnicodeDecodeError):
        return (f"The request body is not valid UTF-8 (byte 0x{cause.object[cause.start]:02x} "
                f"at position {cause.start}). Send JSON encoded as UTF-8.")
    if isinstance(cause, RecursionError):
        return ("The JSON in the request body is nested too deeply to be read. No Baton "
                "request needs more than a few levels; send a flatter document.")
    return ("The request body could not be read as the declared content type. Check the "
            "Content-Type header and the encoding (UTF-8) of the body.")


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else _status_title(status)
    if status == 413:
        return problem_response(request, too_large_problem(
            request.scope.get(MAX_BODY_SCOPE_KEY)))
    if status == 400 and detail == _UNPARSABLE_BODY:
        detail = _unparsable_body_detail(exc.__cause__)
    if detail == _status_title(status) and status in _HINTS:
        detail = _HINTS[status]
    problem = Problem(status, _SLUGS.get(status, f"http-{status}"), _status_title(status), detail,
                      headers=exc.headers)
    return problem_response(request, problem)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc.errors())
    where = ", ".join(sorted({f"{e.location}:{e.field}" if e.location else str(e.field)
                              for e in errors}))
    problem = Problem(
        422, "validation-failed", "The request is not valid",
        f"Fix these fields and send the request again: {where}. Each entry in `errors` says "
        "what is wrong.",
        errors=errors,
    )
    return problem_response(request, problem)


def number_out_of_range_problem() -> Problem:
    return Problem(
        422, "number-out-of-range", "Number out of range",
        "A number in the request is larger than the database can store in that column, so no "
        "record has such an id or amount. Check the numbers you sent.")


async def _on_number_out_of_range(request: Request, exc: Exception) -> JSONResponse:
    """The database driver cannot bind an integer (SQLite: beyond 64 bits). Routes take ids
    and amounts as plain ints, so the only such numbers come from the request."""
    log.info("integer out of the database's range on %s %s: %s", request.method,
             request.url.path, exc)
    return problem_response(request, number_out_of_range_problem())


NUMERIC_VALUE_OUT_OF_RANGE = "22003"  # SQLSTATE: PostgreSQL's "integer out of range"


async def _on_data_error(request: Request, exc: Exception) -> JSONResponse:
    """Values PostgreSQL refuses that SQLite takes: an int column compared with a bigger
    number, and text with a NUL character (psycopg refuses it before sending)."""
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) == NUMERIC_VALUE_OUT_OF_RANGE:
        return await _on_number_out_of_range(request, exc)
    if "NUL (0x00)" in str(orig):
        log.info("text with a NUL character on %s %s", request.method, request.url.path)
        return problem_response(request, Problem(
            422, "text-contains-nul", "Text contains a NUL character",
            "A text in the request contains the NUL character (U+0000), which Baton cannot "
            "store. Remove it and send the request again."))
    return await _on_database_error(request, exc)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    problem = Problem(500, "internal-error", "Internal server error",
                      "Something went wrong on the server. The error was logged; try again later.")
    return problem_response(request, problem)


DATABASE_RETRY_AFTER_S = 10


def database_unavailable(exc: BaseException) -> bool:
    """The database cannot be reached or dropped the connection (down, restarting, pool
    exhausted): a condition to retry, not a bug. OperationalError is the DBAPI's class for
    these (connection refused, server shut down, "database is locked")."""
    if isinstance(exc, PoolTimeoutError | OperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def database_unavailable_problem() -> Problem:
    return Problem(
        503, "database-unavailable", "Database unavailable",
        "The database cannot be reached right now, so nothing was read or changed by this "
        f"call. Try again in {DATABASE_RETRY_AFTER_S} seconds; /readyz shows when it is back.",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


async def _on_database_error(request: Request, exc: Exception) -> JSONResponse:
    if not database_unavailable(exc):
        return await _on_unexpected(request, exc)
    # one line, no traceback: an outage is an operations event, and floods the log otherwise
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                type(getattr(exc, "orig", None) or exc).__name__)
    return problem_response(request, database_unavailable_problem())


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    # DBAPIError (not Exception): handled by the exception middleware, which does not
    # re-raise into the server's log as the catch-all does
    app.add_exception_handler(DBAPIError, _on_database_error)
    app.add_exception_handler(PoolTimeoutError, _on_database_error)
    app.add_exception_handler(OverflowError, _on_number_out_of_range)
    app.add_exception_handler(DataError, _on_data_error)  # a DBAPIError, looked up first
    app.add_exception_handler(Exception, _on_unexpected)


def temporal_unavailable_problem(detail: str | None = None) -> Problem:
    return Problem(
        503, "temporal-unavailable", "Workflow service unavailable",
        detail or "The workflow service (Temporal) cannot be reached right now. Nothing was "
        "changed by this call; try again in a moment.",
        headers={"Retry-After": "5"},
    )


# Shared OpenAPI fragment: routes list their error statuses with the problem schema.
def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "model": ProblemDetails,
            "description": _status_title(status),
            "content": {PROBLEM_MEDIA_TYPE: {}},
        }
        for status in statuses
    }


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Make the OpenAPI document say what the error handlers above really answer.

    Every error response is application/problem+json with the ProblemDetails schema (FastAPI
    documents its own 422 as application/json HTTPValidationError, which we never send). Any
    operation with parameters or a body can answer 422; one with a body also 400 (not valid
    UTF-8, nested too deeply) and 413 (larger than the body limit).
    """
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    if "ProblemDetails" not in schemas:
        for name, definition in ProblemDetails.model_json_schema(
                ref_template="#/components/schemas/{model}").get("$defs", {}).items():
            schemas.setdefault(name, definition)
        problem_schema = ProblemDetails.model_json_schema(
            ref_template="#/components/schemas/{model}")
        problem_schema.pop("$defs", None)
        schemas["ProblemDetails"] = problem_schema
    problem_content = {PROBLEM_MEDIA_TYPE: {
        "schema": {"$ref": "#/components/schemas/ProblemDetails"}}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = operation["responses"]
            extra: list[int] = []
            if operation.get("parameters") or "requestBody" in operation:
                extra.append(422)
            if "requestBody" in operation:
                extra += [400, 413]
            for code in extra:
                responses.setdefault(str(code), {"description": _status_title(code)})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = dict(problem_content)
    for unused in ("HTTPValidationError", "ValidationError"):  # in this order
        if f'"#/components/schemas/{unused}"' not in json.dumps(schema):
            schemas.pop(unused, None)
    return schema


def install_problem_openapi(app: FastAPI) -> None:
    """Serve the OpenAPI document through document_problems (built once, then cached)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
