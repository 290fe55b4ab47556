"""Re-authentication for the signing ceremony (DESIGN.md, "E-signature"; issue 5).

Before the affected salesperson's signature reaches the workflow, they prove again that they
are who the token says, by one of:

- a **passkey** (WebAuthn, the `webauthn` package). The challenge that the authenticator signs
  is `server nonce (16 bytes) || SHA-256 of the agreement (32 bytes)`, so the assertion itself
  names the exact document version: the signature creation data stays in the signer's own
  authenticator and covers that document (Article 13, conditions 1 and 2). User verification
  (PIN or biometrics) is required.
- a **one-time code**, as the fallback: six digits from `secrets`, bound to (request, employee,
  document hash), valid for `otp_ttl_minutes`, at most `otp_max_attempts` guesses, one use.
  Only its argon2 hash is stored. Delivery channel for now: a NotificationRecord of kind
  SIGNING_CODE addressed to the signer (the notification is the source of truth until email
  delivery exists); no API response ever contains the code.

Everything here is synchronous and takes a Session; `in_transaction` commits the bookkeeping
(attempt counters, audit of a failed attempt) even when the attempt is refused.
Failures raise SigningError, which the API turns into problem+json.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import func, update
from sqlmodel import Session, col, select
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from domain.stages import Stage
from models.audit import AuditEvent, append_audit_event
from models.db import SessionFactory
from models.org import Employee
from models.passwords import hash_password, verify_password
from models.reassignment import NotificationRecord, ReassignmentRequest
from models.signing import OneTimeCode, PasskeyCredential, WebAuthnChallenge
from models.types import utcnow

SIGNABLE_STAGES = frozenset({Stage.COMMUNICATION, Stage.AWAITING_SIGNATURE})  # as the workflow
CODE_DIGITS = 6
MAX_CODES_PER_HOUR = 10  # per request and signer: with 5 guesses each, 50 guesses an hour
CHALLENGE_TTL = timedelta(minutes=5)
NONCE_BYTES = 16
NOTIFICATION_KIND = "SIGNING_CODE"
METHOD_OTP = "otp"
METHOD_PASSKEY = "passkey"

T = TypeVar("T")


@dataclass(frozen=True)
class SigningConfig:
    """The settings this module needs (built by the API from settings.Settings)."""

    rp_id: str
    rp_name: str
    origin: str
    otp_ttl: timedelta
    otp_max_attempts: int


class SigningError(Exception):
    """A refusal the client can act on. `slug` names it; `status` is the HTTP answer."""

    def __init__(self, status: int, slug: str, title: str, detail: str,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail = status, slug, title, detail
        self.extra: dict[str, Any] = extra
        self.headers: dict[str, str] = {}


@dataclass(frozen=True)
class Signer:
    request_id: int
    workflow_id: str | None
    stage: Stage
    employee_id: int
    name: str


@dataclass(frozen=True)
class Reauth:
    """A passed re-authentication: what the evidence record stores about it."""

    method: str
    credential_id: str | None = None


@dataclass(frozen=True)
class CodeSent:
    code_id: int
    expires_at: datetime
    notification_id: int
    max_attempts: int


@dataclass
class PasskeyView:
    id: int
    name: str
    credential_id: str
    transports: list[str] = field(default_factory=list)
    sign_count: int = 0
    created_at: datetime | None = None
    last_used_at: datetime | None = None


def in_transaction(sessions: SessionFactory, fn: Callable[..., T], *args: Any,
                   **kwargs: Any) -> T:
    """Run fn(session, ...) in one transaction that commits even when fn refuses.

    A wrong code must still count as an attempt, and its audit event must stay.
    """
    refusal: SigningError | None = None
    with sessions() as session:
        try:
            return fn(session, *args, **kwargs)
        except SigningError as err:
            refusal = err
    raise refusal


# --- who signs -------------------------------------------------------------------------------


def normalise_name(name: str) -> str:
    """Case-, width- and whitespace-insensitive form of a typed name."""
    return "".join(unicodedata.normalize("NFKC", name).casefold().split())


def typed_name_matches(typed: str, name: str) -> bool:
    return bool(normalise_name(typed)) and normalise_name(typed) == normalise_name(name)


def load_signer(session: Session, request_id: int, employee_id: int) -> Signer:
    """The request's affected salesperson, who must be the caller."""
    request = session.get(ReassignmentRequest, request_id)
    if request is None:
        raise SigningError(404, "request-not-found", "Request not found",
                           f"There is no reassignment request {request_id}.")
    assert request.id is not None
    if request.from_employee_id != employee_id:
        raise SigningError(403, "not-the-signer", "Not yours to sign",
                           "Only the salesperson who would lose the customers signs or declines "
                           "this agreement, and only they re-authenticate for it.")
    employee = session.get(Employee, employee_id)
    assert employee is not None  # foreign key
    return Signer(request_id=request.id, workflow_id=request.workflow_id,
                  stage=Stage(request.stage), employee_id=employee_id, name=employee.name)


def require_signable(signer: Signer) -> None:
    if signer.stage not in SIGNABLE_STAGES:
        raise SigningError(409, "not-signable", "Nothing to sign now",
                           f"Request {signer.request_id} is {signer.stage.value}; the agreement "
                           "can be signed only during the communication window or while it "
                           "awaits your signature.", stage=signer.stage.value)


def _updated(session: Session, statement: Any) -> int:
    """Run an UPDATE; how many rows it changed (conditional updates make claims atomic)."""
    return int(getattr(session.execute(statement), "rowcount", 0))


def _audit(session: Session, event: str, *, actor_id: int, request_id: int | None,
           detail: dict[str, Any], now: datetime, entity: tuple[str, Any] | None = None,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
           reason: str | None = None) -> None:
    entity_type, entity_id = entity or (None, None)
    append_audit_event(session, AuditEvent(
        occurred_at=now, event_type=event, request_id=request_id, actor_id=actor_id,
        detail=detail, entity_type=entity_type,
        entity_id=None if entity_id is None else str(entity_id), before=before, after=after,
        reason=reason, chain_index=0, prev_hash="", hash=""))


# --- one-time codes ---------------------------------------------------------------------------


def _new_code() -> str:
    return f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"


def issue_code(session: Session, cfg: SigningConfig, signer: Signer, document_sha256: str,
               now: datetime | None = None) -> CodeSent:
    """Create a code for this document version and send it; earlier unused codes stop working."""
    now = now or utcnow()
    require_signable(signer)
    recent = session.exec(select(func.count()).select_from(OneTimeCode).where(
        OneTimeCode.request_id == signer.request_id,
        OneTimeCode.employee_id == signer.employee_id,
        OneTimeCode.created_at > now - timedelta(hours=1))).one()
    if recent >= MAX_CODES_PER_HOUR:
        err = SigningError(429, "otp-throttled", "Too many codes",
                           f"{MAX_CODES_PER_HOUR} codes were sent for this request in the last "
                           "hour. Wait a while, or sign with a passkey.")
        err.headers["Retry-After"] = "600"
        raise err
    # a new code replaces every earlier unused one (for any document version)
    superseded = _updated(session, update(OneTimeCode).where(
        col(OneTimeCode.request_id) == signer.request_id,
        col(OneTimeCode.employee_id) == signer.employee_id,
        col(OneTimeCode.used_at).is_(None),
        col(OneTimeCode.expires_at) > now,
    ).values(expires_at=now))
    code = _new_code()
    row = OneTimeCode(request_id=signer.request_id, employee_id=signer.employee_id,
                      document_sha256=document_sha256, code_hash=hash_password(code),
                      created_at=now, expires_at=now + cfg.otp_ttl)
    session.add(row)
    session.flush()
    assert row.id is not None
    minutes = int(cfg.otp_ttl.total_seconds() // 60)
    notice = NotificationRecord(
        workflow_id=signer.workflow_id or f"request-{signer.request_id}",
        key=f"signing-code-{row.id}", request_id=signer.request_id,
        recipient_id=signer.employee_id, kind=NOTIFICATION_KIND, created_at=now,
        message=(f"Your one-time code to sign the agreement of reassignment request "
                 f"{signer.request_id} is {code}. It is valid for {minutes} minutes, for the "
                 f"agreement version with SHA-256 {document_sha256[:12]}… only. Nobody from "
                 "the company will ever ask you for it."))
    session.add(notice)
    session.flush()
    assert notice.id is not None
    _audit(session, "SIGNING_CODE_SENT", actor_id=signer.employee_id,
           request_id=signer.request_id, now=now,
           detail={"code_id": row.id, "document_sha256": document_sha256,
                   "expires_at": row.expires_at.isoformat()},
           entity=("one_time_code", row.id),  # never the code, only that one was issued
           after={"document_sha256": document_sha256, "expires_at": row.expires_at.isoformat(),
                  "earlier_codes_expired": superseded})
    return CodeSent(code_id=row.id, expires_at=row.expires_at, notification_id=notice.id,
                    max_attempts=cfg.otp_max_attempts)


def _reauth_failed(session: Session, signer: Signer, method: str, reason: str,
                   document_sha256: str, now: datetime, **detail: Any) -> None:
    code_id = detail.get("code_id")
    _audit(session, "SIGNING_REAUTH_FAILED", actor_id=signer.employee_id,
           request_id=signer.request_id, now=now,
           detail={"method": method, "reason": reason, "document_sha256": document_sha256,
                   **detail},
           entity=("one_time_code", code_id) if code_id is not None
           else ("reassignment_request", signer.request_id),
           reason=reason)


def verify_code(session: Session, cfg: SigningConfig, signer: Signer, document_sha256: str,
                code: str, now: datetime | None = None) -> Reauth:
    """Check `code` against the latest code sent for this request, signer and document."""
    now = now or utcnow()
    row = session.exec(select(OneTimeCode).where(
        OneTimeCode.request_id == signer.request_id,
        OneTimeCode.employee_id == signer.employee_id,
        OneTimeCode.document_sha256 == document_sha256,
    ).order_by(col(OneTimeCode.id).desc())).first()

    def refuse(slug: str, title: str, detail: str, **extra: Any) -> SigningError:
        _reauth_failed(session, signer, METHOD_OTP, slug, document_sha256, now,
                       code_id=row.id if row else None)
        return SigningError(403, slug, title, detail, **extra)

    again = "Request a new code at POST .../sign/otp and try again."
    if row is None:
        raise refuse("otp-missing", "No code for this document",
                     "No one-time code was sent to you for this version of the agreement "
                     f"(SHA-256 {document_sha256}). A code works only for the document version "
                     f"it was requested for. {again}")
    assert row.id is not None
    if row.used_at is not None:
        raise refuse("otp-used", "Code already used",
                     f"This one-time code was already used; each code works once. {again}")
    if row.attempts >= cfg.otp_max_attempts:
        raise refuse("otp-attempts-exhausted", "Too many wrong codes",
                     f"The code was entered wrongly {row.attempts} times and no longer works. "
                     f"{again}", attempts_left=0)
    if row.expires_at <= now:
        raise refuse("otp-expired", "Code expired",
                     "The one-time code has expired, or a newer code replaced it. " + again)
    # claim an attempt atomically, so parallel guesses cannot exceed the limit
    claimed = _updated(session, update(OneTimeCode).where(
        col(OneTimeCode.id) == row.id,
        col(OneTimeCode.attempts) < cfg.otp_max_attempts,
        col(OneTimeCode.used_at).is_(None),
    ).values(attempts=col(OneTimeCode.attempts) + 1))
    if claimed != 1:
        session.refresh(row)
        if row.used_at is not None:  # a parallel call (a double click) used it first
            raise refuse("otp-used", "Code already used",
                         f"This one-time code was already used; each code works once. {again}")
        raise refuse("otp-attempts-exhausted", "Too many wrong codes",
                     f"The code no longer works. {again}", attempts_left=0)
    session.refresh(row)
    if not verify_password(code, row.code_hash):
        left = max(cfg.otp_max_attempts - row.attempts, 0)
        detail = (f"The one-time code is wrong. {left} attempt{'s' if left != 1 else ''} left."
                  if left else f"The one-time code is wrong, and that was the last attempt. "
                               f"{again}")
        raise refuse("otp-invalid", "Wrong code", detail, attempts_left=left)
    used = _updated(session, update(OneTimeCode).where(
        col(OneTimeCode.id) == row.id, col(OneTimeCode.used_at).is_(None),
    ).values(used_at=now))
    if used != 1:  # a parallel call won with the same code
        raise refuse("otp-used", "Code already used",
                     f"This one-time code was already used; each code works once. {again}")
    _audit(session, "SIGNING_REAUTHENTICATED", actor_id=signer.employee_id,
           request_id=signer.request_id, now=now,
           detail={"method": METHOD_OTP, "code_id": row.id, "document_sha256": document_sha256},
           entity=("one_time_code", row.id), before={"used_at": None},
           after={"used_at": now.isoformat(), "attempts": row.attempts})
    return Reauth(method=METHOD_OTP)


# --- passkeys: registration (account page) ----------------------------------------------------


def _user_handle(employee_id: int) -> bytes:
    """A stable, opaque WebAuthn user id: never a name or an email (the spec's advice)."""
    return hashlib.sha256(f"baton-employee:{employee_id}".encode()).digest()


def _descriptors(creds: list[PasskeyCredential]) -> list[PublicKeyCredentialDescriptor]:
    out = []
    for cred in creds:
        transports = [AuthenticatorTransport(t) for t in (cred.transports or "").split(",")
                      if t in AuthenticatorTransport._value2member_map_]
        out.append(PublicKeyCredentialDescriptor(id=base64url_to_bytes(cred.credential_id),
                                                 transports=transports or None))
    return out


def _credentials_of(session: Session, employee_id: int) -> list[PasskeyCredential]:
    return list(session.exec(select(PasskeyCredential).where(
        PasskeyCredential.employee_id == employee_id).order_by(col(PasskeyCredential.id))).all())


def _store_challenge(session: Session, *, employee_id: int, purpose: str, challenge: bytes,
                     now: datetime, request_id: int | None = None,
                     document_sha256: str | None = None) -> None:
    session.add(WebAuthnChallenge(employee_id=employee_id, purpose=purpose,
                                  challenge=bytes_to_base64url(challenge), request_id=request_id,
                                  document_sha256=document_sha256, created_at=now,
                                  expires_at=now + CHALLENGE_TTL))
    session.flush()


def _options_json(options: Any) -> dict[str, Any]:
    import json

    parsed: dict[str, Any] = json.loads(options_to_json(options))
    return parsed


def registration_options(session: Session, cfg: SigningConfig, employee_id: int,
                         username: str, now: datetime | None = None) -> dict[str, Any]:
    """PublicKeyCredentialCreationOptions (JSON) for navigator.credentials.create()."""
    now = now or utcnow()
    employee = session.get(Employee, employee_id)
    assert employee is not None
    options = generate_registration_options(
        rp_id=cfg.rp_id, rp_name=cfg.rp_name, user_name=username,
        user_id=_user_handle(employee_id), user_display_name=employee.name,
        timeout=int(CHALLENGE_TTL.total_seconds() * 1000),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED),
        exclude_credentials=_descriptors(_credentials_of(session, employee_id)),
    )
    _store_challenge(session, employee_id=employee_id, purpose="register",
                     challenge=options.challenge, now=now)
    return _options_json(options)


def _find_challenge(session: Session, employee_id: int, purpose: str, client_data_b64: Any,
                    now: datetime) -> tuple[WebAuthnChallenge | None, str]:
    """The stored challenge that the client data names, or (None, why not)."""
    try:
        client_data = parse_client_data_json(base64url_to_bytes(str(client_data_b64)))
    except (WebAuthnException, ValueError, TypeError) as exc:
        return None, f"the client data cannot be read ({exc})"
    challenge = session.exec(select(WebAuthnChallenge).where(
        WebAuthnChallenge.challenge == bytes_to_base64url(client_data.challenge),
        WebAuthnChallenge.employee_id == employee_id,
        WebAuthnChallenge.purpose == purpose)).first()
    if challenge is None:
        return None, "it answers a challenge this server did not give you"
    if challenge.used_at is not None:
        return None, "its challenge was already used; each works once"
    if challenge.expires_at <= now:
        return None, "its challenge has expired"
    return challenge, ""


def _use_challenge(session: Session, challenge: WebAuthnChallenge, now: datetime) -> bool:
    used = _updated(session, update(WebAuthnChallenge).where(
        col(WebAuthnChallenge.id) == challenge.id, col(WebAuthnChallenge.used_at).is_(None),
    ).values(used_at=now))
    return used == 1


def register_passkey(session: Session, cfg: SigningConfig, employee_id: int,
                     credential: dict[str, Any], name: str | None,
                     now: datetime | None = None) -> PasskeyView:
    """Verify navigator.credentials.create()'s answer and keep the credential."""
    now = now or utcnow()
    bad = "The passkey could not be registered"
    try:
        parsed = parse_registration_credential_json(credential)
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise SigningError(422, "passkey-registration-invalid", bad,
                           f"The credential is not a valid WebAuthn registration: {exc}") from exc
    challenge, why = _find_challenge(session, employee_id, "register",
                                     credential.get("response", {}).get("clientDataJSON"), now)
    if challenge is None:
        raise SigningError(422, "passkey-registration-invalid", bad,
                           f"The registration was refused: {why}. Ask for new options and try "
                           "again.")
    try:
        verified = verify_registration_response(
            credential=parsed, expected_challenge=base64url_to_bytes(challenge.challenge),
            expected_rp_id=cfg.rp_id, expected_origin=cfg.origin,
            require_user_verification=True)
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise SigningError(422, "passkey-registration-invalid", bad,
                           f"The registration did not verify: {exc}") from exc
    if not _use_challenge(session, challenge, now):
        raise SigningError(422, "passkey-registration-invalid", bad,
                           "Its challenge was already used; ask for new options.")
    credential_id = bytes_to_base64url(verified.credential_id)
    if session.exec(select(PasskeyCredential.id).where(
            PasskeyCredential.credential_id == credential_id)).first() is not None:
        raise SigningError(409, "passkey-already-registered", "Passkey already registered",
                           "This passkey is already registered.")
    transports = [t.value for t in (parsed.response.transports or [])]
    row = PasskeyCredential(employee_id=employee_id, credential_id=credential_id,
                            public_key=verified.credential_public_key,
                            sign_count=verified.sign_count,
                            transports=",".join(transports)[:200] or None,
                            name=(name or "passkey").strip()[:100] or "passkey", created_at=now)
    session.add(row)
    session.flush()
    _audit(session, "PASSKEY_REGISTERED", actor_id=employee_id, request_id=None, now=now,
           detail={"passkey_id": row.id, "credential_id": credential_id},
           entity=("passkey_credential", row.id), before=None, after=_passkey_state(row))
    return view(row)


def _passkey_state(row: PasskeyCredential) -> dict[str, Any]:
    """A passkey as the audit trail records it (the public key itself is not needed there)."""
    return {"employee_id": row.employee_id, "name": row.name,
            "credential_id": row.credential_id, "transports": row.transports,
            "sign_count": row.sign_count, "created_at": row.created_at.isoformat()}


def view(row: PasskeyCredential) -> PasskeyView:
    assert row.id is not None
    return PasskeyView(id=row.id, name=row.name, credential_id=row.credential_id,
                       transports=[t for t in (row.transports or "").split(",") if t],
                       sign_count=row.sign_count, created_at=row.created_at,
                       last_used_at=row.last_used_at)


def list_passkeys(session: Session, employee_id: int) -> list[PasskeyView]:
    return [view(c) for c in _credentials_of(session, employee_id)]


def delete_passkey(session: Session, employee_id: int, passkey_id: int,
                   now: datetime | None = None) -> None:
    row = session.get(PasskeyCredential, passkey_id)
    if row is None or row.employee_id != employee_id:
        raise SigningError(404, "passkey-not-found", "Passkey not found",
                           f"You have no passkey {passkey_id}. List yours at "
                           "GET /api/v1/me/passkeys.")
    _audit(session, "PASSKEY_REMOVED", actor_id=employee_id, request_id=None,
           now=now or utcnow(),
           detail={"passkey_id": passkey_id, "credential_id": row.credential_id},
           entity=("passkey_credential", passkey_id), before=_passkey_state(row), after=None)
    session.delete(row)


# --- passkeys: signing ------------------------------------------------------------------------


def signing_challenge(document_sha256: str, nonce: bytes | None = None) -> bytes:
    """nonce || document hash: the authenticator's signature covers the document version."""
    return (nonce or secrets.token_bytes(NONCE_BYTES)) + bytes.fromhex(document_sha256)


def signing_options(session: Session, cfg: SigningConfig, signer: Signer, document_sha256: str,
                    now: datetime | None = None) -> dict[str, Any]:
    """PublicKeyCredentialRequestOptions (JSON) whose challenge is bound to the document."""
    now = now or utcnow()
    require_signable(signer)
    creds = _credentials_of(session, signer.employee_id)
    if not creds:
        raise SigningError(409, "passkey-none-registered", "No passkey registered",
                           "You have no passkey yet. Register one on your account page "
                           "(POST /api/v1/me/passkeys/register/options), or sign with a "
                           "one-time code.")
    options = generate_authentication_options(
        rp_id=cfg.rp_id, challenge=signing_challenge(document_sha256),
        timeout=int(CHALLENGE_TTL.total_seconds() * 1000),
        allow_credentials=_descriptors(creds),
        user_verification=UserVerificationRequirement.REQUIRED)
    _store_challenge(session, employee_id=signer.employee_id, purpose="sign",
                     challenge=options.challenge, now=now, request_id=signer.request_id,
                     document_sha256=document_sha256)
    return _options_json(options)


def verify_passkey(session: Session, cfg: SigningConfig, signer: Signer, document_sha256: str,
                   assertion: dict[str, Any], now: datetime | None = None) -> Reauth:
    """Verify navigator.credentials.get()'s answer against the challenge for this document."""
    now = now or utcnow()

    def refuse(slug: str, title: str, detail: str, **extra: Any) -> SigningError:
        _reauth_failed(session, signer, METHOD_PASSKEY, slug, document_sha256, now, **extra)
        return SigningError(403, slug, title, detail)

    again = "Ask for new options at POST .../sign/passkey/options and try again."
    try:
        parsed = parse_authentication_credential_json(assertion)
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise refuse("passkey-invalid", "Passkey check failed",
                     f"The passkey answer is not a valid WebAuthn assertion: {exc}") from exc
    credential = session.exec(select(PasskeyCredential).where(
        PasskeyCredential.credential_id == parsed.id,
        PasskeyCredential.employee_id == signer.employee_id)).first()
    if credential is None:
        raise refuse("passkey-unknown", "Unknown passkey",
                     "This passkey is not registered to you. Use one from your account page, "
                     "or sign with a one-time code.")
    challenge, why = _find_challenge(session, signer.employee_id, "sign",
                                     assertion.get("response", {}).get("clientDataJSON"), now)
    if challenge is None:
        raise refuse("passkey-challenge-invalid", "Passkey check failed",
                     f"The passkey answer was refused: {why}. {again}")
    if challenge.request_id != signer.request_id or challenge.document_sha256 != document_sha256:
        raise refuse("passkey-wrong-document", "Signed for another document",
                     "Your passkey confirmed a different document version (or request) than "
                     f"the one you are signing (SHA-256 {document_sha256}). {again}",
                     challenge_document_sha256=challenge.document_sha256)
    expected = base64url_to_bytes(challenge.challenge)
    if expected[NONCE_BYTES:] != bytes.fromhex(document_sha256):  # the binding itself
        raise refuse("passkey-wrong-document", "Signed for another document",
                     f"The passkey challenge does not carry this document's hash. {again}")
    try:
        verified = verify_authentication_response(
            credential=parsed, expected_challenge=expected, expected_rp_id=cfg.rp_id,
            expected_origin=cfg.origin, credential_public_key=credential.public_key,
            credential_current_sign_count=credential.sign_count,
            require_user_verification=True)
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise refuse("passkey-invalid", "Passkey check failed",
                     f"The passkey answer did not verify: {exc}. {again}") from exc
    if not _use_challenge(session, challenge, now):
        raise refuse("passkey-challenge-invalid", "Passkey check failed",
                     f"Its challenge was already used; each works once. {again}")
    before = {"sign_count": credential.sign_count,
              "last_used_at": credential.last_used_at.isoformat()
              if credential.last_used_at else None}
    credential.sign_count = verified.new_sign_count
    credential.last_used_at = now
    session.add(credential)
    _audit(session, "SIGNING_REAUTHENTICATED", actor_id=signer.employee_id,
           request_id=signer.request_id, now=now,
           detail={"method": METHOD_PASSKEY, "credential_id": credential.credential_id,
                   "document_sha256": document_sha256,
                   "challenge": challenge.challenge,
                   "authenticator_data": bytes_to_base64url(
                       parsed.response.authenticator_data),
                   "client_data_json": bytes_to_base64url(parsed.response.client_data_json),
                   "signature": bytes_to_base64url(parsed.response.signature)},
           entity=("passkey_credential", credential.id), before=before,
           after={"sign_count": credential.sign_count, "last_used_at": now.isoformat()})
    return Reauth(method=METHOD_PASSKEY, credential_id=credential.credential_id)
