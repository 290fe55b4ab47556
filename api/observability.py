"""Per-request id, access log line and Prometheus metrics for the API.

One plain ASGI middleware (outermost, so it times everything and sees the final status):
- the request id: a sane incoming X-Request-ID is kept, anything else replaced by a new one;
  it is echoed in the response's X-Request-ID and put on every log line of the request;
- `baton_http_requests_total{method,route,status}` and
  `baton_http_request_duration_seconds{method,route,status_class}`, where `route` is the
  route's template (/api/v1/reassignments/{request_id}), never the raw path, so the series
  stay few and no id or name reaches the metrics;
- one access log line with the same labels and the duration (no path, no query string).

Under `uvicorn --workers N` every process counts its own requests; with
PROMETHEUS_MULTIPROC_DIR set, prometheus_client keeps them in files there and /metrics adds
all processes up (api/routes/probes.py).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.routes import probes
from logging_config import configure_logging, request_id_var
from settings import Settings

log = logging.getLogger("baton.access")
# no *_created series: they double the output and multiprocess mode has none anyway
disable_created_metrics()

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
UNMATCHED = "unmatched"  # a 404 for no route: one series, whatever the path was
# the probes are polled every few seconds: their access lines only at DEBUG
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
# any other method string is "other": a client must not be able to mint new series
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ApiMetrics:
    """The API's request metrics, in a registry of their own (one per app, so tests count
    from zero; in multiprocess mode the values live in PROMETHEUS_MULTIPROC_DIR)."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "baton_http_requests", "HTTP requests answered, by route template and status.",
            ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram(
            "baton_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and status class.",
            ["method", "route", "status_class"], registry=self.registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route, f"{status // 100}xx").observe(seconds)

    def exposition(self) -> bytes:
        """The text format: this process's registry, or every process's in multiprocess mode."""
        if self.multiprocess_dir is None:
            return bytes(generate_latest(self.registry))
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self.multiprocess_dir)
        return bytes(generate_latest(merged))


def sane_request_id(incoming: str | None) -> str:
    if incoming and _SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


class RouteTemplates:
    """The full template of the route that answered a request.

    Starlette leaves the matched route in scope["route"]; with FastAPI's nested included
    routers its `.path` lacks the include prefix, so the full paths come from the app's
    effective route contexts (what FastAPI matched against), looked up once.
    """

    def __init__(self) -> None:
        self._full: dict[int, str] | None = None

    def _build(self, app: Any) -> dict[int, str]:
        full: dict[int, str] = {}
        for route in getattr(app, "routes", []):
            contexts = getattr(route, "effective_route_contexts", None)
            if contexts is None:
                full.setdefault(id(route), getattr(route, "path", ""))
                continue
            for ctx in contexts():
                full.setdefault(id(ctx.original_route), ctx.path)
        return full

    def of(self, scope: Scope, root_path: str) -> str:
        route = scope.get("route")
        if route is None:
            mounted = scope.get("root_path", "")
            # a Mount (static files) moved root_path to its prefix
            return f"{mounted}/{{path}}" if mounted != root_path else UNMATCHED
        if self._full is None:
            self._full = self._build(scope["app"])
        return self._full.get(id(route)) or str(getattr(route, "path", UNMATCHED))


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = sane_request_id(incoming)
        scope.setdefault("state", {})["request_id"] = request_id
        root_path = scope.get("root_path", "")
        status = 500  # unless the app answers: an exception escaping it is a 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = self.templates.of(scope, root_path)
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
            self.metrics.observe(method, route, status, seconds)
            log.log(logging.DEBUG if route in QUIET_ROUTES else logging.INFO,
                    "%s %s %s", method, route, status,
                    extra={"method": method, "route": route, "status": status,
                           "duration_ms": round(seconds * 1000, 1)})
            request_id_var.reset(token)


def install_observability(app: FastAPI, settings: Settings) -> None:
    """/healthz, /readyz and /metrics, the middleware, and log set-up when the server starts.

    Call it last in create_app: the middleware added last is the outermost. Logging is set up
    in the lifespan (uvicorn runs it; tests that call the app directly keep pytest's logging).
    """
    multiprocess_dir = settings.prometheus_multiproc_dir
    metrics = ApiMetrics(str(multiprocess_dir) if multiprocess_dir is not None else None)
    app.state.metrics = metrics
    app.include_router(probes.router)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    inner: Callable[[Any], AbstractAsyncContextManager[Any]] = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        configure_logging(settings.log_format, settings.log_level)
        async with inner(application) as state:
            yield state

    app.router.lifespan_context = lifespan
