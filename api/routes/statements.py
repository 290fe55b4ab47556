"""Commission statements: list, detail, CSV of one statement, and the payroll export.

Who sees whose statements (DESIGN.md, "Security"), decided in one place, api/services/scope.py:
a salesperson their own; a manager or director their org-unit subtree's employees; HR and
finance everyone. Admin has no statement access of its own: only with the finance role too.
Everyone else sees their own. A statement outside the caller's scope answers 404, exactly as
one that does not exist.

Every read of a statement (detail, CSV, export) is recorded in the audit chain, with who read
whose statement for which month and no amounts (PIPL: reads of sensitive personal data).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel
from sqlmodel import Session

from api.deps import SessionFactoryDep, permit
from api.problems import Problem, problem_responses
from api.security import Actor
from api.services.scope import Scope
from domain.permissions import Action
from domain.spreadsheet import spreadsheet_safe as _text
from models.audit import audit
from models.commission import StatementStatus
from models.db import SessionFactory, read_only_sessions
from models.statements import (
    PERIOD_PATTERN,
    EmployeeScope,
    StatementDetail,
    StatementHeader,
    export_rows,
    list_statements,
    statement_detail,
)

router = APIRouter(prefix="/statements", tags=["statements"])

EVENT_READ = "STATEMENT_READ"
EVENT_LISTED = "STATEMENTS_LISTED"
EVENT_EXPORTED = "STATEMENT_EXPORTED"
StatementReader = Annotated[Actor, permit(Action.STATEMENTS_READ)]
PayrollExporter = Annotated[Actor, permit(Action.STATEMENTS_EXPORT)]
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
BOM = "\ufeff"  # so that Excel reads the file as UTF-8 (Chinese names)

Period = Annotated[str, Path(pattern=PERIOD_PATTERN, description="YYYY-MM",
                             examples=["2026-03"])]
CSV_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "CSV, UTF-8 with a byte order mark"},
}


# --- scope -------------------------------------------------------------------------------------


def statement_scope(session: Session, actor: Actor) -> EmployeeScope:
    """Whose statements `actor` may read (api/services/scope.py): None means everyone."""
    allowed = Scope(session, actor).statement_employees()
    return None if allowed is None else sorted(allowed)


def _not_found(employee_id: int, period: str) -> Problem:
    return Problem(404, "statement-not-found", "Statement not found",
                   f"There is no statement of employee {employee_id} for {period} that you may "
                   "see: either they have no commission lines that month, or the statement is "
                   "outside your data scope.")


def _audit(session: Session, actor: Actor, event_type: str, detail: dict[str, Any],
           subject: int | None = None) -> None:
    """A read of salary data, naming the reader and whose statement (PIPL art. 51)."""
    audit(session, event_type, actor_id=actor.employee_id, detail=detail,
          entity=("employee", subject) if subject is not None else None)
    session.flush()


# --- response bodies ---------------------------------------------------------------------------


class StatementOut(BaseModel):
    employee_id: int
    period: str
    status: StatementStatus
    total_fen: int
    line_count: int
    protection_income_fen: int
    adjustment_fen: int
    finalized_at: datetime | None


class StatementPage(BaseModel):
    items: list[StatementOut]
    total: int
    limit: int
    offset: int


class CustomerTotalOut(BaseModel):
    customer_id: int
    customer_code: str
    customer_name: str
    total_fen: int
    lines: int


class RuleTotalOut(BaseModel):
    rule: str
    total_fen: int
    lines: int


class StatementLineOut(BaseModel):
    order_id: int
    order_external_id: str
    customer_id: int
    customer_code: str
    role: str
    rule: str
    rate_bp: int
    share_bp: int
    base_amount_fen: int
    amount_fen: int
    origin_period: str
    is_adjustment: bool
    request_id: int | None


class StatementDetailOut(StatementOut):
    employee_no: str
    employee_name: str
    by_customer: list[CustomerTotalOut]
    by_rule: list[RuleTotalOut]
    lines: list[StatementLineOut]


def _out(header: StatementHeader) -> StatementOut:
    return StatementOut(**_header_fields(header))


def _header_fields(header: StatementHeader) -> dict[str, Any]:
    return dict(employee_id=header.employee_id, period=header.period, status=header.status,
                total_fen=header.total_fen, line_count=header.line_count,
                protection_income_fen=header.protection_income_fen,
                adjustment_fen=header.adjustment_fen, finalized_at=header.finalized_at)


# --- CSV -------------------------------------------------------------------------------------


def yuan(fen: int) -> str:
    """Exact two-decimal yuan from integer fen: -5 -> '-0.05'."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    buffer.write(BOM)
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _filename_part(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", value) or "employee"


def _csv_response(content: bytes, filename: str) -> Response:
    return Response(content, media_type=CSV_MEDIA_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "Cache-Control": "no-store"})


LINE_COLUMNS = ("order_id", "order_external_id", "customer_id", "customer_code", "customer_name",
                "role", "rule", "rate_bp", "share_bp", "base_amount_fen", "base_amount_yuan",
                "amount_fen", "amount_yuan", "origin_period", "is_adjustment", "request_id")
EXPORT_COLUMNS = ("employee_id", "employee_no", "name", "period", "status", "total_fen",
                  "total_yuan", "protection_income_fen", "protection_income_yuan",
                  "adjustment_fen", "adjustment_yuan", "line_count")


def _statement_csv(detail: StatementDetail) -> bytes:
    rows: list[list[Any]] = [
        [x.order_id, _text(x.order_external_id), x.customer_id, _text(x.customer_code),
         _text(x.customer_name), x.role, x.rule, x.rate_bp, x.share_bp, x.base_amount_fen,
         yuan(x.base_amount_fen), x.amount_fen, yuan(x.amount_fen), x.origin_period,
         "true" if x.is_adjustment else "false", x.request_id if x.request_id is not None else ""]
        for x in detail.lines
    ]
    total = detail.header.total_fen  # the SQL aggregate, not a sum of the rows above
    rows.append(["TOTAL", "", "", "", "", "", "", "", "", "", "", total, yuan(total), "", "",
                 ""])
    return _csv(LINE_COLUMNS, rows)


# --- routes ----------------------------------------------------------------------------------


@router.get("", response_model=StatementPage, responses=problem_responses(401, 422))
def get_statements(
    actor: StatementReader,
    sessions: SessionFactoryDep,
    employee_id: int | None = None,
    period: Annotated[str | None, Query(pattern=PERIOD_PATTERN,
                                        description="YYYY-MM")] = None,
    status: StatementStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> StatementPage:
    """Statements within the caller's scope, one per employee and month with commission
    lines, newest month first. Totals are in fen; a FINAL month never changes."""
    # read without SQLite's write lock; only the audit event takes it, briefly
    with read_only_sessions(sessions)() as session:
        items, total = list_statements(session, statement_scope(session, actor),
                                       employee_id=employee_id, period=period, status=status,
                                       limit=limit, offset=offset)
    if items:
        with sessions() as session:
            _audit_listed(session, actor, items, employee_id, period, status)
    return StatementPage(items=[_out(h) for h in items], total=total, limit=limit,
                         offset=offset)


@router.get("/export.csv", response_class=Response,
            responses={**CSV_RESPONSES, **problem_responses(401, 422)})
def export_statements(
    actor: PayrollExporter,
    sessions: SessionFactoryDep,
    period: Annotated[str, Query(pattern=PERIOD_PATTERN, description="YYYY-MM")],
) -> Response:
    """Payroll export: one row per employee in the caller's scope with commission in
    `period`. Amounts in integer fen, each with an exact yuan column."""
    with sessions() as session:
        rows = export_rows(session, statement_scope(session, actor), period)
        _audit(session, actor, EVENT_EXPORTED, {
            "period": period, "format": "csv",
            "employee_ids": [r.header.employee_id for r in rows]})
    content = _csv(EXPORT_COLUMNS, (
        [r.header.employee_id, _text(r.employee_no), _text(r.name), r.header.period,
         r.header.status.value, r.header.total_fen, yuan(r.header.total_fen),
         r.header.protection_income_fen, yuan(r.header.protection_income_fen),
         r.header.adjustment_fen, yuan(r.header.adjustment_fen), r.header.line_count]
        for r in rows))
    return _csv_response(content, f"commission-statements-{period}.csv")


def read_list(session: Session, actor: Actor, *, employee_id: int | None = None,
              period: str | None = None, status: StatementStatus | None = None,
              limit: int = 50, offset: int = 0) -> tuple[list[StatementHeader], int]:
    """Statements in the caller's scope, and the STATEMENTS_LISTED audit event when any is
    shown (the list carries totals per person: a read of their pay as well). The API's list
    and the statements page both read through here."""
    items, total = list_statements(session, statement_scope(session, actor),
                                   employee_id=employee_id, period=period, status=status,
                                   limit=limit, offset=offset)
    if items:
        _audit_listed(session, actor, items, employee_id, period, status)
    return items, total


def _audit_listed(session: Session, actor: Actor, items: list[StatementHeader],
                  employee_id: int | None, period: str | None,
                  status: StatementStatus | None) -> None:
    _audit(session, actor, EVENT_LISTED, {
        "filters": {"employee_id": employee_id, "period": period,
                    "status": status.value if status else None},
        "statements": [[h.employee_id, h.period] for h in items]},
        subject=employee_id)


def read_statement(sessions: SessionFactory, actor: Actor, employee_id: int, period: str,
                   fmt: str) -> StatementDetail:
    """One statement in the caller's scope (404 otherwise), and its STATEMENT_READ event."""
    return _read(sessions, actor, employee_id, period, fmt)


def _read(sessions: SessionFactory, actor: Actor, employee_id: int, period: str,
          fmt: str) -> StatementDetail:
    # the statement is read without SQLite's write lock (it held it for every query of the
    # statement, and readers queued behind it); the audit event is its own short transaction
    with read_only_sessions(sessions)() as session:
        detail = statement_detail(session, statement_scope(session, actor), employee_id,
                                  period)
    if detail is None:
        raise _not_found(employee_id, period)
    with sessions() as session:
        _audit(session, actor, EVENT_READ,
               {"employee_id": employee_id, "period": period, "format": fmt},
               subject=employee_id)
    return detail


# registered before the JSON route: "{period}" alone would also match "2026-03.csv"
@router.get("/{employee_id}/{period}.csv", response_class=Response,
            responses={**CSV_RESPONSES, **problem_responses(401, 404, 422)})
def get_statement_csv(employee_id: int, period: Period, actor: StatementReader,
                      sessions: SessionFactoryDep) -> Response:
    """The statement's lines as CSV, with a header row and a final TOTAL row."""
    detail = _read(sessions, actor, employee_id, period, "csv")
    who = _filename_part(detail.employee_no or str(employee_id))
    return _csv_response(_statement_csv(detail), f"commission-statement-{who}-{period}.csv")


@router.get("/{employee_id}/{period}", response_model=StatementDetailOut,
            responses=problem_responses(401, 404, 422))
def get_statement(employee_id: int, period: Period, actor: StatementReader,
                  sessions: SessionFactoryDep) -> StatementDetailOut:
    """One employee's statement for one month: totals by customer and by rule, and every
    line ordered by customer then order. Adjustments of closed months carry the order and
    its `origin_period`."""
    detail = _read(sessions, actor, employee_id, period, "json")
    return StatementDetailOut(
        **_header_fields(detail.header), employee_no=detail.employee_no,
        employee_name=detail.employee_name,
        by_customer=[CustomerTotalOut(**vars(c)) for c in detail.by_customer],
        by_rule=[RuleTotalOut(**vars(r)) for r in detail.by_rule],
        lines=[StatementLineOut(**{k: v for k, v in vars(x).items() if k != "customer_name"})
               for x in detail.lines],
    )
