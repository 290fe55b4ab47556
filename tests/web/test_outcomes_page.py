"""HR's post-reassignment report page: the seeded scenario of tests/api/test_outcomes.py
drawn with its figures, the inline SVG charts, the flag and the CSV link."""

from __future__ import annotations

import re

import pytest

from tests.api.conftest import Api
from tests.api.test_outcomes import Scenario, scenario, scores, seed  # noqa: F401  (fixture)
from tests.web.conftest import Browser, login_as

pytestmark = pytest.mark.anyio


def _row(html: str, request_id: int) -> str:
    found = re.search(rf'<tr data-case="{request_id}".*?</tr>', html, re.S)
    assert found, html[-3000:]
    return found.group(0)


async def test_the_report_page_draws_the_figures_and_the_charts(
        api: Api, browsers: dict[int, Browser], scenario: Scenario) -> None:  # noqa: F811
    hr = await login_as(api, browsers, api.org.hr_head, lang="en")
    dashboard = await hr.get("/app/hr")
    assert 'href="/app/hr/outcomes"' in dashboard.text

    page = await hr.get("/app/hr/outcomes")
    assert page.status_code == 200, page.text
    html = page.text
    assert "<script>" not in html and ' style="' not in html  # CSP: no inline code or styles
    # one chart per team and per reason, and the stability rates, as SVG bars
    for chart in ("team", "reason", "stability"):
        assert f'data-chart="{chart}"' in html
    assert html.count("<svg class=\"bar-svg\"") >= 2 * 2 + 2 * 2 + 3
    assert 'class="seg seg-before"' in html and 'class="seg seg-after"' in html
    # overall stability: 3 months 100 %, 6 months 50 %, 12 months 0 %
    for months, rate in ((3, "100%"), (6, "50%"), (12, "0%")):
        bar = re.search(rf'data-stability="{months}">.*?<span class="bar-value">([^<]*)</span>',
                        html, re.S)
        assert bar and bar.group(1) == rate

    one = _row(html, scenario.requests["case1"])
    assert "data-flagged" in one and "fell more than 20%" in one
    assert "¥6,000.00" in one and "¥2,000.00" in one and "-66.67%" in one
    assert "3 / 2" in one
    assert "CSAT 4.50 → 2.50" in one and "NPS 9.00 → 5.00" in one
    assert [s for s in re.findall(r'data-stability-status="(\w+)"', one)] == [
        "EMPLOYED", "LEFT", "LEFT"]
    assert "¥4,000.00 → ¥3,000.00" in one  # the new owner's own book

    two = _row(html, scenario.requests["case2"])
    assert "data-flagged" not in two and "-10%" in two
    assert "¥3,000.00" in two and "¥2,700.00" in two
    three = _row(html, scenario.requests["case3"])
    assert "so far:" in three and "data-flagged" not in three

    assert 'href="/api/v1/outcomes.csv?months=3"' in html
    csv = await hr.get("/api/v1/outcomes.csv?months=3")  # the session cookie is enough
    assert csv.status_code == 200 and "600000" in csv.text

    flagged = await hr.get("/app/hr/outcomes?flagged_only=true&months=3")
    assert f'data-case="{scenario.requests["case1"]}"' in flagged.text
    assert f'data-case="{scenario.requests["case2"]}"' not in flagged.text
    assert 'href="/api/v1/outcomes.csv?months=3&amp;flagged_only=true"' in flagged.text


async def test_the_page_in_chinese_and_refused_to_salespeople(
        api: Api, browsers: dict[int, Browser], scenario: Scenario) -> None:  # noqa: F811
    hr = await login_as(api, browsers, api.org.hr_staff, lang="zh_CN")
    page = await hr.get("/app/hr/outcomes")
    assert page.status_code == 200
    assert "调整后" in page.text  # the title in Chinese
    sales = await login_as(api, browsers, api.org.sales_b1)
    assert (await sales.get("/app/hr/outcomes")).status_code == 403
