"""The manager's journey in a real browser, in both languages, on a desktop and on a phone:
log in, pick customers of one salesperson, see the live preview, submit, watch the timeline
reach PENDING_APPROVAL, withdraw, see WITHDRAWN. Screenshots of every page (screenshots/),
axe-core on every page, and no Content-Security-Policy violation anywhere."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import assert_fits, check_a11y, login, new_page, shoot

pytestmark = pytest.mark.e2e

JOURNEY = "manager"
MANAGER = "e020"  # East team: E100-E103
# one salesperson per run, so the runs never select the same customers
RUNS = [("zh", "desktop", "E100"), ("en", "desktop", "E101"), ("zh", "mobile", "E102"),
        ("en", "mobile", "E103")]
TEXT = {
    "zh": {"start": "为所选客户发起申请", "submit": "提交申请", "withdraw": "撤回",
           "reason": "撤回原因", "receiver": "接收销售", "why": "调整原因",
           "submitted": "申请已提交", "withdrawn": "申请已撤回"},
    "en": {"start": "Start a request for the selected customers", "submit": "Submit the request",
           "withdraw": "Withdraw", "reason": "Reason for withdrawing",
           "receiver": "Receiving salesperson", "why": "Reason",
           "submitted": "The request was submitted", "withdrawn": "The request was withdrawn"},
}
TIMELINE_WAIT_MS = 60_000


@pytest.mark.parametrize(("lang", "device", "owner_no"), RUNS,
                         ids=[f"{lang}-{device}" for lang, device, _o in RUNS])
def test_manager_submits_follows_and_withdraws(browser: Any, base_url: str, lang: str,
                                               device: str, owner_no: str) -> None:
    words = TEXT[lang]
    context, page, csp = new_page(browser, base_url, device)

    def look(name: str) -> None:
        shoot(page, JOURNEY, name, lang, device)
        check_a11y(page, f"{name}-{lang}-{device}")
        assert_fits(page)

    try:
        page.goto("/login" + ("?lang=en" if lang == "en" else ""))
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN" if lang == "zh" else "en")
        look("login")
        login(page, MANAGER, lang=lang)
        look("home")

        # the team's customers, narrowed to one salesperson
        page.goto("/app/customers")
        owner = page.locator("#filter-owner option", has_text=owner_no)
        page.select_option("#filter-owner", owner.get_attribute("value"))
        page.wait_for_url(re.compile(r"owner=\d+"))
        look("customers")
        boxes = page.locator('#select-customers input[name="customer"]')
        assert boxes.count() >= 2
        boxes.nth(0).check()
        boxes.nth(1).check()
        expect(page.locator("[data-selection-count]")).not_to_be_empty()
        page.get_by_role("button", name=words["start"]).click()
        page.wait_for_url("**/app/requests/new?**")

        # the form, and the live preview once a receiver and a reason are chosen
        expect(page.locator("#preview .placeholder")).to_be_visible()
        receiver = page.get_by_label(words["receiver"])
        receiver.select_option(index=1)
        page.get_by_label(words["why"], exact=True).select_option("WORKLOAD_BALANCING")
        expect(page.locator('#preview [data-figure="loss"]')).to_be_visible()
        expect(page.locator("#preview svg.bar-svg").first).to_be_visible()
        look("new-request")

        page.get_by_role("button", name=words["submit"]).click()
        page.wait_for_url(re.compile(r"/app/requests/\d+\?notice=submitted"))
        expect(page.locator(".notice-good")).to_contain_text(words["submitted"])
        # the timeline polls; once the workflow opened approval the page shows it
        expect(page.locator('#timeline[data-stage="PENDING_APPROVAL"]')).to_be_visible(
            timeout=TIMELINE_WAIT_MS)
        expect(page.locator('#timeline [data-step="level-1"]')).to_have_class(
            re.compile("step-current"))
        expect(page.locator("#timeline time[data-countdown]").first).to_be_visible()
        look("request-pending")

        # withdraw: a reason is required, then the request ends WITHDRAWN
        page.get_by_role("button", name=words["withdraw"], exact=True).click()
        expect(page.locator("#error-withdraw")).not_to_be_empty()
        page.get_by_label(words["reason"]).fill("E2E: customers stay where they are")
        page.get_by_role("button", name=words["withdraw"], exact=True).click()
        page.wait_for_url(re.compile(r"/app/requests/\d+\?notice=withdrawn"))
        expect(page.locator(".notice-good")).to_contain_text(words["withdrawn"])
        expect(page.locator('.request-head [data-stage="WITHDRAWN"]')).to_be_visible()
        expect(page.locator('#timeline [data-step="closed"]')).to_be_visible()
        expect(page.locator("#withdraw")).to_have_count(0)
        look("request-withdrawn")

        page.goto("/app/requests")
        expect(page.locator(".requests-table tbody tr").first).to_be_visible()
        look("requests")

        # a request that does not exist (or is out of scope): the 404 page, in this language
        response = page.goto("/app/requests/999999")
        assert response is not None and response.status == 404
        expect(page.locator("[data-problem=request-not-found]")).to_be_visible()
        look("not-found")

        assert csp.violations == [], csp.violations
    finally:
        context.close()


def test_stale_withdraw_says_what_happened(browser: Any, base_url: str) -> None:
    """Two tabs on one request: withdrawing in the second after the first did it answers
    409 with the current stage, on the refreshed page."""
    context, page, csp = new_page(browser, base_url, "desktop")
    try:
        login(page, MANAGER)
        page.goto("/app/customers")
        owner = page.locator("#filter-owner option", has_text="E100")
        page.select_option("#filter-owner", owner.get_attribute("value"))
        page.wait_for_url(re.compile(r"owner=\d+"))
        page.locator('#select-customers input[name="customer"]').last.check()
        page.get_by_role("button", name=TEXT["zh"]["start"]).click()
        page.get_by_label(TEXT["zh"]["receiver"]).select_option(index=1)
        page.get_by_label(TEXT["zh"]["why"], exact=True).select_option("PERFORMANCE")
        page.get_by_role("button", name=TEXT["zh"]["submit"]).click()
        page.wait_for_url(re.compile(r"/app/requests/\d+"))
        expect(page.locator('#timeline[data-stage="PENDING_APPROVAL"]')).to_be_visible(
            timeout=TIMELINE_WAIT_MS)
        second = context.new_page()
        # the second tab stays as it was drawn (no polling), like a laptop left open
        second.route(re.compile(r"/timeline\?"), lambda route: route.abort())
        second.goto(page.url.split("?")[0])
        for tab in (page, second):
            tab.get_by_label(TEXT["zh"]["reason"]).fill("twice")
        page.get_by_role("button", name=TEXT["zh"]["withdraw"], exact=True).click()
        page.wait_for_url(re.compile(r"notice=withdrawn"))
        second.get_by_role("button", name=TEXT["zh"]["withdraw"], exact=True).click()
        problem = second.locator(".notice-bad[data-problem]")
        expect(problem).to_be_visible()
        expect(problem).to_contain_text("申请未撤回")
        expect(second.locator('.request-head [data-stage="WITHDRAWN"]')).to_be_visible()
        shoot(second, JOURNEY, "withdraw-conflict", "zh", "desktop")
        check_a11y(second, "withdraw-conflict-zh-desktop")
        assert csp.violations == []
    finally:
        context.close()


def test_an_open_page_keeps_its_session_and_the_login_page_resumes_it(browser: Any,
                                                                      base_url: str) -> None:
    """The access cookie lives 15 minutes: an open page renews it with the refresh cookie
    (static/js/app.js), and when it is gone the login page continues the session instead of
    asking for the password (static/js/login.js)."""
    context, page, watch = new_page(browser, base_url, "desktop")
    try:
        login(page, MANAGER)
        assert page.evaluate("window.batonRefreshSession()") is True
        context.clear_cookies(name="baton_access")
        page.goto("/app/requests")
        # the server sends the page to /login?next=...; the script there resumes and returns
        page.wait_for_url(re.compile(r"/app/requests$"))
        expect(page.locator("h1")).to_have_text("我的申请")
        assert watch.violations == []
    finally:
        context.close()
