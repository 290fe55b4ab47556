"""Security headers on every response.

A plain ASGI middleware (not BaseHTTPMiddleware): it only edits the response start, so
streaming and file responses pass through untouched. A header a route set itself wins.

- The CSP is strict everywhere (same-origin resources only, no framing, no plugins) except
  on /docs, where Swagger UI loads its script and style from a CDN and starts with an inline
  script; that page carries no personal data.
- Cache-Control: no-store unless the route chose otherwise: API answers carry personal data
  or tokens, and shared caches and the browser's history must not keep them.
- Strict-Transport-Security only when the request came over HTTPS (as uvicorn sees it; behind
  a proxy use --proxy-headers), since on plain HTTP a browser ignores it anyway.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import MAX_BODY_SCOPE_KEY, problem_response, too_large_problem

STRICT_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
              "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
SWAGGER_CDN = "https://cdn.jsdelivr.net"
DOCS_CSP = (f"default-src 'self'; script-src 'self' 'unsafe-inline' {SWAGGER_CDN}; "
            f"style-src 'self' 'unsafe-inline' {SWAGGER_CDN}; "
            "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
            "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
HSTS = "max-age=31536000; includeSubDomains"
DOCS_PATH = "/docs"

COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class SecureHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, docs_path: str = DOCS_PATH) -> None:
        self.app = app
        self.docs_path = docs_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        is_docs = path == self.docs_path or path.startswith(self.docs_path + "/")
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in COMMON_HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("Content-Security-Policy", DOCS_CSP if is_docs else STRICT_CSP)
                if https:
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(HTTPException):
    """Raised while the body is read, past the limit; answered as 413 problem+json."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"limit {limit}")
        self.limit = limit


class BodyLimitMiddleware:
    """Refuse request bodies above a size (uvicorn has no limit of its own) without reading
    them whole: at once when Content-Length says so, else as soon as the bytes read pass it.

    Starlette's own limiter (FastAPI(max_body_size=...)) answers a declared oversize body
    with text/plain whatever the app answered; ours keeps the problem+json answer.
    `limits` raises the limit for exact paths (the CSV uploads).
    """

    def __init__(self, app: ASGIApp, *, default: int, limits: Mapping[str, int]) -> None:
        self.app, self.default, self.limits = app, default, dict(limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope.get("path", ""), self.default)
        scope[MAX_BODY_SCOPE_KEY] = limit
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            response = problem_response(Request(scope), too_large_problem(limit))
            await response(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, receive_within_limit, send)
