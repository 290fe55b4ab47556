"""Orders from the ERP/CRM: single or batch JSON, and CSV import with a dry run.

Validation, idempotency and insertion live in models.order_ingest (the CLI uses it too).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.deps import SessionFactoryDep, SettingsDep, permit
from api.problems import Problem, problem_responses
from api.schemas_orders import (
    ImportReportOut,
    OrderBatchOut,
    OrderRowOut,
    csv_request_body_schema,
    order_request_body_schema,
)
from api.security import Actor
from domain.permissions import Action
from models.db import SessionFactory
from models.order_ingest import (
    EVENT_IMPORTED,
    EVENT_POSTED,
    ConcurrentInsert,
    IngestReport,
    PayloadError,
    RawRow,
    ingest,
    rows_from_csv,
    rows_from_json,
)
from settings import Settings

router = APIRouter(prefix="/orders", tags=["orders"])

OrderWriter = Annotated[Actor, permit(Action.ORDERS_WRITE)]
MAX_CSV_BYTES = 32 * 1024 * 1024
# the body limit of POST /orders/import (api/main.py): the file plus its multipart envelope
MAX_IMPORT_BODY_BYTES = MAX_CSV_BYTES + 1024 * 1024
CSV_TYPES = ("text/csv", "application/csv", "text/plain")


def _refusal(report: IngestReport) -> Problem:
    """422 for invalid rows (409 when every problem is an id stored with other content)."""
    extra = {"errors": [e.as_dict() for e in report.errors], "conflicts": report.conflicts}
    if report.only_conflicts:
        ids = ", ".join(report.conflicts)
        return Problem(409, "order-conflict", "External id stored with other content",
                       f"These external ids are stored already with other content: {ids}. "
                       "Nothing was written. An external id names one order for good; send a "
                       "correction as a REFUND or CANCELLATION under a new external id.",
                       extra=extra)
    bad = len({e.index for e in report.errors})
    if any(e.index is None for e in report.errors):
        detail = (f"The input cannot be read: {report.errors[0].message} Nothing was written.")
    else:
        detail = (f"{bad} of {report.rows} rows are not valid, so nothing was written (a batch "
                  "is all-or-nothing). Fix every row listed in `errors` and send the batch "
                  "again.")
    return Problem(422, "orders-invalid", "The orders are not valid", detail, extra=extra)


def _run(sessions: SessionFactory, settings: Settings, actor: Actor, rows: list[RawRow], *,
         dry_run: bool, event_type: str) -> IngestReport:
    try:
        with sessions() as session:
            report = ingest(session, rows, timezone=settings.org_timezone, dry_run=dry_run,
                            actor_id=actor.employee_id, event_type=event_type)
            if not report.ok:
                return report  # nothing was written; the commit is empty
    except ConcurrentInsert as exc:
        raise Problem(409, "order-concurrent-insert", "Orders stored concurrently",
                      f"{exc}. Nothing from this request was written; sending it again is "
                      "safe (rows stored meanwhile with the same content count as "
                      "duplicates).") from exc
    return report


@router.post(
    "",
    response_model=OrderBatchOut,
    status_code=201,
    openapi_extra={"requestBody": order_request_body_schema()},
    responses={200: {"model": OrderBatchOut, "description": "every row was a duplicate"},
               **problem_responses(401, 403, 409, 422)},
)
def post_orders(
    body: Annotated[Any, Body()],
    response: Response,
    actor: OrderWriter,
    sessions: SessionFactoryDep,
    settings: SettingsDep,
) -> OrderBatchOut:
    """Post one order, or {"orders": [...]} with up to 1000, all-or-nothing and idempotent.

    A row whose external_id is stored with the same content is a duplicate (no-op); with other
    content the batch is refused with 409. Any invalid row refuses the batch with 422, listing
    every bad row. Refunds and cancellations name their original by `original_external_id`.
    """
    try:
        rows = rows_from_json(body)
    except PayloadError as exc:
        raise _refusal(IngestReport.refused(exc, dry_run=False)) from exc
    report = _run(sessions, settings, actor, rows, dry_run=False, event_type=EVENT_POSTED)
    if not report.ok:
        raise _refusal(report)
    response.status_code = 201 if report.created else 200
    return OrderBatchOut(created=report.created, duplicates=report.duplicates,
                         results=[OrderRowOut(**r.as_dict()) for r in report.results],
                         recomputed_lines=report.recomputed_lines)


async def _csv_bytes(request: Request) -> bytes:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            upload = next((v for _, v in form.multi_items() if isinstance(v, UploadFile)), None)
        if upload is None:
            raise Problem(422, "csv-missing", "No CSV file",
                          "Send the CSV as a multipart form field named `file`.")
        data = await upload.read(MAX_CSV_BYTES + 1)
    elif content_type in CSV_TYPES:
        data = await request.body()
    else:
        raise Problem(415, "unsupported-media-type", "Send a CSV file",
                      "Send the CSV as the request body with `Content-Type: text/csv`, or as "
                      f"a multipart form field named `file`; got {content_type or 'nothing'}.")
    if len(data) > MAX_CSV_BYTES:
        raise Problem(413, "csv-too-large", "CSV file too large",
                      f"A file may have at most {MAX_CSV_BYTES // (1024 * 1024)} MiB; split it.")
    return data


@router.post(
    "/import",
    response_model=ImportReportOut,
    openapi_extra={"requestBody": csv_request_body_schema()},
    responses={201: {"model": ImportReportOut, "description": "imported"},
               **problem_responses(401, 403, 409, 413, 415, 422)},
)
async def import_orders(
    request: Request,
    response: Response,
    actor: OrderWriter,
    sessions: SessionFactoryDep,
    settings: SettingsDep,
    dry_run: Annotated[bool, Query(description="check only: report every bad row, write "
                                               "nothing")] = False,
) -> ImportReportOut:
    """Import a CSV file of orders (header: external_id,kind,customer_code,amount_fen,currency,
    booked_at,product_line,original_external_id).

    With `dry_run=true` the answer is a report (200) of every bad row with its line number
    (the header is line 1), and nothing is written. Without it, a file with any bad row is
    refused with 422 and the same report; a clean file is imported in one transaction.
    """
    data = await _csv_bytes(request)
    try:
        rows = rows_from_csv(data)
    except PayloadError as exc:
        report = IngestReport.refused(exc, dry_run=dry_run)
    else:
        report = await run_in_threadpool(_run, sessions, settings, actor, rows,
                                         dry_run=dry_run, event_type=EVENT_IMPORTED)
    if not report.ok and not dry_run:
        raise _refusal(report)
    response.status_code = 201 if report.created else 200
    return ImportReportOut(**report.as_dict())
