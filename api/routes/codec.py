"""The codec server: the Temporal UI (and `temporal --codec-endpoint`) decode Baton's encrypted
payloads here, so authorised people see them in clear (payload_codec.py encrypts them).

Mounted at the app root, not under /api/v1, because the UI appends `/encode` and `/decode` to
whatever endpoint it is given. Two ways in, one implementation:

- `POST /codec/decode` and `/codec/encode` with `Authorization: Bearer <access token>` (curl,
  the CLI's `--codec-auth`, or a UI deployment that forwards its user's token);
- `POST /codec/t/<codec token>/decode` and `/encode`: the dev Temporal UI has no login of its
  own, so HR gets a personal endpoint from `POST /api/v1/me/codec-token` and pastes it into the
  UI's Codec Server setting. The token has its own audience (it is no API access token), lasts
  a working day and is checked against the account on every call.

Both need `Action.PAYLOAD_DECODE` (HR or admin). CORS answers only the Temporal UI's origin and
only on /codec. Every decode is a read of personal data and is audited (PAYLOAD_DECODED).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import jwt
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payload, Payloads

from api.deps import Permit, SessionFactoryDep, SettingsDep, auth_problem, permit
from api.problems import Problem, problem_response, problem_responses
from api.security import ALGORITHM, Actor, AuthError, check_still_active
from domain.permissions import Action
from models.audit import audit
from models.db import SessionFactory
from models.facts import employee_roles
from models.org import Employee
from payload_codec import (
    ENCODING,
    ENCODING_KEY,
    EncryptionCodec,
    PayloadDecryptError,
    PayloadKeyError,
    codec_for,
)
from settings import Settings

log = logging.getLogger(__name__)

CODEC_PREFIX = "/codec"
EVENT_DECODED = "PAYLOAD_DECODED"
CODEC_AUDIENCE = "baton-codec"
CODEC_TOKEN_TTL = timedelta(hours=10)  # a working day, lunch included
MAX_NAMESPACE_CHARS = 255
# what the Temporal UI sends (ui/src/lib/services/data-encoder.ts), Authorization included
CODEC_REQUEST_HEADERS = ["Authorization", "Authorization-Extras", "Content-Type", "X-Namespace"]
_PASTE_HINT = ("Get a new codec URL with POST /api/v1/me/codec-token and paste its codec_url "
               "into the Temporal UI's Codec Server setting.")

router = APIRouter(prefix=CODEC_PREFIX, tags=["codec server"])
me_router = APIRouter(prefix="/me", tags=["codec server"])


# --- the codec token ------------------------------------------------------------------------


class CodecTokenOut(BaseModel):
    codec_token: str
    codec_url: str = Field(description="paste into the Temporal UI's Codec Server endpoint; the "
                                       "UI appends /decode and /encode")
    expires_at: datetime
    token_type: Literal["codec"] = "codec"


def issue_codec_token(actor: Actor, settings: Settings, *,
                      now: datetime | None = None) -> tuple[str, datetime]:
    now = now or datetime.now(UTC)
    expires = now + CODEC_TOKEN_TTL
    # "ver" and "sid" of the access token it came from: a password change, new roles, an
    # administrator's reset or a logout end the codec URL too (check_still_active)
    claims: dict[str, Any] = {"sub": str(actor.user_id), "emp": actor.employee_id,
                              "name": actor.username, "aud": CODEC_AUDIENCE,
                              "ver": actor.token_version or 0, "iat": now, "exp": expires}
    if actor.session_id is not None:
        claims["sid"] = actor.session_id
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM), expires


def actor_from_codec_token(token: str, settings: Settings, sessions: SessionFactory) -> Actor:
    """The account behind a codec token, with its roles as they are now (not at issue)."""
    try:
        claims = jwt.decode(token, settings.jwt_secret, algorithms=[ALGORITHM],
                            audience=CODEC_AUDIENCE,
                            options={"require": ["exp", "sub", "emp", "aud", "ver"]})
        user_id, employee_id = int(claims["sub"]), int(claims["emp"])
        token_version = int(claims["ver"])
        session_id = str(claims["sid"]) if claims.get("sid") else None
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("codec-token-expired", "Codec token expired",
                        f"This codec URL has expired. {_PASTE_HINT}") from exc
    except (jwt.InvalidTokenError, TypeError, ValueError) as exc:
        raise AuthError("invalid-codec-token", "Invalid codec token",
                        f"The token in this codec URL is not valid (an access token is not a "
                        f"codec token). {_PASTE_HINT}") from exc
    actor = Actor(user_id=user_id, employee_id=employee_id,
                  username=str(claims.get("name", "")), roles=frozenset(),
                  token_version=token_version, session_id=session_id)
    with sessions() as session:  # short: never hold a DB transaction across a request
        check_still_active(session, actor)
        employee = session.get(Employee, employee_id)
        roles = employee_roles(session, employee) if employee is not None else frozenset()
    return dataclasses.replace(actor, roles=roles)


class CodecTokenPermit(Permit):
    """`permit()` for the pasted codec URL: the caller is the token in the path, since the UI
    sends no Authorization header; the role check is Permit's own."""

    def __call__(  # type: ignore[override]
        self, codec_token: str, settings: SettingsDep, sessions: SessionFactoryDep,
    ) -> Actor:
        try:
            actor = actor_from_codec_token(codec_token, settings, sessions)
        except AuthError as err:
            raise auth_problem(err) from err
        return super().__call__(actor)


def permit_codec_token(action: Action) -> Any:
    return Depends(CodecTokenPermit(action))


@me_router.post("/codec-token", response_model=CodecTokenOut,
                responses=problem_responses(401, 403))
def new_codec_token(request: Request, settings: SettingsDep,
                    actor: Annotated[Actor, permit(Action.PAYLOAD_DECODE)]) -> CodecTokenOut:
    """A personal codec URL for the Temporal UI (valid for a working day): paste `codec_url`
    into the UI's Codec Server setting to see decoded payloads. Keep it private: it decodes
    as you until it expires, or until your account is disabled."""
    token, expires_at = issue_codec_token(actor, settings)
    base = str(request.base_url).rstrip("/")
    return CodecTokenOut(codec_token=token, codec_url=f"{base}{CODEC_PREFIX}/t/{token}",
                         expires_at=expires_at)


# --- encode and decode ----------------------------------------------------------------------


def get_codec(request: Request, settings: SettingsDep) -> EncryptionCodec:
    """Built on first use from the settings' keys, like the Temporal client's."""
    codec: EncryptionCodec | None = getattr(request.app.state, "payload_codec", None)
    if codec is None:
        codec = codec_for(settings)
        request.app.state.payload_codec = codec
    return codec


CodecDep = Annotated[EncryptionCodec, Depends(get_codec)]
NamespaceHeader = Annotated[str | None, Header(alias="X-Namespace")]

_PAYLOADS_SCHEMA = {
    "type": "object", "required": ["payloads"],
    "properties": {"payloads": {"type": "array", "items": {
        "type": "object",
        "properties": {
            "metadata": {"type": "object", "additionalProperties": {"type": "string",
                                                                   "format": "byte"}},
            "data": {"type": "string", "format": "byte"}}}}},
    "example": {"payloads": [{"metadata": {"encoding": "YmluYXJ5L2VuY3J5cHRlZA==",
                                           "encryption-key-id": "azE="},
                              "data": "…"}]},
}
_CODEC_DOC: dict[str, Any] = {
    "openapi_extra": {"requestBody": {"required": True, "content": {
        "application/json": {"schema": _PAYLOADS_SCHEMA}}}},
    "responses": {200: {"content": {"application/json": {"schema": _PAYLOADS_SCHEMA}},
                        "description": "the payloads, decoded or encoded, in the same order"},
                  **problem_responses(400, 401, 403)},
    "response_class": JSONResponse,
}


def _payloads_json(payloads: Sequence[Payload]) -> dict[str, Any]:
    # built by hand: protobuf's MessageToDict drops empty fields, even an empty "payloads"
    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return {"payloads": [{"metadata": {k: b64(v) for k, v in p.metadata.items()},
                          "data": b64(p.data)} for p in payloads]}


async def _read_payloads(request: Request) -> list[Payload]:
    body = await request.body()
    try:
        parsed = json_format.Parse(body, Payloads(), ignore_unknown_fields=True)
    except (json_format.ParseError, UnicodeDecodeError) as exc:
        raise Problem(400, "codec-body-invalid", "Not a Payloads JSON body",
                      'Send {"payloads": [{"metadata": {"<name>": "<base64>"}, "data": '
                      f'"<base64>"}}]}} (Temporal Payloads as protobuf JSON): {exc}') from exc
    return list(parsed.payloads)


def _record_decode(sessions: SessionFactory, actor: Actor, namespace: str, count: int,
                   encrypted: int, via: str) -> None:
    # a decode shows personal data in clear: recorded like any read of it (PIPL Art. 51)
    with sessions() as session:
        audit(session, EVENT_DECODED, actor_id=actor.employee_id,
              entity=("temporal_namespace", namespace),
              detail={"namespace": namespace, "payloads": count, "encrypted": encrypted,
                      "via": via})


async def _apply(direction: Literal["encode", "decode"], request: Request, actor: Actor,
                 via: str, codec: EncryptionCodec, sessions: SessionFactory,
                 settings: Settings, namespace: str | None) -> JSONResponse:
    """The one implementation behind both ways in."""
    payloads = await _read_payloads(request)
    namespace = (namespace or settings.temporal_namespace)[:MAX_NAMESPACE_CHARS]
    if direction == "encode":
        return JSONResponse(_payloads_json(await codec.encode(payloads)))
    try:
        decoded = await codec.decode(payloads)
    except PayloadDecryptError as exc:
        raise Problem(400, "payload-not-decodable", "A payload cannot be decrypted",
                      f"{exc}. Nothing was decoded.") from exc
    if payloads:  # an empty batch shows nothing, so there is no read to record
        encrypted = sum(1 for p in payloads if p.metadata.get(ENCODING_KEY) == ENCODING)
        await run_in_threadpool(_record_decode, sessions, actor, namespace, len(payloads),
                                encrypted, via)
    return JSONResponse(_payloads_json(decoded), headers={"Cache-Control": "no-store"})


BearerActor = Annotated[Actor, permit(Action.PAYLOAD_DECODE)]
PastedActor = Annotated[Actor, permit_codec_token(Action.PAYLOAD_DECODE)]


@router.post("/decode", **_CODEC_DOC)
async def decode(request: Request, actor: BearerActor, codec: CodecDep,
                 sessions: SessionFactoryDep, settings: SettingsDep,
                 x_namespace: NamespaceHeader = None) -> JSONResponse:
    """Decrypt payloads (Temporal codec server protocol); audited as PAYLOAD_DECODED."""
    return await _apply("decode", request, actor, "bearer", codec, sessions, settings,
                        x_namespace)


@router.post("/encode", **_CODEC_DOC)
async def encode(request: Request, actor: BearerActor, codec: CodecDep,
                 sessions: SessionFactoryDep, settings: SettingsDep,
                 x_namespace: NamespaceHeader = None) -> JSONResponse:
    """Encrypt payloads with the active key, e.g. a signal's input typed into the UI."""
    return await _apply("encode", request, actor, "bearer", codec, sessions, settings,
                        x_namespace)


@router.post("/t/{codec_token}/decode", **_CODEC_DOC)
async def decode_with_codec_token(request: Request, actor: PastedActor, codec: CodecDep,
                                  sessions: SessionFactoryDep, settings: SettingsDep,
                                  x_namespace: NamespaceHeader = None) -> JSONResponse:
    """`/codec/decode` for the pasted codec URL (see POST /api/v1/me/codec-token)."""
    return await _apply("decode", request, actor, "codec-token", codec, sessions, settings,
                        x_namespace)


@router.post("/t/{codec_token}/encode", **_CODEC_DOC)
async def encode_with_codec_token(request: Request, actor: PastedActor, codec: CodecDep,
                                  sessions: SessionFactoryDep, settings: SettingsDep,
                                  x_namespace: NamespaceHeader = None) -> JSONResponse:
    """`/codec/encode` for the pasted codec URL."""
    return await _apply("encode", request, actor, "codec-token", codec, sessions, settings,
                        x_namespace)


# --- CORS for /codec only, and the wiring ---------------------------------------------------


def ui_origins(ui_url: str) -> list[str]:
    """The Temporal UI's origin; on loopback both spellings, since the browser shows whichever
    host was typed (localhost or 127.0.0.1)."""
    parts = urlsplit(ui_url)
    if not parts.scheme or not parts.hostname:
        raise ValueError(f"BATON_TEMPORAL_UI_URL={ui_url!r} is not an absolute URL")
    port = f":{parts.port}" if parts.port else ""
    hosts = [parts.hostname]
    if parts.hostname in ("localhost", "127.0.0.1"):
        hosts = ["localhost", "127.0.0.1"]
    return [f"{parts.scheme}://{host}{port}" for host in hosts]


def is_codec_path(path: str) -> bool:
    return path == CODEC_PREFIX or path.startswith(CODEC_PREFIX + "/")


class CodecCORS:
    """Starlette's CORSMiddleware, but only for /codec: the UI calls it from the browser (another
    origin); the rest of the API answers no cross-origin request."""

    def __init__(self, app: ASGIApp, *, allow_origins: Sequence[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(app, allow_origins=list(allow_origins),
                                   allow_methods=["POST"], allow_headers=CODEC_REQUEST_HEADERS,
                                   allow_credentials=True, max_age=600)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_codec_path(scope["path"]):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class _RedactCodecToken(logging.Filter):
    """The pasted URL carries a credential: keep it out of uvicorn's access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def _redact(text: str) -> str:
    marker = f"{CODEC_PREFIX}/t/"
    start = text.find(marker)
    if start < 0:
        return text
    start += len(marker)
    end = text.find("/", start)
    return text[:start] + "***" + (text[end:] if end >= 0 else "")


_ACCESS_LOG_FILTER = _RedactCodecToken()


async def _on_key_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("payload keys unusable: %s", exc)
    return problem_response(request, Problem(
        500, "payload-keys-misconfigured", "Payload encryption keys misconfigured",
        f"The server cannot encrypt or decrypt Temporal payloads: {exc}. An administrator "
        "must fix the setting and restart."))


def install_codec_server(app: FastAPI, settings: Settings, api_prefix: str) -> None:
    """Mount the codec routes (root) and the codec-token route (under the API prefix)."""
    app.include_router(router)
    app.include_router(me_router, prefix=api_prefix)
    app.add_middleware(CodecCORS, allow_origins=ui_origins(settings.temporal_ui_url))
    app.add_exception_handler(PayloadKeyError, _on_key_error)
    access_log = logging.getLogger("uvicorn.access")
    if _ACCESS_LOG_FILTER not in access_log.filters:
        access_log.addFilter(_ACCESS_LOG_FILTER)
