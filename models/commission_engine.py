"""Set-based commission computation: the SQL twin of domain.commission.attribute.

Nothing here loads orders into Python one at a time. A recompute works on a *scope* of order
ids (held in a temporary table) and:
  1. computes the desired lines of every order in scope in one INSERT ... SELECT;
  2. deletes the scope's lines in open months (months after the last finalised one);
  3. inserts the desired lines of orders whose month is still open;
  4. for orders whose month is closed, books the difference between the desired lines and
     what closed statements already hold as adjustment lines in the open month, naming the
     origin month (DESIGN.md rule 5). A final statement never changes.
Lines are unique on (order, employee, role, period), so a recompute never duplicates.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Select
from sqlmodel import Session, col

from domain.commission import CLAWBACK_PREFIX, FULL_SHARE_BP, LineRole, Rule
from domain.periods import next_period
from models.commission import CommissionLine, CommissionPlan, SettlementRun, Statement
from models.customer import Assignment, AssignmentSource, Order
from models.reassignment import ReassignmentRequest
from models.types import UTCDateTime, utcnow

_scratch = MetaData()
# per-connection scratch tables; emptied before and after each use
SCOPE = Table("tmp_commission_scope", _scratch, Column("order_id", Integer, primary_key=True),
              prefixes=["TEMPORARY"])
DESIRED = Table(
    "tmp_commission_desired", _scratch,
    Column("order_id", Integer), Column("customer_id", Integer), Column("employee_id", Integer),
    Column("role", String(20)), Column("rule", String(40)), Column("rate_bp", Integer),
    Column("share_bp", Integer), Column("base_amount_fen", BigInteger),
    Column("amount_fen", BigInteger), Column("origin_period", String(7)),
    Column("request_id", Integer), prefixes=["TEMPORARY"],
)

_HALF = 50_000_000
_BP2 = 100_000_000


def closed_through(session: Session) -> str | None:
    """The last finalised month ('YYYY-MM'), or None before the first settlement."""
    return session.exec(select(func.max(SettlementRun.finalized_period)).where(
        col(SettlementRun.finished_at).is_not(None))).one()[0]


def open_period(session: Session, fallback: str) -> str:
    closed = closed_through(session)
    return next_period(closed) if closed else fallback


# --- scopes ------------------------------------------------------------------------------------


def recompute_for_orders(session: Session, order_ids: list[int]) -> int:
    """After orders, refunds or corrections arrive. Refunds of these orders come along."""
    if not order_ids:
        return 0
    ids = list(dict.fromkeys(order_ids))
    scope = select(Order.id).where(or_(col(Order.id).in_(ids),
                                       col(Order.original_order_id).in_(ids)))
    return _recompute(session, scope)


def recompute_for_customers_since(session: Session, customer_ids: list[int],
                                  since: datetime) -> int:
    """After a reassignment takes effect or its protection changes."""
    if not customer_ids:
        return 0
    return _recompute(session, _attributed_since(since).where(
        col(Order.customer_id).in_(customer_ids)))


def recompute_since(session: Session, since: datetime) -> int:
    """After a plan change: every order attributed at or after `since`."""
    return _recompute(session, _attributed_since(since))


def recompute_period(session: Session, period: str) -> int:
    """The settlement's recompute of one month (orders and refunds booked in it)."""
    return _recompute(session, select(Order.id).where(Order.period == period))


def _attributed_since(since: datetime) -> Select:
    original = aliased(Order)
    return (
        select(Order.id)
        .outerjoin(original, original.id == Order.original_order_id)
        .where(func.coalesce(original.booked_at, Order.booked_at) >= literal(since, UTCDateTime()))
    )


# --- the computation -----------------------------------------------------------------------


def desired_lines_select() -> Select:
    """The lines every order in SCOPE should have, per DESIGN.md rules 1-4 and 7."""
    o = aliased(Order, name="o")
    orig = aliased(Order, name="orig")
    own = aliased(Assignment, name="own")
    prev = aliased(Assignment, name="prev")
    req = aliased(ReassignmentRequest, name="req")
    plan_owner = aliased(CommissionPlan, name="plan_owner")
    plan_a = aliased(CommissionPlan, name="plan_a")

    t = func.coalesce(orig.booked_at, o.booked_at)  # refunds are attributed at the original
    is_refund = o.original_order_id.is_not(None)

    def plan_at(plan: type[CommissionPlan], employee: object) -> object:
        return and_(plan.employee_id == employee, plan.effective_from <= t,
                    or_(plan.effective_to.is_(None), plan.effective_to > t))

    base = (
        select()
        .select_from(o)
        .join(SCOPE, SCOPE.c.order_id == o.id)
        .outerjoin(orig, orig.id == o.original_order_id)
        .join(own, and_(own.customer_id == o.customer_id, own.start_at <= t,
                        or_(own.end_at.is_(None), own.end_at > t)))
        .outerjoin(req, and_(req.id == own.request_id, req.effective_at <= t,
                             req.protection_end > t))
        .outerjoin(plan_owner, plan_at(plan_owner, own.employee_id))
    )
    found = own.source == AssignmentSource.FOUND.value

    def rule_label(rule: object) -> object:
        return case((is_refund, literal_column(f"'{CLAWBACK_PREFIX}'").concat(rule)),
                    else_=rule)

    earlier = aliased(Order, name="earlier")
    refunded_before = select(func.coalesce(func.sum(-earlier.amount_fen), 0)).where(
        earlier.original_order_id == o.original_order_id, earlier.id < o.id,
    ).scalar_subquery()

    def amount(rate: object, share: object) -> object:
        def rounded(fen: object) -> object:  # half-up on a non-negative amount
            return (cast(fen, BigInteger) * rate * share + _HALF) // _BP2

        # refunds claw back cumulatively (domain.commission.clawback_amount)
        clawback = rounded(refunded_before) - rounded(refunded_before - o.amount_fen)
        magnitude = rounded(func.abs(o.amount_fen))
        return case((is_refund, clawback), (o.amount_fen >= 0, magnitude), else_=-magnitude)

    def columns(employee: object, role: object, rule: object, rate: object,
                share: object) -> list:
        return [o.id.label("order_id"), o.customer_id.label("customer_id"),
                employee.label("employee_id"), role.label("role"),
                rule_label(rule).label("rule"), rate.label("rate_bp"), share.label("share_bp"),
                o.amount_fen.label("base_amount_fen"), amount(rate, share).label("amount_fen"),
                o.period.label("origin_period"), own.request_id.label("request_id")]

    full = literal(FULL_SHARE_BP, Integer)
    owner_rate = cast(func.coalesce(
        case((found, plan_owner.base_rate_bp), else_=plan_owner.inherited_rate_bp), 0),
        BigInteger)
    unprotected = base.add_columns(*columns(
        own.employee_id,
        case((found, literal(LineRole.OWNER.value)), else_=literal(LineRole.INHERITED_OWNER.value)),
        case((found, literal(Rule.OWNER_BASE.value)),
             else_=literal(Rule.OWNER_INHERITED.value)),
        owner_rate, full,
    )).where(req.id.is_(None))

    share_a = cast(req.protection_share_bp, BigInteger)
    a_rate = cast(func.coalesce(
        case((prev.source == AssignmentSource.REASSIGNMENT.value, plan_a.inherited_rate_bp),
             else_=plan_a.base_rate_bp), 0), BigInteger)
    original = (
        base.outerjoin(prev, and_(prev.customer_id == o.customer_id,
                                  prev.employee_id == req.from_employee_id,
                                  prev.end_at == req.effective_at))
        .outerjoin(plan_a, plan_at(plan_a, req.from_employee_id))
        .add_columns(*columns(req.from_employee_id, literal(LineRole.PROTECTED_ORIGINAL.value),
                              literal(Rule.PROTECTION_ORIGINAL.value), a_rate, share_a))
        .where(req.id.is_not(None))
    )
    inherited = base.add_columns(*columns(
        own.employee_id, literal(LineRole.INHERITED_OWNER.value),
        literal(Rule.PROTECTION_INHERITED.value),
        cast(func.coalesce(plan_owner.inherited_rate_bp, 0), BigInteger),
        FULL_SHARE_BP - share_a,
    )).where(req.id.is_not(None))
    return union_all(unprotected, original, inherited)


def _recompute(session: Session, scope: Select) -> int:
    """Bring the lines of every order in `scope` up to date. Returns lines written."""
    # psycopg reports INSERT ... SELECT row counts only when asked to keep them
    bind = session.connection().execution_options(preserve_rowcount=True)
    SCOPE.create(bind, checkfirst=True)
    DESIRED.create(bind, checkfirst=True)
    bind.execute(delete(SCOPE))
    bind.execute(delete(DESIRED))
    bind.execute(insert(SCOPE).from_select(["order_id"], scope.distinct()))
    desired = desired_lines_select()
    bind.execute(insert(DESIRED).from_select([c.name for c in DESIRED.columns], desired))

    closed = closed_through(session)
    lines = CommissionLine.__table__
    in_scope = lines.c.order_id.in_(select(SCOPE.c.order_id))
    now = utcnow()
    open_rows = select(*DESIRED.columns, DESIRED.c.origin_period, literal(False),
                       literal(now, UTCDateTime()))
    if closed is None:
        bind.execute(delete(lines).where(in_scope))
    else:
        bind.execute(delete(lines).where(in_scope, lines.c.period > closed))
        open_rows = open_rows.where(DESIRED.c.origin_period > closed)
    written = bind.execute(insert(lines).from_select(
        [*(c.name for c in DESIRED.columns), "period", "is_adjustment", "computed_at"],
        open_rows)).rowcount or 0
    if closed is not None:
        written += _book_adjustments(bind, closed, next_period(closed), now)
    bind.execute(delete(SCOPE))
    bind.execute(delete(DESIRED))
    return written


def _book_adjustments(bind: object, closed: str, open_month: str, now: datetime) -> int:
    """Desired minus what closed months already hold, per (order, employee, role)."""
    lines = CommissionLine.__table__
    d = DESIRED.c
    wanted = select(d.order_id, d.customer_id, d.employee_id, d.role, d.rule, d.rate_bp,
                    d.share_bp, d.base_amount_fen, d.amount_fen, d.origin_period,
                    d.request_id).where(d.origin_period <= closed)
    frozen = select(lines.c.order_id, lines.c.customer_id, lines.c.employee_id, lines.c.role,
                    lines.c.rule, lines.c.rate_bp, lines.c.share_bp,
                    literal(0, BigInteger).label("base_amount_fen"),
                    (-lines.c.amount_fen).label("amount_fen"), lines.c.origin_period,
                    lines.c.request_id).where(
        lines.c.order_id.in_(select(SCOPE.c.order_id)), lines.c.period <= closed)
    both = union_all(wanted, frozen).subquery()
    delta = (
        select(both.c.order_id, func.max(both.c.customer_id), both.c.employee_id, both.c.role,
               func.max(both.c.rule), func.max(both.c.rate_bp), func.max(both.c.share_bp),
               func.sum(both.c.base_amount_fen), func.sum(both.c.amount_fen),
               func.max(both.c.origin_period), func.max(both.c.request_id),
               literal(open_month), literal(True), literal(now, UTCDateTime()))
        .group_by(both.c.order_id, both.c.employee_id, both.c.role)
        .having(func.sum(both.c.amount_fen) != 0)
    )
    result = bind.execute(insert(lines).from_select(  # type: ignore[attr-defined]
        ["order_id", "customer_id", "employee_id", "role", "rule", "rate_bp", "share_bp",
         "base_amount_fen", "amount_fen", "origin_period", "request_id", "period",
         "is_adjustment", "computed_at"], delta))
    return result.rowcount or 0


# --- statements and finalisation -----------------------------------------------------------


def refresh_statements(session: Session, period: str, *, final: bool) -> int:
    """Upsert one statement per employee with lines in `period`, with its totals."""
    now = utcnow()
    totals = session.exec(
        select(CommissionLine.employee_id, func.sum(CommissionLine.amount_fen), func.count())
        .where(CommissionLine.period == period).group_by(CommissionLine.employee_id)
    ).all()
    existing = {s.employee_id: s for s in session.exec(
        select(Statement).where(Statement.period == period)).scalars()}
    for employee_id, total, count in totals:
        statement = existing.pop(employee_id, None) or Statement(employee_id=employee_id,
                                                                 period=period)
        if statement.status == "FINAL":
            continue
        statement.total_fen, statement.line_count, statement.updated_at = int(total), count, now
        if final:
            statement.status, statement.finalized_at = "FINAL", now
        session.add(statement)
    for statement in existing.values():  # lines vanished: an empty statement, still recorded
        if statement.status != "FINAL":
            statement.total_fen, statement.line_count, statement.updated_at = 0, 0, now
            if final:
                statement.status, statement.finalized_at = "FINAL", now
            session.add(statement)
    return len(totals)


def finalize_period(session: Session, period: str, *, run_key: str, trigger: str,
                    requested_by: int | None = None) -> SettlementRun:
    """Recompute `period`, then close it for good. Idempotent on `run_key` and on `period`."""
    run = session.exec(select(SettlementRun).where(SettlementRun.run_key == run_key)).scalars(
    ).first()
    if run is not None and run.finished_at is not None:
        return run
    closed = closed_through(session)
    if closed is not None and period <= closed:
        raise ValueError(f"{period} is already final (closed through {closed})")
    if closed is not None and period != next_period(closed):
        raise ValueError(f"finalise {next_period(closed)} before {period}")
    run = run or SettlementRun(run_key=run_key, open_period=period, trigger=trigger,
                               requested_by=requested_by)
    run.lines_written = recompute_period(session, period)
    run.statements_finalized = refresh_statements(session, period, final=True)
    run.finalized_period = period
    run.finished_at = utcnow()
    session.add(run)
    session.flush()
    return run
