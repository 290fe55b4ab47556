"""End-to-end tests in a real browser: Debian's chromium, driven by pytest-playwright, against
a real stack started once per test session.

The stack, in one background thread with its own event loop (Playwright's sync API owns the
main thread): the Temporal dev server (the `temporal` binary from the venv, with Baton's search
attributes), a worker with the real activities, and the API with the pages served by uvicorn
on a free port, all on a migrated SQLite file loaded with the demo data.

Helpers for a journey test: `login(page, stack, username)`, `shoot(page, journey, name,
lang, device)` writes screenshots/<journey>-<name>-<lang>-<desktop|mobile>.png, and
`check_a11y(page)` runs axe-core (tests/e2e/vendor/axe.min.js) and fails on serious or
critical violations. Every page is also checked for Content-Security-Policy violations.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, binary
from tests.payload_keys import TEST_DATA_CONVERTER, TEST_PAYLOAD_KEYS

SCREENSHOTS = ROOT / "screenshots"
AXE_JS = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
DEMO_PASSWORD = "baton-demo-relay"
MOBILE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}
STACK_START_TIMEOUT_S = 120


def _is_e2e(item: pytest.Item) -> bool:
    return "tests/e2e/" in str(item.fspath).replace(os.sep, "/")


@pytest.hookimpl(trylast=True)  # after pytest's own reordering by fixture parameters
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the browser tests `e2e` and run them last: Playwright's sync API keeps its event
    loop marked as running in the main thread until the session ends, and pytest-asyncio
    cannot run an async test after that."""
    browser_tests = [item for item in items if _is_e2e(item)]
    for item in browser_tests:
        item.add_marker(pytest.mark.e2e)
    items[:] = [item for item in items if not _is_e2e(item)] + browser_tests


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    base_url: str
    database_url: str


class _StackThread(threading.Thread):
    """Temporal dev server + worker + uvicorn(API and pages) in one asyncio loop."""

    def __init__(self, database_url: str, port: int) -> None:
        super().__init__(name="baton-e2e-stack", daemon=True)
        self.database_url, self.port = database_url, port
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the fixture, which fails the session
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        import uvicorn
        from temporalio.testing import WorkflowEnvironment

        from api.main import create_app
        from models.db import engine_for, session_factory
        from settings import Settings
        from worker import build_worker
        from workflows.search_attributes import ALL_KEYS

        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=binary("temporal"), search_attributes=ALL_KEYS,
            data_converter=TEST_DATA_CONVERTER, ui=False)
        try:
            task_queue = f"e2e-{uuid.uuid4().hex[:8]}"
            settings = Settings(
                database_url=self.database_url, task_queue=task_queue,
                temporal_address=env.client.service_client.config.target_host,
                jwt_secret="e2e-secret-0123456789abcdef0123456789abcdef",
                payload_keys=TEST_PAYLOAD_KEYS, login_rate_limit="10000/minute",
                session_cookie_secure=False,
                # passkeys: the browser must use http://localhost:<port> (see site_url), whose
                # host is the relying party id (an IP address cannot be one)
                webauthn_origin=f"http://localhost:{self.port}", webauthn_rp_id="localhost")
            app = create_app(settings)
            app.state.temporal.use(env.client)
            sessions = session_factory(engine_for(self.database_url))
            worker = build_worker(env.client, sessions, task_queue)
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                   log_level="warning", access_log=False))
            async with worker:
                serving = asyncio.create_task(server.serve())
                while not server.started:
                    if serving.done():
                        serving.result()  # raises why it could not start
                    await asyncio.sleep(0.05)
                self.ready.set()
                await self._stop_event.wait()
                server.should_exit = True
                await serving
        finally:
            await env.shutdown()

    def stop(self) -> None:
        if self._loop is not None and self._stop_event is not None:
            self._loop.call_soon_threadsafe(self._stop_event.set)
        self.join(timeout=60)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from models.db import make_engine, migrate, session_factory
    from models.demo_data import load_demo_data

    database_url = f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'baton.db'}"
    migrate(database_url)
    engine = make_engine(database_url)
    with session_factory(engine)() as session:
        load_demo_data(session, datetime.now(UTC))
    engine.dispose()
    port = _free_port()
    thread = _StackThread(database_url, port)
    thread.start()
    if not thread.ready.wait(STACK_START_TIMEOUT_S):
        thread.stop()
        pytest.fail("the e2e stack did not start in time")
    if thread.error is not None:
        raise thread.error
    yield Stack(base_url=f"http://127.0.0.1:{port}", database_url=database_url)
    thread.stop()


# --- the browser: Debian's chromium, never a downloaded one ------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium not found: `make install` installs Debian's chromium (as root)",
                    pytrace=False)
    return {"executable_path": path,
            "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run"]}


@pytest.fixture(scope="session")
def base_url(stack: Stack) -> str:
    """pytest-playwright's base_url: page.goto("/login") goes to the stack."""
    return stack.base_url


@pytest.fixture(scope="session")
def site_url(stack: Stack) -> str:
    """The stack as http://localhost:<port>: the origin that passkey ceremonies need."""
    return stack.base_url.replace("127.0.0.1", "localhost")


# --- helpers for journey tests -------------------------------------------------------------------


PAGE_BUDGET_MS = 300.0  # server time of any page or fragment (the Server-Timing header)
TIMINGS: list[tuple[float, str]] = []


class PageWatch:
    """Collects Content-Security-Policy violations reported on the browser console, and the
    server time of every page and fragment (Server-Timing: app;dur=...)."""

    def __init__(self, page: Any) -> None:
        self.violations: list[str] = []
        self.timings: list[tuple[float, str]] = []
        page.on("console", self._on_console)
        page.on("response", self._on_response)

    def watch(self, page: Any) -> None:
        page.on("console", self._on_console)
        page.on("response", self._on_response)

    def _on_console(self, message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.violations.append(text)

    def _on_response(self, response: Any) -> None:
        header = response.headers.get("server-timing", "")
        found = re.search(r"app;dur=([0-9.]+)", header)
        if found:
            entry = (float(found.group(1)), f"{response.request.method} {response.url}")
            self.timings.append(entry)
            TIMINGS.append(entry)

    def slow(self, budget_ms: float = PAGE_BUDGET_MS) -> list[tuple[float, str]]:
        return [t for t in self.timings if t[0] > budget_ms]


def new_page(browser: Any, base_url: str, device: str) -> tuple[Any, Any, PageWatch]:
    """A fresh context (own cookies) at the device's size, and a page with a CSP watch."""
    options: dict[str, Any] = {"base_url": base_url, "locale": "zh-CN",
                               "timezone_id": "Asia/Shanghai"}
    if device == "mobile":
        options.update(viewport=MOBILE, is_mobile=True, has_touch=True, device_scale_factor=2)
    else:
        options.update(viewport=DESKTOP)
    context = browser.new_context(**options)
    context.set_default_timeout(15_000)
    page = context.new_page()
    return context, page, PageWatch(page)


def login(page: Any, username: str, *, password: str = DEMO_PASSWORD, lang: str = "zh") -> None:
    page.goto("/login" + ("?lang=en" if lang == "en" else ""))
    page.get_by_label("用户名" if lang == "zh" else "Username").fill(username)
    page.get_by_label("密码" if lang == "zh" else "Password").fill(password)
    page.locator("form button[type=submit]").click()
    page.wait_for_url("**/app**")


def shoot(page: Any, journey: str, name: str, lang: str, device: str) -> Path:
    """screenshots/<journey>-<name>-<lang>-<desktop|mobile>.png, the whole page."""
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{journey}-{name}-{lang}-{device}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def assert_fits(page: Any) -> None:
    """Nothing wider than the screen: the page never scrolls sideways (wide tables scroll
    inside their own box)."""
    overflow = page.evaluate("""() => {
        const width = document.documentElement.clientWidth;
        const wide = [...document.querySelectorAll('body *')].filter(el => {
            const r = el.getBoundingClientRect();
            return r.width > 0 && r.right > width + 1 && !el.closest('.overflow-auto');
        }).slice(0, 5).map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
            + (el.className && typeof el.className === 'string' ? '.' + el.className : ''));
        return {scroll: document.documentElement.scrollWidth, width, wide};
    }""")
    assert overflow["scroll"] <= overflow["width"] and not overflow["wide"], overflow


AXE_RESULTS: list[dict[str, Any]] = []


def check_a11y(page: Any, label: str) -> list[dict[str, Any]]:
    """Run axe-core on the page; fail on serious or critical violations (reported all)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # page.evaluate is not subject to the page's CSP (add_script_tag would be an inline
        # script, which the strict CSP refuses), so the page keeps its real policy
        page.evaluate(AXE_JS.read_text(encoding="utf-8") + "\n;0")
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}));
    }""")
    AXE_RESULTS.append({"page": label, "violations": result})
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    assert bad == [], f"axe: serious/critical violations on {label}: {bad}"
    return list(result)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        slowest = sorted(TIMINGS, reverse=True)[:5]
        terminalreporter.write_line(
            f"page server time: {len(TIMINGS)} responses, slowest: "
            + "; ".join(f"{ms:.0f} ms {what}" for ms, what in slowest))
        pages = sorted((t for t in TIMINGS if t[1].startswith("GET ")), reverse=True)[:3]
        terminalreporter.write_line(  # what the 300 ms budget is about: pages and fragments
            "slowest pages (GET): " + "; ".join(f"{ms:.0f} ms {what}" for ms, what in pages))
    if not AXE_RESULTS:
        return
    pages = len(AXE_RESULTS)
    minor = [(r["page"], v["id"], v["impact"]) for r in AXE_RESULTS for v in r["violations"]]
    terminalreporter.write_line(
        f"axe-core: {pages} page checks, {len(minor)} violations below serious: "
        + (", ".join(f"{p}:{i}({m})" for p, i, m in minor[:20]) or "none"))
