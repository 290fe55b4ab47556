"""HR's reorganisation pages in process: check a file (totals, bad rows by line), start it, the
progress page and its polling fragment; both languages. Temporal is faked (the workflow runs in
tests/workflow/test_bulk.py and the dev-server acceptance test)."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from models import Customer, Reorganisation
from tests.api.conftest import Api, FakeTemporal
from tests.web.conftest import Browser, login_as


def _csv(api: Api, *, bad: bool) -> bytes:
    with api.sessions() as s:
        codes = [s.get(Customer, c).code for c in api.org.customers_a1]  # type: ignore[union-attr]
    rows = [f"{codes[0]},E101", f"{codes[1]},E102"] + (["NOPE,E101", f"{codes[2]},E200"]
                                                       if bad else [])
    return ("customer_code,new_owner_employee_no\n" + "\n".join(rows) + "\n").encode()


async def _check(browser: Browser, body: bytes) -> str:
    r = await browser.http.post("/app/reorganisations/check",
                                data={"reason": "WORKLOAD_BALANCING", "csrf_token": browser.csrf},
                                files={"file": ("moves.csv", body, "text/csv")})
    assert r.status_code == 200, r.text
    return r.text


@pytest.mark.parametrize("lang, bad_label", [("en", "No such customer."),
                                             ("zh_CN", "没有这个客户。")])
async def test_check_shows_totals_and_bad_rows_by_line(api: Api, browsers: dict[int, Browser],
                                                       lang: str, bad_label: str) -> None:
    hr = await login_as(api, browsers, api.org.hr_head, lang=lang)
    page = await _check(hr, _csv(api, bad=True))
    assert 'data-plan-ok="0"' in page
    assert re.search(r'data-row="4" data-code="UNKNOWN_CUSTOMER"', page)
    assert re.search(r'data-row="5" data-code="RECEIVER_NOT_SALES"', page)
    assert bad_label in page
    assert re.search(r'data-total="customers">2<', page)
    assert 'action="/app/reorganisations/start"' not in page  # nothing to start


async def test_check_then_start_then_follow_the_progress(
        api: Api, browsers: dict[int, Browser], fake_temporal: FakeTemporal) -> None:
    hr = await login_as(api, browsers, api.org.hr_head, lang="en")
    page = await _check(hr, _csv(api, bad=False))
    assert 'data-plan-ok="1"' in page and "Start 2 requests" in page
    start_form = page.split('action="/app/reorganisations/start"')[1].split("</form>")[0]
    form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', start_form))
    found = re.search(r'<textarea name="csv_text"[^>]*>(.*?)</textarea>', start_form, re.S)
    assert found and found.group(1) == _csv(api, bad=False).decode()
    form["csv_text"] = found.group(1)
    r = await hr.http.post("/app/reorganisations/start", data=form)
    assert r.status_code == 303, r.text
    with api.sessions() as s:
        [stored] = s.exec(select(Reorganisation)).all()
    assert r.headers["location"] == f"/app/reorganisations/{stored.id}"
    assert stored.total_groups == 2 and fake_temporal.started == [stored.workflow_id]
    # a reload of the start form (the same key) starts nothing twice
    again = await hr.http.post("/app/reorganisations/start", data=form)
    assert again.status_code == 303 and fake_temporal.started == [stored.workflow_id]

    page = (await hr.get(r.headers["location"])).text
    assert '<progress id="reorganisation-bar" value="0" max="2">' in page
    assert f'hx-get="/app/reorganisations/{stored.id}/progress"' in page  # polls while running
    fragment = await hr.get(f"/app/reorganisations/{stored.id}/progress")
    assert fragment.status_code == 200 and "<html" not in fragment.text
    listing = (await hr.get("/app/reorganisations")).text
    assert f'data-reorganisation="{stored.id}"' in listing


async def test_managers_may_not_open_the_page(api: Api, browsers: dict[int, Browser]) -> None:
    manager = await login_as(api, browsers, api.org.manager_a)
    r = await manager.get("/app/reorganisations")
    assert r.status_code == 403
    assert r.headers["X-Problem-Type"].endswith("/forbidden-role")
