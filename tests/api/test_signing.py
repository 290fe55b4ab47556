"""The signing ceremony at the API level: one-time codes, passkeys, and the sign endpoint.

Temporal is a fake that answers the sign Update like the workflow's validator would for the
document hash (STALE_DOCUMENT when it is not the current agreement) and records what reached
it. Passkeys are exercised with a SOFTWARE authenticator written here (an EC P-256 key from
`cryptography`; "none" attestation; authenticatorData, clientDataJSON and an ECDSA signature
built by hand), not a browser: the browser test with Playwright's virtual authenticator is due
in the web UI issue.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlmodel import col, select
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, encode_cbor

from api.deps import get_temporal_client
from domain.stages import Stage
from domain.workflow_dto import ReassignmentState, SignInput
from models import (
    AuditEvent,
    NotificationRecord,
    OneTimeCode,
    PasskeyCredential,
    ReassignmentRequest,
    WebAuthnChallenge,
)
from models.audit import verify_chain
from models.passwords import verify_password
from tests.api.conftest import Api, FakeHandle, FakeTemporal, assert_problem

RP_ID = "localhost"  # the settings' defaults, as api_settings leaves them
ORIGIN = "http://localhost:8000"
DOC = hashlib.sha256(b"agreement v1").hexdigest()
DOC_V2 = hashlib.sha256(b"agreement v2").hexdigest()
UA = "phone-browser/1.0"


# --- a software authenticator -----------------------------------------------------------------


def b64(data: bytes) -> str:
    return bytes_to_base64url(data)


@dataclass
class SoftAuthenticator:
    """A WebAuthn authenticator in software: one ES256 credential, user present and verified."""

    rp_id: str = RP_ID
    origin: str = ORIGIN
    user_verified: bool = True

    def __post_init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = secrets.token_bytes(32)
        self.sign_count = 0

    def cose_public_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return encode_cbor({1: 2, 3: -7, -1: 1,  # kty EC2, alg ES256, crv P-256
                            -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def authenticator_data(self, *, attested: bool) -> bytes:
        flags = 0x01 | (0x04 if self.user_verified else 0) | (0x40 if attested else 0)
        data = hashlib.sha256(self.rp_id.encode()).digest() + bytes([flags]) + \
            self.sign_count.to_bytes(4, "big")
        if attested:  # aaguid (zeros) || credential id length || credential id || public key
            data += bytes(16) + len(self.credential_id).to_bytes(2, "big") + \
                self.credential_id + self.cose_public_key()
        return data

    def client_data(self, kind: str, challenge: str, origin: str | None = None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge,
                           "origin": origin or self.origin, "crossOrigin": False}).encode()

    def create(self, options: dict[str, Any]) -> dict[str, Any]:
        """navigator.credentials.create() with attestation "none"."""
        assert options["rp"]["id"] == self.rp_id
        client_data = self.client_data("webauthn.create", options["challenge"])
        attestation = encode_cbor({"fmt": "none", "attStmt": {},
                                   "authData": self.authenticator_data(attested=True)})
        return {"id": b64(self.credential_id), "rawId": b64(self.credential_id),
                "type": "public-key", "authenticatorAttachment": "platform",
                "clientExtensionResults": {},
                "response": {"clientDataJSON": b64(client_data),
                             "attestationObject": b64(attestation),
                             "transports": ["internal"]}}

    def get(self, options: dict[str, Any], *, origin: str | None = None) -> dict[str, Any]:
        """navigator.credentials.get(): sign authenticatorData || SHA-256(clientDataJSON)."""
        allowed = [c["id"] for c in options.get("allowCredentials", [])]
        assert b64(self.credential_id) in allowed, "not offered by the relying party"
        self.sign_count += 1
        auth_data = self.authenticator_data(attested=False)
        client_data = self.client_data("webauthn.get", options["challenge"], origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                  ec.ECDSA(hashes.SHA256()))
        return {"id": b64(self.credential_id), "rawId": b64(self.credential_id),
                "type": "public-key", "authenticatorAttachment": "platform",
                "clientExtensionResults": {},
                "response": {"authenticatorData": b64(auth_data),
                             "clientDataJSON": b64(client_data), "signature": b64(signature),
                             "userHandle": None}}


# --- a fake workflow that answers the sign Update ---------------------------------------------


class SigningHandle(FakeHandle):
    client: SigningTemporal

    async def query(self, *args: Any, **kwargs: Any) -> Any:
        if self.client.agreement_sha256 is None:
            return await super().query(*args, **kwargs)
        return self.client.state()

    async def execute_update(self, update: str, arg: Any, **kwargs: Any) -> Any:
        self.client.updates.append((self.workflow_id, update, arg))
        if self.client.update_error is not None:
            raise self.client.update_error
        current = self.client.agreement_sha256
        if update == "sign" and current is not None and arg.document_hash != current:
            raise WorkflowUpdateFailedError(ApplicationError(
                "a newer version of the agreement exists; read and sign version 2",
                type="STALE_DOCUMENT", non_retryable=True))
        state = self.client.state()
        if update == "sign":
            state.signed_at = datetime.now(UTC)
        return state


@dataclass
class SigningTemporal(FakeTemporal):
    agreement_sha256: str | None = DOC
    agreement_version: int = 1

    def get_workflow_handle(self, workflow_id: str) -> SigningHandle:
        return SigningHandle(self, workflow_id)

    def state(self) -> ReassignmentState:
        return ReassignmentState(request_id=1, stage=Stage.COMMUNICATION,
                                 agreement_version=self.agreement_version,
                                 agreement_sha256=self.agreement_sha256)


@pytest.fixture
def fake_temporal() -> SigningTemporal:  # overrides the conftest's fake for this module
    return SigningTemporal()


# --- helpers ----------------------------------------------------------------------------------


async def signable_request(api: Api, stage: Stage = Stage.COMMUNICATION, *,
                           second: bool = False) -> int:
    """A submitted request whose (fake) workflow is in the communication window. A second
    open request needs the other two of A's customers."""
    org = api.org
    r = await api.http.post("/api/v1/reassignments", json={
        "from_employee_id": org.sales_a1, "to_employee_id": org.sales_a2,
        "customer_ids": org.customers_a1[2:] if second else org.customers_a1[:2],
        "reason": "WORKLOAD_BALANCING"},
        headers={**await api.auth(org.manager_a), "Idempotency-Key": str(uuid.uuid4())})
    assert r.status_code == 201, r.text
    rid = int(r.json()["id"])
    with api.sessions() as s:
        request = s.get(ReassignmentRequest, rid)
        assert request is not None and request.workflow_id
        request.stage = stage
        s.add(request)
    return rid


def url(rid: int, tail: str = "") -> str:
    return f"/api/v1/reassignments/{rid}/sign{tail}"


async def request_code(api: Api, rid: int, doc: str = DOC, as_id: int | None = None) -> Any:
    return await api.http.post(url(rid, "/otp"), json={"document_sha256": doc},
                               headers=await api.auth(as_id or api.org.sales_a1))


def latest_code(api: Api, rid: int) -> str:
    """The code as delivered: from the signer's newest SIGNING_CODE notification."""
    with api.sessions() as s:
        notice = s.exec(select(NotificationRecord).where(
            NotificationRecord.request_id == rid, NotificationRecord.kind == "SIGNING_CODE")
            .order_by(col(NotificationRecord.id).desc())).first()
        assert notice is not None and notice.recipient_id == api.org.sales_a1
        digits = [w.rstrip(".") for w in notice.message.split() if w.rstrip(".").isdigit()
                  and len(w.rstrip(".")) == 6]
        assert len(digits) == 1, notice.message
        return digits[0]


async def sign(api: Api, rid: int, *, doc: str = DOC, as_id: int | None = None,
               typed_name: str = "Li Sales", **proof: Any) -> Any:
    if "otp_code" in proof:
        proof.setdefault("method", "otp")
    if "passkey_assertion" in proof:
        proof.setdefault("method", "passkey")
    return await api.http.post(
        url(rid), json={"typed_name": typed_name, "document_sha256": doc, **proof},
        headers={**await api.auth(as_id or api.org.sales_a1), "User-Agent": UA})


def sign_updates(fake: FakeTemporal) -> list[SignInput]:
    return [arg for _wf, update, arg in fake.updates if update == "sign"]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def audit_kinds(api: Api, rid: int | None) -> list[str]:
    with api.sessions() as s:
        return [e.event_type for e in s.exec(select(AuditEvent).where(
            AuditEvent.request_id == rid).order_by(col(AuditEvent.chain_index))).all()]


# --- one-time code ------------------------------------------------------------------------------


async def test_code_travels_only_in_the_notification_and_signs_once(
    api: Api, fake_temporal: SigningTemporal
) -> None:
    rid = await signable_request(api)
    r = await request_code(api, rid)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["delivered_via"] == "notification" and body["max_attempts"] == 5
    assert body["document_sha256"] == DOC
    code = latest_code(api, rid)
    assert code not in r.text
    with api.sessions() as s:  # only the argon2 hash is stored, bound to request/signer/doc
        row = s.exec(select(OneTimeCode).where(OneTimeCode.request_id == rid)).one()
        assert row.code_hash.startswith("$argon2") and code not in row.code_hash
        assert verify_password(code, row.code_hash)
        assert (row.employee_id, row.document_sha256) == (api.org.sales_a1, DOC)
        assert timedelta(minutes=9) < row.expires_at - row.created_at <= timedelta(minutes=10)

    r = await sign(api, rid, otp_code=code)
    assert r.status_code == 200, r.text
    assert code not in r.text
    (arg,) = sign_updates(fake_temporal)
    assert arg.actor_id == api.org.sales_a1 and arg.typed_name == "Li Sales"
    assert arg.method == "otp" and arg.credential_id is None and arg.document_hash == DOC
    assert arg.user_agent == UA and arg.ip

    r = await sign(api, rid, otp_code=code)  # a code works once
    assert assert_problem(r, 403, "otp-used")["detail"]
    assert len(sign_updates(fake_temporal)) == 1
    kinds = audit_kinds(api, rid)
    assert kinds.count("SIGNING_CODE_SENT") == 1 and kinds.count("SIGNING_REAUTHENTICATED") == 1
    assert kinds.count("SIGNING_REAUTH_FAILED") == 1
    with api.sessions() as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.request_id == rid)).all()
        assert all(code not in json.dumps(e.detail) for e in events)
        assert verify_chain(s)[0]


async def test_wrong_codes_count_down_and_exhaust_the_code(
    api: Api, fake_temporal: SigningTemporal
) -> None:
    rid = await signable_request(api)
    await request_code(api, rid)
    code = latest_code(api, rid)
    for left in (4, 3, 2, 1, 0):
        r = await sign(api, rid, otp_code=wrong(code))
        problem = assert_problem(r, 403, "otp-invalid")
        assert problem["attempts_left"] == left, problem
    assert "last attempt" in problem["detail"]
    r = await sign(api, rid, otp_code=code)  # even the right code, now
    assert assert_problem(r, 403, "otp-attempts-exhausted")["attempts_left"] == 0
    assert sign_updates(fake_temporal) == []
    # a new code works again
    await request_code(api, rid)
    r = await sign(api, rid, otp_code=latest_code(api, rid))
    assert r.status_code == 200, r.text


async def test_expired_code_is_refused(api: Api, fake_temporal: SigningTemporal) -> None:
    rid = await signable_request(api)
    await request_code(api, rid)
    code = latest_code(api, rid)
    with api.sessions() as s:
        row = s.exec(select(OneTimeCode).where(OneTimeCode.request_id == rid)).one()
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        s.add(row)
    assert "expired" in assert_problem(await sign(api, rid, otp_code=code), 403,
                                       "otp-expired")["detail"]
    assert sign_updates(fake_temporal) == []


async def test_new_code_replaces_earlier_ones_and_codes_are_bound_to_the_document(
    api: Api, fake_temporal: SigningTemporal
) -> None:
    fake_temporal.agreement_sha256 = None  # no pre-check: both versions may get a code
    rid = await signable_request(api)
    await request_code(api, rid)
    first = latest_code(api, rid)
    await request_code(api, rid)
    second = latest_code(api, rid)
    if first != second:  # the older code of the same document no longer works
        assert_problem(await sign(api, rid, otp_code=first), 403, "otp-invalid")
    # a code for version 2 does not sign version 1 and replaces version 1's code
    await request_code(api, rid, DOC_V2)
    v2_code = latest_code(api, rid)
    assert_problem(await sign(api, rid, otp_code=second), 403, "otp-expired")
    assert_problem(await sign(api, rid, doc=DOC_V2, otp_code=wrong(v2_code)), 403,
                   "otp-invalid")
    r = await sign(api, rid, doc=DOC_V2, otp_code=v2_code)
    assert r.status_code == 200, r.text
    # a code for a document nobody asked a code for
    rid2 = await signable_request(api, second=True)
    assert_problem(await sign(api, rid2, otp_code=v2_code), 403, "otp-missing")


async def test_only_the_affected_salesperson_gets_a_code_and_signs(
    api: Api, fake_temporal: SigningTemporal
) -> None:
    org = api.org
    rid = await signable_request(api)
    for other in (org.sales_a2, org.manager_a):
        assert_problem(await request_code(api, rid, as_id=other), 403, "not-the-signer")
    # HR holds no role that signs at all: refused by the permission table first
    assert_problem(await request_code(api, rid, as_id=org.hr_head), 403, "forbidden-role")
    assert_problem(await request_code(api, 999_999), 404, "request-not-found")
    await request_code(api, rid)
    code = latest_code(api, rid)
    assert_problem(await sign(api, rid, as_id=org.sales_a2, typed_name="Wang Sales",
                              otp_code=code), 403, "not-the-signer")
    with api.sessions() as s:  # nobody else's attempt touched the code
        assert s.exec(select(OneTimeCode).where(OneTimeCode.request_id == rid)).one() \
            .attempts == 0
        # nobody but the signer was notified
        notices = s.exec(select(NotificationRecord).where(
            NotificationRecord.kind == "SIGNING_CODE")).all()
        assert {n.recipient_id for n in notices} == {org.sales_a1}
    assert sign_updates(fake_temporal) == []
    # outside the window nothing can be signed, so no code is sent
    closed = await signable_request(api, Stage.PENDING_APPROVAL, second=True)
    assert assert_problem(await request_code(api, closed), 409,
                          "not-signable")["stage"] == "PENDING_APPROVAL"


async def test_typed_name_must_be_the_signers_own(api: Api, fake_temporal: SigningTemporal
                                                  ) -> None:
    rid = await signable_request(api)
    await request_code(api, rid)
    code = latest_code(api, rid)
    problem = assert_problem(await sign(api, rid, typed_name="Wang Sales", otp_code=code), 422,
                             "typed-name-mismatch")
    assert problem["errors"][0]["field"] == "typed_name"
    # the mismatch spent nothing: case and spaces do not matter
    r = await sign(api, rid, typed_name="  li   SALES ", otp_code=code)
    assert r.status_code == 200, r.text
    assert sign_updates(fake_temporal)[0].typed_name == "li   SALES"


async def test_sign_body_is_validated(api: Api, fake_temporal: SigningTemporal) -> None:
    rid = await signable_request(api)
    headers = await api.auth(api.org.sales_a1)
    bad_bodies: list[dict[str, Any]] = [
        {"typed_name": "Li Sales", "document_sha256": DOC, "method": "otp"},  # no code
        {"typed_name": "Li Sales", "document_sha256": DOC, "method": "passkey"},  # no assertion
        {"typed_name": "Li Sales", "document_sha256": DOC, "method": "otp", "otp_code": "12345"},
        {"typed_name": "Li Sales", "document_sha256": "AB" * 32, "method": "otp",
         "otp_code": "123456"},
        {"typed_name": "Li Sales", "method": "otp", "otp_code": "123456"},  # no document
        {"typed_name": "Li Sales", "document_sha256": DOC, "method": "session"},
        {"typed_name": "Li Sales", "document_sha256": DOC, "method": "otp", "otp_code": "123456",
         "actor_id": api.org.sales_a1},
    ]
    for body in bad_bodies:
        assert_problem(await api.http.post(url(rid), json=body, headers=headers), 422,
                       "validation-failed")
    assert_problem(await api.http.post(url(rid, "/otp"), json={"document_sha256": "x"},
                                       headers=headers), 422, "validation-failed")
    assert fake_temporal.updates == []


async def test_temporal_down_spends_no_code(api: Api, fake_temporal: SigningTemporal) -> None:
    rid = await signable_request(api)
    await request_code(api, rid)
    code = latest_code(api, rid)
    api.app.dependency_overrides.pop(get_temporal_client)  # settings point at a closed port
    assert_problem(await sign(api, rid, otp_code=code), 503, "temporal-unavailable")
    api.app.dependency_overrides[get_temporal_client] = lambda: fake_temporal
    r = await sign(api, rid, otp_code=code)
    assert r.status_code == 200, r.text


async def test_temporal_lost_after_connecting_spends_no_code(
        api: Api, fake_temporal: SigningTemporal, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client connected earlier stays cached when the server goes away: the sign must
    find that out before it spends the code, not in the Update."""
    rid = await signable_request(api)
    await request_code(api, rid)
    code = latest_code(api, rid)
    down = RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")

    async def unreachable(_handle: FakeHandle) -> Any:
        raise down

    monkeypatch.setattr(SigningHandle, "describe", unreachable)
    fake_temporal.update_error = down
    assert_problem(await sign(api, rid, otp_code=code), 503, "temporal-unavailable")
    assert sign_updates(fake_temporal) == []
    monkeypatch.undo()
    fake_temporal.update_error = None
    r = await sign(api, rid, otp_code=code)  # the same code: it was not spent
    assert r.status_code == 200, r.text


async def test_outdated_document_is_refused(api: Api, fake_temporal: SigningTemporal) -> None:
    rid = await signable_request(api)
    # when the workflow answers, no code is sent for a version that is not current
    problem = assert_problem(await request_code(api, rid, DOC_V2), 409, "action-stale_document")
    assert problem["current_agreement_sha256"] == DOC and problem["code"] == "STALE_DOCUMENT"
    await request_code(api, rid)
    code = latest_code(api, rid)
    # the agreement is re-rendered after the code was sent: the workflow refuses (409)
    fake_temporal.agreement_sha256, fake_temporal.agreement_version = DOC_V2, 2
    problem = assert_problem(await sign(api, rid, otp_code=code), 409, "action-stale_document")
    assert problem["code"] == "STALE_DOCUMENT" and "newer" in problem["detail"]
    assert sign_updates(fake_temporal)[0].document_hash == DOC


async def test_codes_per_hour_are_limited(api: Api) -> None:
    rid = await signable_request(api)
    for _ in range(10):
        assert (await request_code(api, rid)).status_code == 202
    r = await request_code(api, rid)
    assert_problem(r, 429, "otp-throttled")
    assert r.headers["retry-after"]


# --- passkeys -----------------------------------------------------------------------------------


async def register(api: Api, as_id: int, authenticator: SoftAuthenticator,
                   name: str | None = "phone") -> Any:
    headers = await api.auth(as_id)
    r = await api.http.post("/api/v1/me/passkeys/register/options", headers=headers)
    assert r.status_code == 200, r.text
    options = r.json()
    assert options["rp"] == {"id": RP_ID, "name": "Baton"}
    assert options["authenticatorSelection"]["userVerification"] == "required"
    return await api.http.post("/api/v1/me/passkeys/register/verify", headers=headers,
                               json={"credential": authenticator.create(options), "name": name})


async def passkey_options(api: Api, rid: int, doc: str = DOC, as_id: int | None = None) -> Any:
    return await api.http.post(url(rid, "/passkey/options"), json={"document_sha256": doc},
                               headers=await api.auth(as_id or api.org.sales_a1))


async def test_register_list_and_delete_passkeys(api: Api) -> None:
    org = api.org
    phone = SoftAuthenticator()
    r = await register(api, org.sales_a1, phone)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["credential_id"] == b64(phone.credential_id)
    assert created["name"] == "phone" and created["transports"] == ["internal"]
    # the same credential twice: refused; a replayed registration: its challenge is spent
    assert_problem(await register(api, org.sales_a1, phone), 409, "passkey-already-registered")
    headers = await api.auth(org.sales_a1)
    options = (await api.http.post("/api/v1/me/passkeys/register/options",
                                   headers=headers)).json()
    assert options["excludeCredentials"][0]["id"] == b64(phone.credential_id)
    laptop = SoftAuthenticator()
    answer = laptop.create(options)
    ok = await api.http.post("/api/v1/me/passkeys/register/verify", headers=headers,
                             json={"credential": answer})
    assert ok.status_code == 201, ok.text
    replay = await api.http.post("/api/v1/me/passkeys/register/verify", headers=headers,
                                 json={"credential": answer})
    assert_problem(replay, 422, "passkey-registration-invalid")
    # a registration from another origin, or without user verification
    for bad in (SoftAuthenticator(origin="https://evil.example"),
                SoftAuthenticator(user_verified=False), SoftAuthenticator(rp_id="evil.example")):
        options = (await api.http.post("/api/v1/me/passkeys/register/options",
                                       headers=headers)).json()
        options["rp"]["id"] = bad.rp_id
        r = await api.http.post("/api/v1/me/passkeys/register/verify", headers=headers,
                                json={"credential": bad.create(options)})
        assert_problem(r, 422, "passkey-registration-invalid")

    mine = (await api.http.get("/api/v1/me/passkeys", headers=headers)).json()["items"]
    assert [p["name"] for p in mine] == ["phone", "passkey"]
    theirs = (await api.http.get("/api/v1/me/passkeys",
                                 headers=await api.auth(org.sales_a2))).json()["items"]
    assert theirs == []
    # only the owner removes a passkey
    r = await api.http.delete(f"/api/v1/me/passkeys/{mine[0]['id']}",
                              headers=await api.auth(org.sales_a2))
    assert_problem(r, 404, "passkey-not-found")
    r = await api.http.delete(f"/api/v1/me/passkeys/{mine[0]['id']}", headers=headers)
    assert r.status_code == 204
    left = (await api.http.get("/api/v1/me/passkeys", headers=headers)).json()["items"]
    assert [p["id"] for p in left] == [mine[1]["id"]]
    kinds = audit_kinds(api, None)
    assert kinds.count("PASSKEY_REGISTERED") == 2 and kinds.count("PASSKEY_REMOVED") == 1


async def test_sign_with_a_passkey(api: Api, fake_temporal: SigningTemporal) -> None:
    rid = await signable_request(api)
    phone = SoftAuthenticator()
    assert_problem(await passkey_options(api, rid), 409, "passkey-none-registered")
    assert (await register(api, api.org.sales_a1, phone)).status_code == 201

    r = await passkey_options(api, rid)
    assert r.status_code == 200, r.text
    options = r.json()
    assert options["rpId"] == RP_ID and options["userVerification"] == "required"
    assert [c["id"] for c in options["allowCredentials"]] == [b64(phone.credential_id)]
    challenge = base64url_to_bytes(options["challenge"])
    assert challenge[16:] == bytes.fromhex(DOC) and len(challenge) == 48  # nonce || hash

    assertion = phone.get(options)
    r = await sign(api, rid, passkey_assertion=assertion)
    assert r.status_code == 200, r.text
    (arg,) = sign_updates(fake_temporal)
    assert arg.method == "passkey" and arg.credential_id == b64(phone.credential_id)
    assert arg.document_hash == DOC and arg.user_agent == UA
    with api.sessions() as s:
        cred = s.exec(select(PasskeyCredential)).one()
        assert cred.sign_count == 1 and cred.last_used_at is not None
        used = s.exec(select(WebAuthnChallenge).where(WebAuthnChallenge.purpose == "sign")).one()
        assert used.used_at is not None and used.document_sha256 == DOC
        assert used.request_id == rid
        # the evidence keeps the assertion: anyone can check later that the authenticator
        # signed a challenge ending in the document hash
        event = s.exec(select(AuditEvent).where(
            AuditEvent.event_type == "SIGNING_REAUTHENTICATED")).one()
        client_data = json.loads(base64url_to_bytes(event.detail["client_data_json"]))
        assert base64url_to_bytes(client_data["challenge"])[16:].hex() == DOC
    # the same assertion again: its challenge is spent
    assert_problem(await sign(api, rid, passkey_assertion=assertion), 403,
                   "passkey-challenge-invalid")
    assert len(sign_updates(fake_temporal)) == 1


async def test_passkey_challenge_is_bound_to_the_document_hash(
    api: Api, fake_temporal: SigningTemporal
) -> None:
    fake_temporal.agreement_sha256 = None  # no pre-check: options for both versions
    rid = await signable_request(api)
    phone = SoftAuthenticator()
    assert (await register(api, api.org.sales_a1, phone)).status_code == 201
    for_x = phone.get((await passkey_options(api, rid, DOC)).json())
    # signing Y with the assertion made for X: refused, with or without Y's options asked for
    problem = assert_problem(await sign(api, rid, doc=DOC_V2, passkey_assertion=for_x), 403,
                             "passkey-wrong-document")
    assert "different document" in problem["detail"]
    await passkey_options(api, rid, DOC_V2)
    assert_problem(await sign(api, rid, doc=DOC_V2, passkey_assertion=for_x), 403,
                   "passkey-wrong-document")
    # a forged client data that claims Y's challenge does not verify with X's signature
    y_options = (await passkey_options(api, rid, DOC_V2)).json()
    forged = json.loads(json.dumps(for_x))
    forged["response"]["clientDataJSON"] = b64(phone.client_data("webauthn.get",
                                                                 y_options["challenge"]))
    assert_problem(await sign(api, rid, doc=DOC_V2, passkey_assertion=forged), 403,
                   "passkey-invalid")
    # the assertion for X, unused so far, still signs X
    r = await sign(api, rid, doc=DOC, passkey_assertion=for_x)
    assert r.status_code == 200, r.text
    assert sign_updates(fake_temporal)[0].document_hash == DOC
    # an assertion for another request's options does not sign this one
    rid2 = await signable_request(api, second=True)
    other = phone.get((await passkey_options(api, rid2, DOC)).json())
    assert_problem(await sign(api, rid, doc=DOC, passkey_assertion=other), 403,
                   "passkey-wrong-document")


async def test_bad_passkey_assertions_are_refused(api: Api, fake_temporal: SigningTemporal
                                                  ) -> None:
    org = api.org
    rid = await signable_request(api)
    phone, stranger = SoftAuthenticator(), SoftAuthenticator()
    assert (await register(api, org.sales_a1, phone)).status_code == 201
    assert (await register(api, org.sales_a2, stranger)).status_code == 201
    options = (await passkey_options(api, rid)).json()
    # someone else's passkey, even if they could get the options
    options_for_stranger = {**options, "allowCredentials": [{"id": b64(stranger.credential_id),
                                                             "type": "public-key"}]}
    assert_problem(await sign(api, rid, passkey_assertion=stranger.get(options_for_stranger)),
                   403, "passkey-unknown")
    assert_problem(await passkey_options(api, rid, as_id=org.sales_a2), 403, "not-the-signer")
    # wrong origin, no user verification, a tampered signature, garbage
    assert_problem(await sign(api, rid, passkey_assertion=phone.get(
        options, origin="https://evil.example")), 403, "passkey-invalid")
    phone.user_verified = False
    assert_problem(await sign(api, rid, passkey_assertion=phone.get(options)), 403,
                   "passkey-invalid")
    phone.user_verified = True
    tampered = phone.get(options)
    signature = bytearray(base64url_to_bytes(tampered["response"]["signature"]))
    signature[-1] ^= 1
    tampered["response"]["signature"] = b64(bytes(signature))
    assert_problem(await sign(api, rid, passkey_assertion=tampered), 403, "passkey-invalid")
    assert_problem(await sign(api, rid, passkey_assertion={"id": "x"}), 403, "passkey-invalid")
    # an expired challenge
    with api.sessions() as s:
        for row in s.exec(select(WebAuthnChallenge)).all():
            row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
            s.add(row)
    assert_problem(await sign(api, rid, passkey_assertion=phone.get(options)), 403,
                   "passkey-challenge-invalid")
    assert sign_updates(fake_temporal) == []
    assert audit_kinds(api, rid).count("SIGNING_REAUTH_FAILED") == 6


async def test_decline_still_needs_only_a_reason(api: Api, fake_temporal: SigningTemporal
                                                 ) -> None:
    rid = await signable_request(api)
    headers = await api.auth(api.org.sales_a1)
    assert_problem(await api.http.post(f"/api/v1/reassignments/{rid}/decline",
                                       json={"reason": " "}, headers=headers), 422)
    r = await api.http.post(f"/api/v1/reassignments/{rid}/decline",
                            json={"reason": "I keep my customers"}, headers=headers)
    assert r.status_code == 200, r.text
    (_wf, update, arg), = fake_temporal.updates
    assert update == "decline" and arg.reason == "I keep my customers"


async def test_openapi_lists_the_ceremony(api: Api) -> None:
    paths = (await api.http.get("/api/v1/openapi.json")).json()["paths"]
    for path in ("/api/v1/reassignments/{request_id}/sign/otp",
                 "/api/v1/reassignments/{request_id}/sign/passkey/options",
                 "/api/v1/me/passkeys/register/options", "/api/v1/me/passkeys/register/verify",
                 "/api/v1/me/passkeys", "/api/v1/me/passkeys/{passkey_id}"):
        assert path in paths, path
