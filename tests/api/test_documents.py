"""Downloading the personal analysis report: who may, what they get, and the audit trail."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from activities.documents import DocumentActivities
from models import AuditEvent, RequestDocument
from models.audit import verify_chain
from tests.api.conftest import assert_problem
from tests.report_fixtures import make_report_request

WINDOW_END = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)


@pytest.fixture
def report(api):
    """A request whose report has been rendered once: (request id, sha256)."""
    request_id = make_report_request(api.sessions, api.org)
    sha = DocumentActivities(api.sessions, "Asia/Shanghai").render_personal_report(
        request_id, WINDOW_END)
    return request_id, sha


def read_events(api, request_id: int) -> list[AuditEvent]:
    with api.sessions() as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.event_type == "REPORT_READ",
                                                    AuditEvent.request_id == request_id)
                           .order_by(AuditEvent.chain_index)))


async def test_affected_salesperson_lists_and_downloads_the_report(api, report):
    request_id, sha = report
    auth = await api.auth(api.org.sales_a1)
    r = await api.http.get(f"/api/v1/reassignments/{request_id}/report", headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["request_id"] == request_id and body["latest"] == 1
    [version] = body["versions"]
    assert version["sha256"] == sha and version["language"] == "zh-CN"
    assert version["version"] == 1 and version["size_bytes"] > 10_000 and version["created_at"]

    r = await api.http.get(version["pdf_url"], headers=auth)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pdf"
    assert hashlib.sha256(r.content).hexdigest() == sha == r.headers["x-content-sha256"]
    assert r.headers["cache-control"] == "private, no-store"
    assert f"baton-report-{request_id}-v1.pdf" in r.headers["content-disposition"]

    r = await api.http.get(f"/api/v1/reassignments/{request_id}/report.html", headers=auth)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert "宁波海曙五金制品厂" in r.text and "<svg" in r.text


@pytest.mark.parametrize("who", ["manager_a", "director", "hr_staff", "legal_head"])
async def test_requester_their_director_hr_and_legal_may_read(api, report, who):
    request_id, sha = report
    auth = await api.auth(getattr(api.org, who))
    r = await api.http.get(f"/api/v1/reassignments/{request_id}/report.pdf", headers=auth)
    assert r.status_code == 200, r.text
    assert hashlib.sha256(r.content).hexdigest() == sha


# sales_b1 receives the customers and manager_b leads the receiving team: they see the request,
# not the other salesperson's income analysis
@pytest.mark.parametrize("who", ["sales_a2", "sales_b1", "manager_b"])
async def test_everyone_else_gets_404_and_nothing_is_logged(api, report, who):
    request_id, _ = report
    auth = await api.auth(getattr(api.org, who))
    for suffix in ("report", "report.pdf", "report.html"):
        r = await api.http.get(f"/api/v1/reassignments/{request_id}/{suffix}", headers=auth)
        assert_problem(r, 404, "report-not-found")
    assert read_events(api, request_id) == []


async def test_missing_request_and_version_answer_404_and_bad_version_422(api, report):
    request_id, _ = report
    auth = await api.auth(api.org.sales_a1)
    r = await api.http.get("/api/v1/reassignments/999999/report.pdf", headers=auth)
    assert_problem(r, 404, "report-not-found")
    r = await api.http.get(f"/api/v1/reassignments/{request_id}/report.pdf?version=2",
                           headers=auth)
    assert_problem(r, 404, "report-not-found")
    r = await api.http.get(f"/api/v1/reassignments/{request_id}/report.pdf?version=0",
                           headers=auth)
    assert_problem(r, 422)
    r = await api.http.get(f"/api/v1/reassignments/{request_id}/report.pdf?version=1",
                           headers=auth)
    assert r.status_code == 200


async def test_reading_needs_a_login(api, report):
    request_id, _ = report
    r = await api.http.get(f"/api/v1/reassignments/{request_id}/report.pdf")
    assert_problem(r, 401)


async def test_not_rendered_yet(api):
    request_id = make_report_request(api.sessions, api.org)
    auth = await api.auth(api.org.sales_a1)
    r = await api.http.get(f"/api/v1/reassignments/{request_id}/report", headers=auth)
    assert r.status_code == 200 and r.json()["versions"] == [] and r.json()["latest"] is None
    r = await api.http.get(f"/api/v1/reassignments/{request_id}/report.pdf", headers=auth)
    assert_problem(r, 404, "report-not-found")


async def test_each_read_is_an_audit_event_with_ids_only(api, report):
    request_id, _ = report
    me, hr = api.org.sales_a1, api.org.hr_staff
    base = f"/api/v1/reassignments/{request_id}"
    await api.http.get(f"{base}/report", headers=await api.auth(me))
    await api.http.get(f"{base}/report.pdf", headers=await api.auth(me))
    await api.http.get(f"{base}/report.html?version=1", headers=await api.auth(hr))
    events = read_events(api, request_id)
    assert [(e.actor_id, e.detail["format"]) for e in events] == [
        (me, "versions"), (me, "pdf"), (hr, "html")]
    with api.sessions() as s:
        document = s.exec(select(RequestDocument).where(
            RequestDocument.request_id == request_id)).one()
        assert verify_chain(s)[0]
    assert events[1].detail == {"document_id": document.id, "version": 1, "format": "pdf",
                                "subject_employee_id": api.org.sales_a1}
    # the event names what was read and whose it is, by id only
    assert (events[1].entity_type, events[1].entity_id) == ("reassignment_request",
                                                            str(request_id))
    for event in events:  # ids only: no names, no amounts, no document content
        assert set(event.detail) <= {"document_id", "version", "format", "versions",
                                     "subject_employee_id"}
        assert all(isinstance(v, int | str | list) for v in event.detail.values())
