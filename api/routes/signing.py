"""The signing ceremony's re-authentication (issue 5): one-time codes and passkeys.

- `POST /reassignments/{id}/sign/otp` sends the affected salesperson a one-time code for one
  agreement version. The code travels only in a SIGNING_CODE notification addressed to them
  (the delivery channel until email exists); no response contains it.
- `POST /reassignments/{id}/sign/passkey/options` gives WebAuthn request options whose
  challenge is bound to the agreement's SHA-256.
- `/me/passkeys...` registers, lists and removes the caller's passkeys (the account page).
- `POST /reassignments/{id}/sign` (in routes/reassignments.py) calls `reauthenticate` below
  before it asks the workflow to record the signature.

The logic lives in models.signing_service; this module maps its refusals to problem+json.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from temporalio.service import RPCError

from api.deps import OptionalTemporalClientDep, SessionFactoryDep, SettingsDep, permit
from api.problems import FieldError, Problem, problem_responses, temporal_unavailable_problem
from api.schemas import SignIn
from api.security import Actor
from api.services.actions import act
from api.services.scope import Scope
from api.services.workflow_calls import UNAVAILABLE_STATUSES, closed_problem, live_state
from domain.permissions import Action
from domain.workflow_dto import ActionRejection, ReassignmentState, SignInput
from models import signing_service as service
from models.db import SessionFactory
from models.signing_service import Reauth, Signer, SigningConfig, SigningError
from settings import Settings

router = APIRouter(tags=["signing"])

SigningActor = Annotated[Actor, permit(Action.REQUEST_SIGN)]
PasskeyOwner = Annotated[Actor, permit(Action.OWN_PASSKEYS)]

SHA256_HEX = r"^[0-9a-f]{64}$"


class DocumentIn(BaseModel):
    model_config = {"extra": "forbid"}

    document_sha256: str = Field(pattern=SHA256_HEX,
                                 description="SHA-256 (hex) of the agreement version to sign")


class CodeSentOut(BaseModel):
    request_id: int
    document_sha256: str
    expires_at: datetime
    max_attempts: int
    delivered_via: Literal["notification"] = "notification"
    detail: str


class PasskeyOut(BaseModel):
    id: int
    name: str
    credential_id: str = Field(description="base64url")
    transports: list[str]
    sign_count: int
    created_at: datetime | None
    last_used_at: datetime | None


class PasskeyList(BaseModel):
    items: list[PasskeyOut]


class RegisterVerifyIn(BaseModel):
    model_config = {"extra": "forbid"}

    credential: dict[str, Any] = Field(
        description="navigator.credentials.create()'s RegistrationCredential as JSON")
    name: str | None = Field(default=None, max_length=100,
                             description="a label, e.g. 'work phone'")


def signing_config(settings: Settings) -> SigningConfig:
    return SigningConfig(rp_id=settings.webauthn_rp_id, rp_name=settings.webauthn_rp_name,
                         origin=settings.webauthn_origin,
                         otp_ttl=timedelta(minutes=settings.otp_ttl_minutes),
                         otp_max_attempts=settings.otp_max_attempts)


def as_problem(err: SigningError) -> Problem:
    return Problem(err.status, err.slug, err.title, err.detail, headers=err.headers,
                   extra=err.extra)


def _signer_in_scope(session: Session, actor: Actor, request_id: int) -> Signer:
    """404 for a request outside the caller's scope, as everywhere; then the signer checks."""
    Scope(session, actor).request(request_id)
    return service.load_signer(session, request_id, actor.employee_id)


async def _signer(sessions: SessionFactory, actor: Actor, request_id: int) -> Signer:
    try:
        signer: Signer = await run_in_threadpool(service.in_transaction, sessions,
                                                 _signer_in_scope, actor, request_id)
    except SigningError as err:
        raise as_problem(err) from err
    return signer


async def _call(sessions: SessionFactory, fn: Any, *args: Any) -> Any:
    """Run a service function in its own transaction on the thread pool; map refusals."""
    try:
        return await run_in_threadpool(service.in_transaction, sessions, fn, *args)
    except SigningError as err:
        raise as_problem(err) from err


async def _refuse_stale(client: Any, signer: Signer, document_sha256: str) -> None:
    """Refuse early, when the workflow answers, to re-authenticate for an outdated agreement.

    The workflow refuses such a signature anyway (STALE_DOCUMENT); this only spares the signer
    a code or a passkey touch that could never work.
    """
    if client is None or signer.workflow_id is None:
        return
    state, _why = await live_state(client, signer.workflow_id)
    if state is None or state.agreement_sha256 is None:
        return
    if state.agreement_sha256 != document_sha256:
        raise Problem(409, f"action-{ActionRejection.STALE_DOCUMENT.value.lower()}",
                      "A newer agreement exists",
                      f"The agreement you are about to sign (SHA-256 {document_sha256}) is not "
                      f"the current version: version {state.agreement_version} "
                      f"(SHA-256 {state.agreement_sha256}) replaced it. Read the new version "
                      "and sign that one.",
                      extra={"code": ActionRejection.STALE_DOCUMENT.value,
                             "current_agreement_version": state.agreement_version,
                             "current_agreement_sha256": state.agreement_sha256})


# --- one-time code --------------------------------------------------------------------------


@router.post("/reassignments/{request_id}/sign/otp", response_model=CodeSentOut,
             status_code=202, responses=problem_responses(401, 403, 404, 409, 422, 429))
async def send_code(request_id: int, body: DocumentIn, actor: SigningActor,
                    sessions: SessionFactoryDep, settings: SettingsDep,
                    client: OptionalTemporalClientDep) -> CodeSentOut:
    """Send the affected salesperson a one-time code for this agreement version.

    The code arrives as a SIGNING_CODE notification (email delivery comes later); it is never
    in a response. A new code replaces earlier unused ones. Each code allows a limited number
    of attempts and expires after `otp_ttl_minutes`.
    """
    signer = await _signer(sessions, actor, request_id)
    await _refuse_stale(client, signer, body.document_sha256)
    sent = await _call(sessions, service.issue_code, signing_config(settings), signer,
                       body.document_sha256)
    return CodeSentOut(
        request_id=request_id, document_sha256=body.document_sha256, expires_at=sent.expires_at,
        max_attempts=sent.max_attempts,
        detail="A one-time code was sent to your Baton notifications. Enter it to sign this "
               "agreement version; it works once and only for this version.")


# --- passkey for signing ----------------------------------------------------------------------


@router.post("/reassignments/{request_id}/sign/passkey/options",
             responses=problem_responses(401, 403, 404, 409, 422))
async def passkey_sign_options(request_id: int, body: DocumentIn, actor: SigningActor,
                               sessions: SessionFactoryDep, settings: SettingsDep,
                               client: OptionalTemporalClientDep) -> dict[str, Any]:
    """PublicKeyCredentialRequestOptions for navigator.credentials.get().

    The challenge is a server nonce followed by the agreement's SHA-256, so the passkey's
    signature covers exactly this document version. It works once, for a few minutes.
    """
    signer = await _signer(sessions, actor, request_id)
    await _refuse_stale(client, signer, body.document_sha256)
    options: dict[str, Any] = await _call(sessions, service.signing_options,
                                          signing_config(settings), signer, body.document_sha256)
    return options


# --- the account page: passkeys -------------------------------------------------------------


@router.post("/me/passkeys/register/options", responses=problem_responses(401))
async def passkey_register_options(actor: PasskeyOwner, sessions: SessionFactoryDep,
                                   settings: SettingsDep) -> dict[str, Any]:
    """PublicKeyCredentialCreationOptions for navigator.credentials.create()."""
    options: dict[str, Any] = await _call(sessions, service.registration_options,
                                          signing_config(settings), actor.employee_id,
                                          actor.username)
    return options


@router.post("/me/passkeys/register/verify", response_model=PasskeyOut, status_code=201,
             responses=problem_responses(401, 409, 422))
async def passkey_register_verify(body: RegisterVerifyIn, actor: PasskeyOwner,
                                  sessions: SessionFactoryDep, settings: SettingsDep
                                  ) -> PasskeyOut:
    """Verify the new credential against the stored challenge and keep it."""
    view = await _call(sessions, service.register_passkey, signing_config(settings),
                       actor.employee_id, body.credential, body.name)
    return PasskeyOut.model_validate(view, from_attributes=True)


@router.get("/me/passkeys", response_model=PasskeyList, responses=problem_responses(401))
async def my_passkeys(actor: PasskeyOwner, sessions: SessionFactoryDep) -> PasskeyList:
    views = await _call(sessions, service.list_passkeys, actor.employee_id)
    return PasskeyList(items=[PasskeyOut.model_validate(v, from_attributes=True)
                              for v in views])


@router.delete("/me/passkeys/{passkey_id}", status_code=204,
               responses=problem_responses(401, 404))
async def delete_my_passkey(passkey_id: int, actor: PasskeyOwner,
                            sessions: SessionFactoryDep) -> Response:
    await _call(sessions, service.delete_passkey, actor.employee_id, passkey_id)
    return Response(status_code=204)


# --- used by POST /reassignments/{id}/sign and the signing page --------------------------


async def reauthenticate(request_id: int, body: SignIn, actor: Actor,
                         sessions: SessionFactory, settings: Settings,
                         client: Any) -> Reauth:
    """Everything a signature needs before the workflow sees it, cheapest checks first.

    The caller must be the affected salesperson, the typed name must be theirs, and the
    workflow must be reachable, all before the code or passkey challenge is spent. Then the
    re-authentication for `body.document_sha256` is checked and consumed.
    """
    signer: Signer = await _signer(sessions, actor, request_id)
    if not service.typed_name_matches(body.typed_name, signer.name):
        raise Problem(422, "typed-name-mismatch", "Type your own name",
                      "As your statement of consent, type your full name exactly as it is on "
                      f"record ({signer.name}); case and spaces do not matter.",
                      errors=[FieldError(field="typed_name", location="body",
                                         code="name_mismatch",
                                         message="does not match the signer's name")])
    if signer.workflow_id is None:
        raise closed_problem(request_id, signer.stage)
    unreachable = ("The workflow service (Temporal) cannot be reached, so nothing can be signed "
                   "now. Your code or passkey challenge was not used; try again in a moment.")
    if client is None or not await workflow_reachable(client, signer.workflow_id):
        raise temporal_unavailable_problem(unreachable)
    cfg = signing_config(settings)
    if body.method == service.METHOD_OTP:
        assert body.otp_code is not None  # SignIn's validator
        reauth: Reauth = await _call(sessions, service.verify_code, cfg, signer,
                                     body.document_sha256, body.otp_code)
    else:
        assert body.passkey_assertion is not None
        reauth = await _call(sessions, service.verify_passkey, cfg, signer,
                             body.document_sha256, body.passkey_assertion)
    return reauth


REACHABLE_TIMEOUT_S = 10.0  # the SDK retries an unavailable server for a few seconds first


async def workflow_reachable(client: Any, workflow_id: str) -> bool:
    """False when Temporal does not answer now. A client connected earlier stays cached while
    the server is down: without this check the code would be spent on an Update that cannot
    run. Any answer (also "not found") counts: the Update itself decides what it means."""
    try:
        await asyncio.wait_for(client.get_workflow_handle(workflow_id).describe(),
                               REACHABLE_TIMEOUT_S)
    except RPCError as exc:
        return exc.status not in UNAVAILABLE_STATUSES
    except TimeoutError:
        return False
    except (TypeError, ValueError):
        # the server answered; decoding its search attributes failed (the time-skipping
        # server's Datetime format), which says nothing about reachability
        return True
    return True


async def sign_agreement(request_id: int, body: SignIn, http: Request, actor: Actor,
                         sessions: SessionFactory, settings: Settings,
                         client: Any) -> ReassignmentState:
    """POST /reassignments/{id}/sign and the signing page: re-authenticate for the document
    version, then the workflow's sign Update, with the evidence (IP, user agent) of this call."""
    ip = http.client.host if http.client else None
    user_agent = (http.headers.get("user-agent") or "")[:500] or None
    reauth = await reauthenticate(request_id, body, actor, sessions, settings, client)
    return await act(request_id, actor, sessions, settings, client, "sign",
                     lambda who: SignInput(**who, typed_name=body.typed_name,
                                           document_hash=body.document_sha256,
                                           method=reauth.method,
                                           credential_id=reauth.credential_id,
                                           ip=ip, user_agent=user_agent))
