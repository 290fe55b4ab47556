"""The audit log: verify the hash chain, search events, export them as CSV.

Verification is for HR, legal and admin (Action.AUDIT_VERIFY); search and export for HR and
legal (Action.AUDIT_READ). An export is itself recorded (AUDIT_EXPORTED, with its filters),
and covers the events up to the one that records it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from api.deps import SessionDep, SessionFactoryDep, permit
from api.problems import FieldError, Problem, problem_responses
from api.schemas import AuditEventOut
from api.security import Actor
from domain.permissions import Action
from domain.spreadsheet import spreadsheet_safe as _text
from models.audit import audit, verify_chain
from models.audit_query import AuditFilter, export_batches, search

router = APIRouter(prefix="/audit", tags=["audit"])

EVENT_EXPORTED = "AUDIT_EXPORTED"
AuditVerifier = Annotated[Actor, permit(Action.AUDIT_VERIFY)]
AuditReader = Annotated[Actor, permit(Action.AUDIT_READ)]
BOM = "\ufeff"  # so that Excel reads the file as UTF-8
EVENT_TYPE = re.compile(r"[A-Z][A-Z0-9_]{0,59}")
ENTITY_TYPE = re.compile(r"[a-z][a-z0-9_]{0,39}")
FILTER_PARAMS = ("event_type", "request_id", "actor_id", "entity_type", "entity_id",
                 "occurred_from", "occurred_to")
SEARCH_PARAMS = (*FILTER_PARAMS, "order", "limit", "offset")
EXPORT_PARAMS = (*FILTER_PARAMS, "order")
CSV_COLUMNS = ("chain_index", "id", "occurred_at", "event_type", "actor_id", "on_behalf_of",
               "request_id", "entity_type", "entity_id", "from_stage", "to_stage", "reason",
               "before", "after", "detail", "workflow_id", "transition_seq", "prev_hash", "hash")
Order = Literal["newest", "chain"]


# --- response bodies ---------------------------------------------------------------------------


class BrokenLinkOut(BaseModel):
    kind: str
    chain_index: int
    row_id: int | None
    message: str
    missing_through: int | None


class ChainVerificationOut(BaseModel):
    ok: bool
    events_checked: int
    head_index: int
    first_broken: BrokenLinkOut | None
    message: str


class AuditEventItem(AuditEventOut):
    id: int
    request_id: int | None


class AuditEventPage(BaseModel):
    items: list[AuditEventItem]
    total: int
    limit: int
    offset: int
    order: Order


# --- filters -----------------------------------------------------------------------------------


def _invalid(errors: list[FieldError]) -> Problem:
    where = ", ".join(f"query:{e.field}" for e in errors)
    return Problem(422, "validation-failed", "The audit filter is not valid",
                   f"Fix these query parameters and send the request again: {where}. Each "
                   "entry in `errors` says what is wrong.", errors=errors)


def _filter(
    request: Request,
    event_type: Annotated[list[str] | None, Query(
        description="event type, e.g. REQUEST_SUBMITTED; repeat for any of several")] = None,
    request_id: Annotated[int | None, Query(ge=1, description="reassignment request id")] = None,
    actor_id: Annotated[int | None, Query(ge=1, description="employee id of who acted")] = None,
    entity_type: Annotated[str | None, Query(
        description="what the event is about, e.g. policy_version, passkey_credential")] = None,
    entity_id: Annotated[str | None, Query(max_length=100)] = None,
    occurred_from: Annotated[datetime | None, Query(
        description="inclusive; ISO 8601 with an offset, e.g. 2026-03-01T00:00:00+08:00")
    ] = None,
    occurred_to: Annotated[datetime | None, Query(
        description="exclusive; ISO 8601 with an offset")] = None,
) -> AuditFilter:
    """The filters shared by search and export. A misspelt parameter is refused rather than
    ignored: an export that silently dropped a filter would hand out too much."""
    errors: list[FieldError] = []
    allowed = EXPORT_PARAMS if request.url.path.endswith(".csv") else SEARCH_PARAMS
    for name in sorted(set(request.query_params) - set(allowed)):
        errors.append(FieldError(field=name, location="query", code="unknown_parameter",
                                 message=f"unknown query parameter; use one of "
                                         f"{', '.join(allowed)}"))
    for kind in event_type or []:
        if not EVENT_TYPE.fullmatch(kind):
            errors.append(FieldError(field="event_type", location="query", code="pattern",
                                     message=f"{kind!r} is not an event type: capitals, digits "
                                             "and underscores, e.g. REQUEST_SUBMITTED"))
    if entity_type is not None and not ENTITY_TYPE.fullmatch(entity_type):
        errors.append(FieldError(field="entity_type", location="query", code="pattern",
                                 message=f"{entity_type!r} is not an entity type: lower case, "
                                         "digits and underscores, e.g. policy_version"))
    for name, value in (("occurred_from", occurred_from), ("occurred_to", occurred_to)):
        if value is not None and value.utcoffset() is None:
            errors.append(FieldError(field=name, location="query", code="naive_datetime",
                                     message="the time has no UTC offset; add one, e.g. "
                                             "2026-03-01T00:00:00+08:00 or ...Z"))
    if (occurred_from is not None and occurred_to is not None
            and occurred_from.utcoffset() is not None and occurred_to.utcoffset() is not None
            and occurred_from >= occurred_to):
        errors.append(FieldError(field="occurred_to", location="query", code="empty_range",
                                 message="occurred_to must be later than occurred_from (the "
                                         "range includes its start and excludes its end)"))
    if errors:
        raise _invalid(errors)
    return AuditFilter(event_types=tuple(dict.fromkeys(event_type or [])),
                       request_id=request_id, actor_id=actor_id, entity_type=entity_type,
                       entity_id=entity_id, occurred_from=occurred_from,
                       occurred_to=occurred_to)


Filters = Annotated[AuditFilter, Depends(_filter)]
OrderQuery = Annotated[Order, Query(description="newest first, or chain order (oldest first)")]


# --- routes ------------------------------------------------------------------------------------


@router.get("/verify", response_model=ChainVerificationOut,
            responses=problem_responses(401, 403))
def verify(actor: AuditVerifier, session: SessionDep) -> ChainVerificationOut:
    """Recompute the whole hash chain and report the first broken link: an event whose content
    changed, one that no longer links to its predecessor, missing events (a gap), or events
    cut off the end (the head row records more). `ok` is false when anything is broken."""
    result = verify_chain(session).to_dict()
    return ChainVerificationOut.model_validate(result)


@router.get("/events", response_model=AuditEventPage, responses=problem_responses(401, 403, 422))
def list_events(
    actor: AuditReader,
    session: SessionDep,
    flt: Filters,
    order: OrderQuery = "newest",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AuditEventPage:
    """Audit events matching every given filter, newest first (or in chain order)."""
    items, total = search(session, flt, newest_first=order == "newest", limit=limit,
                          offset=offset)
    return AuditEventPage(items=[AuditEventItem.model_validate(e, from_attributes=True)
                                 for e in items],
                          total=total, limit=limit, offset=offset, order=order)


@router.get("/events.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}},
                             "description": "CSV, UTF-8 with a byte order mark, streamed"},
                       **problem_responses(401, 403, 422)})
def export_events(
    actor: AuditReader,
    sessions: SessionFactoryDep,
    flt: Filters,
    order: OrderQuery = "chain",
) -> StreamingResponse:
    """The matching events as CSV (same filters as /events), streamed. The export is recorded
    as an AUDIT_EXPORTED event naming the filters; it covers the events before that one."""
    with sessions() as session:
        event = audit(session, EVENT_EXPORTED, actor_id=actor.employee_id,
                      entity=("audit_export", None), request_id=flt.request_id,
                      detail={"filters": flt.as_json(), "order": order, "format": "csv"})
        session.flush()
        through = event.chain_index - 1
    stamp = event.occurred_at.strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        _csv_stream(sessions, flt, newest_first=order == "newest", through_index=through),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="baton-audit-{stamp}.csv"',
                 "Cache-Control": "no-store"})


# --- CSV ---------------------------------------------------------------------------------------


def _json_cell(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _csv_row(row: Mapping[Any, Any]) -> list[Any]:
    return [row["chain_index"], row["id"], row["occurred_at"].isoformat(), row["event_type"],
            row["actor_id"], row["on_behalf_of"], row["request_id"], _text(row["entity_type"]),
            _text(row["entity_id"]), row["from_stage"], row["to_stage"], _text(row["reason"]),
            _json_cell(row["before"]), _json_cell(row["after"]), _json_cell(row["detail"]),
            _text(row["workflow_id"]), row["transition_seq"], row["prev_hash"], row["hash"]]


def _csv_stream(sessions: Any, flt: AuditFilter, *, newest_first: bool,
                through_index: int) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write(BOM)
    writer.writerow(CSV_COLUMNS)
    for rows in export_batches(sessions, flt, newest_first=newest_first,
                               through_index=through_index):
        writer.writerows(_csv_row(r) for r in rows)
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():  # the header alone, when nothing matched
        yield buffer.getvalue().encode("utf-8")
