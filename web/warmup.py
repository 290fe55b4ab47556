"""Warm the pages up while the server starts (its lifespan), not on a user's first request:
compile every template in both languages, load the catalogs and Babel's locale data, hash
the static files. Tests that call the app without a lifespan skip it and compile lazily."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from documents.formatting import timezone_name
from web.i18n import HTML_LANG, LOCALES
from web.static_files import STATIC_DIR, static_url


def warm_up(timezone: str) -> int:
    """Returns the number of templates compiled."""
    from web.render import _datetime, environment

    compiled = 0
    for locale in LOCALES:
        env = environment(locale)
        for name in env.list_templates(filter_func=lambda n: n.endswith(".html")):
            env.get_template(name)
            compiled += 1
        timezone_name(timezone, HTML_LANG[locale])
        _datetime(datetime.now(UTC), locale, timezone)
    for path in STATIC_DIR.rglob("*"):
        if path.is_file() and path.suffix in (".css", ".js"):
            static_url(str(path.relative_to(STATIC_DIR)))
    return compiled


def warm_on_startup(app: FastAPI, timezone: str) -> None:
    inner: Callable[[Any], AbstractAsyncContextManager[Any]] = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        await run_in_threadpool(warm_up, timezone)
        async with inner(application) as state:
            yield state

    app.router.lifespan_context = lifespan
