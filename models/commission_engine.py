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
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Select
from sqlmodel import Session, col

from domain.commission import CLAWBACK_PREFIX, FULL_SHARE_BP, LineRole, Rule
from domain.periods import next_period
from models.audit import audit
from models.commission import (
    CommissionLine,
    CommissionPlan,
    SettlementRun,
    Statement,
    StatementStatus,
)
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


def _amount(o: object, rate: object, share: object) -> object:
    """Half-up per line on the magnitude; refunds claw back cumulatively
    (domain.commission.clawback_amount). The subquery runs for refunds only."""
    earlier = aliased(Order, name="earlier")
    refunded_before = select(func.coalesce(func.sum(-earlier.amount_fen), 0)).where(
        earlier.original_order_id == o.original_order_id, earlier.id < o.id,
    ).scalar_subquery()

    def rounded(fen: object) -> object:
        return (cast(fen, BigInteger) * rate * share + _HALF) // _BP2

    clawback = rounded(refunded_before) - rounded(refunded_before - o.amount_fen)
    magnitude = rounded(func.abs(o.amount_fen))
    return case((o.original_order_id.is_not(None), clawback), (o.amount_fen >= 0, magnitude),
                else_=-magnitude)


def _rule_label(o: object, rule: object) -> object:
    return case((o.original_order_id.is_not(None),
                 literal_column(f"'{CLAWBACK_PREFIX}'").concat(rule)), else_=rule)


def _plan_at(plan: type[CommissionPlan], employee: object, t: object) -> object:
    return and_(plan.employee_id == employee, plan.effective_from <= t,
                or_(plan.effective_to.is_(None), plan.effective_to > t))


def owner_lines_select() -> Select:
    """Pass 1, one row per order in SCOPE: the owner's line (rules 1-3 and 7 for the owner).
    Inside protection the owner is B (INHERITED_OWNER, share 1 - s); else OWNER or
    INHERITED_OWNER at the full share."""
    o = aliased(Order, name="o")
    orig = aliased(Order, name="orig")
    own = aliased(Assignment, name="own")
    req = aliased(ReassignmentRequest, name="req")
    plan = aliased(CommissionPlan, name="plan_owner")
    t = func.coalesce(orig.booked_at, o.booked_at)  # refunds are attributed at the original
    found = own.source == AssignmentSource.FOUND.value
    protected = req.id.is_not(None)
    rate = cast(func.coalesce(case((found & ~protected, plan.base_rate_bp),
                                   else_=plan.inherited_rate_bp), 0), BigInteger)
    share = case((protected, FULL_SHARE_BP - cast(req.protection_share_bp, BigInteger)),
                 else_=literal(FULL_SHARE_BP, BigInteger))
    role = case((found & ~protected, literal(LineRole.OWNER.value)),
                else_=literal(LineRole.INHERITED_OWNER.value))
    rule = case((protected, literal(Rule.PROTECTION_INHERITED.value)),
                (found, literal(Rule.OWNER_BASE.value)),
                else_=literal(Rule.OWNER_INHERITED.value))
    return (
        select(o.id, o.customer_id, own.employee_id, role, _rule_label(o, rule), rate, share,
               o.amount_fen, _amount(o, rate, share), o.period, own.request_id)
        .select_from(SCOPE)
        .join(o, o.id == SCOPE.c.order_id)
        .outerjoin(orig, orig.id == o.original_order_id)
        .join(own, and_(own.customer_id == o.customer_id, own.start_at <= t,
                        or_(own.end_at.is_(None), own.end_at > t)))
        .outerjoin(req, and_(req.id == own.request_id, req.effective_at <= t,
                             req.protection_end > t))
        .outerjoin(plan, _plan_at(plan, own.employee_id, t))
    )


PROTECTED_OWNER_RULES = (Rule.PROTECTION_INHERITED.value,
                         CLAWBACK_PREFIX + Rule.PROTECTION_INHERITED.value)


def original_lines_select() -> Select:
    """Pass 2, one row per owner line of pass 1 written under protection: A's line, at the rate
    A would have earned at t (rule 7: the span A held until effective_at) times s."""
    d = DESIRED.alias("d")
    o = aliased(Order, name="o")
    orig = aliased(Order, name="orig")
    req = aliased(ReassignmentRequest, name="req")
    prev = aliased(Assignment, name="prev")
    plan_a = aliased(CommissionPlan, name="plan_a")
    t = func.coalesce(orig.booked_at, o.booked_at)
    rate = cast(func.coalesce(
        case((prev.source == AssignmentSource.REASSIGNMENT.value, plan_a.inherited_rate_bp),
             else_=plan_a.base_rate_bp), 0), BigInteger)
    share = cast(req.protection_share_bp, BigInteger)
    return (
        select(o.id, o.customer_id, req.from_employee_id,
               literal(LineRole.PROTECTED_ORIGINAL.value),
               _rule_label(o, literal(Rule.PROTECTION_ORIGINAL.value)), rate, share,
               o.amount_fen, _amount(o, rate, share), o.period, req.id)
        .select_from(d)
        .join(o, o.id == d.c.order_id)
        .join(req, req.id == d.c.request_id)
        .outerjoin(orig, orig.id == o.original_order_id)
        .outerjoin(prev, and_(prev.customer_id == o.customer_id,
                              prev.employee_id == req.from_employee_id,
                              prev.end_at == req.effective_at))
        .outerjoin(plan_a, _plan_at(plan_a, req.from_employee_id, t))
        .where(d.c.rule.in_(PROTECTED_OWNER_RULES))
    )


def fill_scope(bind: Connection, scope: Select) -> None:
    """Put the order ids of `scope` (and nothing else) into SCOPE, with fresh statistics."""
    SCOPE.create(bind, checkfirst=True)
    bind.execute(delete(SCOPE))
    bind.execute(insert(SCOPE).from_select(["order_id"], scope.distinct()))
    if bind.dialect.name == "postgresql":
        # autovacuum never analyzes temporary tables: without statistics the planner guesses
        # the scope 10x too large, scans customer_order whole and turns JIT on (bench/README.md).
        # Not on SQLite: there it drives the attribution from the scope (-2.7 s CPU a year at
        # 10^6 orders) but the settlement as a whole costs 10-17% more CPU (bench/README.md)
        bind.execute(text(f"ANALYZE {SCOPE.name}"))


def _recompute(session: Session, scope: Select) -> int:
    """Bring the lines of every order in `scope` up to date. Returns lines written."""
    # psycopg reports INSERT ... SELECT row counts only when asked to keep them
    bind = session.connection().execution_options(preserve_rowcount=True)
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        # JIT compiles for 1-2 s per statement here (costs are high, rows few): never worth it
        bind.execute(text("SET LOCAL jit = off"))
    fill_scope(bind, scope)
    DESIRED.create(bind, checkfirst=True)
    bind.execute(delete(DESIRED))
    columns = [c.name for c in DESIRED.columns]
    bind.execute(insert(DESIRED).from_select(columns, owner_lines_select()))
    bind.execute(insert(DESIRED).from_select(columns, original_lines_select()))

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
    """Upsert one statement per employee with lines in `period`, with its totals; a FINAL
    statement is never touched. Set-based: no statement is loaded into Python."""
    now = utcnow()
    bind = session.connection()
    lines = CommissionLine.__table__
    statements = Statement.__table__
    upsert = postgresql_insert if bind.dialect.name == "postgresql" else sqlite_insert
    status = literal(StatementStatus.FINAL if final else StatementStatus.DRAFT,
                     statements.c.status.type)
    totals = (
        select(lines.c.employee_id, literal(period), status, func.sum(lines.c.amount_fen),
               func.count(), literal(now if final else None, UTCDateTime()),
               literal(now, UTCDateTime()))
        .where(lines.c.period == period)
        .group_by(lines.c.employee_id)
    )
    statement = upsert(statements).from_select(
        ["employee_id", "period", "status", "total_fen", "line_count", "finalized_at",
         "updated_at"], totals)
    changed = {"total_fen": statement.excluded.total_fen,
               "line_count": statement.excluded.line_count,
               "updated_at": statement.excluded.updated_at}
    if final:
        changed |= {"status": statement.excluded.status,
                    "finalized_at": statement.excluded.finalized_at}
    session.execute(statement.on_conflict_do_update(
        index_elements=["employee_id", "period"], set_=changed,
        where=statements.c.status != StatementStatus.FINAL))
    vanished = {"total_fen": 0, "line_count": 0, "updated_at": now}  # still recorded, empty
    if final:
        vanished |= {"status": StatementStatus.FINAL, "finalized_at": now}
    session.execute(update(statements).where(
        statements.c.period == period, statements.c.status != StatementStatus.FINAL,
        ~exists().where(lines.c.period == period,
                        lines.c.employee_id == statements.c.employee_id),
    ).values(**vanished))
    for loaded in list(session.identity_map.values()):  # loaded statements are stale now
        if isinstance(loaded, Statement):
            session.expire(loaded)
    return session.execute(select(func.count(func.distinct(lines.c.employee_id))).where(
        lines.c.period == period)).scalar_one()


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
    # one summary event: the lines and statement totals are derived, the month closing is not
    audit(session, "SETTLEMENT_FINALIZED", actor_id=requested_by,
          entity=("settlement_run", run.id),
          before={"period": period, "status": "OPEN", "closed_through": closed},
          after={"period": period, "status": "FINAL", "run_key": run_key, "trigger": trigger,
                 "lines_written": run.lines_written,
                 "statements_finalized": run.statements_finalized})
    return run
