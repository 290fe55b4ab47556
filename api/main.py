"""The FastAPI application: `uvicorn api.main:app`, or `create_app(settings)` in tests."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.deps import API_PREFIX
from api.middleware import BodyLimitMiddleware, SecureHeadersMiddleware
from api.observability import install_observability
from api.problems import (
    Problem,
    install_problem_handlers,
    install_problem_openapi,
    problem_response,
    temporal_unavailable_problem,
)
from api.ratelimit import LoginRateLimiter
from api.routes import accounts as accounts_routes
from api.routes import api_router
from api.routes import audit as audit_routes
from api.routes import codec as codec_routes
from api.routes import delegations as delegations_routes
from api.routes import directory as directory_routes
from api.routes import documents as documents_routes
from api.routes import evidence as evidence_routes
from api.routes import monitor as monitor_routes
from api.routes import my_data as my_data_routes
from api.routes import notifications as notifications_routes
from api.routes import orders as orders_routes
from api.routes import outcomes as outcomes_routes
from api.routes import plans as plans_routes
from api.routes import policies as policies_routes
from api.routes import reorganisations as reorganisations_routes
from api.routes import settlements as settlements_routes
from api.routes import signing as signing_routes
from api.routes import statements as statements_routes
from api.routes import valuations as valuations_routes
from api.temporal import TemporalConnector, TemporalUnavailable
from models.db import engine_for, session_factory
from settings import Settings, get_settings
from web import install_web


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Baton",
        version="0.1.0",
        summary="Lawful, durable reassignment of sales customers.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    engine = engine_for(settings.database_url)  # builds no connection until first use
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    # Temporal is connected on first use, so the API starts (and reads) while it is down.
    app.state.temporal = TemporalConnector(settings)
    # per app, so that each test's app counts from zero
    app.state.login_limiter = LoginRateLimiter(settings.login_rate_limit,
                                               settings.login_rate_limit_storage)
    # inside the security headers, so that its early 413 carries them too
    app.add_middleware(BodyLimitMiddleware, default=settings.max_body_bytes,
                       limits={f"{API_PREFIX}/orders/import": orders_routes.MAX_IMPORT_BODY_BYTES})
    app.add_middleware(SecureHeadersMiddleware)

    install_problem_handlers(app)
    install_problem_openapi(app)

    async def _on_temporal_unavailable(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(request, temporal_unavailable_problem())

    app.add_exception_handler(TemporalUnavailable, _on_temporal_unavailable)
    app.include_router(api_router, prefix=API_PREFIX)
    app.include_router(orders_routes.router, prefix=API_PREFIX)
    app.include_router(documents_routes.router, prefix=API_PREFIX)
    app.include_router(plans_routes.router, prefix=API_PREFIX)
    app.include_router(statements_routes.router, prefix=API_PREFIX)
    app.include_router(settlements_routes.router, prefix=API_PREFIX)
    app.include_router(evidence_routes.router, prefix=API_PREFIX)
    app.include_router(valuations_routes.router, prefix=API_PREFIX)
    app.include_router(policies_routes.router, prefix=API_PREFIX)
    app.include_router(signing_routes.router, prefix=API_PREFIX)
    app.include_router(accounts_routes.router, prefix=API_PREFIX)
    app.include_router(audit_routes.router, prefix=API_PREFIX)
    app.include_router(delegations_routes.router, prefix=API_PREFIX)
    app.include_router(directory_routes.router, prefix=API_PREFIX)
    app.include_router(my_data_routes.router, prefix=API_PREFIX)
    app.include_router(reorganisations_routes.router, prefix=API_PREFIX)
    app.include_router(notifications_routes.router, prefix=API_PREFIX)
    app.include_router(outcomes_routes.router, prefix=API_PREFIX)
    app.include_router(monitor_routes.router, prefix=API_PREFIX)
    # the Temporal UI's codec server at /codec (CORS for the UI's origin there only)
    codec_routes.install_codec_server(app, settings, API_PREFIX)
    # the pages (web/): /, /login, /logout, /app/..., /static; errors on them are pages
    install_web(app)
    # /healthz, /readyz, /metrics, request ids and logs; last, so its middleware is outermost
    install_observability(app, settings)
    return app


app = create_app()

__all__ = ["Problem", "app", "create_app"]
