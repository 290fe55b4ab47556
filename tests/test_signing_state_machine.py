"""Acceptance 3 of issue 5: no sequence of API actions moves ownership without a valid
signature on the current agreement version.

What runs for real: the HTTP API (the one-time code and passkey endpoints, sign with its
re-authentication, decline, appeal, resolve-appeal, withdraw, cancel), the ReassignmentWorkflow
on ONE shared time-skipping server, and a worker with the real activities on a real database
(`record_transition` is what moves ownership). Hypothesis chooses a sequence of up to 8 actions
per example (20 examples plus five fixed ones, deadline off); time moves only through the
"advance" action, which skips to the current stage's deadline.

Each action's HTTP answer is checked against a small model of the workflow's rules (who may do
what at which stage, the current agreement version, re-authentication). After the sequence the
case is driven to rest (window and signature deadline run out), and the database must show:
- the customers' assignments changed if and only if the model says a valid signature was
  accepted and the transfer was reached; then exactly once, by this request, in one
  OWNERSHIP_TRANSFERRED transition;
- that transition is preceded in the audit chain by SIGNED, whose signature record names the
  document hash of the latest AGREEMENT version stored for the request (the version the
  workflow asked to be signed), by the affected salesperson, with method otp or passkey;
- SIGNED is itself preceded by a SIGNING_REAUTHENTICATED event of the signer for that same
  document hash (the re-authentication was checked by the API before the workflow saw it);
- across the whole database, every REASSIGNMENT assignment row belongs to such a request.

Not covered here: approvals (done through the API on the way to the window, not varied),
departure handovers (no signature by design), and the browser's WebAuthn (a software
authenticator from tests/api/test_signing.py stands in for it).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import random
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st
from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment
from webauthn.helpers import base64url_to_bytes

from api.main import create_app
from domain.policy import PolicyRules, default_terms
from domain.stages import Stage
from domain.workflow_dto import ReassignmentInput, ReassignmentState, workflow_id_for
from models import (
    Assignment,
    AssignmentSource,
    AuditEvent,
    Customer,
    NotificationRecord,
    OneTimeCode,
    Order,
    PasskeyCredential,
    PolicyVersion,
    ReassignmentRequest,
    RequestCustomer,
    RequestDocument,
    SignatureRecord,
    WebAuthnChallenge,
)
from models.db import SessionFactory, migrate
from models.types import utcnow
from temporal_client import register_search_attributes
from tests.api.conftest import api_settings
from tests.api.test_signing import SoftAuthenticator, b64
from tests.conftest import binary
from tests.factories import PASSWORD, T0, SmallOrg
from tests.payload_keys import TEST_DATA_CONVERTER
from worker import build_worker
from workflows import search_attributes as sa

WAIT_S = 60.0
_IDS = itertools.count(random.randint(20_000_000, 90_000_000))
_CODES = itertools.count(1)
SIGNABLE = {Stage.COMMUNICATION, Stage.AWAITING_SIGNATURE}
OPEN = {Stage.COMMUNICATION, Stage.APPEAL_REVIEW, Stage.AWAITING_SIGNATURE}
MOVED = {Stage.EFFECTIVE, Stage.PROTECTION, Stage.COMPLETED}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: this test is about the rules, and one backend keeps it affordable (the
    same endpoints run on PostgreSQL in tests/api/test_signing.py)."""
    url = f"sqlite:///{tmp_path / 'baton.db'}"
    migrate(url)
    return url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"),
        data_converter=TEST_DATA_CONVERTER,
    )
    await register_search_attributes(env.client, "default")
    yield env
    await env.shutdown()


@dataclass
class World:
    env: WorkflowEnvironment
    http: httpx.AsyncClient
    sessions: SessionFactory
    org: SmallOrg
    task_queue: str
    passkey: SoftAuthenticator
    tokens: dict[int, str] = field(default_factory=dict)

    async def auth(self, employee_id: int) -> dict[str, str]:
        if employee_id not in self.tokens:
            r = await self.http.post("/api/v1/auth/login", json={
                "username": self.org.usernames[employee_id], "password": PASSWORD})
            assert r.status_code == 200, r.text
            self.tokens[employee_id] = r.json()["access_token"]
        return {"Authorization": f"Bearer {self.tokens[employee_id]}"}

    async def post(self, path: str, as_id: int, body: dict[str, Any] | None = None
                   ) -> httpx.Response:
        return await self.http.post(f"/api/v1{path}", json=body or {},
                                    headers=await self.auth(as_id))


@pytest_asyncio.fixture(loop_scope="session")
async def world(skipping_env: WorkflowEnvironment, db_url: str, sessions: SessionFactory,
                org: SmallOrg) -> AsyncIterator[World]:
    task_queue = f"sm-{uuid.uuid4().hex[:8]}"
    app = create_app(api_settings(db_url, task_queue=task_queue, jwt_ttl_minutes=24 * 60))
    app.state.temporal.use(skipping_env.client)
    async with build_worker(skipping_env.client, sessions, task_queue):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://baton.test") as http:
            w = World(skipping_env, http, sessions, org, task_queue, SoftAuthenticator())
            # the signer registers a passkey once, on the account page
            options = (await w.post("/me/passkeys/register/options", org.sales_a1)).json()
            r = await w.post("/me/passkeys/register/verify", org.sales_a1,
                             {"credential": w.passkey.create(options)})
            assert r.status_code == 201, r.text
            yield w


# --- the model --------------------------------------------------------------------------------


@dataclass
class Case:
    """One request, and what the model expects of it."""

    rid: int
    customers: list[int]
    docs: list[str]  # agreement SHA-256 per version, oldest first
    stage: Stage = Stage.COMMUNICATION
    signed: bool = False
    amendments: int = 0
    log: list[str] = field(default_factory=list)
    # a re-authentication made earlier and kept for later ("prepare", then "sign_kept"), so
    # that it can outlive an amendment: (document, code, code id) / (document, assertion)
    kept_otp: tuple[str, str, int] | None = None
    kept_passkey: tuple[str, dict[str, Any]] | None = None

    @property
    def current(self) -> str:
        return self.docs[-1]


def random_doc() -> str:
    return secrets.token_hex(32)


def pick_doc(case: Case, which: str) -> str:
    if which == "current":
        return case.current
    if which == "previous":
        return case.docs[-2] if len(case.docs) > 1 else hashlib.sha256(b"draft").hexdigest()
    return random_doc()


SIGN = st.tuples(st.just("sign"), st.sampled_from(["otp", "passkey"]),
                 st.sampled_from(["current", "previous", "random"]),
                 st.sampled_from(["valid", "wrong", "crossed"]))
OTHER = st.sampled_from([("decline",), ("appeal",), ("resolve", "UPHOLD"), ("resolve", "AMEND"),
                         ("resolve", "CANCEL"), ("withdraw",), ("cancel",), ("advance",),
                         ("sign_as_other",), ("prepare", "otp"), ("prepare", "passkey"),
                         ("sign_kept", "otp"), ("sign_kept", "passkey")])
STEPS = st.lists(st.one_of(SIGN, OTHER), min_size=1, max_size=8)


# --- driving the real system ------------------------------------------------------------------


async def live(w: World, rid: int) -> ReassignmentState:
    handle = w.env.client.get_workflow_handle(workflow_id_for(rid))
    return await handle.query("get_state", result_type=ReassignmentState)


def db_stage(w: World, rid: int) -> Stage:
    with w.sessions() as s:
        request = s.get(ReassignmentRequest, rid)
        assert request is not None
        return Stage(request.stage)


async def settle(w: World, case: Case, expected: Stage) -> ReassignmentState:
    """Wait until the workflow and the database both show `expected`."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        state = await live(w, case.rid)
        if state.stage == expected and db_stage(w, case.rid) == expected:
            return state
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"expected {expected}, live {state.stage}, db "
                                 f"{db_stage(w, case.rid)}; steps {case.log}")
        await asyncio.sleep(0.05)


async def open_case(w: World) -> Case:
    """Fresh customers of A, a request for them, its workflow, approved through the API."""
    org = w.org
    n = next(_CODES)
    rid = next(_IDS)
    with w.sessions() as s:
        customers = []
        for i in range(2):
            c = Customer(code=f"SM{n}-{i}", name=f"Customer SM{n}-{i}",
                         found_by_employee_id=org.sales_a1)
            s.add(c)
            s.flush()
            assert c.id is not None
            s.add(Assignment(customer_id=c.id, employee_id=org.sales_a1,
                             start_at=T0 - timedelta(days=400), source=AssignmentSource.FOUND))
            s.add(Order(external_id=f"O-SM{n}-{i}", customer_id=c.id, amount_fen=1_000_000,
                        booked_at=T0 - timedelta(days=30)))
            customers.append(c.id)
        policy = s.get(PolicyVersion, org.policy_version_id)
        assert policy is not None
        request = ReassignmentRequest(
            id=rid, workflow_id=workflow_id_for(rid), idempotency_key=str(uuid.uuid4()),
            payload_hash="0" * 64, requester_id=org.manager_a, from_employee_id=org.sales_a1,
            to_employee_id=org.sales_a2, customer_ids=customers, reason="WORKLOAD_BALANCING",
            policy_version_id=org.policy_version_id,
            terms=default_terms(PolicyRules.model_validate(policy.rules)).model_dump(
                mode="json"),
            value_fen=2_000_000)
        s.add(request)
        for c in customers:
            s.add(RequestCustomer(request_id=rid, customer_id=c))
    await w.env.client.start_workflow(
        "ReassignmentWorkflow", ReassignmentInput(request_id=rid), id=workflow_id_for(rid),
        task_queue=w.task_queue,
        search_attributes=sa.initial(request_id=rid, customer_ids=customers,
                                     from_employee_id=org.sales_a1, to_employee_id=org.sales_a2))
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        state = await live(w, rid)
        if state.stage == Stage.COMMUNICATION and state.agreement_sha256:
            break
        level = state.current_level
        if state.stage == Stage.PENDING_APPROVAL and level is not None and \
                state.levels[level - 1].status == "PENDING" and \
                db_stage(w, rid) == Stage.PENDING_APPROVAL:
            r = await w.post(f"/reassignments/{rid}/approve",
                             state.levels[level - 1].approver_id, {})
            assert r.status_code in (200, 409), r.text  # 409: a level not yet opened
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"request {rid} never reached the window: {state}")
        await asyncio.sleep(0.05)
    case = Case(rid=rid, customers=customers, docs=[state.agreement_sha256])
    await settle(w, case, Stage.COMMUNICATION)
    return case


def latest_code(w: World, rid: int) -> str | None:
    with w.sessions() as s:
        notice = s.exec(select(NotificationRecord).where(
            NotificationRecord.request_id == rid, NotificationRecord.kind == "SIGNING_CODE")
            .order_by(col(NotificationRecord.id).desc())).first()
    if notice is None:
        return None
    words = [word.rstrip(".") for word in notice.message.split()]
    return next(word for word in words if word.isdigit() and len(word) == 6)


async def otp_proof(w: World, case: Case, doc: str, proof: str) -> dict[str, Any]:
    proof_doc = doc if proof != "crossed" else (case.current if doc != case.current
                                                 else random_doc())
    r = await w.post(f"/reassignments/{case.rid}/sign/otp", w.org.sales_a1,
                     {"document_sha256": proof_doc})
    code = latest_code(w, case.rid) if r.status_code == 202 else None
    if code is None:
        code = "000000"
    elif proof == "wrong":
        code = f"{(int(code) + 1) % 1_000_000:06d}"
    return {"method": "otp", "otp_code": code}


async def passkey_proof(w: World, case: Case, doc: str, proof: str) -> dict[str, Any]:
    proof_doc = doc if proof != "crossed" else (case.current if doc != case.current
                                                 else random_doc())
    r = await w.post(f"/reassignments/{case.rid}/sign/passkey/options", w.org.sales_a1,
                     {"document_sha256": proof_doc})
    if r.status_code == 200:
        options = r.json()
    else:  # refused (stale, or not signable): answer a challenge the server never gave
        options = {"challenge": b64(secrets.token_bytes(16) + bytes.fromhex(proof_doc)),
                   "allowCredentials": [{"id": b64(w.passkey.credential_id)}]}
    assertion = w.passkey.get(options)
    if proof == "wrong":  # a flipped bit in the signature
        signature = bytearray(base64url_to_bytes(assertion["response"]["signature"]))
        signature[-1] ^= 1
        assertion["response"]["signature"] = b64(bytes(signature))
    return {"method": "passkey", "passkey_assertion": assertion}


def latest_code_id(w: World, rid: int) -> int:
    with w.sessions() as s:
        row = s.exec(select(OneTimeCode).where(OneTimeCode.request_id == rid)
                     .order_by(col(OneTimeCode.id).desc())).first()
        assert row is not None and row.id is not None
        return row.id


def code_is_live(w: World, code_id: int) -> bool:
    """Whether a kept code would still pass: unused, not replaced or expired, attempts left.
    (The code machinery itself is tested in tests/api/test_signing.py; here it is read.)"""
    with w.sessions() as s:
        row = s.get(OneTimeCode, code_id)
        assert row is not None
        return row.used_at is None and row.expires_at > utcnow() and row.attempts < 5


def assertion_is_live(w: World, assertion: dict[str, Any]) -> bool:
    """Whether a kept passkey assertion would still verify: its challenge unused and
    unexpired, its signature counter above the one the server last accepted."""
    client_data = json.loads(base64url_to_bytes(assertion["response"]["clientDataJSON"]))
    counter = int.from_bytes(base64url_to_bytes(
        assertion["response"]["authenticatorData"])[33:37], "big")
    with w.sessions() as s:
        challenge = s.exec(select(WebAuthnChallenge).where(
            WebAuthnChallenge.challenge == client_data["challenge"])).one()
        credential = s.exec(select(PasskeyCredential)).one()
        return (challenge.used_at is None and challenge.expires_at > utcnow()
                and counter > credential.sign_count)


async def prepare(w: World, case: Case, method: str) -> None:
    """Re-authenticate for the current version now, and keep the proof for later."""
    path = "sign/otp" if method == "otp" else "sign/passkey/options"
    r = await w.post(f"/reassignments/{case.rid}/{path}", w.org.sales_a1,
                     {"document_sha256": case.current})
    if case.stage not in SIGNABLE:
        assert r.status_code == 409, (r.text, case.log)
        return
    assert r.status_code == (202 if method == "otp" else 200), (r.text, case.log)
    if method == "otp":
        code = latest_code(w, case.rid)
        assert code is not None
        case.kept_otp = (case.current, code, latest_code_id(w, case.rid))
    else:
        case.kept_passkey = (case.current, w.passkey.get(r.json()))


async def advance(w: World, case: Case) -> None:
    """Skip time to just past the current stage's deadline, if it has a timer."""
    if case.stage not in (Stage.COMMUNICATION, Stage.AWAITING_SIGNATURE):
        return
    state = await live(w, case.rid)
    assert state.stage_deadline is not None
    now = await w.env.get_current_time()
    await w.env.sleep(max(state.stage_deadline - now, timedelta(0)) + timedelta(minutes=1))
    if case.stage == Stage.COMMUNICATION:
        case.stage = Stage.PROTECTION if case.signed else Stage.AWAITING_SIGNATURE
    else:
        case.stage = Stage.EXPIRED_NO_CONSENT
    await settle(w, case, case.stage)


async def step(w: World, case: Case, action: tuple[str, ...]) -> None:
    """Do one action through the API; check its answer against the model; update the model."""
    org, rid, kind = w.org, case.rid, action[0]
    case.log.append(" ".join(action))
    if kind == "advance":
        await advance(w, case)
        return
    if kind == "prepare":
        await prepare(w, case, action[1])
        return
    stale = False  # a valid re-authentication for a version that is no longer current
    if kind == "sign_kept":
        if action[1] == "otp" and case.kept_otp is not None:
            doc, code, code_id = case.kept_otp
            live_proof = code_is_live(w, code_id)
            body = {"typed_name": "Li Sales", "document_sha256": doc, "method": "otp",
                    "otp_code": code}
        elif action[1] == "passkey" and case.kept_passkey is not None:
            doc, assertion = case.kept_passkey
            live_proof = assertion_is_live(w, assertion)
            body = {"typed_name": "Li Sales", "document_sha256": doc, "method": "passkey",
                    "passkey_assertion": assertion}
        else:
            case.log[-1] += " (nothing kept)"
            return
        case.kept_otp = None if action[1] == "otp" else case.kept_otp
        case.kept_passkey = None if action[1] == "passkey" else case.kept_passkey
        r = await w.post(f"/reassignments/{rid}/sign", org.sales_a1, body)
        signable = case.stage in SIGNABLE and not case.signed and live_proof
        ok = signable and doc == case.current
        stale = signable and doc != case.current
        new_stage = case.stage if case.stage == Stage.COMMUNICATION else Stage.PROTECTION
    elif kind == "sign":
        _, method, which, proof = action
        doc = pick_doc(case, which)
        make = otp_proof if method == "otp" else passkey_proof
        body = {"typed_name": "Li Sales", "document_sha256": doc,
                **(await make(w, case, doc, proof))}
        r = await w.post(f"/reassignments/{rid}/sign", org.sales_a1, body)
        ok = (case.stage in SIGNABLE and not case.signed and proof == "valid"
              and doc == case.current)
        new_stage = case.stage if case.stage == Stage.COMMUNICATION else Stage.PROTECTION
    elif kind == "sign_as_other":
        r = await w.post(f"/reassignments/{rid}/sign/otp", org.sales_a2,
                         {"document_sha256": case.current})
        assert r.status_code == 403, r.text
        r = await w.post(f"/reassignments/{rid}/sign", org.sales_a2, {
            "typed_name": "Wang Sales", "document_sha256": case.current, "method": "otp",
            "otp_code": "123456"})
        ok, new_stage = False, case.stage
    elif kind == "decline":
        r = await w.post(f"/reassignments/{rid}/decline", org.sales_a1, {"reason": "no"})
        ok, new_stage = case.stage in SIGNABLE and not case.signed, Stage.DECLINED
    elif kind == "appeal":
        r = await w.post(f"/reassignments/{rid}/appeal", org.sales_a1, {"reason": "unfair"})
        ok = case.stage == Stage.COMMUNICATION and not case.signed
        new_stage = Stage.APPEAL_REVIEW
    elif kind == "resolve":
        outcome = action[1]
        body: dict[str, Any] = {"outcome": outcome}
        if outcome == "AMEND":
            body["amended_terms"] = {"protection_period": "PT45M", "protection_share_bp": 6_000,
                                     "inherited_rate_bp": 200,
                                     "compensation_fen": 100_000 * (case.amendments + 1)}
        r = await w.post(f"/reassignments/{rid}/resolve-appeal", org.hr_head, body)
        ok = case.stage == Stage.APPEAL_REVIEW
        new_stage = Stage.CANCELLED if outcome == "CANCEL" else Stage.COMMUNICATION
    elif kind in ("withdraw", "cancel"):
        who = org.manager_a if kind == "withdraw" else org.hr_head
        r = await w.post(f"/reassignments/{rid}/{kind}", who, {"reason": "changed plans"})
        ok = case.stage in OPEN
        new_stage = Stage.WITHDRAWN if kind == "withdraw" else Stage.CANCELLED
    else:  # pragma: no cover
        raise AssertionError(kind)

    if stale:  # re-authenticated, but the workflow refuses the outdated version
        assert r.status_code == 409 and r.json()["code"] == "STALE_DOCUMENT", (r.text,
                                                                             case.log)
    if not ok:
        assert r.status_code in (401, 403, 404, 409, 422), (r.status_code, r.text, case.log)
        assert r.headers["content-type"].startswith("application/problem+json")
        return
    assert r.status_code == 200, (r.text, case.log)
    if kind in ("sign", "sign_kept"):
        case.signed = True
    if kind == "resolve" and action[1] == "AMEND":
        case.amendments += 1
        state = ReassignmentState.model_validate(r.json())
        assert state.agreement_version == len(case.docs) + 1, state
        assert state.agreement_sha256 and state.agreement_sha256 not in case.docs
        case.docs.append(state.agreement_sha256)
    case.stage = new_stage
    await settle(w, case, case.stage)


async def drive_to_rest(w: World, case: Case) -> None:
    for _ in range(2):  # the window, then the signature deadline
        await advance(w, case)


# --- the property ---------------------------------------------------------------------------


def check_ownership(w: World, case: Case) -> None:
    org = w.org
    expect_moved = case.stage in MOVED
    assert case.signed or not expect_moved  # the model itself: no transfer without signing
    with w.sessions() as s:
        rows = s.exec(select(Assignment).where(
            col(Assignment.customer_id).in_(case.customers))).all()
        open_owners = {a.customer_id: a.employee_id for a in rows if a.end_at is None}
        events = s.exec(select(AuditEvent).where(AuditEvent.request_id == case.rid)
                        .order_by(col(AuditEvent.chain_index))).all()
        kinds = [e.event_type for e in events]
        signature = s.exec(select(SignatureRecord).where(
            SignatureRecord.request_id == case.rid)).first()
        agreements = s.exec(select(RequestDocument).where(
            RequestDocument.request_id == case.rid, RequestDocument.kind == "AGREEMENT")
            .order_by(col(RequestDocument.version))).all()
    moved = set(open_owners.values()) == {org.sales_a2}
    unmoved = set(open_owners.values()) == {org.sales_a1}
    assert moved or unmoved, (open_owners, case.log)
    assert [a.sha256 for a in agreements] == case.docs, case.log
    assert moved == expect_moved, (case.stage, case.log, kinds)
    assert kinds.count("OWNERSHIP_TRANSFERRED") == (1 if moved else 0), (kinds, case.log)
    assert kinds.count("SIGNED") == (1 if case.signed else 0), (kinds, case.log)
    if not case.signed:
        assert signature is None or signature.decision == "DECLINED"
    if signature is not None and signature.decision == "SIGNED":
        signed_at = kinds.index("SIGNED")
        reauth = [e for e in events[:signed_at] if e.event_type == "SIGNING_REAUTHENTICATED"
                  and e.detail["document_sha256"] == signature.document_hash
                  and e.actor_id == org.sales_a1]
        assert reauth, (kinds, case.log)
        assert signature.signer_id == org.sales_a1 and signature.method in ("otp", "passkey")
        assert signature.document_hash == case.current == agreements[-1].sha256, case.log
        if signature.method == "passkey":
            assert signature.credential_id == b64(w.passkey.credential_id)
    if moved:
        assert signature is not None and signature.decision == "SIGNED"
        assert kinds.index("SIGNED") < kinds.index("OWNERSHIP_TRANSFERRED")
        transfer = events[kinds.index("OWNERSHIP_TRANSFERRED")]
        assert transfer.to_stage == Stage.EFFECTIVE.value
        b_rows = [a for a in rows if a.employee_id == org.sales_a2]
        assert len(b_rows) == len(case.customers)
        assert all(a.request_id == case.rid and a.source == AssignmentSource.REASSIGNMENT
                   for a in b_rows)
    else:
        assert all(a.request_id is None for a in rows), case.log


def check_every_transfer_in_the_database(w: World) -> None:
    """Whatever request moved customers, it did so after a signature on its last agreement."""
    with w.sessions() as s:
        moved_by = {a.request_id for a in s.exec(select(Assignment).where(
            Assignment.source == AssignmentSource.REASSIGNMENT)).all()}
        for rid in moved_by:
            assert rid is not None
            signature = s.exec(select(SignatureRecord).where(
                SignatureRecord.request_id == rid)).one()
            latest = s.exec(select(RequestDocument).where(
                RequestDocument.request_id == rid, RequestDocument.kind == "AGREEMENT")
                .order_by(col(RequestDocument.version).desc())).first()
            assert latest is not None
            assert signature.decision == "SIGNED" and signature.document_hash == latest.sha256


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=STEPS)
@example(steps=[("sign", "otp", "current", "valid"), ("advance",)])
@example(steps=[("appeal",), ("resolve", "AMEND"), ("sign", "otp", "previous", "valid"),
                ("sign", "passkey", "previous", "valid"), ("sign", "passkey", "current",
                                                            "crossed"),
                ("advance",), ("sign", "passkey", "current", "valid")])
@example(steps=[("sign", "otp", "current", "wrong"), ("sign", "passkey", "current", "wrong"),
                ("sign_as_other",), ("decline",), ("sign", "otp", "current", "valid")])
@example(steps=[("sign", "otp", "current", "valid"), ("withdraw",), ("advance",)])
@example(steps=[("prepare", "otp"), ("prepare", "passkey"), ("appeal",), ("resolve", "AMEND"),
                ("sign_kept", "otp"), ("sign_kept", "passkey"), ("advance",),
                ("prepare", "passkey"), ("sign_kept", "passkey")])
async def test_ownership_moves_only_with_a_valid_signature_on_the_current_agreement(
    world: World, steps: list[tuple[str, ...]]
) -> None:
    case = await open_case(world)
    for action in steps:
        await step(world, case, action)
    await drive_to_rest(world, case)
    note(f"steps {case.log}; final {case.stage.value}, signed {case.signed}")
    event(f"final stage {case.stage.value}")
    check_ownership(world, case)
    check_every_transfer_in_the_database(world)

