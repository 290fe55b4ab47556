"""The HR dashboard's "stuck in Temporal" panel (htmx fragment GET /app/hr/stuck) against a
fake visibility store: overdue cases with names and links, failing workflows, the filters
shown and linked into the Temporal UI, both languages, and a Temporal that is down."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

from api.deps import get_temporal_client
from api.problems import temporal_unavailable_problem
from models.org import Employee
from tests.api.conftest import Api
from tests.api.test_monitor import (  # noqa: F401  (fixture)
    FakeVisibility,
    failing_execution,
    overdue_execution,
    submitted,
    visibility,
)
from tests.web.conftest import Browser, login_as

PANEL = "/app/hr/stuck"


def temporal_links(page: str) -> list[str]:
    return [unquote(html.unescape(h)) for h in re.findall(r'href="(http://localhost:8233/[^"]+)"',
                                                          page)]


async def test_the_panel_lists_overdue_cases_and_failing_workflows(
        api: Api, browsers: dict[int, Browser], visibility: FakeVisibility) -> None:  # noqa: F811
    org = api.org
    late = await submitted(api, org.customers_a1[0], "panel-1")
    visibility.overdue = [overdue_execution(late, datetime.now(UTC) - timedelta(minutes=7),
                                            [org.director])]
    visibility.failing = [failing_execution("valuation-manual-abc", "ValuationRefreshWorkflow")]
    hr = await login_as(api, browsers, org.hr_staff, lang="en")

    dashboard = await hr.get("/app/hr")
    assert dashboard.status_code == 200
    assert f'hx-get="{PANEL}" hx-trigger="load"' in dashboard.text  # loaded after the page

    r = await hr.get(PANEL)
    assert r.status_code == 200, r.text
    page = r.text
    assert "Stuck in Temporal" in page and "<html" not in page  # a fragment
    row = re.search(rf'<tr data-stuck-overdue="reassignment-{late}">.*?</tr>', page, re.S)
    assert row, page
    assert f'href="/app/hr/cases/{late}"' in row.group(0)
    with api.sessions() as s:
        director = s.get(Employee, org.director)
        assert director is not None
    assert html.escape(director.name) in row.group(0)  # named, from the database
    assert "overdue by 7 minutes" in row.group(0)
    failing = re.search(r'<tr data-stuck-failing="valuation-manual-abc">.*?</tr>', page, re.S)
    assert failing and "ValuationRefreshWorkflow" in failing.group(0)
    assert "category=WorkflowTaskFailed" in failing.group(0)
    # the filters as text, exactly the queries run, and the Temporal UI lists with them
    shown = [html.unescape(q) for q in re.findall(r'<code data-query="\w+">([^<]+)</code>',
                                                  page)]
    assert sorted(shown) == sorted(visibility.queries)
    links = temporal_links(page)
    for query in shown:
        assert f"http://localhost:8233/namespaces/default/workflows?query={query}" in links
    assert (f"http://localhost:8233/namespaces/default/workflows/reassignment-{late}/"
            f"run-{late}/history") in links

    zh = await login_as(api, browsers, org.hr_head, lang="zh_CN")
    r = await zh.get(PANEL)
    assert r.status_code == 200 and "Stuck in Temporal" not in r.text
    assert "Temporal 中停滞的流程" in r.text


async def test_the_panel_says_when_temporal_is_down_and_keeps_the_filters(
        api: Api, browsers: dict[int, Browser]) -> None:
    def down() -> None:
        raise temporal_unavailable_problem()

    api.app.dependency_overrides[get_temporal_client] = down
    hr = await login_as(api, browsers, api.org.hr_staff, lang="en")
    r = await hr.get(PANEL)
    assert r.status_code == 200, r.text
    assert "Temporal cannot be reached" in r.text
    assert "data-stuck-overdue" not in r.text and "data-stuck-none" not in r.text
    assert len(re.findall(r'data-temporal-link="(overdue|failing)"', r.text)) == 2
    # the dashboard itself answers from the database as before
    assert (await hr.get("/app/hr")).status_code == 200


async def test_an_empty_store_says_nothing_is_stuck_and_others_are_refused(
        api: Api, browsers: dict[int, Browser], visibility: FakeVisibility) -> None:  # noqa: F811
    hr = await login_as(api, browsers, api.org.hr_staff, lang="en")
    r = await hr.get(PANEL)
    assert 'data-stuck-none="overdue"' in r.text and 'data-stuck-none="failing"' in r.text
    manager = await login_as(api, browsers, api.org.manager_a)
    r = await manager.get(PANEL)
    assert r.status_code == 403
    assert r.headers["x-problem-type"] == "https://baton.dev/problems/forbidden-role"
