"""Page tests: the app in process (httpx over ASGI) on the test database, with the API tests'
fixtures (`api`, `fake_temporal`), and browsers as cookie jars."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from tests.api.conftest import Api, api, fake_temporal  # noqa: F401  (fixtures)
from tests.factories import PASSWORD

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


@dataclass
class Browser:
    """One person's browser: its own cookies, logged in through the login form."""

    http: httpx.AsyncClient
    csrf: str = ""

    async def get(self, url: str, **kwargs: object) -> httpx.Response:
        return await self.http.get(url, **kwargs)  # type: ignore[arg-type]

    async def post(self, url: str, data: dict[str, object] | list[tuple[str, object]],
                   *, csrf: bool = True, **kwargs: object) -> httpx.Response:
        items = list(data.items()) if isinstance(data, dict) else list(data)
        if csrf:
            items.append(("csrf_token", self.csrf))
        return await self.http.post(url, data=form_data(items), **kwargs)  # type: ignore[arg-type]


def form_data(items: list[tuple[str, object]]) -> dict[str, list[str]]:
    """Repeated fields (customer_ids) as httpx wants them: one key, a list of values."""
    data: dict[str, list[str]] = {}
    for key, value in items:
        data.setdefault(key, []).append(str(value))
    return data


def login_csrf(html: str) -> str:
    found = re.search(r'name="login_csrf" value="([^"]+)"', html)
    assert found, html[:2000]
    return found.group(1)


@pytest.fixture
async def browsers(api: Api) -> AsyncIterator[dict[int, Browser]]:  # noqa: F811
    """`await open_browser(employee_id)`-style access: browsers[emp] after `login_as`."""
    opened: dict[int, Browser] = {}
    yield opened
    for b in opened.values():
        await b.http.aclose()


async def login_as(api: Api, browsers: dict[int, Browser], employee_id: int,  # noqa: F811
                   *, lang: str | None = None) -> Browser:
    transport = httpx.ASGITransport(app=api.app)
    http = httpx.AsyncClient(transport=transport, base_url="http://baton.test")
    if lang:
        http.cookies.set("baton_lang", lang)
    page = await http.get("/login")
    r = await http.post("/login", data={
        "username": api.org.usernames[employee_id], "password": PASSWORD, "next": "/app",
        "login_csrf": login_csrf(page.text)})
    assert r.status_code == 303, r.text
    home = await http.get("/app")
    assert home.status_code == 200, home.text
    found = CSRF_META.search(home.text)
    assert found and found.group(1)
    browser = Browser(http=http, csrf=found.group(1))
    browsers[employee_id] = browser
    return browser
