"""The salesperson's journey in a real browser, on a desktop (Chinese) and on a phone (English,
375 x 812, touch), side by side so that their communication windows run at the same time:

1. A manager submits and the approvers approve through the API (the approver pages are another
   journey's tests), so each salesperson has a request in its communication window.
2. The salesperson sees it on the start page and in the notifications (the bell), opens the
   case, reads the personal report in the page and downloads its PDF, and appeals.
3. HR upholds the request through the API; the case page refreshes itself.
4. The salesperson registers a passkey in the browser (a CDP virtual authenticator) and signs
   with it; the request takes effect when the window ends and enters its protection period.
5. HR posts an order of a moved customer (POST /api/v1/orders); the statement shows the
   protection income. The salesperson acknowledges the published policy.

A second test tours every page in the two remaining language x device pairs. Every page gets
a screenshot (screenshots/salesperson-*.png) and an axe-core check; no CSP violation and no
page over the server-time budget.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import (
    DEMO_PASSWORD,
    PAGE_BUDGET_MS,
    PageWatch,
    assert_fits,
    check_a11y,
    login,
    new_page,
    shoot,
)

pytestmark = pytest.mark.e2e

JOURNEY = "salesperson"
MANAGER, HR = "e021", "e200"  # the South team's manager (E104-E107); head of HR
STAGE_WAIT_S = 90  # approvals and document rendering
EFFECT_WAIT_S = 300  # the demo policy's communication window is 3 minutes, paused by appeals
ORG_TZ = ZoneInfo("Asia/Shanghai")
AUTHENTICATOR = {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
                 "hasUserVerification": True, "isUserVerified": True,
                 "automaticPresenceSimulation": True}


# --- the API, for the other people in the story ----------------------------------------------


class StackApi:
    """The manager, approvers and HR, acting through the API with Bearer tokens."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.tokens: dict[str, str] = {}
        self._people: dict[int, dict[str, Any]] = {}

    def close(self) -> None:
        self.http.close()

    def headers(self, username: str) -> dict[str, str]:
        if username not in self.tokens:
            r = self.http.post("/api/v1/auth/login", json={"username": username,
                                                           "password": DEMO_PASSWORD})
            assert r.status_code == 200, r.text
            self.tokens[username] = r.json()["access_token"]
        return {"Authorization": f"Bearer {self.tokens[username]}"}

    def call(self, method: str, username: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers(username), **kwargs.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kwargs)

    @property
    def people(self) -> dict[int, dict[str, Any]]:
        if not self._people:
            r = self.call("GET", HR, "/api/v1/employees", params={"limit": 500})
            assert r.status_code == 200, r.text
            self._people = {e["id"]: e for e in r.json()["items"]}
        return self._people

    def person(self, employee_no: str) -> dict[str, Any]:
        return next(p for p in self.people.values() if p["employee_no"] == employee_no)

    def username(self, employee_id: int) -> str:
        return str(self.people[employee_id]["employee_no"]).lower()

    def submit(self, seller_no: str, receiver_no: str) -> tuple[int, int]:
        """A request moving one of the seller's customers (one not already in a request)."""
        seller, receiver = self.person(seller_no), self.person(receiver_no)
        r = self.call("GET", MANAGER, "/api/v1/customers",
                      params={"owner_employee_id": seller["id"], "limit": 100})
        assert r.status_code == 200, r.text
        for customer in reversed(r.json()["items"]):
            r = self.call("POST", MANAGER, "/api/v1/reassignments",
                          headers={"Idempotency-Key": str(uuid.uuid4())},
                          json={"from_employee_id": seller["id"],
                                "to_employee_id": receiver["id"],
                                "customer_ids": [customer["id"]],
                                "reason": "WORKLOAD_BALANCING",
                                "note": "E2E: the salesperson's journey"})
            if r.status_code == 201:
                return int(r.json()["id"]), int(customer["id"])
        raise AssertionError(f"no customer of {seller_no} could be submitted: {r.text}")

    def detail(self, request_id: int) -> dict[str, Any]:
        r = self.call("GET", HR, f"/api/v1/reassignments/{request_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def approve_until_communication(self, request_id: int) -> dict[str, Any]:
        """Each open level approved by one of its approvers, until the window opens with the
        report and the agreement rendered."""
        deadline = time.monotonic() + STAGE_WAIT_S
        while time.monotonic() < deadline:
            live = self.detail(request_id)["live"] or {}
            if live.get("stage") == "COMMUNICATION" and live.get("agreement_sha256"):
                return live
            if live.get("stage") == "PENDING_APPROVAL":
                for approver in live.get("pending_approvers", []):
                    r = self.call("POST", self.username(approver),
                                  f"/api/v1/reassignments/{request_id}/approve",
                                  json={"comment": "E2E approval"})
                    if r.status_code == 200:
                        break
            time.sleep(0.5)
        raise AssertionError(f"request {request_id} did not reach COMMUNICATION: {live}")

    def wait_stage(self, request_id: int, stages: set[str], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            detail = self.detail(request_id)
            if detail["stage"] in stages:
                return detail
            time.sleep(1)
        raise AssertionError(f"request {request_id} is {detail['stage']}, not {stages}")

    def audit_types(self, request_id: int) -> list[dict[str, Any]]:
        r = self.call("GET", HR, f"/api/v1/reassignments/{request_id}/audit")
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items


@pytest.fixture(scope="module")
def stack_api(base_url: str) -> Any:
    client = StackApi(base_url)
    yield client
    client.close()


# --- one salesperson in one browser ------------------------------------------------------------


@dataclass
class Run:
    lang: str
    device: str
    seller_no: str
    receiver_no: str
    request_id: int = 0
    customer_id: int = 0
    context: Any = None
    page: Any = None
    watch: PageWatch | None = None
    looked: list[str] = field(default_factory=list)

    @property
    def case_url(self) -> str:
        return f"/app/me/requests/{self.request_id}"

    def open(self, browser: Any, site_url: str, api: StackApi) -> None:
        self.context, self.page, self.watch = new_page(browser, site_url, self.device)
        cdp = self.context.new_cdp_session(self.page)
        cdp.send("WebAuthn.enable")
        cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
        login(self.page, self.seller_no.lower(), lang=self.lang)

    def look(self, name: str) -> None:
        shoot(self.page, JOURNEY, name, self.lang, self.device)
        check_a11y(self.page, f"{JOURNEY}-{name}-{self.lang}-{self.device}")
        assert_fits(self.page)  # nothing wider than the screen, at 375 px too
        self.looked.append(name)

    def text(self, zh: str, en: str) -> str:
        return zh if self.lang == "zh" else en

    def finish(self) -> None:
        assert self.watch is not None
        assert self.watch.violations == [], self.watch.violations
        # the budget is for pages and fragments; a login hashes on purpose, and signing waits
        # for the workflow's sign Update, which seals the agreement PDF before it answers
        slow = [(ms, what) for ms, what in self.watch.slow() if what.startswith("GET ")]
        # over the budget once may be the machine (other test runs share its cores): ask
        # again, quietly; a page that is slow every time fails
        still = []
        for ms, what in slow:
            again = min(_server_ms(self.page.request.get(what.split(" ", 1)[1]))
                        for _ in range(3))
            if again > PAGE_BUDGET_MS:
                still.append((ms, again, what))
        assert still == [], f"pages over {PAGE_BUDGET_MS} ms: {still}"


def _server_ms(response: Any) -> float:
    found = re.search(r"app;dur=([0-9.]+)", response.headers.get("server-timing", ""))
    assert found, response.url
    return float(found.group(1))


def _read_and_appeal(run: Run) -> None:
    page = run.page
    # the start page says what waits, loaded by htmx under the greeting
    expect(page.locator(f'#me-summary a[href="{run.case_url}"]')).to_be_visible()
    expect(page.locator("#bell .bell-count")).to_be_visible()
    run.look("home")

    page.locator("#bell").click()
    page.wait_for_url("**/app/notifications")
    note = page.locator('.note-item[data-kind="REPORT_AVAILABLE"]').first
    expect(note).to_have_class(re.compile("note-unread"))
    run.look("notifications")
    unread = int(page.locator("#bell").get_attribute("data-unread") or "0")
    note.locator("form button").click()  # mark as read (htmx): the bell counts one less
    expect(note).not_to_have_class(re.compile("note-unread"))
    expect(page.locator("#bell")).to_have_attribute("data-unread", str(unread - 1))

    note.locator(f'a[href="{run.case_url}"]').click()
    page.wait_for_url(f"**{run.case_url}")
    expect(page.locator('#now[data-stage="COMMUNICATION"]')).to_be_visible()
    expect(page.locator("#now time[data-countdown]")).to_be_visible()
    run.look("case")

    # the report, in the page, then its PDF
    page.locator("#go-report").click()
    page.wait_for_url(f"**/app/requests/{run.request_id}/report")
    frame = page.frame_locator("iframe.report-frame")
    expect(frame.locator("h1")).to_be_visible()
    expect(page.locator("iframe.report-frame[data-sized]")).to_be_attached()
    run.look("report")
    with page.expect_download() as download:
        page.locator(f'a[href="/app/requests/{run.request_id}/report.pdf"]').first.click()
    assert download.value.suggested_filename.endswith(".pdf")

    # appeal: a reason is required, then the window pauses for HR
    page.goto(run.case_url)
    page.locator("#appeal button[type=submit]").click()
    expect(page.locator("#error-appeal")).not_to_be_empty()
    page.locator("#appeal-reason").fill(run.text("这些客户是我开发的，请重新考虑。",
                                                 "I found these customers; please reconsider."))
    page.locator("#appeal button[type=submit]").click()
    page.wait_for_url(re.compile(r"notice=appealed"))
    expect(page.locator('#now[data-stage="APPEAL_REVIEW"]')).to_be_visible()
    run.look("appealed")


def _register_and_sign(run: Run, seller_name: str) -> None:
    page = run.page
    # HR upheld the request meanwhile: the case page polls and redraws itself
    expect(page.locator('#now[data-stage="COMMUNICATION"]')).to_be_visible(timeout=30_000)
    page.locator("#go-sign").click()
    page.wait_for_url(f"**{run.case_url}/sign")
    expect(page.locator("#sign-passkey")).to_have_count(0)  # no passkey yet
    page.locator(f'a[href="/app/me/passkeys?next={run.case_url}/sign"]').click()
    page.wait_for_url("**/app/me/passkeys?next=**")
    run.look("passkeys")
    page.locator("#passkey-name").fill(run.text("我的手机", "my phone"))
    page.locator("#register-passkey").click()  # navigator.credentials.create()
    page.wait_for_url(re.compile(r"/sign\?notice=registered"))
    expect(page.locator("#sign-passkey")).to_be_visible()
    run.look("sign")

    page.locator("#sign-passkey").click()  # no name typed: said next to the field
    expect(page.locator("#error-typed_name")).not_to_be_empty()
    page.locator("#typed_name").fill(seller_name)
    page.locator("#sign-passkey").click()  # navigator.credentials.get()
    page.wait_for_url(re.compile(rf"{run.case_url}\?notice=signed"))
    expect(page.locator(".notice-good")).to_be_visible()
    run.look("signed")


def _statement_and_policy(run: Run, api: StackApi) -> None:
    page = run.page
    page.goto(run.case_url)
    expect(page.locator('#now[data-stage="PROTECTION"]')).to_be_visible()
    run.look("protection")

    # an order of the moved customer, inside the protection period
    r = api.call("POST", HR, "/api/v1/orders", json={
        "external_id": f"E2E-{run.request_id}-{uuid.uuid4().hex[:8]}",
        "customer_id": run.customer_id, "amount_fen": 12_345_600, "currency": "CNY",
        "booked_at": datetime.now(UTC).isoformat()})
    assert r.status_code == 201, r.text
    period = datetime.now(ORG_TZ).strftime("%Y-%m")
    page.goto("/app/statements")
    card = page.locator(".statement-card", has=page.locator(
        f'a[href$="/{period}"]')).first
    expect(card.locator(".protection-figure")).to_be_visible()
    run.look("statements")
    card.locator("a").first.click()
    page.wait_for_url(f"**/{period}")
    figure = page.locator('#protection-income [data-figure="protection"]')
    expect(figure).not_to_have_text("¥0.00")
    expect(page.locator("#by-rule tr.row-protection")).to_be_visible()
    run.look("statement")

    # the published policy, acknowledged
    page.goto("/app/me/policies")
    run.look("policies")
    page.locator(".attention-warn a[role=button]").first.click()
    page.wait_for_url(re.compile(r"/app/me/policies/\d+$"))
    run.look("policy")
    page.locator("#acknowledge button[type=submit]").click()
    page.wait_for_url(re.compile(r"notice=acknowledged"))
    expect(page.locator("#acknowledge.attention-good")).to_be_visible()

    # My cases: the signed case, in its protection period
    page.goto("/app/me")
    expect(page.locator(f'.case-card a[href="{run.case_url}"]')).to_be_visible()
    run.look("cases")


def test_salesperson_reads_appeals_signs_and_sees_protection_income(
        browser: Any, site_url: str, stack_api: StackApi) -> None:
    api = stack_api
    runs = [Run("zh", "desktop", "E105", "E104"), Run("en", "mobile", "E106", "E107")]
    try:
        for run in runs:
            run.request_id, run.customer_id = api.submit(run.seller_no, run.receiver_no)
            api.approve_until_communication(run.request_id)
        for run in runs:
            run.open(browser, site_url, api)
            _read_and_appeal(run)
        for run in runs:
            r = api.call("POST", HR, f"/api/v1/reassignments/{run.request_id}/resolve-appeal",
                         json={"outcome": "UPHOLD", "comment": "E2E: the request stands"})
            assert r.status_code == 200, r.text
        for run in runs:
            _register_and_sign(run, api.person(run.seller_no)["name"])
            events = api.audit_types(run.request_id)
            kinds = [e["event_type"] for e in events]
            assert "APPEAL_OPENED" in kinds and "SIGNED" in kinds
            reads = [e["detail"].get("format") for e in events
                     if e["event_type"] == "REPORT_READ"]
            assert "html" in reads and "pdf" in reads
            reauth = [e for e in events if e["event_type"] == "SIGNING_REAUTHENTICATED"]
            assert reauth and reauth[-1]["detail"]["method"] == "passkey"
        for run in runs:  # the window ends, the customers move, protection starts
            api.wait_stage(run.request_id, {"PROTECTION"}, EFFECT_WAIT_S)
        for run in runs:
            _statement_and_policy(run, api)
            run.finish()
    finally:
        for run in runs:
            if run.context is not None:
                run.context.close()


# --- every page, in the other two language x device pairs ---------------------------------------

TOUR: dict[str, int] = {}


@pytest.mark.parametrize(("lang", "device"), [("en", "desktop"), ("zh", "mobile")],
                         ids=["en-desktop", "zh-mobile"])
def test_every_salesperson_page(browser: Any, site_url: str, stack_api: StackApi, lang: str,
                                device: str) -> None:
    api = stack_api
    if "request_id" not in TOUR:  # one case in its window for both tours
        TOUR["request_id"], _customer = api.submit("E107", "E104")
        api.approve_until_communication(TOUR["request_id"])
    run = Run(lang, device, "E107", "E104", request_id=TOUR["request_id"])
    try:
        run.open(browser, site_url, api)
        page = run.page
        expect(page.locator(f'#me-summary a[href="{run.case_url}"]')).to_be_visible()
        run.look("home")
        page.goto("/app/notifications")
        run.look("notifications")
        page.goto("/app/me")
        expect(page.locator(f'a[href="{run.case_url}"]').first).to_be_visible()
        run.look("cases")
        page.goto(run.case_url)
        expect(page.locator('#now[data-stage="COMMUNICATION"]')).to_be_visible()
        run.look("case")
        page.goto(f"/app/requests/{run.request_id}/report")
        expect(page.frame_locator("iframe.report-frame").locator("h1")).to_be_visible()
        expect(page.locator("iframe.report-frame[data-sized]")).to_be_attached()
        run.look("report")
        page.goto(f"{run.case_url}/sign")
        page.locator("#send-code").click()  # the one-time code fallback (htmx)
        expect(page.locator("#otp-status .code-sent")).to_be_visible()
        expect(page.locator("#otp_code")).to_be_focused()
        run.look("sign-code")
        page.goto("/app/me/passkeys")
        run.look("passkeys")
        page.goto("/app/statements")
        run.look("statements")
        first = page.locator(".statement-card a").first
        if first.count():
            first.click()
            page.wait_for_url(re.compile(r"/app/statements/\d+/\d{4}-\d{2}$"))
            run.look("statement")
        page.goto("/app/me/policies")
        run.look("policies")
        page.locator(".case-card a").first.click()
        page.wait_for_url(re.compile(r"/app/me/policies/\d+$"))
        run.look("policy")
        # someone else's case is a 404 page, in this language
        response = page.goto("/app/me/requests/999999")
        assert response is not None and response.status == 404
        run.look("not-found")
        run.finish()
    finally:
        if run.context is not None:
            run.context.close()
