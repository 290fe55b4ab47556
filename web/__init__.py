"""Server-rendered pages (Jinja2 + htmx) on the same FastAPI app as the API.

`install_web(app)` (called by api.main.create_app) mounts /static, adds the page routes
(web/routes/) and makes errors on page paths render as pages. See web/README.md for how to
add a page, a translated string, a form with CSRF, an htmx fragment and an e2e test.
"""

from __future__ import annotations

from fastapi import FastAPI

from web.errors import PAGE_PREFIXES, install_error_pages
from web.routes import router
from web.static_files import STATIC_PATH, static_app
from web.timing import ServerTimingMiddleware
from web.warmup import warm_on_startup


def install_web(app: FastAPI) -> None:
    app.mount(STATIC_PATH, static_app(), name="static")
    app.include_router(router)
    install_error_pages(app)
    app.add_middleware(ServerTimingMiddleware, prefixes=PAGE_PREFIXES)
    warm_on_startup(app, app.state.settings.org_timezone)


__all__ = ["install_web"]
