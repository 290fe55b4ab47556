"""/api/v1/audit: verify the chain, search events, export them as CSV; and the reads of
sensitive data (statements, reports, evidence bundles) that leave an event naming who read
whose data (PIPL art. 51). Both backends."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from activities.documents import DocumentActivities
from models import AuditEvent, Employee, ReassignmentRequest, UserAccount
from models.audit import audit
from tests.api.conftest import Api, assert_problem
from tests.api.test_statements import build_book
from tests.audit_tamper import tamper
from tests.factories import _PW_HASH
from tests.report_fixtures import make_report_request

URL = "/api/v1/audit"
T = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


def add_account(api: Api, employee_no: str, roles: list[str]) -> int:
    with api.sessions() as s:
        hr = s.get(Employee, api.org.hr_head)
        assert hr is not None
        e = Employee(employee_no=employee_no, name=f"{employee_no} person", role=roles[0],
                     org_unit_id=hr.org_unit_id, manager_id=api.org.hr_head)
        s.add(e)
        s.flush()
        assert e.id is not None
        s.add(UserAccount(username=employee_no.lower(), password_hash=_PW_HASH(),
                          employee_id=e.id, roles=roles))
        api.org.usernames[e.id] = employee_no.lower()
        return e.id


async def get(api: Api, path: str, as_id: int, **params: Any) -> Any:
    return await api.http.get(URL + path, params=params, headers=await api.auth(as_id))


def seed(api: Api) -> dict[str, int]:
    """Five events over five days: two kinds, two actors, two entities, one request."""
    o = api.org
    with api.sessions() as s:
        rows = [
            audit(s, "POLICY_DRAFTED", actor_id=o.hr_head, entity=("policy_version", 1),
                  after={"status": "DRAFT"}, occurred_at=T),
            audit(s, "POLICY_UPDATED", actor_id=o.hr_head, entity=("policy_version", 1),
                  before={"rules": 1}, after={"rules": 2}, reason="=HYPERLINK(\"x\")",
                  occurred_at=T + timedelta(days=1)),
            audit(s, "POLICY_UPDATED", actor_id=o.hr_staff, entity=("policy_version", 2),
                  reason="出错了, fixed", occurred_at=T + timedelta(days=2)),
            audit(s, "REQUEST_SUBMITTED", actor_id=o.manager_a, request_id=42,
                  entity=("reassignment_request", 42), occurred_at=T + timedelta(days=3)),
            audit(s, "POLICY_DRAFTED", actor_id=o.hr_staff, entity=("policy_version", 3),
                  occurred_at=T + timedelta(days=4)),
        ]
        return {f"e{i + 1}": r.chain_index for i, r in enumerate(rows)}


def indexes(r: Any, e: dict[str, int]) -> list[str]:
    """The seeded events a response lists, by name (e1..e5), in the order it lists them."""
    assert r.status_code == 200, r.text
    names = {index: name for name, index in e.items()}
    return [names[i["chain_index"]] for i in r.json()["items"] if i["chain_index"] in names]


SEEDED_TYPES = [("event_type", "POLICY_DRAFTED"), ("event_type", "POLICY_UPDATED"),
                ("event_type", "REQUEST_SUBMITTED")]


# --- verify ----------------------------------------------------------------------------------


async def test_verify_names_the_edited_event_then_the_gap(api: Api, engine) -> None:
    e = seed(api)
    r = await get(api, "/verify", api.org.legal_head)
    assert r.status_code == 200, r.text
    body = r.json()
    n = body["head_index"]
    assert n >= 5 and body == {
        "ok": True, "events_checked": n, "head_index": n, "first_broken": None,
        "message": f"{n} events verified, chain intact through event {n}"}

    edited = e["e2"]
    tamper(engine, "UPDATE audit_event SET reason = 'nothing happened' WHERE chain_index = :i",
           i=edited)
    with api.sessions() as s:
        row_id = s.exec(select(AuditEvent.id).where(AuditEvent.chain_index == edited)).one()
    body = (await get(api, "/verify", api.org.hr_head)).json()
    assert body["ok"] is False and body["events_checked"] == edited
    assert body["first_broken"]["kind"] == "content_changed"
    assert (body["first_broken"]["chain_index"], body["first_broken"]["row_id"]) == (
        edited, row_id)
    assert body["message"] == body["first_broken"]["message"]
    assert f"event {edited} (row id {row_id}, POLICY_UPDATED) was changed" in body["message"]

    tamper(engine, "DELETE FROM audit_event WHERE chain_index = :i", i=edited)
    body = (await get(api, "/verify", api.org.hr_head)).json()
    assert body["first_broken"]["kind"] == "missing"
    assert body["first_broken"]["message"] == (
        f"event {edited} is missing (between {edited - 1} and {edited + 1})")


async def test_verify_reports_a_cut_tail(api: Api, engine) -> None:
    auth = await api.auth(api.org.hr_head)  # before the last events: a login may write one
    e = seed(api)
    tamper(engine, "DELETE FROM audit_event WHERE chain_index = :i", i=e["e5"])
    body = (await api.http.get(URL + "/verify", headers=auth)).json()
    assert body["first_broken"]["kind"] == "tail_truncated"
    assert body["first_broken"]["chain_index"] == e["e5"]
    assert body["first_broken"]["message"].startswith(f"event {e['e5']} is missing at the end")


async def test_verify_is_for_hr_legal_and_admin(api: Api) -> None:
    admin = add_account(api, "E900", ["admin"])
    assert (await get(api, "/verify", admin)).status_code == 200
    for who in (api.org.sales_a1, api.org.manager_a, api.org.director):
        assert_problem(await get(api, "/verify", who), 403, "forbidden-role")
    assert_problem(await api.http.get(URL + "/verify"), 401)


# --- search ----------------------------------------------------------------------------------


async def test_search_filters_and_orders(api: Api) -> None:
    e = seed(api)
    hr, o = api.org.hr_head, api.org
    auth = await api.auth(hr)

    async def find(*params: tuple[str, Any]) -> Any:
        return await api.http.get(URL + "/events", headers=auth, params=list(params))

    assert indexes(await find(*SEEDED_TYPES), e) == ["e5", "e4", "e3", "e2", "e1"]
    assert indexes(await find(*SEEDED_TYPES, ("order", "chain")), e) == [
        "e1", "e2", "e3", "e4", "e5"]
    assert indexes(await find(("event_type", "POLICY_UPDATED")), e) == ["e3", "e2"]
    assert indexes(await find(("event_type", "POLICY_DRAFTED"),
                              ("event_type", "REQUEST_SUBMITTED")), e) == ["e5", "e4", "e1"]
    assert indexes(await find(("actor_id", o.hr_staff)), e) == ["e5", "e3"]
    r = await find(("request_id", 42))
    assert indexes(r, e) == ["e4"] and r.json()["total"] == 1
    assert indexes(await find(("entity_type", "policy_version"), ("entity_id", "1")), e) == [
        "e2", "e1"]
    # [from, to): the start is in, the end is out
    assert indexes(await find(("occurred_from", (T + timedelta(days=1)).isoformat()),
                              ("occurred_to", (T + timedelta(days=3)).isoformat())), e) == [
        "e3", "e2"]
    assert indexes(await find(*SEEDED_TYPES, ("occurred_from", "2026-03-03T08:00:00+08:00")),
                   e) == ["e5", "e4", "e3"]
    page = (await find(*SEEDED_TYPES, ("limit", 2), ("offset", 1))).json()
    assert indexes_of(page, e) == ["e4", "e3"]
    assert (page["total"], page["limit"], page["offset"], page["order"]) == (5, 2, 1, "newest")
    item = (await find(*SEEDED_TYPES, ("order", "chain"), ("limit", 2))).json()["items"][1]
    assert item["before"] == {"rules": 1} and item["after"] == {"rules": 2}
    assert item["entity_type"] == "policy_version" and item["entity_id"] == "1"
    assert item["reason"] == '=HYPERLINK("x")' and item["actor_id"] == hr


def indexes_of(page: dict[str, Any], e: dict[str, int]) -> list[str]:
    names = {index: name for name, index in e.items()}
    return [names[i["chain_index"]] for i in page["items"]]


@pytest.mark.parametrize("params,field", [
    ({"occurred_from": "2026-03-01T00:00:00"}, "occurred_from"),
    ({"occurred_from": "2026-03-02T00:00:00Z", "occurred_to": "2026-03-01T00:00:00Z"},
     "occurred_to"),
    ({"event_type": "policy_drafted"}, "event_type"),
    ({"entity_type": "Policy Version"}, "entity_type"),
    ({"actor": "5"}, "actor"),
    ({"actor_id": "five"}, "actor_id"),
    ({"limit": "0"}, "limit"),
    ({"order": "oldest"}, "order"),
])
async def test_bad_filters_are_422_problems_naming_the_parameter(api: Api, params, field
                                                                 ) -> None:
    for path in ("/events", "/events.csv"):
        r = await get(api, path, api.org.hr_head, **params)
        body = assert_problem(r, 422, "validation-failed")
        assert field in [e["field"] for e in body["errors"]], body
    with api.sessions() as s:  # a refused export is not recorded
        assert s.exec(select(AuditEvent).where(
            AuditEvent.event_type == "AUDIT_EXPORTED")).first() is None


async def test_search_and_export_are_for_hr_and_legal_only(api: Api) -> None:
    seed(api)
    admin = add_account(api, "E901", ["admin"])
    finance = add_account(api, "E902", ["finance"])
    for who in (api.org.sales_a1, api.org.manager_a, admin, finance):
        for path in ("/events", "/events.csv"):
            body = assert_problem(await get(api, path, who), 403, "forbidden-role")
            assert body["action"] == "audit.read"
    assert (await get(api, "/events", api.org.legal_head)).status_code == 200
    assert (await get(api, "/events.csv", api.org.legal_head)).status_code == 200


# --- CSV export ------------------------------------------------------------------------------


async def test_csv_export_streams_the_filtered_events_with_a_bom(api: Api) -> None:
    e = seed(api)
    r = await get(api, "/events.csv", api.org.legal_head, event_type="POLICY_UPDATED")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"].startswith('attachment; filename="baton-audit-')
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [int(x["chain_index"]) for x in rows] == [e["e2"], e["e3"]]  # chain order
    first, second = rows
    assert first["event_type"] == "POLICY_UPDATED" and first["before"] == '{"rules":1}'
    assert first["reason"] == "'=HYPERLINK(\"x\")"  # not run as a formula by a spreadsheet
    assert second["reason"] == "出错了, fixed" and second["before"] == ""
    assert first["occurred_at"] == (T + timedelta(days=1)).isoformat()
    with api.sessions() as s:
        stored = s.exec(select(AuditEvent).where(AuditEvent.chain_index == e["e2"])).one()
    assert first["hash"] == stored.hash and first["prev_hash"] == stored.prev_hash


async def test_the_export_is_audited_with_its_filters(api: Api) -> None:
    e = seed(api)
    legal = api.org.legal_head
    r = await get(api, "/events.csv", legal, actor_id=api.org.hr_head,
                  occurred_from="2026-03-01T00:00:00Z", order="newest")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [int(x["chain_index"]) for x in rows] == [e["e2"], e["e1"]]
    with api.sessions() as s:
        (export,) = s.exec(select(AuditEvent).where(
            AuditEvent.event_type == "AUDIT_EXPORTED")).all()
    assert export.actor_id == legal and export.entity_type == "audit_export"
    assert export.detail == {"filters": {"actor_id": api.org.hr_head,
                                         "occurred_from": "2026-03-01T00:00:00+00:00"},
                             "order": "newest", "format": "csv"}
    # the export covers the events before its own; the next one shows the first
    r = await get(api, "/events.csv", legal, event_type="AUDIT_EXPORTED")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [int(x["chain_index"]) for x in rows] == [export.chain_index]
    assert '"actor_id":' in rows[0]["detail"]


async def test_an_export_with_no_match_is_the_header_alone(api: Api) -> None:
    r = await get(api, "/events.csv", api.org.hr_head, event_type="NOTHING_LIKE_THIS")
    assert r.status_code == 200
    lines = r.content.decode("utf-8-sig").splitlines()
    assert lines == [",".join(("chain_index", "id", "occurred_at", "event_type", "actor_id",
                               "on_behalf_of", "request_id", "entity_type", "entity_id",
                               "from_stage", "to_stage", "reason", "before", "after",
                               "detail", "workflow_id", "transition_seq", "prev_hash",
                               "hash"))]


async def test_a_large_export_is_complete_across_batches(api: Api) -> None:
    with api.sessions() as s:
        written = [audit(s, "BULK", actor_id=api.org.hr_head, detail={"i": i}).chain_index
                   for i in range(2100)]  # three export batches
    r = await get(api, "/events.csv", api.org.hr_head, event_type="BULK", order="newest")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [int(x["chain_index"]) for x in rows] == written[::-1]


# --- reads of sensitive data are logged --------------------------------------------------------


def read_events(api: Api, event_type: str) -> list[AuditEvent]:
    with api.sessions() as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.event_type == event_type)
                           .order_by(col(AuditEvent.chain_index))).all())


async def test_reading_a_statement_names_the_reader_and_whose_statement(api: Api) -> None:
    book = build_book(api)
    for reader in (book.a1, api.org.hr_head):
        r = await api.http.get(f"/api/v1/statements/{book.a1}/2026-01",
                               headers=await api.auth(reader))
        assert r.status_code == 200, r.text
    events = read_events(api, "STATEMENT_READ")
    assert [(e.actor_id, e.detail["employee_id"], e.detail["period"]) for e in events] == [
        (book.a1, book.a1, "2026-01"), (api.org.hr_head, book.a1, "2026-01")]


async def test_reading_a_report_and_exporting_evidence_name_reader_and_case(api: Api) -> None:
    request_id = make_report_request(api.sessions, api.org)
    DocumentActivities(api.sessions, "Asia/Shanghai").render_personal_report(
        request_id, datetime(2026, 3, 9, 10, 0, tzinfo=UTC))
    legal = api.org.legal_head
    r = await api.http.get(f"/api/v1/reassignments/{request_id}/report.pdf",
                           headers=await api.auth(legal))
    assert r.status_code == 200, r.text
    r = await api.http.get(f"/api/v1/reassignments/{request_id}/evidence",
                           headers=await api.auth(api.org.hr_head))
    assert r.status_code == 200, r.text
    with api.sessions() as s:
        case = s.get(ReassignmentRequest, request_id)
        assert case is not None
        subject = case.from_employee_id
    (report,) = read_events(api, "REPORT_READ")
    (evidence,) = read_events(api, "EVIDENCE_EXPORTED")
    # the subject is the request's affected salesperson, reached through request_id
    assert (report.actor_id, report.request_id) == (legal, request_id)
    assert (evidence.actor_id, evidence.request_id) == (api.org.hr_head, request_id)
    assert subject == api.org.sales_a1
    # and both are found by the audit search for that request
    r = await get(api, "/events", legal, request_id=request_id)
    types = {i["event_type"] for i in r.json()["items"]}
    assert {"REPORT_READ", "EVIDENCE_EXPORTED", "REPORT_GENERATED"} <= types
