"""Bulk reorganisations: upload a CSV (or state a rule), dry-run it, start it, follow it, cancel.

HR and admin only. The file's columns are documented in docs/REORGANISATION.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.deps import OptionalTemporalClientDep, SessionFactoryDep, SettingsDep, permit
from api.problems import FieldError, Problem, problem_responses
from api.routes.reassignments import MAX_KEY_LENGTH
from api.security import Actor
from api.services import reorganisations as service
from domain.permissions import Action
from domain.stages import Reason

router = APIRouter(prefix="/reorganisations", tags=["bulk reorganisation"])

RunActor = Annotated[Actor, permit(Action.REORGANISATION_RUN)]
ReadActor = Annotated[Actor, permit(Action.REORGANISATION_READ)]

_UPLOAD_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["file", "reason"],
                "properties": {
                    "file": {"type": "string", "format": "binary",
                             "description": "CSV: customer_id or customer_code, new_owner_id "
                                            "or new_owner_employee_no, optional "
                                            "expected_owner_id or expected_owner_employee_no, "
                                            "optional note"},
                    "reason": {"type": "string", "enum": [r.value for r in Reason]},
                    "note": {"type": "string"},
                    "dry_run": {"type": "boolean", "default": False},
                }}},
            "application/json": {"schema": service.RuleIn.model_json_schema()},
        },
    }
}


def _truthy(value: object) -> bool:
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


def _reason(raw: object) -> Reason:
    try:
        return Reason(str(raw or "").strip())
    except ValueError as exc:
        raise Problem(422, "validation-failed", "Reason missing or unknown",
                      "Give the reorganisation one reason, one of: "
                      f"{', '.join(r.value for r in Reason)}.",
                      errors=[FieldError(field="reason", code="invalid",
                                         message="unknown reason", location="body")]) from exc


async def read_upload(request: Request) -> tuple[service.Upload, bool]:
    """(what was sent, dry_run) from a multipart CSV upload or a JSON rule."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            rule = service.RuleIn.model_validate_json(await request.body())
        except ValidationError as exc:
            raise Problem(422, "validation-failed", "The rule is not valid",
                          "Fix the fields listed in errors and send the rule again.",
                          errors=[FieldError(field=".".join(str(p) for p in e["loc"]),
                                             code=e["type"], message=e["msg"], location="body")
                                  for e in exc.errors()]) from exc
        return service.Upload(reason=rule.reason, note=rule.note, rule=rule), rule.dry_run
    if not content_type.startswith("multipart/form-data"):
        raise Problem(415, "unsupported-media-type", "Send a CSV file or a JSON rule",
                      "Upload the CSV as multipart/form-data (fields file, reason, note, "
                      "dry_run), or send a rule as application/json.")
    form = await request.form(max_files=1, max_fields=10)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise Problem(422, "validation-failed", "No file",
                      "Attach the reorganisation as the form field `file` (a CSV).",
                      errors=[FieldError(field="file", code="missing", message="no file",
                                         location="body")])
    text = service.decode_upload(await upload.read(service.MAX_FILE_BYTES + 1))
    note = str(form.get("note") or "").strip() or None
    if note is not None and len(note) > 2000:
        raise Problem(422, "validation-failed", "Note too long",
                      "The note may be at most 2000 characters.")
    return service.Upload(reason=_reason(form.get("reason")), note=note, csv_text=text,
                          file_name=(upload.filename or "")[:200] or None), \
        _truthy(form.get("dry_run"))


@router.post("", response_model=service.PlanOut | service.ReorganisationOut,
             status_code=202, openapi_extra=_UPLOAD_SCHEMA,
             responses={200: {"model": service.PlanOut, "description": "the dry run's answer"},
                        **problem_responses(400, 401, 403, 409, 413, 415, 422, 503)})
async def create_reorganisation(
    request: Request, response: Response, actor: RunActor, sessions: SessionFactoryDep,
    settings: SettingsDep, client: OptionalTemporalClientDep,
    idempotency_key: Annotated[str | None, Header(
        alias="Idempotency-Key",
        description="Required unless dry_run: reuse it to retry the same start safely.")] = None,
) -> service.PlanOut | service.ReorganisationOut:
    """Dry run (every row's problems and the impact totals; writes nothing), or start: the
    whole file must be valid, else 422 lists every bad row and nothing starts."""
    upload, dry_run = await read_upload(request)
    if dry_run:
        response.status_code = 200
        return await run_in_threadpool(service.dry_run, sessions, upload)
    key = (idempotency_key or "").strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise Problem(400, "idempotency-key-missing", "Idempotency-Key header required",
                      "Send an `Idempotency-Key` header (e.g. a UUID, at most "
                      f"{MAX_KEY_LENGTH} characters) to start a reorganisation; reuse it when "
                      "retrying, so it never starts twice. A dry run needs none.")
    created = await run_in_threadpool(service.create, sessions, actor, upload, key)
    await service.start(client, settings, created.reorganisation)
    assert created.reorganisation.id is not None
    response.status_code = 202 if created.created else 200
    response.headers["Location"] = str(request.url_for(
        "get_reorganisation", reorganisation_id=created.reorganisation.id).path)
    return await service.read(sessions, client, created.reorganisation.id)


@router.get("/{reorganisation_id}", name="get_reorganisation",
            response_model=service.ReorganisationOut, responses=problem_responses(401, 403, 404))
async def get_reorganisation(reorganisation_id: int, actor: ReadActor,
                             sessions: SessionFactoryDep,
                             client: OptionalTemporalClientDep) -> service.ReorganisationOut:
    """Progress: the running workflow's query, or the stored counts once it has closed."""
    return await service.read(sessions, client, reorganisation_id)


class CancelIn(BaseModel):
    model_config = {"extra": "forbid"}

    reason: str = Field(min_length=1, max_length=2000)


@router.post("/{reorganisation_id}/cancel", response_model=service.ReorganisationOut,
             responses=problem_responses(401, 403, 404, 409, 503))
async def cancel_reorganisation(reorganisation_id: int, body: CancelIn, actor: RunActor,
                                sessions: SessionFactoryDep, settings: SettingsDep,
                                client: OptionalTemporalClientDep) -> service.ReorganisationOut:
    """Start no further request and cancel every request of it that has not taken effect;
    those already in effect are left alone and listed."""
    return await service.cancel(sessions, client, settings, actor, reorganisation_id,
                                body.reason.strip() or "cancelled")
