"""/static: the pages' CSS, JS and vendored libraries, cached by the browser.

Templates link them with `static_url("css/app.css")`, which appends a hash of the file's
content, so a changed file gets a new URL and the old one may be cached for a year.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_PATH = "/static"


@cache
def _digest(relative: str) -> str:
    data = (STATIC_DIR / relative).read_bytes()
    return hashlib.sha256(data).hexdigest()[:12]


def static_url(relative: str) -> str:
    return f"{STATIC_PATH}/{relative}?v={_digest(relative)}"


class CachedStaticFiles(StaticFiles):
    """StaticFiles whose answers may be cached (the security middleware's default is
    no-store, right for pages with personal data, needless for public CSS and JS)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_cached(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"cache-control"]
                headers.append((b"cache-control", b"public, max-age=31536000, immutable"))
                message = {**message, "headers": headers}
            await send(message)

        await super().__call__(scope, receive, send_cached)


def static_app() -> CachedStaticFiles:
    return CachedStaticFiles(directory=STATIC_DIR)
