"""Commission statements, read side: one statement per employee per month.

Every figure is a set-based aggregate over `commission_line` (GROUP BY in the database); no
function here loads lines into Python to add them up. Only a single statement's own lines are
fetched, to be listed.

A statement is FINAL when a FINAL `statement` row exists for its (employee, month), else DRAFT.
Closed months never change (models.commission_engine), so the aggregate of a FINAL month equals
the total frozen on its `statement` row.

`scope` limits whose statements a query may see: None for everyone, or anything SQLAlchemy's
`in_` accepts (a list of employee ids, or a SELECT of them).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, case, func, or_, select, true
from sqlalchemy.sql import FromClause, Select
from sqlmodel import Session, SQLModel

from domain.commission import Rule
from models.commission import CommissionLine, Statement, StatementStatus
from models.customer import Customer, Order
from models.org import Employee

PERIOD_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
_PERIOD_RE = re.compile(PERIOD_PATTERN)

EmployeeScope = Select | Collection[int] | None

# what the employee earned as the protected original salesperson, clawbacks of it included
# ("R4_CLAWBACK:R2_PROTECTION_ORIGINAL")
PROTECTION_RULE = Rule.PROTECTION_ORIGINAL.value


def is_period(value: str) -> bool:
    return bool(_PERIOD_RE.match(value))


@dataclass(frozen=True)
class StatementHeader:
    employee_id: int
    period: str
    status: StatementStatus
    total_fen: int
    line_count: int
    protection_income_fen: int
    adjustment_fen: int
    finalized_at: datetime | None


@dataclass(frozen=True)
class ExportRow:
    header: StatementHeader
    employee_no: str
    name: str


@dataclass(frozen=True)
class CustomerTotal:
    customer_id: int
    customer_code: str
    customer_name: str
    total_fen: int
    lines: int


@dataclass(frozen=True)
class RuleTotal:
    rule: str
    total_fen: int
    lines: int


@dataclass(frozen=True)
class StatementLine:
    order_id: int
    order_external_id: str
    customer_id: int
    customer_code: str
    customer_name: str
    role: str
    rule: str
    rate_bp: int
    share_bp: int
    base_amount_fen: int
    amount_fen: int
    origin_period: str
    is_adjustment: bool
    request_id: int | None


@dataclass(frozen=True)
class StatementDetail:
    header: StatementHeader
    employee_no: str
    employee_name: str
    by_customer: list[CustomerTotal]
    by_rule: list[RuleTotal]
    lines: list[StatementLine]


def _table(model: type[SQLModel]) -> Table:
    return model.__table__  # type: ignore[attr-defined,no-any-return]


def _rows(session: Session, statement: Select) -> Sequence[Any]:
    return session.exec(statement).all()  # type: ignore[call-overload,no-any-return]


_LINES, _CUSTOMERS, _ORDERS, _EMPLOYEES = (
    _table(m) for m in (CommissionLine, Customer, Order, Employee))
_LINE = _LINES.c
_FINAL_TABLE = _table(Statement).alias("final_statement")
_FINAL = _FINAL_TABLE.c


def _in_scope(scope: EmployeeScope) -> Any:
    return true() if scope is None else _LINE.employee_id.in_(scope)


def _fen(column: Any) -> Any:
    """A sum of fen that is 0, not NULL, over no rows."""
    return func.coalesce(func.sum(column), 0)


def _headers() -> Select:
    """(employee, month) aggregates over commission_line, with the FINAL statement if any.

    The outer join meets at most one statement per group (unique on employee and period), so
    it multiplies nothing.
    """
    protection = case((_LINE.rule.contains(PROTECTION_RULE, autoescape=True),
                       _LINE.amount_fen), else_=0)
    adjustment = case((_LINE.is_adjustment.is_(True), _LINE.amount_fen), else_=0)
    return (
        select(_LINE.employee_id, _LINE.period,
               _fen(_LINE.amount_fen).label("total_fen"),
               func.count().label("line_count"),
               _fen(protection).label("protection_income_fen"),
               _fen(adjustment).label("adjustment_fen"),
               _FINAL.id.label("final_id"), _FINAL.finalized_at.label("finalized_at"))
        .select_from(_LINES)
        .outerjoin(_FINAL_TABLE, _final_of_line())
        .group_by(_LINE.employee_id, _LINE.period, _FINAL.id, _FINAL.finalized_at)
    )


def _final_of_line() -> Any:
    return and_(_FINAL.employee_id == _LINE.employee_id, _FINAL.period == _LINE.period,
                _FINAL.status == StatementStatus.FINAL.value)


def _header(row: Any) -> StatementHeader:
    return StatementHeader(
        employee_id=int(row.employee_id), period=str(row.period),
        status=StatementStatus.FINAL if row.final_id is not None else StatementStatus.DRAFT,
        total_fen=int(row.total_fen), line_count=int(row.line_count),
        protection_income_fen=int(row.protection_income_fen),
        adjustment_fen=int(row.adjustment_fen), finalized_at=row.finalized_at)


def _status_clause(status: StatementStatus | None) -> Any:
    if status is None:
        return true()
    return _FINAL.id.is_not(None) if status == StatementStatus.FINAL else _FINAL.id.is_(None)


def list_statements(
    session: Session, scope: EmployeeScope, *, employee_id: int | None = None,
    period: str | None = None, status: StatementStatus | None = None, limit: int = 50,
    offset: int = 0,
) -> tuple[list[StatementHeader], int]:
    """Statements in `scope`, newest month first, then by employee; and how many there are.

    The page's (employee, month) keys and the count come from the line index alone; only the
    page's statements are then aggregated (a month holds about one line per order, so adding
    up every statement of the month for each page was most of the time at 1M orders)."""
    conditions = [_in_scope(scope), _status_clause(status)]
    if employee_id is not None:
        conditions.append(_LINE.employee_id == employee_id)
    if period is not None:
        conditions.append(_LINE.period == period)
    lines: FromClause = _LINES
    if status is not None:  # unique per (employee, month): the join adds no keys
        lines = _LINES.outerjoin(_FINAL_TABLE, _final_of_line())
    keys = (select(_LINE.employee_id, _LINE.period).select_from(lines).where(*conditions)
            .distinct())
    total = _rows(session, select(func.count()).select_from(keys.subquery()))[0][0]
    page = [(int(e), str(p)) for e, p in _rows(
        session, keys.order_by(_LINE.period.desc(), _LINE.employee_id).limit(limit)
        .offset(offset))]
    if not page:
        return [], int(total)
    rows = _rows(session, _headers().where(
        or_(*(and_(_LINE.employee_id == e, _LINE.period == p) for e, p in page))))
    by_key = {(int(r.employee_id), str(r.period)): _header(r) for r in rows}
    return [by_key[key] for key in page if key in by_key], int(total)


def statement_header(session: Session, scope: EmployeeScope, employee_id: int,
                     period: str) -> StatementHeader | None:
    """One statement's header, or None when the employee has no lines that month or is out
    of `scope` (the caller cannot tell the two apart, on purpose)."""
    rows = _rows(session, _headers().where(
        _in_scope(scope), _LINE.employee_id == employee_id, _LINE.period == period))
    return _header(rows[0]) if rows else None


def statement_detail(session: Session, scope: EmployeeScope, employee_id: int,
                     period: str) -> StatementDetail | None:
    """The statement with its totals by customer and by rule, and its lines ordered by
    customer then order. None as for `statement_header`."""
    header = statement_header(session, scope, employee_id, period)
    if header is None:
        return None
    employee = session.get(Employee, employee_id)
    mine = and_(_LINE.employee_id == employee_id, _LINE.period == period)
    customer = _CUSTOMERS.c
    by_customer = _rows(
        session,
        select(_LINE.customer_id, customer.code, customer.name,
               _fen(_LINE.amount_fen), func.count())
        .join(_CUSTOMERS, customer.id == _LINE.customer_id)
        .where(mine)
        .group_by(_LINE.customer_id, customer.code, customer.name)
        .order_by(customer.code, _LINE.customer_id),
    )
    by_rule = _rows(
        session,
        select(_LINE.rule, _fen(_LINE.amount_fen), func.count())
        .where(mine).group_by(_LINE.rule).order_by(_LINE.rule),
    )
    order = _ORDERS.c
    lines = _rows(
        session,
        select(_LINE.order_id, order.external_id, _LINE.customer_id, customer.code,
               customer.name, _LINE.role, _LINE.rule, _LINE.rate_bp, _LINE.share_bp,
               _LINE.base_amount_fen, _LINE.amount_fen, _LINE.origin_period,
               _LINE.is_adjustment, _LINE.request_id)
        .join(_ORDERS, order.id == _LINE.order_id)
        .join(_CUSTOMERS, customer.id == _LINE.customer_id)
        .where(mine)
        .order_by(customer.code, _LINE.customer_id, _LINE.order_id, _LINE.role, _LINE.id),
    )
    return StatementDetail(
        header=header,
        employee_no=employee.employee_no if employee else "",
        employee_name=employee.name if employee else "",
        by_customer=[CustomerTotal(int(cid), code, name, int(total), int(n))
                     for cid, code, name, total, n in by_customer],
        by_rule=[RuleTotal(rule, int(total), int(n)) for rule, total, n in by_rule],
        lines=[StatementLine(
            order_id=r[0], order_external_id=r[1], customer_id=r[2], customer_code=r[3],
            customer_name=r[4], role=r[5], rule=r[6], rate_bp=int(r[7]), share_bp=int(r[8]),
            base_amount_fen=int(r[9]), amount_fen=int(r[10]), origin_period=r[11],
            is_adjustment=bool(r[12]), request_id=r[13]) for r in lines],
    )


def export_rows(session: Session, scope: EmployeeScope, period: str) -> list[ExportRow]:
    """One row per employee in `scope` with lines in `period`, for payroll, by employee no."""
    headers = _headers().where(_in_scope(scope), _LINE.period == period).subquery()
    employee = _EMPLOYEES.c
    rows = _rows(session, select(headers, employee.employee_no, employee.name)
                 .join(_EMPLOYEES, employee.id == headers.c.employee_id)
                 .order_by(employee.employee_no, headers.c.employee_id))
    return [ExportRow(header=_header(r), employee_no=r.employee_no, name=r.name) for r in rows]

