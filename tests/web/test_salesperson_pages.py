"""The salesperson's pages in process, against a fake Temporal that answers Updates like the
workflow (tests/api/test_signing.py's SigningTemporal): notifications and their scope, the
case page (404 for anyone but the affected salesperson), the report read in the page and
audited, appeal and decline posting the right Update with CSRF, the one-time code and the
passkey ceremony (a software authenticator), statements with protection income and their
scope, and acknowledging a policy version. The real browser runs in tests/e2e."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from sqlmodel import col, select

from activities.documents import DocumentActivities
from domain.stages import Stage
from domain.workflow_dto import ReasonedActionInput, SignInput
from models import AuditEvent, NotificationRecord, ReassignmentRequest, RequestDocument
from models.policy import PolicyAcknowledgement
from tests.api.conftest import Api
from tests.api.test_signing import (
    DOC,
    SigningTemporal,
    SoftAuthenticator,
    latest_code,
    signable_request,
)
from tests.api.test_statements import build_book
from tests.report_fixtures import make_report_request
from tests.web.conftest import Browser, login_as

WINDOW_END = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)
UA = "phone-browser/1.0"


@pytest.fixture
def fake_temporal() -> SigningTemporal:  # the workflow answers Updates with its state
    return SigningTemporal()


def _events(api: Api, event_type: str, request_id: int | None = None) -> list[AuditEvent]:
    with api.sessions() as s:
        query = select(AuditEvent).where(AuditEvent.event_type == event_type)
        if request_id is not None:
            query = query.where(AuditEvent.request_id == request_id)
        return list(s.exec(query.order_by(col(AuditEvent.chain_index))).all())


def _notify(api: Api, request_id: int, recipient: int, kind: str, message: str) -> int:
    with api.sessions() as s:
        row = NotificationRecord(workflow_id=f"reassignment-{request_id}",
                                 key=f"{kind}-{recipient}-{message[:20]}", request_id=request_id,
                                 recipient_id=recipient, kind=kind, message=message)
        s.add(row)
        s.flush()
        assert row.id is not None
        return row.id


def _add_agreement(api: Api, request_id: int, sha256: str = DOC) -> None:
    """An agreement version on record (its bytes do not matter to the pages)."""
    with api.sessions() as s:
        s.add(RequestDocument(request_id=request_id, kind="AGREEMENT", version=1,
                              language="zh-CN", sha256=sha256, pdf=b"%PDF-1.7 agreement",
                              html="<html><body>agreement</body></html>"))


def _bell_count(html: str) -> int:
    found = re.search(r'class="bell-count"[^>]*>(\d+)<', html)
    return int(found.group(1)) if found else 0


# --- notifications -----------------------------------------------------------------------------


async def test_notifications_are_the_callers_own_and_are_marked_read(
        api: Api, browsers: dict[int, Browser]) -> None:
    org = api.org
    rid = await signable_request(api)
    mine = _notify(api, rid, org.sales_a1, "REPORT_AVAILABLE",
                   "Your personal analysis report is ready; you may appeal or sign.")
    code = _notify(api, rid, org.sales_a1, "SIGNING_CODE",
                   f"Your one-time code to sign the agreement of reassignment request {rid} is "
                   "123456. It is valid for 10 minutes, for the agreement version with SHA-256 "
                   "abc… only. Nobody from the company will ever ask you for it.")
    theirs = _notify(api, rid, org.sales_a2, "STAGE_CHANGED", "Someone else's notice.")
    a1 = await login_as(api, browsers, org.sales_a1)
    r = await a1.get("/app/notifications")
    assert r.status_code == 200
    assert f'id="note-{mine}"' in r.text and f'id="note-{code}"' in r.text
    assert f'id="note-{theirs}"' not in r.text and "Someone else" not in r.text
    assert "您的个人分析报告已就绪" in r.text  # the kind's title, translated
    assert "请阅读，并在沟通期结束前申诉或签署" in r.text  # the workflow's text, too
    assert "Someone" not in r.text and "you may appeal or sign" not in r.text
    assert '<span class="code-digits">123456</span>' in r.text
    assert f'href="/app/me/requests/{rid}/sign"' in r.text  # the code leads to signing
    assert _bell_count(r.text) == 2  # this page's own bell has its count
    # elsewhere the bell is drawn without a count, then loaded by htmx
    assert 'hx-get="/app/notifications/badge"' in (await a1.get("/app/me")).text
    badge = await a1.get("/app/notifications/badge", headers={"HX-Request": "true"})
    assert _bell_count(badge.text) == 2 and "<html" not in badge.text
    # marking read needs the form's CSRF token, and only one's own
    r = await a1.post(f"/app/notifications/{mine}/read", {}, csrf=False)
    assert r.status_code == 403
    a2 = await login_as(api, browsers, org.sales_a2)
    r = await a2.post(f"/app/notifications/{mine}/read", {})
    assert r.status_code == 404
    r = await a1.post(f"/app/notifications/{mine}/read", {},
                      headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert f'id="note-{mine}"' in r.text and "note-unread" not in r.text
    assert 'hx-swap-oob="true"' in r.text and _bell_count(r.text) == 1
    r = await a1.get("/app/notifications?show=unread")
    assert f'id="note-{mine}"' not in r.text and f'id="note-{code}"' in r.text
    r = await a1.post("/app/notifications/read-all", {})
    assert r.status_code == 303 and r.headers["location"].endswith("notice=all-read")
    assert _bell_count((await a1.get("/app/notifications/badge")).text) == 0
    with api.sessions() as s:  # the other person's notification was not touched
        row = s.get(NotificationRecord, theirs)
        assert row is not None and row.read_at is None


# --- the case page ----------------------------------------------------------------------------


async def test_the_case_page_is_the_affected_salespersons_own(
        api: Api, browsers: dict[int, Browser]) -> None:
    org = api.org
    rid = await signable_request(api)
    _add_agreement(api, rid)
    a1 = await login_as(api, browsers, org.sales_a1)
    r = await a1.get("/app/me")
    assert r.status_code == 200 and f'href="/app/me/requests/{rid}"' in r.text
    assert "等待您的决定" in r.text  # COMMUNICATION, not signed: waiting for them
    r = await a1.get(f"/app/me/requests/{rid}")
    assert r.status_code == 200
    assert 'data-stage="COMMUNICATION"' in r.text
    assert f'action="/app/me/requests/{rid}/appeal"' in r.text
    assert f'href="/app/me/requests/{rid}/sign"' in r.text
    assert f'hx-get="/app/me/requests/{rid}/state?stage=COMMUNICATION&amp;decided=0"' in r.text
    # the poll: nothing changed, then the stage moved on
    r = await a1.get(f"/app/me/requests/{rid}/state?stage=COMMUNICATION&decided=0",
                     headers={"HX-Request": "true"})
    assert r.status_code == 204 and "hx-refresh" not in r.headers
    r = await a1.get(f"/app/me/requests/{rid}/state?stage=PENDING_APPROVAL&decided=0",
                     headers={"HX-Request": "true"})
    assert r.status_code == 204 and r.headers["hx-refresh"] == "true"
    # the receiver sees the request, not the case page; others see nothing
    for who in (org.sales_a2, org.manager_a, org.sales_b1):
        other = await login_as(api, browsers, who)
        for url in (f"/app/me/requests/{rid}", f"/app/me/requests/{rid}/sign",
                    f"/app/me/requests/{rid}/state"):
            r = await other.get(url)
            assert r.status_code == 404, (who, url, r.status_code)
    receiver = browsers[org.sales_a2]
    r = await receiver.post(f"/app/me/requests/{rid}/appeal", {"reason": "mine now"})
    assert r.status_code == 404
    r = await receiver.post(f"/app/me/requests/{rid}/decline", {"reason": "mine now"})
    assert r.status_code == 404
    r = await receiver.get("/app/me")  # where it brings them customers, as information
    assert r.status_code == 200 and f'href="/app/requests/{rid}"' in r.text
    assert f'href="/app/me/requests/{rid}"' not in r.text


async def test_appeal_posts_the_update_with_csrf(api: Api, browsers: dict[int, Browser],
                                                 fake_temporal: SigningTemporal) -> None:
    org = api.org
    rid = await signable_request(api)
    a1 = await login_as(api, browsers, org.sales_a1, lang="en")
    url = f"/app/me/requests/{rid}/appeal"
    r = await a1.post(url, {"reason": "I found these customers"}, csrf=False)
    assert r.status_code == 403 and fake_temporal.updates == []
    r = await a1.post(url, {"reason": "   "})
    assert r.status_code == 422 and "Give a reason" in r.text
    assert fake_temporal.updates == []
    r = await a1.post(url, {"reason": "I found these customers"})
    assert r.status_code == 303
    assert r.headers["location"] == f"/app/me/requests/{rid}?notice=appealed"
    [(workflow_id, update, arg)] = fake_temporal.updates
    assert update == "appeal" and workflow_id == f"reassignment-{rid}"
    assert isinstance(arg, ReasonedActionInput)
    assert arg.reason == "I found these customers" and arg.actor_id == org.sales_a1
    # the window closed meanwhile: 409 on the fresh page, saying so
    from temporalio.service import RPCError, RPCStatusCode

    fake_temporal.update_error = RPCError("completed", RPCStatusCode.NOT_FOUND, b"")
    r = await a1.post(url, {"reason": "again"})
    assert r.status_code == 409 and 'data-problem="request-closed"' in r.text
    assert "Your appeal was not filed" in r.text
    # the refused post's page polls: its refresh goes to the case, never posts again
    assert f'<link rel="canonical" href="/app/me/requests/{rid}">' in r.text


async def test_decline_posts_the_update_with_a_reason(
        api: Api, browsers: dict[int, Browser], fake_temporal: SigningTemporal) -> None:
    org = api.org
    rid = await signable_request(api, Stage.AWAITING_SIGNATURE)
    _add_agreement(api, rid)
    a1 = await login_as(api, browsers, org.sales_a1)
    url = f"/app/me/requests/{rid}/decline"
    r = await a1.post(url, {"reason": "no"}, csrf=False)
    assert r.status_code == 403
    r = await a1.post(url, {"reason": ""})
    assert r.status_code == 422 and "请填写原因" in r.text and fake_temporal.updates == []
    r = await a1.post(url, {"reason": "The terms are too low"})
    assert r.status_code == 303 and r.headers["location"].endswith("?notice=declined")
    [(_wf, update, arg)] = fake_temporal.updates
    assert update == "decline" and arg.reason == "The terms are too low"


# --- the report ---------------------------------------------------------------------------


async def test_the_report_is_read_in_the_page_and_every_read_is_audited(
        api: Api, browsers: dict[int, Browser]) -> None:
    org = api.org
    rid = make_report_request(api.sessions, org)
    sha = DocumentActivities(api.sessions, "Asia/Shanghai").render_personal_report(
        rid, WINDOW_END)
    a1 = await login_as(api, browsers, org.sales_a1)
    r = await a1.get(f"/app/requests/{rid}/report")
    assert r.status_code == 200
    assert f'src="/app/requests/{rid}/report/view"' in r.text and "<iframe" in r.text
    assert f'href="/app/requests/{rid}/report.pdf"' in r.text
    assert _events(api, "REPORT_READ", rid) == []  # the frame's read is the audited one
    r = await a1.get(f"/app/requests/{rid}/report/view")
    assert r.status_code == 200 and "<svg" in r.text
    assert "frame-ancestors 'self'" in r.headers["content-security-policy"]
    assert "script-src" not in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "SAMEORIGIN"
    r = await a1.get(f"/app/requests/{rid}/report.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.headers["x-content-sha256"] == sha
    events = _events(api, "REPORT_READ", rid)
    assert [e.detail["format"] for e in events] == ["html", "pdf"]
    assert {(e.actor_id, e.detail["subject_employee_id"]) for e in events} == {
        (org.sales_a1, org.sales_a1)}
    # the receiver and a colleague: 404 for the page, the frame and the PDF, nothing logged
    for who in (org.sales_a2, org.sales_b1):
        other = await login_as(api, browsers, who)
        for tail in ("report", "report/view", "report.pdf", "agreement.pdf"):
            r = await other.get(f"/app/requests/{rid}/{tail}")
            assert r.status_code == 404, (who, tail)
    assert len(_events(api, "REPORT_READ", rid)) == 2


# --- signing --------------------------------------------------------------------------------


async def test_one_time_code_then_sign(api: Api, browsers: dict[int, Browser],
                                       fake_temporal: SigningTemporal) -> None:
    org = api.org
    rid = await signable_request(api)
    _add_agreement(api, rid)
    a1 = await login_as(api, browsers, org.sales_a1)
    a1.http.headers["User-Agent"] = UA
    r = await a1.get(f"/app/me/requests/{rid}/sign")
    assert r.status_code == 200
    assert f'value="{DOC}"' in r.text and 'name="typed_name"' in r.text
    assert "Li Sales" in r.text  # the name on record, as the hint
    assert 'data-webauthn-sign' in r.text and "<script>" not in r.text
    [read] = _events(api, "AGREEMENT_READ", rid)  # the page states the terms: a read
    assert read.detail["format"] == "summary" and read.actor_id == org.sales_a1
    # request a code (htmx): it arrives as a notification, never in the page
    r = await a1.post(f"/app/me/requests/{rid}/sign/otp", {"document_sha256": DOC},
                      headers={"HX-Request": "true"})
    assert r.status_code == 200 and "code-sent" in r.text
    code = latest_code(api, rid)
    assert code not in r.text
    r = await a1.post(f"/app/me/requests/{rid}/sign/otp", {"document_sha256": DOC}, csrf=False)
    assert r.status_code == 403
    # the typed name must be one's own: refused before the code is spent
    form = {"typed_name": "Someone Else", "document_sha256": DOC, "method": "otp",
            "otp_code": code}
    r = await a1.post(f"/app/me/requests/{rid}/sign", form)
    assert r.status_code == 422
    assert 'id="typed_name"' in r.text and 'aria-invalid="true"' in r.text
    assert "请完整输入您在系统中登记的姓名" in r.text
    assert [u for _w, u, _a in fake_temporal.updates if u == "sign"] == []
    # a wrong code says how many attempts are left, next to the code field
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    r = await a1.post(f"/app/me/requests/{rid}/sign", {**form, "typed_name": "li sales",
                                                        "otp_code": wrong})
    assert r.status_code == 403 and "剩余尝试次数：4" in r.text
    r = await a1.post(f"/app/me/requests/{rid}/sign", {**form, "typed_name": "li sales"})
    assert r.status_code == 303
    assert r.headers["location"] == f"/app/me/requests/{rid}?notice=signed"
    [arg] = [a for _w, u, a in fake_temporal.updates if u == "sign"]
    assert isinstance(arg, SignInput)
    assert (arg.method, arg.document_hash, arg.typed_name) == ("otp", DOC, "li sales")
    assert arg.actor_id == org.sales_a1 and arg.user_agent == UA


async def test_register_a_passkey_then_sign_with_it(
        api: Api, browsers: dict[int, Browser], fake_temporal: SigningTemporal) -> None:
    org = api.org
    rid = await signable_request(api)
    _add_agreement(api, rid)
    a1 = await login_as(api, browsers, org.sales_a1, lang="en")
    r = await a1.get(f"/app/me/requests/{rid}/sign")
    assert "You have no passkey yet" in r.text and 'value="passkey"' not in r.text
    r = await a1.get(f"/app/me/passkeys?next=/app/me/requests/{rid}/sign")
    assert r.status_code == 200 and "data-webauthn-register" in r.text
    json_headers = {"X-CSRF-Token": a1.csrf, "Content-Type": "application/json"}
    r = await a1.http.post("/app/me/passkeys/options", content="{}")
    assert r.status_code == 403  # CSRF, as for every page post
    r = await a1.http.post("/app/me/passkeys/options", content="{}", headers=json_headers)
    assert r.status_code == 200
    authenticator = SoftAuthenticator()
    credential = authenticator.create(r.json())
    r = await a1.post("/app/me/passkeys", {"credential": json.dumps(credential),
                                           "name": "my phone",
                                           "next": f"/app/me/requests/{rid}/sign"})
    assert r.status_code == 303
    assert r.headers["location"] == f"/app/me/requests/{rid}/sign?notice=registered"
    r = await a1.get("/app/me/passkeys")
    assert "my phone" in r.text
    r = await a1.get(f"/app/me/requests/{rid}/sign?notice=registered")
    assert 'value="passkey"' in r.text and "Your passkey is registered" in r.text
    r = await a1.http.post(f"/app/me/requests/{rid}/sign/passkey/options",
                           content=json.dumps({"document_sha256": DOC}), headers=json_headers)
    assert r.status_code == 200, r.text
    assertion = authenticator.get(r.json())
    r = await a1.post(f"/app/me/requests/{rid}/sign", {
        "typed_name": "Li Sales", "document_sha256": DOC, "method": "passkey",
        "passkey_assertion": json.dumps(assertion)})
    assert r.status_code == 303, r.text
    [arg] = [a for _w, u, a in fake_temporal.updates if u == "sign"]
    assert arg.method == "passkey" and arg.credential_id == credential["id"]
    # options for someone else's request: a JSON refusal, not a page
    a2 = await login_as(api, browsers, org.sales_a2)
    r = await a2.http.post(f"/app/me/requests/{rid}/sign/passkey/options",
                           content=json.dumps({"document_sha256": DOC}),
                           headers={"X-CSRF-Token": a2.csrf})
    assert r.status_code == 404


# --- statements -----------------------------------------------------------------------------


async def test_statements_show_protection_income_within_scope(
        api: Api, browsers: dict[int, Browser]) -> None:
    book = build_book(api)
    a1 = await login_as(api, browsers, book.a1)
    r = await a1.get("/app/statements")
    assert r.status_code == 200
    for period in ("2026-01", "2026-02"):
        assert f'href="/app/statements/{book.a1}/{period}"' in r.text
    assert f"/app/statements/{book.b1}/" not in r.text and "show=all" not in r.text
    assert len(_events(api, "STATEMENTS_LISTED")) == 1
    r = await a1.get(f"/app/statements/{book.a1}/2026-01")
    assert r.status_code == 200
    # O2 inside protection: 200,000 fen at 5.00 % x 40 % = 4,000 fen
    assert 'data-figure="protection">¥40.00<' in r.text
    assert 'id="protection-income"' in r.text and "保护期收入" in r.text
    assert "华东贸易有限公司" in r.text and "row-protection" in r.text
    [read] = _events(api, "STATEMENT_READ")
    assert read.detail == {"employee_id": book.a1, "period": "2026-01", "format": "html"}
    r = await a1.get(f"/app/statements/{book.a1}/2026-01.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    # another salesperson's statement: 404, as for one that does not exist
    b1 = await login_as(api, browsers, book.b1)
    r = await b1.get(f"/app/statements/{book.a1}/2026-01")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    r = await b1.get(f"/app/statements/{book.a1}/2026-01.csv")
    assert r.status_code == 404
    # a manager sees the team's, on request
    manager = await login_as(api, browsers, api.org.manager_a)
    r = await manager.get("/app/statements?show=all")
    assert f'href="/app/statements/{book.a1}/2026-01"' in r.text
    assert f'href="/app/statements/{book.b1}/' not in r.text  # another team


# --- policies -------------------------------------------------------------------------------


async def test_a_new_policy_version_is_shown_until_acknowledged(
        api: Api, browsers: dict[int, Browser]) -> None:
    org = api.org
    policy_id = org.policy_version_id
    a1 = await login_as(api, browsers, org.sales_a1)
    summary = await a1.get("/app/me/summary", headers={"HX-Request": "true"})
    assert f'href="/app/me/policies/{policy_id}"' in summary.text
    home = await a1.get("/app")
    assert 'hx-get="/app/me/summary"' in home.text
    r = await a1.get(f"/app/me/policies/{policy_id}")
    assert r.status_code == 200 and "我已阅读本制度" in r.text
    assert "沟通期" in r.text  # the rules, in words
    url = f"/app/me/policies/{policy_id}/acknowledge"
    r = await a1.post(url, {}, csrf=False)
    assert r.status_code == 403
    r = await a1.post(url, {})
    assert r.status_code == 303 and r.headers["location"].endswith("?notice=acknowledged")
    with api.sessions() as s:
        [ack] = s.exec(select(PolicyAcknowledgement).where(
            PolicyAcknowledgement.policy_version_id == policy_id)).all()
        assert ack.employee_id == org.sales_a1
    r = await a1.post(url, {})
    assert r.headers["location"].endswith("?notice=already")
    summary = await a1.get("/app/me/summary", headers={"HX-Request": "true"})
    assert f'href="/app/me/policies/{policy_id}"' not in summary.text
    r = await a1.get("/app/me/policies")
    assert "您已于" in r.text


async def test_the_salespersons_navigation(api: Api, browsers: dict[int, Browser]) -> None:
    a1 = await login_as(api, browsers, api.org.sales_a1)
    home = await a1.get("/app")
    for href in ('href="/app/me"', 'href="/app/statements"', 'href="/app/notifications"'):
        assert href in home.text
    hr = await login_as(api, browsers, api.org.hr_staff)
    home = await hr.get("/app")
    assert 'href="/app/me"' not in home.text and 'hx-get="/app/me/summary"' not in home.text
    assert (await hr.get("/app/me")).status_code == 403
    with api.sessions() as s:
        assert s.exec(select(ReassignmentRequest)).first() is None
