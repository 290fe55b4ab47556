"""Issue 6, acceptance 3: a reassignment run with the payload codec leaves no plaintext in
Temporal, and the codec server decodes its history for HR only.

The real dev server, a real worker and the API (the fixtures of test_lifecycle_devserver.py):
one request from submission to COMPLETED, whose approvers write the customers' and the
salespeople's names into their comments and whose salesperson signs with her name, so names
certainly travel through payloads. Then `temporal workflow show --output json` must show none
of the org's names, neither in the text nor in any base64 field decoded, while the codec server
gives them back to HR.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import select

from models import Customer, Employee
from payload_codec import ENCODING, KEY_ID_KEY
from tests.api import test_lifecycle_devserver as lifecycle
from tests.api.conftest import assert_problem
from tests.api.test_lifecycle_devserver import Live, level_open
from tests.api.test_signing import latest_code
from tests.conftest import binary
from tests.payload_keys import TEST_KEY_ID

pytestmark = pytest.mark.devserver

# the lifecycle test's fixtures: a dev server with the test keys, its seconds policy, the API
dev_env, org, live = lifecycle.dev_env, lifecycle.org, lifecycle.live

SHOW_TIMEOUT_S = 60.0


def walk(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for value in node:
            yield from walk(value, path)


def payloads_in(history: Any) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every Payload in the JSON history: an object with a metadata map (and usually data)."""
    return [(path, node) for path, node in walk(history)
            if isinstance(node, dict) and isinstance(node.get("metadata"), dict)
            and set(node) <= {"metadata", "data", "externalPayloads"}]


def decoded_strings(history: Any) -> list[bytes]:
    """Every string in the history that is base64, decoded: payload bytes hide there."""
    found = []
    for _, node in walk(history):
        if isinstance(node, str) and len(node) >= 4:
            try:
                found.append(base64.b64decode(node, validate=True))
            except (binascii.Error, ValueError):
                continue
    return found


def outside_the_codec(path: tuple[str, ...]) -> bool:
    """Payloads Temporal keeps in plaintext by design: search attributes (hence ids only) and
    the SDK's own workflow.patched markers (a patch id)."""
    return ("searchAttributes" in path or "upsertWorkflowSearchAttributesEventAttributes" in path
            or "patch-data" in path)


async def workflow_show(address: str, workflow_id: str) -> Any:
    process = await asyncio.create_subprocess_exec(
        binary("temporal"), "workflow", "show", "--workflow-id", workflow_id,
        "--output", "json", "--address", address, "--namespace", "default",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), SHOW_TIMEOUT_S)
    assert process.returncode == 0, err.decode()
    return json.loads(out)


async def test_history_has_no_plaintext_and_the_codec_decodes_it_for_hr(live: Live) -> None:
    org = live.org
    moved = org.customers_a1[:2]
    with live.sessions() as s:
        employee_names = [e.name for e in s.exec(select(Employee))]
        customer_names = [c.name for c in s.exec(select(Customer))]
        moved_names = [c.name for c in s.exec(select(Customer).where(
            Customer.id.in_(moved)))]  # type: ignore[union-attr]
    assert "Li Sales" in employee_names and len(moved_names) == 2

    # --- one request, start to finish, with names in what travels through Temporal ---------
    r = await live.http.post(
        "/api/v1/reassignments",
        json={"from_employee_id": org.sales_a1, "to_employee_id": org.sales_a2,
              "customer_ids": moved, "reason": "WORKLOAD_BALANCING"},
        headers={**await live.auth(org.manager_a), "Idempotency-Key": "codec-acceptance"})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    workflow_id = r.json()["workflow_id"]
    comment = f"{' and '.join(moved_names)} go from Li Sales to Wang Sales"
    detail = await live.wait(rid, org.manager_a, "level 1 to open", level_open(1))
    approvers = [lv["approver_id"] for lv in detail["live"]["levels"]]
    for number, approver in enumerate(approvers, start=1):
        await live.wait(rid, org.hr_head, f"level {number} to open", level_open(number))
        r = await live.act(rid, "approve", approver, {"comment": comment})
        assert r.status_code == 200, r.text
    detail = await live.wait(rid, org.sales_a1, "the agreement to sign",
                             lambda d: bool(d["live"] and d["live"].get("agreement_sha256")))
    document = detail["live"]["agreement_sha256"]
    r = await live.act(rid, "sign/otp", org.sales_a1, {"document_sha256": document})
    assert r.status_code == 202, r.text
    r = await live.act(rid, "sign", org.sales_a1, {
        "typed_name": "Li Sales", "document_sha256": document, "method": "otp",
        "otp_code": latest_code(live, rid)})
    assert r.status_code == 200, r.text
    await live.wait(rid, org.hr_head, "COMPLETED", lambda d: d["stage"] == "COMPLETED")

    # --- what Temporal stores: no name, in clear or in base64 ----------------------------
    history = await workflow_show(live.app.state.settings.temporal_address, workflow_id)
    raw = json.dumps(history, ensure_ascii=False)
    hidden = decoded_strings(history)
    names = employee_names + customer_names
    for name in names:
        assert name not in raw, f"{name!r} is readable in the history"
        leaks = [b for b in hidden if name.encode() in b]
        assert not leaks, f"{name!r} is in a base64 field of the history: {leaks[0][:200]!r}"

    payloads = payloads_in(history)
    codec_payloads = [p for path, p in payloads if not outside_the_codec(path)]
    assert len(codec_payloads) >= 20, f"too few payloads found: {len(codec_payloads)}"
    encoding = base64.b64encode(ENCODING).decode()
    key_id = base64.b64encode(TEST_KEY_ID.encode()).decode()
    clear_payloads = [(path, p) for path, p in payloads if not outside_the_codec(path)
                      and (p["metadata"].get("encoding") != encoding
                           or p["metadata"].get(KEY_ID_KEY) != key_id)]
    assert not clear_payloads, f"payloads not encrypted: {clear_payloads}"

    # --- the codec server gives the names back to HR, and to HR only ------------------------
    body = {"payloads": codec_payloads}
    r = await live.http.post("/codec/decode", json=body, headers={
        **await live.auth(org.hr_head), "X-Namespace": "default"})
    assert r.status_code == 200, r.text
    decoded = r.json()["payloads"]
    assert len(decoded) == len(codec_payloads)
    clear = b"\n".join(base64.b64decode(p["data"]) for p in decoded).decode("utf-8")
    for name in [*moved_names, "Li Sales", "Wang Sales"]:
        assert name in clear, f"{name!r} not found in the decoded payloads"

    r = await live.http.post("/codec/decode", json=body, headers=await live.auth(org.sales_a1))
    assert_problem(r, 403, "forbidden-role")
    r = await live.http.post("/codec/decode", json=body)
    assert_problem(r, 401)

    # the URL HR pastes into the Temporal UI: <codec_url>/decode, no Authorization header
    r = await live.http.post("/api/v1/me/codec-token", headers=await live.auth(org.hr_head))
    assert r.status_code == 200, r.text
    r = await live.http.post(f"{r.json()['codec_url']}/decode", json=body,
                             headers={"X-Namespace": "default"})
    assert r.status_code == 200, r.text
    assert r.json()["payloads"] == decoded
