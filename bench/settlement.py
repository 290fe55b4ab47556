"""Settlement benchmark: one year of monthly settlements against a hand-written floor query.

    .venv/bin/python -m bench.settlement                       # both backends, 100k and 1M orders
    .venv/bin/python -m bench.settlement --orders 20000 --backend sqlite

For every backend and order count it builds a fresh database (schema by Alembic), generates a
deterministic book of business on the machine, and then measures, on that same database:

* settlement: `finalize_period` for each of the 12 months of the year in order, each month in
  its own transaction, exactly as the settlement workflow's activity calls it;
* floor: ONE hand-written SQL statement that computes the same per-employee yearly totals with
  the same attribution rules (DESIGN.md "Commission attribution") without writing anything.

The settled lines are summed per employee and must equal the floor's totals, or the run fails.
The floor is run once untimed before the settlement (to warm the cache for both), and timed
after the settlement; both figures are warm. The ratio settlement/floor is the figure of merit;
absolute seconds on a shared machine are noise. CPU seconds (this process plus, on a local
PostgreSQL, the server's backends) are printed too: they move much less with other people's load.
Also printed, outside the ratio: how long writing the settled lines takes by itself (the same
rows back into the same table, a month per transaction), and the generation time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import resource
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Table, insert, text
from sqlalchemy.engine import Connection, Engine

from domain.periods import period_of
from domain.policy import ApprovalLevelRule, PolicyRules, Terms
from domain.stages import Reason, Role
from models import (
    Assignment,
    AssignmentSource,
    CommissionPlan,
    Customer,
    Employee,
    Order,
    OrderKind,
    OrgUnit,
    PolicyStatus,
    PolicyVersion,
    ReassignmentRequest,
    RequestCustomer,
)
from models.commission_engine import finalize_period
from models.db import make_engine, migrate, session_factory

YEAR = 2025
PERIODS = [f"{YEAR}-{month:02d}" for month in range(1, 13)]
# the organisation's default timezone (settings.org_timezone), fixed here so that every run
# generates the same months; the engine and the floor both read the stored Order.period
TIMEZONE = "Asia/Shanghai"
# the year in the organisation's timezone, in UTC; all generated times are whole seconds from here
YEAR_START = datetime(YEAR - 1, 12, 31, 16, 0, tzinfo=UTC)  # YEAR-01-01T00:00+08:00
YEAR_SECONDS = 365 * 86_400
DAY = 86_400
HISTORY_START = -2 * 365 * DAY  # customers were found two years before the year
CHUNK = 20_000


@dataclass(frozen=True)
class Scale:
    orders: int = 1_000_000  # rows in customer_order, refunds included
    customers: int = 20_000
    salespeople: int = 500
    reassigned: int = 5_000  # customers reassigned during the year
    refund_pct: float = 1.0
    seed: int = 20250101


@dataclass
class Generated:
    orders: int = 0
    refunds: int = 0
    customers: int = 0
    salespeople: int = 0
    plans: int = 0
    requests: int = 0
    reassigned: int = 0
    protected_at_year_end: int = 0
    boundary_orders: int = 0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0  # of this process so far (Linux ru_maxrss), not of this run alone


def _at(seconds: int) -> datetime:
    return YEAR_START + timedelta(seconds=seconds)


def bench_policy_rules() -> PolicyRules:
    level = {"sla": timedelta(days=3), "reminder_after": timedelta(days=2)}
    return PolicyRules(
        allowed_reasons=list(Reason), communication_window=timedelta(days=7),
        signature_deadline=timedelta(days=7),
        approval_levels=[ApprovalLevelRule(role=r, **level)
                         for r in (Role.MANAGER, Role.DIRECTOR, Role.HR)],
        protection_period=timedelta(days=180), protection_share_bp=5_000,
        inherited_rate_bp=200,
    )


# --- data generation -------------------------------------------------------------------------


@dataclass
class _Book:
    """Everything but the orders, as rows, plus what the order generator needs to know."""

    units: list[dict] = field(default_factory=list)
    employees: list[dict] = field(default_factory=list)
    plans: list[dict] = field(default_factory=list)
    customers: list[dict] = field(default_factory=list)
    assignments: list[dict] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    request_customers: list[dict] = field(default_factory=list)
    # (customer, seconds) orders that must exist: bookings exactly on a boundary
    pinned: list[tuple[int, int]] = field(default_factory=list)
    protected_at_year_end: int = 0


def _build_book(rnd: random.Random, scale: Scale) -> _Book:
    book = _Book()
    book.units = [
        {"id": 1, "name": "Bench Co", "function": "company", "parent_id": None},
        {"id": 2, "name": "Sales", "function": "sales", "parent_id": 1},
        {"id": 3, "name": "HR", "function": "hr", "parent_id": 1},
    ]
    teams = max(1, scale.salespeople // 50)
    book.units += [{"id": 4 + i, "name": f"Team {i + 1}", "function": "team", "parent_id": 2}
                   for i in range(teams)]
    hired = _at(HISTORY_START - 365 * DAY)
    book.employees.append({"id": 1, "employee_no": "BENCH-HR", "name": "Bench HR", "role": "hr",
                           "org_unit_id": 3, "hired_at": hired})
    sales = list(range(2, 2 + scale.salespeople))
    for i, emp in enumerate(sales):
        book.employees.append({"id": emp, "employee_no": f"BENCH-S{i:05d}",
                               "name": f"Sales {i}", "role": "sales",
                               "org_unit_id": 4 + i % teams, "manager_id": None,
                               "hired_at": hired})

    rates = range(300, 850, 50)
    inherited = range(100, 450, 50)
    plan_changes: dict[int, int] = {}  # employee -> seconds of the mid-year plan change
    for emp in sales:
        first = {"employee_id": emp, "effective_from": _at(HISTORY_START),
                 "effective_to": None, "base_rate_bp": rnd.choice(rates),
                 "inherited_rate_bp": rnd.choice(inherited), "created_by": 1}
        book.plans.append(first)
        if rnd.random() < 0.4:  # a new plan from some moment in March..October
            change = rnd.randint(60 * DAY, 300 * DAY)
            first["effective_to"] = _at(change)
            plan_changes[emp] = change
            book.plans.append({"employee_id": emp, "effective_from": _at(change),
                               "effective_to": None, "base_rate_bp": rnd.choice(rates),
                               "inherited_rate_bp": rnd.choice(inherited), "created_by": 1})
    for i, plan in enumerate(book.plans, start=1):
        plan["id"] = i

    found_by = {c: rnd.choice(sales) for c in range(1, scale.customers + 1)}
    book.customers = [{"id": c, "code": f"BC{c:07d}", "name": f"Customer {c}",
                       "found_by_employee_id": found_by[c]} for c in found_by]
    reassigned = set(rnd.sample(sorted(found_by), min(scale.reassigned, scale.customers)))
    terms_rules = bench_policy_rules()

    def request(customer: int, a: int, b: int, effective: int, end: int, share: int,
                stage: str) -> int:
        rid = len(book.requests) + 1
        terms = Terms(protection_period=timedelta(seconds=end - effective),
                      protection_share_bp=share,
                      inherited_rate_bp=terms_rules.inherited_rate_bp)
        book.requests.append({
            "id": rid, "workflow_id": f"reassignment-{rid}", "idempotency_key": f"bench-{rid}",
            "payload_hash": "0" * 64, "requester_id": 1, "from_employee_id": a,
            "to_employee_id": b, "customer_ids": [customer], "reason": "TERRITORY_REALIGNMENT",
            "stage": stage, "policy_version_id": 1, "terms": terms.model_dump(mode="json"),
            "effective_at": _at(effective), "protection_end": _at(end),
            "protection_share_bp": share, "closed_at": _at(end) if stage == "COMPLETED" else None,
        })
        book.request_customers.append({"request_id": rid, "customer_id": customer})
        return rid

    def span(customer: int, emp: int, start: int, end: int | None,
             source: AssignmentSource, rid: int | None = None) -> None:
        book.assignments.append({
            "id": len(book.assignments) + 1, "customer_id": customer, "employee_id": emp,
            "start_at": _at(start), "end_at": None if end is None else _at(end),
            "source": source, "request_id": rid})

    shares = (3_000, 5_000, 5_000, 7_000, 10_000, 0)
    n = 0  # reassigned customers so far: every other one is still protected at year end
    for customer in sorted(found_by):
        x = found_by[customer]
        if customer not in reassigned:
            span(customer, x, HISTORY_START, None, AssignmentSource.FOUND)
            continue
        n += 1
        a, start = x, HISTORY_START
        if rnd.random() < 0.1:  # A received the customer by reassignment last year (rule 7)
            a = rnd.choice([s for s in sales if s != x]) if len(sales) > 1 else x
            e0 = rnd.randint(-300 * DAY, -200 * DAY)
            r0 = request(customer, x, a, e0, e0 + 90 * DAY, rnd.choice(shares), "COMPLETED")
            span(customer, x, HISTORY_START, e0, AssignmentSource.FOUND)
            span(customer, a, e0, None, AssignmentSource.REASSIGNMENT, r0)
            start = e0
        b = rnd.choice([s for s in sales if s != a]) if len(sales) > 1 else a
        if n % 2 == 0:  # protection ends mid-year
            effective = rnd.randint(14 * DAY, 180 * DAY)
            end = effective + rnd.randint(30 * DAY, 150 * DAY)
            stage = "COMPLETED"
        else:  # still inside protection when the year ends
            effective = rnd.randint(185 * DAY, 349 * DAY)
            end = effective + 180 * DAY
            stage = "PROTECTION"
            book.protected_at_year_end += 1
        rid = request(customer, a, b, effective, end, rnd.choice(shares), stage)
        if start == HISTORY_START:
            span(customer, a, HISTORY_START, effective, AssignmentSource.FOUND)
        else:
            book.assignments[-1]["end_at"] = _at(effective)  # close A's received span
        span(customer, b, effective, None, AssignmentSource.REASSIGNMENT, rid)
        # bookings exactly at the boundaries (start inclusive, end exclusive)
        if rnd.random() < 0.2:
            book.pinned.append((customer, effective))
        if rnd.random() < 0.2 and end < YEAR_SECONDS:
            book.pinned.append((customer, end))

    by_owner: dict[int, list[int]] = {}
    for customer, emp in found_by.items():
        if customer not in reassigned:
            by_owner.setdefault(emp, []).append(customer)
    for emp, change in plan_changes.items():  # an order exactly at a plan change
        if by_owner.get(emp):
            book.pinned.append((rnd.choice(by_owner[emp]), change))
    return book


_KINDS = (OrderKind.ORDER.value, OrderKind.REFUND.value, OrderKind.CANCELLATION.value)


@dataclass
class _OrderEvents:
    """Every order and refund as parallel typed arrays (8 bytes a field, not a dict a row), so
    10^7 orders fit in memory; `by_booking` is each event's sequence number in booking order."""

    at: array = field(default_factory=lambda: array("q"))
    customer: array = field(default_factory=lambda: array("q"))
    amount: array = field(default_factory=lambda: array("q"))
    kind: array = field(default_factory=lambda: array("b"))
    original: array = field(default_factory=lambda: array("q"))  # sequence number, -1: none
    by_booking: array = field(default_factory=lambda: array("q"))
    refunds: int = 0

    def add(self, at: int, customer: int, amount: int, kind: int, original: int = -1) -> None:
        self.at.append(at)
        self.customer.append(customer)
        self.amount.append(amount)
        self.kind.append(kind)
        self.original.append(original)

    def __len__(self) -> int:
        return len(self.at)


def _order_events(rnd: random.Random, scale: Scale,
                  pinned: Sequence[tuple[int, int]]) -> _OrderEvents:
    """All customer_order events; refunds last their original by at least a minute and stay
    inside the year. Draws the same random numbers in the same order as the list-of-dicts
    generator it replaces, so the data (and the figures' totals) are unchanged."""
    n_refunds = round(scale.orders * scale.refund_pct / 100)
    n_originals = max(1, scale.orders - n_refunds)
    weights = [rnd.lognormvariate(0, 1) for _ in range(scale.customers)]
    cum, total = [], 0.0
    for w in weights:
        total += w
        cum.append(total)
    pinned = list(pinned)[:n_originals]
    n_random = n_originals - len(pinned)
    customers = array("q", rnd.choices(range(1, scale.customers + 1), cum_weights=cum,
                                       k=n_random))
    events = _OrderEvents()
    order, refund, cancellation = range(3)
    for customer, at in pinned:
        events.add(at, customer, _amount(rnd), order)
    for customer in customers:
        events.add(rnd.randrange(YEAR_SECONDS), customer, _amount(rnd), order)
    del customers
    originals = range(len(events))
    refunded: set[int] = set()
    made = 0
    while made < n_refunds and len(refunded) < len(originals):
        seq = rnd.choice(originals)
        at, customer, amount = events.at[seq], events.customer[seq], events.amount[seq]
        room = YEAR_SECONDS - 1 - at
        if room < 120 or amount < 2 or seq in refunded:
            refunded.add(seq)
            continue
        refunded.add(seq)
        first_at = at + rnd.randint(60, min(room - 60, 40 * DAY))
        if made + 1 < n_refunds and rnd.random() < 0.25:  # a partial refund, then the rest
            part = rnd.randint(1, amount - 1)
            second_at = first_at + rnd.randint(1, max(1, min(YEAR_SECONDS - 1 - first_at,
                                                               30 * DAY)))
            events.add(first_at, customer, -part, refund, seq)
            events.add(second_at, customer, -(amount - part), cancellation, seq)
            made += 2
        elif rnd.random() < 0.5:
            events.add(first_at, customer, -amount, cancellation, seq)
            made += 1
        else:
            events.add(first_at, customer, -rnd.randint(1, amount), refund, seq)
            made += 1
    events.refunds = len(events) - n_originals
    # booking order = (at, sequence), packed into one integer per event to sort compactly
    count, earliest = len(events), min(events.at)
    keys = sorted((at - earliest) * count + seq for seq, at in enumerate(events.at))
    events.by_booking = array("q", (key % count for key in keys))
    return events


def _order_row_chunks(events: _OrderEvents, timezone: str,
                      size: int = CHUNK) -> Iterator[list[dict]]:
    """customer_order rows, ids in booking order, `size` rows at a time: only one chunk of
    dicts exists at once."""
    id_of = array("q", bytes(8 * len(events)))
    for i, seq in enumerate(events.by_booking, start=1):
        id_of[seq] = i
    hour_period: dict[int, str] = {}  # month edges fall on whole hours in UTC
    lines = ("hardware", "software", "services", "support")
    rows: list[dict] = []
    for i, seq in enumerate(events.by_booking, start=1):
        at, customer, original = events.at[seq], events.customer[seq], events.original[seq]
        booked = _at(at)
        period = hour_period.get(at // 3600)
        if period is None:
            period = hour_period[at // 3600] = period_of(_at(at - at % 3600), timezone)
        rows.append({"id": i, "external_id": f"BENCH-{i:08d}", "kind": _KINDS[events.kind[seq]],
                     "original_order_id": None if original < 0 else id_of[original],
                     "customer_id": customer, "amount_fen": events.amount[seq],
                     "currency": "CNY", "booked_at": booked, "period": period,
                     "product_line": lines[customer % 4], "content_hash": "",
                     "received_at": booked})
        if len(rows) == size:
            yield rows
            rows = []
    if rows:
        yield rows


def _amount(rnd: random.Random) -> int:
    return max(1, min(10**9, int(rnd.lognormvariate(11, 1.2))))  # median ~600 yuan


def _insert(conn: Connection, table: Table, rows: list[dict]) -> None:
    for i in range(0, len(rows), CHUNK):
        conn.execute(insert(table), rows[i:i + CHUNK])


_ORDER_COLUMNS = ("id", "external_id", "kind", "original_order_id", "customer_id",
                  "amount_fen", "currency", "booked_at", "period", "product_line",
                  "content_hash", "received_at")


def _copy_orders(conn: Connection, chunks: Iterable[list[dict]]) -> None:
    """PostgreSQL: COPY is several times faster than multi-row INSERTs."""
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(
            f"COPY customer_order ({', '.join(_ORDER_COLUMNS)}) FROM STDIN") as copy:
        for rows in chunks:
            for row in rows:
                copy.write_row([row[c] for c in _ORDER_COLUMNS])


def generate(engine: Engine, scale: Scale, timezone: str = TIMEZONE) -> Generated:
    """Fill an empty, migrated database with one deterministic year of business."""
    started = time.perf_counter()
    rnd = random.Random(scale.seed)
    book = _build_book(rnd, scale)
    orders = _order_events(rnd, scale, book.pinned)
    chunks = _order_row_chunks(orders, timezone)
    policy = {"id": 1, "name": "bench", "version": 1, "status": PolicyStatus.PUBLISHED,
              "rules": bench_policy_rules().model_dump(mode="json"),
              "published_at": _at(HISTORY_START)}
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        _insert(conn, OrgUnit.__table__, book.units)
        _insert(conn, Employee.__table__, book.employees)
        _insert(conn, PolicyVersion.__table__, [policy])
        _insert(conn, CommissionPlan.__table__, book.plans)
        _insert(conn, Customer.__table__, book.customers)
        _insert(conn, ReassignmentRequest.__table__, book.requests)
        _insert(conn, RequestCustomer.__table__, book.request_customers)
        _insert(conn, Assignment.__table__, book.assignments)
        if postgres:
            _copy_orders(conn, chunks)
            for table in ("org_unit", "employee", "policy_version", "commission_plan",
                          "customer", "reassignment_request", "assignment", "customer_order"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
        else:
            for rows in chunks:
                conn.execute(insert(Order.__table__), rows)
    # fresh statistics, as autovacuum would gather on PostgreSQL; same for both contenders
    if postgres:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return Generated(
        orders=len(orders), refunds=orders.refunds, customers=len(book.customers),
        salespeople=len(book.employees) - 1, plans=len(book.plans),
        requests=len(book.requests), reassigned=len({r["customer_ids"][0] for r in book.requests
                                                     if r["effective_at"] >= YEAR_START}),
        protected_at_year_end=book.protected_at_year_end, boundary_orders=len(book.pinned),
        seconds=time.perf_counter() - started,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


# --- the contenders --------------------------------------------------------------------------


def settle_year(engine: Engine, periods: Sequence[str] = PERIODS) -> list[float]:
    """finalize_period for each month in order, one transaction each. Seconds per month."""
    sessions = session_factory(engine)
    seconds = []
    for period in periods:
        started = time.perf_counter()
        with sessions() as session:
            finalize_period(session, period, run_key=f"bench-{period}", trigger="bench")
        seconds.append(time.perf_counter() - started)
    return seconds


def _fen(rate: str, share: str) -> str:
    """One line's amount, as domain.commission: half-up per line on the magnitude; refunds
    claw back cumulatively (clawback_amount). `a` is the row's amount, `before_fen` what
    earlier refunds of the same original already took (NULL for orders)."""
    r, s = f"COALESCE({rate}, 0)", share

    def rounded(fen: str) -> str:
        return f"(({fen}) * {r} * {s} + 50000000) / 100000000"

    return (f"CASE WHEN before_fen IS NOT NULL "
            f"THEN {rounded('before_fen')} - {rounded('before_fen - a')} "
            f"WHEN a >= 0 THEN {rounded('a')} ELSE -{rounded('-a')} END")


# One statement, the same text on SQLite and PostgreSQL. Per order (or refund) at time t (the
# original's booking time for refunds): the owner's span at t; the request's protection if t is
# inside it; A's span that ended at effective_at (rule 7); both plans in force at t. Each order
# yields an owner line (b_*) and, inside protection, a protected-original line (a_*). Lines are
# summed per (owner, original) pair first, then unpivoted into per-employee totals.
FLOOR_SQL = f"""
WITH refund AS (
    SELECT r.id AS order_id,
           CAST(COALESCE(SUM(-r.amount_fen) OVER (
               PARTITION BY r.original_order_id ORDER BY r.id
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS BIGINT) AS before_fen
    FROM customer_order r
    WHERE r.original_order_id IS NOT NULL
),
ord AS (
    SELECT o.customer_id, o.amount_fen AS a, rf.before_fen,
           COALESCE(orig.booked_at, o.booked_at) AS t
    FROM customer_order o
    LEFT JOIN customer_order orig ON orig.id = o.original_order_id
    LEFT JOIN refund rf ON rf.order_id = o.id
    WHERE o.period BETWEEN :first AND :last
),
line AS (
    SELECT ord.a, ord.before_fen,
           own.employee_id AS b_id,
           CASE WHEN req.id IS NULL AND own.source = 'FOUND' THEN po.base_rate_bp
                ELSE po.inherited_rate_bp END AS b_rate,
           CASE WHEN req.id IS NULL THEN 10000
                ELSE 10000 - req.protection_share_bp END AS b_share,
           req.from_employee_id AS a_id,
           CASE WHEN prev.source = 'REASSIGNMENT' THEN pa.inherited_rate_bp
                ELSE pa.base_rate_bp END AS a_rate,
           req.protection_share_bp AS a_share
    FROM ord
    JOIN assignment own
      ON own.customer_id = ord.customer_id AND own.start_at <= ord.t
     AND (own.end_at IS NULL OR own.end_at > ord.t)
    LEFT JOIN reassignment_request req
      ON req.id = own.request_id AND req.effective_at <= ord.t AND req.protection_end > ord.t
    LEFT JOIN assignment prev
      ON prev.customer_id = ord.customer_id AND prev.employee_id = req.from_employee_id
     AND prev.end_at = req.effective_at
    LEFT JOIN commission_plan po
      ON po.employee_id = own.employee_id AND po.effective_from <= ord.t
     AND (po.effective_to IS NULL OR po.effective_to > ord.t)
    LEFT JOIN commission_plan pa
      ON pa.employee_id = req.from_employee_id AND pa.effective_from <= ord.t
     AND (pa.effective_to IS NULL OR pa.effective_to > ord.t)
),
pair AS MATERIALIZED (
    SELECT b_id, a_id, SUM({_fen('b_rate', 'b_share')}) AS b_fen,
           SUM({_fen('a_rate', 'a_share')}) AS a_fen
    FROM line
    GROUP BY b_id, a_id
)
SELECT employee_id, SUM(fen) AS total_fen
FROM (SELECT b_id AS employee_id, b_fen AS fen FROM pair
      UNION ALL
      SELECT a_id, a_fen FROM pair WHERE a_id IS NOT NULL) AS per_role
GROUP BY employee_id
"""


def floor_totals(engine: Engine, periods: Sequence[str] = PERIODS) -> dict[int, int]:
    with engine.connect() as conn:
        rows = conn.execute(text(FLOOR_SQL), {"first": periods[0], "last": periods[-1]}).all()
    return {int(employee): int(total) for employee, total in rows}


def settled_totals(engine: Engine, periods: Sequence[str] = PERIODS) -> dict[int, int]:
    """Per employee: the sum of the settled lines, checked against the final statements."""
    params = {"first": periods[0], "last": periods[-1]}
    with engine.connect() as conn:
        lines = {int(e): int(t) for e, t in conn.execute(text(
            "SELECT employee_id, SUM(amount_fen) FROM commission_line "
            "WHERE period BETWEEN :first AND :last GROUP BY employee_id"), params)}
        statements = {int(e): int(t) for e, t in conn.execute(text(
            "SELECT employee_id, SUM(total_fen) FROM statement WHERE status = 'FINAL' "
            "AND period BETWEEN :first AND :last GROUP BY employee_id"), params)}
    if {e: t for e, t in statements.items() if t} != {e: t for e, t in lines.items() if t}:
        raise AssertionError("final statements do not add up to their lines")
    return lines


def count_lines(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM commission_line")).scalar_one())


def compare(settled: dict[int, int], floor: dict[int, int]) -> list[str]:
    """Differences as readable lines; empty when the totals are identical."""
    out = []
    for employee in sorted(set(settled) | set(floor)):
        s, f = settled.get(employee), floor.get(employee)
        if s != f:
            out.append(f"employee {employee}: settlement {s} floor {f}")
    return out


DatabaseFactory = Callable[[str], contextlib.AbstractContextManager[str]]


# --- one measurement -------------------------------------------------------------------------


@dataclass
class Timing:
    wall_s: float = 0.0
    cpu_s: float | None = None  # this process + the PostgreSQL server's backends, when visible


def _proc_stat(pid: int) -> tuple[int, float, float] | None:
    """(parent pid, own CPU seconds, CPU seconds of its reaped children) from /proc/<pid>/stat;
    None when the process is not visible."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # from field 3 on: state, ppid, ...
    tick = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    reaped = (int(fields[13]) + int(fields[14])) / tick  # cutime, cstime
    return int(fields[1]), own, reaped


class Clock:
    """Wall time and CPU time. Work on a shared machine waits for a core, so wall seconds swing
    with other people's load; CPU seconds much less. On PostgreSQL the work happens in the server,
    so CPU counts the whole server too (Linux, server on this machine, e.g. the temporary
    cluster): the postmaster, its live children (backends, parallel workers, autovacuum) and the
    children it has reaped. Otherwise CPU is not reported for PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.postmaster: int | None = None
        self.server = engine.dialect.name == "postgresql"
        if self.server:
            with engine.connect() as conn:
                backend = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
            found = _proc_stat(backend)
            self.postmaster = found[0] if found else None

    def _server_cpu(self) -> float:
        assert self.postmaster is not None
        master = _proc_stat(self.postmaster)
        total = master[1] + master[2] if master else 0.0
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                found = _proc_stat(int(entry.name))
                if found and found[0] == self.postmaster:
                    total += found[1]
        return total

    @contextlib.contextmanager
    def measure(self) -> Iterator[Timing]:
        timing = Timing()
        server_before = self._server_cpu() if self.postmaster else 0.0
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        yield timing
        timing.wall_s = time.perf_counter() - wall_before
        if self.server and not self.postmaster:
            return
        timing.cpu_s = time.process_time() - cpu_before
        if self.postmaster:
            timing.cpu_s += self._server_cpu() - server_before


def write_floor(engine: Engine, clock: Clock, periods: Sequence[str] = PERIODS) -> Timing:
    """What writing the settled lines costs by itself: the same rows go back into the same
    table (same indexes, unique key and foreign keys), month by month, one INSERT .. SELECT and
    one transaction per month as the settlement does. Runs last; leaves the same rows behind.
    Not part of the ratio: it shows how much of the settlement is plain writing."""
    with engine.connect() as conn:
        with conn.begin():
            conn.execute(text("CREATE TEMPORARY TABLE bench_lines AS "
                              "SELECT * FROM commission_line ORDER BY id"))
            conn.execute(text("CREATE INDEX bench_lines_period ON bench_lines (period)"))
            conn.execute(text("TRUNCATE commission_line" if clock.server
                              else "DELETE FROM commission_line"))
        with clock.measure() as timing:
            for period in periods:
                with conn.begin():
                    conn.execute(text("INSERT INTO commission_line SELECT * FROM bench_lines "
                                      "WHERE period = :period ORDER BY id"), {"period": period})
        with conn.begin():
            kept, back = (conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                          for table in ("bench_lines", "commission_line"))
            conn.execute(text("DROP TABLE bench_lines"))
    if kept != back:
        raise AssertionError(f"{kept - back} settled lines lie outside the year")
    return timing


@dataclass
class Result:
    backend: str
    orders: int
    generated: Generated
    settlement: Timing
    floor: Timing
    write: Timing
    month_s: list[float]
    lines: int
    employees: int

    @property
    def ratio(self) -> float:
        return self.settlement.wall_s / self.floor.wall_s

    @property
    def cpu_ratio(self) -> float | None:
        if self.settlement.cpu_s is None or not self.floor.cpu_s:
            return None
        return self.settlement.cpu_s / self.floor.cpu_s


def measure(url: str, backend: str, scale: Scale, *, say: Callable[[str], None] = print,
            floor_runs: int = 1) -> Result:
    """Migrate, generate, settle the year, run the floor; fail loudly if the totals differ."""
    migrate(url)
    engine = make_engine(url)
    try:
        generated = generate(engine, scale)
        say(f"{backend} {scale.orders:,}: generated {generated.orders:,} orders "
            f"({generated.refunds:,} refunds), {generated.reassigned:,} reassigned customers "
            f"({generated.protected_at_year_end:,} still protected at year end) "
            f"in {generated.seconds:.1f} s; peak RSS so far {generated.peak_rss_mb:,.0f} MB")
        clock = Clock(engine)
        floor_totals(engine)  # warm-up, untimed: both contenders then run on a warm cache
        with clock.measure() as settlement:
            months = settle_year(engine)
        say(f"{backend} {scale.orders:,}: settlement {settlement.wall_s:.2f} s "
            f"(months {', '.join(f'{m:.2f}' for m in months)})")
        best: Timing | None = None
        floor: dict[int, int] = {}
        for _ in range(floor_runs):
            with clock.measure() as timing:
                floor = floor_totals(engine)
            best = timing if best is None or timing.wall_s < best.wall_s else best
        assert best is not None
        settled = settled_totals(engine)
        differences = compare(settled, floor)
        if differences:
            raise SystemExit(f"{backend} {scale.orders:,}: TOTALS DIFFER for "
                             f"{len(differences)} employees:\n  " + "\n  ".join(differences[:20]))
        say(f"{backend} {scale.orders:,}: floor {best.wall_s:.2f} s; totals match "
            f"({len(settled)} employees, {sum(settled.values()):,} fen)")
        lines = count_lines(engine)
        write = write_floor(engine, clock)
        say(f"{backend} {scale.orders:,}: writing the {lines:,} settled lines alone "
            f"takes {write.wall_s:.2f} s")
        return Result(backend, generated.orders, generated, settlement, best, write, months,
                      lines, len(settled))
    finally:
        engine.dispose()


@contextlib.contextmanager
def _databases(backend: str, workdir: Path) -> Iterator[DatabaseFactory]:
    """Yields a factory of fresh, empty database URLs for `backend`."""
    if backend == "sqlite":
        @contextlib.contextmanager
        def sqlite_db(name: str) -> Iterator[str]:
            path = workdir / f"{name}.db"
            yield f"sqlite:///{path}"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

        yield sqlite_db
        return
    from tests.pg import fresh_database, temporary_postgres

    with temporary_postgres() as server:
        @contextlib.contextmanager
        def pg_db(_name: str) -> Iterator[str]:
            with fresh_database(server) as url:
                yield url

        yield pg_db


def _cpu(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(results: Iterable[Result]) -> str:
    results = list(results)
    out = [f"{'backend':<9} {'orders':>10} {'gen s':>6} {'settle s':>9} {'floor s':>8} "
           f"{'ratio':>6} {'settle cpu':>10} {'floor cpu':>9} {'cpu ratio':>9} {'write s':>8} "
           f"{'lines':>10}", "-" * 104]
    for r in results:
        out.append(f"{r.backend:<9} {r.orders:>10,} {r.generated.seconds:>6.1f} "
                   f"{r.settlement.wall_s:>9.2f} {r.floor.wall_s:>8.2f} {r.ratio:>6.2f} "
                   f"{_cpu(r.settlement.cpu_s, 2):>10} {_cpu(r.floor.cpu_s, 2):>9} "
                   f"{_cpu(r.cpu_ratio, 2):>9} {r.write.wall_s:>8.2f} {r.lines:>10,}")
    by_backend: dict[str, list[Result]] = {}
    for r in results:
        by_backend.setdefault(r.backend, []).append(r)
    for backend, rows in by_backend.items():
        rows.sort(key=lambda r: r.orders)
        for small, big in zip(rows, rows[1:], strict=False):
            cpu = ""
            if big.settlement.cpu_s and small.settlement.cpu_s:
                cpu = f" (cpu {big.settlement.cpu_s / small.settlement.cpu_s:.2f}x)"
            out.append(f"{backend}: settlement({big.orders:,})/settlement({small.orders:,}) = "
                       f"{big.settlement.wall_s / small.settlement.wall_s:.2f}x{cpu} for "
                       f"{big.orders / small.orders:.0f}x the orders; floor "
                       f"{big.floor.wall_s / small.floor.wall_s:.2f}x")
    out.append("goal: settlement <= 1.5x floor; 10x the orders <= 11x the settlement time")
    out.append("write s: only writing the settled lines again, a month per transaction "
               "(not in the ratio)")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.settlement", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="order counts to run (refunds included); default 100000 1000000")
    parser.add_argument("--customers", type=int, default=Scale.customers)
    parser.add_argument("--salespeople", type=int, default=Scale.salespeople)
    parser.add_argument("--reassigned", type=int, default=Scale.reassigned)
    parser.add_argument("--seed", type=int, default=Scale.seed)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--floor-runs", type=int, default=1,
                        help="time the floor this many times after the settlement; keep the "
                             "fastest (default 1)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where SQLite files go (default: a temporary directory)")
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]

    def say(message: str) -> None:
        print(f"[bench] {message}", flush=True)

    from tests.pg import sigterm_as_interrupt

    results: list[Result] = []
    # SIGTERM (e.g. `timeout`) unwinds too: the SQLite files and the PostgreSQL cluster go
    with sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="baton-bench-",
                                                             dir=args.workdir) as tmp:
        for backend in backends:
            with _databases(backend, Path(tmp)) as database:
                for orders in args.orders:
                    scale = Scale(orders=orders, customers=args.customers,
                                  salespeople=args.salespeople, reassigned=args.reassigned,
                                  seed=args.seed)
                    with database(f"{backend}-{orders}") as url:
                        results.append(measure(url, backend, scale, say=say,
                                               floor_runs=args.floor_runs))
    print()
    print(format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["FLOOR_SQL", "Generated", "Result", "Scale", "floor_totals", "generate", "main",
           "measure", "settle_year", "settled_totals"]