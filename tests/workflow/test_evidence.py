"""The evidence bundle of a completed case: its files, its manifest, and tamper detection."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta

import httpx

from api.main import create_app
from domain.stages import Stage
from domain.workflow_dto import ActionInput, SignInput
from models import CommissionPlan, Order
from models.evidence import verify_bundle
from tests.api.conftest import api_settings
from tests.factories import PASSWORD
from tests.workflow.conftest import wait_stage
from tests.workflow.test_signing_e2e import current_agreement


async def test_completed_case_exports_a_verifiable_bundle(harness, db_url):
    h, org = harness, harness.org
    customer = org.customers_a1[0]
    with h.sessions() as s:
        for who in (org.sales_a1, org.sales_a2):
            s.add(CommissionPlan(employee_id=who, effective_from=datetime(2020, 1, 1, tzinfo=UTC),
                                 base_rate_bp=500, inherited_rate_bp=300))
    handle = await h.submit_and_start(requester=org.manager_a, from_id=org.sales_a1,
                                      to_id=org.sales_a2, customers=[customer])
    state = await wait_stage(handle, Stage.PENDING_APPROVAL, level=1)
    for level in state.levels:
        await wait_stage(handle, Stage.PENDING_APPROVAL, level=level.level)
        await handle.execute_update("approve", ActionInput(actor_id=level.approver_id,
                                                           comment=f"ok {level.level}"))
    state = await wait_stage(handle, Stage.COMMUNICATION)
    document = (await current_agreement(handle)).agreement_sha256
    await handle.execute_update("sign", SignInput(actor_id=org.sales_a1, typed_name="Li Sales",
                                                  document_hash=document))
    await h.env.sleep(timedelta(minutes=11))
    state = await wait_stage(handle, Stage.PROTECTION)
    with h.sessions() as s:  # an order during protection, recomputed as an ingest would
        from models.commission_engine import recompute_for_orders

        order = Order(external_id="EV-1", customer_id=customer, amount_fen=100_000,
                      booked_at=state.effective_at + timedelta(minutes=1))
        s.add(order)
        s.flush()
        recompute_for_orders(s, [order.id])
    await handle.result()

    app = create_app(api_settings(db_url))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://baton.test") as http:
        async def auth(employee: int) -> dict[str, str]:
            r = await http.post("/api/v1/auth/login", json={
                "username": org.usernames[employee], "password": PASSWORD})
            return {"Authorization": f"Bearer {r.json()['access_token']}"}

        r = await http.get(f"/api/v1/reassignments/{state.request_id}/evidence",
                           headers=await auth(org.legal_head))
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        bundle = r.content
        denied = await http.get(f"/api/v1/reassignments/{state.request_id}/evidence",
                                headers=await auth(org.sales_a1))
        assert denied.status_code == 403

    assert verify_bundle(bundle) == []
    archive = zipfile.ZipFile(io.BytesIO(bundle))
    names = set(archive.namelist())
    for expected in ("MANIFEST.json", "01-policy.json", "02-request-and-assessment.json",
                     "03-approvals.json", "04-communication-log.json", "05-appeals.json",
                     "08-signature-evidence.json", "10-audit-events.json",
                     "11-commission-lines.csv"):
        assert expected in names
    assert any(n.startswith("06-report-v1") and n.endswith(".pdf") for n in names)
    assert any(n.startswith("07-agreement-v1") for n in names)
    [sealed] = [n for n in names if n.startswith("08-sealed-agreement-v1")]
    from documents.seal import verify_sealed_pdf

    report = verify_sealed_pdf(archive.read(sealed), document)
    assert report.intact and report.hash_matches
    approvals = json.loads(archive.read("03-approvals.json"))
    assert [a["comment"] for a in approvals] == ["ok 1", "ok 2", "ok 3"]
    audit = json.loads(archive.read("10-audit-events.json"))
    assert audit["proof"]["full_chain_verified"] is True
    assert [e["event_type"] for e in audit["events"]][-1] == "PROTECTION_ENDED"
    lines = archive.read("11-commission-lines.csv").decode().splitlines()
    assert len(lines) == 3  # header, A's protected share, B's inherited share
    signature = json.loads(archive.read("08-signature-evidence.json"))
    assert signature["decision"] == "SIGNED" and signature["typed_name"] == "Li Sales"

    # one changed byte in one file is caught by the manifest
    tampered = io.BytesIO()
    with zipfile.ZipFile(tampered, "w") as out:
        for info in archive.infolist():
            data = archive.read(info.filename)
            if info.filename == "03-approvals.json":
                data = data.replace(b"ok 2", b"ok 9")
            out.writestr(info, data)
    assert verify_bundle(tampered.getvalue()) == ["03-approvals.json does not match its SHA-256"]
