"""The signing ceremony as pages: read the agreement's terms, then sign it with a passkey or a
one-time code, or decline it with a reason; and the page that registers passkeys.

Nothing here decides anything: the code, the passkey options and checks, the typed-name rule
and the workflow Update are the API's (api/routes/signing.py, models/signing_service.py,
api.services.actions.act). The passkey ceremony runs in static/js/webauthn.js: it fetches the
options from here as JSON, asks the browser's authenticator, and posts the answer with the
form (the CSP allows no inline script).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from api.deps import OptionalTemporalClientDep, SessionFactoryDep, SettingsDep
from api.problems import Problem
from api.routes.documents import AgreementRef, read_latest_agreement
from api.routes.signing import (
    DocumentIn,
    RegisterVerifyIn,
    delete_my_passkey,
    my_passkeys,
    passkey_register_options,
    passkey_register_verify,
    passkey_sign_options,
    send_code,
    sign_agreement,
)
from api.schemas import SignIn
from api.security import Actor
from api.services.actions import act
from domain.permissions import Action
from domain.workflow_dto import ReasonedActionInput
from models.db import SessionFactory
from models.signing import OneTimeCode, PasskeyCredential
from models.types import utcnow
from web.deps import page_permit, safe_next
from web.errors import is_htmx
from web.me_labels import MeLabels
from web.render import current_locale, render, t
from web.routes.me import (
    CASES_PATH,
    Case,
    case_context,
    load_case,
    my_request,
    reason_error,
)

router = APIRouter()

PASSKEYS_PATH = "/app/me/passkeys"
SIGN_NOTICES = {"code-sent", "registered"}
PASSKEY_NOTICES = {"registered", "removed"}


# --- the signing page ------------------------------------------------------------------------


def _sign_context(session: Session, actor: Actor, request_id: int) -> dict[str, Any]:
    case: Case = load_case(session, actor, request_id)
    agreement: AgreementRef | None = None
    if case.agreement_version is not None:
        # the page states the agreement's terms and hash: a read of it, as for the API
        agreement = read_latest_agreement(session, actor, request_id, "summary")
    code = None
    if agreement is not None:
        code = session.exec(select(OneTimeCode).where(
            OneTimeCode.request_id == request_id, OneTimeCode.employee_id == actor.employee_id,
            OneTimeCode.document_sha256 == agreement.sha256,
            col(OneTimeCode.used_at).is_(None), OneTimeCode.expires_at > utcnow())
            .order_by(col(OneTimeCode.id).desc())).first()
    passkeys = session.exec(select(PasskeyCredential.id).where(
        PasskeyCredential.employee_id == actor.employee_id)).all()
    context = case_context(case)
    context.update(agreement=agreement, code=code, has_passkey=bool(passkeys),
                   signer_name=case.names[actor.employee_id].name
                   if actor.employee_id in case.names else "",
                   errors={}, typed_name="", decline_reason="", decline_error=None,
                   action_problem=None, notice=None)
    return context


def _context(sessions: SessionFactory, actor: Actor, request_id: int) -> dict[str, Any]:
    with sessions() as session:
        return _sign_context(session, actor, request_id)


@router.get(CASES_PATH + "/{request_id}/sign")
async def sign_page(request: Request, request_id: int,
                    actor: Annotated[Actor, page_permit(Action.REQUEST_SIGN)],
                    sessions: SessionFactoryDep,
                    notice: Annotated[str | None, Query(max_length=30)] = None) -> Response:
    context = await run_in_threadpool(_context, sessions, actor, request_id)
    context["notice"] = notice if notice in SIGN_NOTICES else None
    return render(request, "sign/sign.html", context)


def _problem_text(request: Request, problem: Problem) -> str:
    labels = MeLabels(current_locale(request))
    text = labels.problem(problem.slug, "")
    if not text:
        from web.labels import Labels

        text = Labels(current_locale(request)).problem(problem.slug, problem.title)
    left = problem.extra.get("attempts_left") if problem.extra else None
    if problem.slug == "otp-invalid" and isinstance(left, int):
        text += " " + (t(request, "Attempts left: %(num)s.", num=left) if left else
                       t(request, "That was the last attempt: request a new code."))
    return text


def _field_of(slug: str) -> str:
    if slug == "typed-name-mismatch":
        return "typed_name"
    if slug.startswith("otp-"):
        return "otp_code"
    if slug.startswith("passkey-"):
        return "passkey"
    return "form"


@router.post(CASES_PATH + "/{request_id}/sign/otp")
async def request_code(request: Request, request_id: int,
                       actor: Annotated[Actor, page_permit(Action.REQUEST_SIGN)],
                       sessions: SessionFactoryDep, settings: SettingsDep,
                       client: OptionalTemporalClientDep) -> Response:
    """Send a one-time code for this agreement version (it arrives as a notification)."""
    form = await request.form()
    await run_in_threadpool(_context_check, sessions, actor, request_id)
    error = None
    sent = None
    try:
        body = DocumentIn(document_sha256=str(form.get("document_sha256") or ""))
        sent = await send_code(request_id, body, actor, sessions, settings, client)
    except ValidationError:
        error = t(request, "Reload the page: the agreement's version is missing.")
    except Problem as problem:
        if problem.status == 404:
            raise
        error = _problem_text(request, problem)
    if is_htmx(request):
        # 200 either way: htmx swaps only successful answers, and the error belongs there
        return render(request, "sign/_code.html", {"sent": sent, "code_error": error})
    if error is None:
        return RedirectResponse(f"{CASES_PATH}/{request_id}/sign?notice=code-sent", 303)
    context = await run_in_threadpool(_context, sessions, actor, request_id)
    context["errors"] = {"otp_code": error}
    return render(request, "sign/sign.html", context, status=422)


def _context_check(sessions: SessionFactory, actor: Actor, request_id: int) -> None:
    """404 unless the caller is the request's affected salesperson."""
    with sessions() as session:
        my_request(session, actor, request_id)


def _json_problem(request: Request, problem: Problem) -> JSONResponse:
    return JSONResponse({"slug": problem.slug, "message": _problem_text(request, problem)},
                        status_code=problem.status)


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


@router.post(CASES_PATH + "/{request_id}/sign/passkey/options")
async def passkey_options(request: Request, request_id: int,
                          actor: Annotated[Actor, page_permit(Action.REQUEST_SIGN)],
                          sessions: SessionFactoryDep, settings: SettingsDep,
                          client: OptionalTemporalClientDep) -> Response:
    """WebAuthn request options bound to the agreement's hash (JSON, for webauthn.js)."""
    data = await _json_body(request)
    try:
        await run_in_threadpool(_context_check, sessions, actor, request_id)
        body = DocumentIn(document_sha256=str(data.get("document_sha256") or ""))
        options = await passkey_sign_options(request_id, body, actor, sessions, settings,
                                             client)
    except ValidationError:
        return JSONResponse({"slug": "validation-failed", "message": t(
            request, "Reload the page: the agreement's version is missing.")}, 422)
    except Problem as problem:
        return _json_problem(request, problem)
    return JSONResponse(options)


def _sign_body(request: Request, form: Any) -> tuple[SignIn | None, dict[str, str], str]:
    typed_name = str(form.get("typed_name") or "").strip()
    method = str(form.get("method") or "")
    errors: dict[str, str] = {}
    if not typed_name:
        errors["typed_name"] = t(request, "Type your full name: it is your statement of "
                                          "consent.")
    elif len(typed_name) > 200:
        errors["typed_name"] = t(request, "The name may be at most 200 characters.")
    code = str(form.get("otp_code") or "").strip().replace(" ", "")
    assertion: Any = None
    if method == "otp":
        if not (len(code) == 6 and code.isdigit()):
            errors["otp_code"] = t(request, "Enter the 6-digit code from your notifications.")
    elif method == "passkey":
        try:
            assertion = json.loads(str(form.get("passkey_assertion") or ""))
        except ValueError:
            assertion = None
        if not isinstance(assertion, dict):
            errors["passkey"] = t(request, "Use the passkey button to confirm with your "
                                           "passkey (it needs JavaScript).")
    else:
        errors["form"] = t(request, "Choose how to sign: with a passkey or a one-time code.")
    if errors:
        return None, errors, typed_name
    try:
        body = SignIn(typed_name=typed_name,
                      document_sha256=str(form.get("document_sha256") or ""),
                      method=method,  # type: ignore[arg-type]
                      otp_code=code if method == "otp" else None,
                      passkey_assertion=assertion if method == "passkey" else None)
    except ValidationError:
        return None, {"form": t(request, "Reload the page: the agreement's version is "
                                         "missing.")}, typed_name
    return body, {}, typed_name


@router.post(CASES_PATH + "/{request_id}/sign")
async def sign(request: Request, request_id: int,
               actor: Annotated[Actor, page_permit(Action.REQUEST_SIGN)],
               sessions: SessionFactoryDep, settings: SettingsDep,
               client: OptionalTemporalClientDep) -> Response:
    """Sign through the API's path (re-authentication, then the workflow's sign Update, with
    this request's IP and user agent as evidence)."""
    form = await request.form()
    await run_in_threadpool(_context_check, sessions, actor, request_id)
    body, errors, typed_name = _sign_body(request, form)
    problem: Problem | None = None
    if body is not None:
        try:
            await sign_agreement(request_id, body, request, actor, sessions, settings, client)
        except Problem as refused:
            if refused.status == 404:
                raise
            field = _field_of(refused.slug)
            if field == "form":
                problem = refused
            else:
                errors[field] = _problem_text(request, refused)
                problem = refused
        else:
            return RedirectResponse(f"{CASES_PATH}/{request_id}?notice=signed", 303)
    context = await run_in_threadpool(_context, sessions, actor, request_id)
    context.update(errors=errors, typed_name=typed_name)
    if problem is not None and _field_of(problem.slug) == "form":
        context["action_problem"] = problem
        context["action_text"] = _problem_text(request, problem)
    return render(request, "sign/sign.html", context,
                  status=problem.status if problem is not None else 422)


@router.post(CASES_PATH + "/{request_id}/decline")
async def decline(request: Request, request_id: int,
                  actor: Annotated[Actor, page_permit(Action.REQUEST_SIGN)],
                  sessions: SessionFactoryDep, settings: SettingsDep,
                  client: OptionalTemporalClientDep) -> Response:
    """Decline with a reason: the same Update as POST .../decline; ownership stays."""
    form = await request.form()
    reason = str(form.get("reason") or "").strip()
    await run_in_threadpool(_context_check, sessions, actor, request_id)
    error = reason_error(request, reason)
    problem: Problem | None = None
    if error is None:
        try:
            await act(request_id, actor, sessions, settings, client, "decline",
                      lambda who: ReasonedActionInput(**who, reason=reason))
        except Problem as refused:
            if refused.status == 404:
                raise
            problem = refused
        else:
            return RedirectResponse(f"{CASES_PATH}/{request_id}?notice=declined", 303)
    context = await run_in_threadpool(_context, sessions, actor, request_id)
    context.update(decline_error=error, decline_reason=reason)
    if problem is not None:
        context["action_problem"] = problem
        context["action_text"] = _problem_text(request, problem)
    return render(request, "sign/sign.html", context,
                  status=problem.status if problem is not None else 422)


# --- passkeys --------------------------------------------------------------------------------


@router.get(PASSKEYS_PATH)
async def passkeys_page(request: Request,
                        actor: Annotated[Actor, page_permit(Action.OWN_PASSKEYS)],
                        sessions: SessionFactoryDep,
                        notice: Annotated[str | None, Query(max_length=30)] = None,
                        next: Annotated[str | None, Query(max_length=300)] = None) -> Response:
    listed = await my_passkeys(actor, sessions)
    return render(request, "me/passkeys.html", {
        "passkeys": listed.items, "next": safe_next(next, "") if next else "",
        "notice": notice if notice in PASSKEY_NOTICES else None, "errors": {}, "name": ""})


@router.post(PASSKEYS_PATH + "/options")
async def register_options(request: Request,
                           actor: Annotated[Actor, page_permit(Action.OWN_PASSKEYS)],
                           sessions: SessionFactoryDep, settings: SettingsDep) -> Response:
    """WebAuthn creation options (JSON, for webauthn.js)."""
    try:
        options = await passkey_register_options(actor, sessions, settings)
    except Problem as problem:
        return _json_problem(request, problem)
    return JSONResponse(options)


@router.post(PASSKEYS_PATH)
async def register(request: Request, actor: Annotated[Actor, page_permit(Action.OWN_PASSKEYS)],
                   sessions: SessionFactoryDep, settings: SettingsDep) -> Response:
    """Keep the passkey that the browser created (verified by the API's registration)."""
    form = await request.form()
    name = str(form.get("name") or "").strip()[:100]
    next_url = safe_next(str(form.get("next") or ""), "") if form.get("next") else ""
    error = None
    try:
        credential = json.loads(str(form.get("credential") or ""))
        body = RegisterVerifyIn(credential=credential, name=name or None)
    except (ValueError, ValidationError):
        error = t(request, "Use the button to create a passkey on this device (it needs "
                           "JavaScript).")
    else:
        try:
            await passkey_register_verify(body, actor, sessions, settings)
        except Problem as problem:
            if problem.status not in (409, 422):
                raise
            error = _problem_text(request, problem)
    if error is None:
        target = next_url or PASSKEYS_PATH
        separator = "&" if "?" in target else "?"
        return RedirectResponse(f"{target}{separator}notice=registered", 303)
    listed = await my_passkeys(actor, sessions)
    return render(request, "me/passkeys.html", {
        "passkeys": listed.items, "next": next_url, "notice": None,
        "errors": {"passkey": error}, "name": name}, status=422)


@router.post(PASSKEYS_PATH + "/{passkey_id}/delete")
async def remove(request: Request, passkey_id: int,
                 actor: Annotated[Actor, page_permit(Action.OWN_PASSKEYS)],
                 sessions: SessionFactoryDep) -> Response:
    await delete_my_passkey(passkey_id, actor, sessions)  # 404 unless theirs
    return RedirectResponse(f"{PASSKEYS_PATH}?notice=removed", 303)
