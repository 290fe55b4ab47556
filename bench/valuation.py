"""Valuation refresh benchmark: 20,000 customers at 10^5 and 10^6 orders (scaling rows),
against the aggregate query.

    .venv/bin/python -m bench.valuation                          # SQLite, 100k and 1M orders
    .venv/bin/python -m bench.valuation --backend postgres
    .venv/bin/python -m bench.valuation --customers 2000 --orders 100000
    .venv/bin/python -m bench.valuation --orders 10000000        # 10^7: see bench/README.md

It builds a fresh database (schema by Alembic) and generates, deterministically, a customer
base that behaves as BG/NBD assumes: customers acquired over three years, each buying as a
Poisson process (rate ~ Gamma) and dropping out after any repeat purchase (p ~ Beta), order
values ~ Gamma around a customer mean; 1% of the rows are refunds of earlier orders; a tenth of
the customers changed owner once. Exactly `--orders` rows in customer_order; every order count
gets a fresh database.

Then, on that database, it measures:
* refresh (cold): `ValuationActivities.refresh_valuations` as the workflow's activity runs it,
  the first time in this process: aggregate SQL, pymc import and pytensor compilation, the
  BG/NBD and Gamma-Gamma MAP fits, prediction, tiers, and the bulk write of the run and one
  snapshot per customer;
* refresh (warm): the same with a new run key, as a long-lived worker runs it every night;
* retry: the same run key again, which must write nothing (idempotency);
* baseline: the per-customer aggregate query alone (the irreducible read), best of 3, warm.
The figure of merit is the ratio refresh / baseline; absolute seconds on a shared machine are
noise.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text
from sqlalchemy.engine import Engine

from domain.periods import period_of
from domain.valuation import value_customers
from models import Assignment, Customer, Employee, Order, OrgUnit, ValuationRun
from models.db import make_engine, migrate, session_factory
from models.valuation_queries import order_stats

TIMEZONE = "Asia/Shanghai"
AS_OF = datetime(2026, 1, 1, tzinfo=UTC)
HISTORY_WEEKS = 156  # customers were acquired over the three years before AS_OF
CHUNK = 20_000


@dataclass(frozen=True)
class Scale:
    customers: int = 20_000
    orders: int = 1_000_000  # rows in customer_order, refunds included
    refund_pct: float = 1.0
    salespeople: int = 200
    seed: int = 20260101


@dataclass
class Generated:
    customers: int = 0
    orders: int = 0
    refunds: int = 0
    repeat_customers: int = 0
    reassigned: int = 0
    seconds: float = 0.0


def _rows(scale: Scale) -> tuple[list[dict], list[dict], list[dict], Generated]:
    """Customers, assignments and order rows (ids in booking order)."""
    import numpy as np

    rng = np.random.default_rng(scale.seed)
    n = scale.customers
    n_refunds = round(scale.orders * scale.refund_pct / 100)
    n_orders = scale.orders - n_refunds
    if n_orders < n:
        raise SystemExit("need at least one order per customer")
    birth = rng.uniform(0, HISTORY_WEEKS, n)  # weeks after the history starts
    age = HISTORY_WEEKS - birth  # T, weeks from the first order to AS_OF
    rate = rng.gamma(0.9, 1 / 1.0, n)  # purchases per week, before scaling to the target
    dropout = rng.beta(0.4, 6.0, n)
    # repeat purchases until dropout: geometric (drop after the k-th repeat, k >= 1)
    until_dropout = rng.geometric(np.clip(dropout, 1e-6, 1))
    # scale the rates so the base has at least the target rows, then trim uniformly
    factor = 1.0
    for _ in range(60):
        arrivals = rng.poisson(rate * factor * age)
        repeats = np.minimum(arrivals, until_dropout)
        if n + repeats.sum() >= n_orders:
            break
        factor *= 1.25
    else:  # pragma: no cover
        raise SystemExit("could not generate enough orders")
    excess = int(n + repeats.sum() - n_orders)
    if excess:  # drop `excess` repeat purchases, uniformly over all of them
        owners = np.repeat(np.arange(n), repeats)
        dropped = np.bincount(owners[rng.choice(owners.size, excess, replace=False)],
                              minlength=n)
        keep = repeats - dropped
    else:
        keep = repeats
    # the first `keep` of the customer's Poisson arrivals in (0, age]: sorted uniforms
    order_customer: list[np.ndarray] = []
    order_week: list[np.ndarray] = []
    for c in range(n):
        k = int(keep[c])
        order_customer.append(np.full(k + 1, c))
        if k:
            times = np.sort(rng.uniform(0, age[c], int(arrivals[c])))[:k]
            order_week.append(np.concatenate(([birth[c]], birth[c] + times)))
        else:
            order_week.append(np.array([birth[c]]))
    cust = np.concatenate(order_customer)
    week = np.concatenate(order_week)
    mean_value = rng.gamma(3.0, 80_000 / 3.0, n)  # fen; median order ~ 600 yuan
    amount = np.maximum(1, rng.gamma(5.0, mean_value[cust] / 5.0)).astype(np.int64)
    seconds = np.floor(week * 7 * 86_400).astype(np.int64)

    # refunds: of distinct random orders, a minute to 30 days later, never after AS_OF
    horizon_s = HISTORY_WEEKS * 7 * 86_400
    eligible = np.flatnonzero(seconds < horizon_s - 120)
    picks = rng.choice(eligible, min(n_refunds, eligible.size), replace=False)
    ref_at = seconds[picks] + rng.integers(60, 30 * 86_400, picks.size)
    ref_at = np.minimum(ref_at, horizon_s - 1)
    full = rng.random(picks.size) < 0.5
    ref_amount = np.where(full, amount[picks],
                          np.maximum(1, (amount[picks] * rng.random(picks.size)).astype(np.int64)))

    start = AS_OF - timedelta(weeks=HISTORY_WEEKS)
    events = sorted(
        [(int(s), i, int(c), int(a), None) for i, (s, c, a) in
         enumerate(zip(seconds, cust, amount, strict=True))]
        + [(int(s), cust.size + j, int(cust[o]), -int(a), int(o)) for j, (s, o, a) in
           enumerate(zip(ref_at, picks, ref_amount, strict=True))])
    id_of = {seq: i for i, (_, seq, *_rest) in enumerate(events, start=1)}
    hour_period: dict[int, str] = {}
    orders = []
    for i, (at, _seq, c, a, original) in enumerate(events, start=1):
        booked = start + timedelta(seconds=at)
        period = hour_period.get(at // 3600)
        if period is None:
            period = hour_period[at // 3600] = period_of(
                start + timedelta(seconds=at - at % 3600), TIMEZONE)
        kind = "ORDER" if original is None else (
            "CANCELLATION" if -a == int(amount[original]) else "REFUND")
        orders.append({"id": i, "external_id": f"VB-{i:08d}", "kind": kind,
                       "original_order_id": None if original is None else id_of[original],
                       "customer_id": c + 1, "amount_fen": a, "currency": "CNY",
                       "booked_at": booked, "period": period, "product_line": None,
                       "content_hash": "", "received_at": booked})

    sales = list(range(2, 2 + scale.salespeople))
    customers, assignments = [], []
    reassigned = 0
    for c in range(n):
        cid = c + 1
        owner = sales[c % len(sales)]
        found = start + timedelta(weeks=float(birth[c])) - timedelta(days=1)
        customers.append({"id": cid, "code": f"VC{cid:07d}", "name": f"Customer {cid}",
                          "found_by_employee_id": owner})
        if c % 10 == 0 and age[c] > 8:  # reassigned once, some weeks after being found
            moved = found + timedelta(weeks=float(age[c]) * float(rng.uniform(0.2, 0.9)))
            assignments.append({"customer_id": cid, "employee_id": owner, "start_at": found,
                                "end_at": moved, "source": "FOUND"})
            assignments.append({"customer_id": cid, "employee_id": sales[(c + 1) % len(sales)],
                                "start_at": moved, "end_at": None, "source": "REASSIGNMENT"})
            reassigned += 1
        else:
            assignments.append({"customer_id": cid, "employee_id": owner, "start_at": found,
                                "end_at": None, "source": "FOUND"})
    generated = Generated(customers=n, orders=len(orders), refunds=int(picks.size),
                          repeat_customers=int((keep > 0).sum()), reassigned=reassigned)
    return customers, assignments, orders, generated


_ORDER_COLUMNS = ("id", "external_id", "kind", "original_order_id", "customer_id",
                  "amount_fen", "currency", "booked_at", "period", "product_line",
                  "content_hash", "received_at")


def generate(engine: Engine, scale: Scale) -> Generated:
    """Fill an empty, migrated database with the customer base; bulk inserts (COPY on PG)."""
    started = time.perf_counter()
    customers, assignments, orders, generated = _rows(scale)
    hired = AS_OF - timedelta(weeks=HISTORY_WEEKS + 52)
    employees = [{"id": 1, "employee_no": "VB-HR", "name": "Bench HR", "role": "hr",
                  "org_unit_id": 1, "hired_at": hired}]
    employees += [{"id": e, "employee_no": f"VB-S{e:05d}", "name": f"Sales {e}",
                   "role": "sales", "org_unit_id": 1, "hired_at": hired}
                  for e in range(2, 2 + scale.salespeople)]
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        conn.execute(insert(OrgUnit.__table__),
                     [{"id": 1, "name": "Bench Co", "function": "company", "parent_id": None}])
        conn.execute(insert(Employee.__table__), employees)
        for table, rows in ((Customer.__table__, customers),
                            (Assignment.__table__, assignments)):
            for i in range(0, len(rows), CHUNK):
                conn.execute(insert(table), rows[i:i + CHUNK])
        if postgres:
            raw = conn.connection.driver_connection
            with raw.cursor() as cur, cur.copy(
                    f"COPY customer_order ({', '.join(_ORDER_COLUMNS)}) FROM STDIN") as copy:
                for row in orders:
                    copy.write_row([row[c] for c in _ORDER_COLUMNS])
            for table in ("org_unit", "employee", "customer", "assignment", "customer_order"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
        else:
            for i in range(0, len(orders), CHUNK):
                conn.execute(insert(Order.__table__), orders[i:i + CHUNK])
    if postgres:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    generated.seconds = time.perf_counter() - started
    return generated


# --- the measurement -------------------------------------------------------------------------


@dataclass
class Result:
    backend: str
    generated: Generated
    cold_s: float = 0.0
    warm_s: float = 0.0
    retry_s: float = 0.0
    baseline_s: float = 0.0
    run_pass_s: float = 0.0  # one pure pass over the aggregated rows (run-rate for everyone)
    cold_parts: dict[str, float] = field(default_factory=dict)
    warm_parts: dict[str, float] = field(default_factory=dict)
    fit: dict = field(default_factory=dict)
    methods: dict = field(default_factory=dict)
    tiers: dict = field(default_factory=dict)
    snapshots: int = 0


def _parts(engine: Engine, run_id: int, total: float) -> tuple[dict[str, float], dict]:
    with session_factory(engine)() as session:
        run = session.get(ValuationRun, run_id)
        assert run is not None
        params = run.model_params
    timings, fit_s = params["timings_s"], params["fit"]["seconds"]
    fit_total = sum(fit_s.values())
    parts = {"aggregate": timings["aggregate"], **fit_s,
             "predict+value+tier": timings["fit_and_value"] - fit_total,
             "write": total - timings["aggregate"] - timings["fit_and_value"]}
    return parts, params


def measure(url: str, backend: str, scale: Scale, say=print) -> Result:
    from activities.valuation import ValuationActivities

    migrate(url)
    engine = make_engine(url)
    try:
        generated = generate(engine, scale)
        say(f"{backend}: generated {generated.customers:,} customers "
            f"({generated.repeat_customers:,} with repeat purchases, {generated.reassigned:,} "
            f"reassigned) and {generated.orders:,} order rows ({generated.refunds:,} refunds) "
            f"in {generated.seconds:.1f} s")
        sessions = session_factory(engine)
        acts = ValuationActivities(sessions)
        result = Result(backend, generated)

        started = time.perf_counter()
        cold = acts.refresh_valuations("bench-cold", AS_OF, 12, "bench")
        result.cold_s = time.perf_counter() - started
        result.cold_parts, _ = _parts(engine, cold.run_id, result.cold_s)
        say(f"{backend}: refresh (cold) {result.cold_s:.2f} s: " + _fmt(result.cold_parts))

        started = time.perf_counter()
        warm = acts.refresh_valuations("bench-warm", AS_OF, 12, "bench")
        result.warm_s = time.perf_counter() - started
        result.warm_parts, params = _parts(engine, warm.run_id, result.warm_s)
        say(f"{backend}: refresh (warm) {result.warm_s:.2f} s: " + _fmt(result.warm_parts))
        result.fit, result.methods, result.tiers = (params["fit"], params["methods"],
                                                    params["tiers"])

        started = time.perf_counter()
        again = acts.refresh_valuations("bench-warm", AS_OF, 12, "bench")
        result.retry_s = time.perf_counter() - started
        assert again.reused and again.run_id == warm.run_id
        with engine.connect() as conn:
            result.snapshots = int(conn.execute(text(
                "SELECT count(*) FROM valuation_snapshot WHERE run_id = :r"),
                {"r": warm.run_id}).scalar_one())
            runs = int(conn.execute(text("SELECT count(*) FROM valuation_run")).scalar_one())
        if result.snapshots != generated.customers or runs != 2:
            raise SystemExit(f"{backend}: expected {generated.customers} snapshots in 2 runs, "
                             f"got {result.snapshots} in {runs}")

        best = float("inf")
        stats = []
        for _ in range(3):
            started = time.perf_counter()
            with sessions() as session:
                stats = order_stats(session, AS_OF)
            best = min(best, time.perf_counter() - started)
        result.baseline_s = best
        started = time.perf_counter()
        value_customers(stats, AS_OF, 12, None, fit_reason="baseline")
        result.run_pass_s = time.perf_counter() - started
        say(f"{backend}: baseline aggregate query {best:.2f} s ({len(stats):,} rows); "
            f"run-rate pass over them {result.run_pass_s:.2f} s; retry of a finished run "
            f"{result.retry_s * 1000:.0f} ms, nothing written")
        return result
    finally:
        engine.dispose()


def _fmt(parts: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in parts.items())


@contextlib.contextmanager
def _database(backend: str, workdir: Path) -> Iterator[str]:
    if backend == "sqlite":
        workdir.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{workdir / 'valuation-bench.db'}"
        return
    from tests.pg import fresh_database, sigterm_as_interrupt, temporary_postgres

    with sigterm_as_interrupt(), temporary_postgres() as server, fresh_database(server) as url:
        yield url


def format_report(results: Sequence[Result]) -> str:
    out = [f"{'backend':<9} {'customers':>9} {'orders':>10} {'refresh cold s':>14} "
           f"{'refresh warm s':>14} {'baseline s':>10} {'warm/base':>9} {'cold/base':>9}",
           "-" * 92]
    for r in results:
        out.append(f"{r.backend:<9} {r.generated.customers:>9,} {r.generated.orders:>10,} "
                   f"{r.cold_s:>14.2f} {r.warm_s:>14.2f} {r.baseline_s:>10.2f} "
                   f"{r.warm_s / r.baseline_s:>9.2f} {r.cold_s / r.baseline_s:>9.2f}")
    for backend in dict.fromkeys(r.backend for r in results):
        rows = [r for r in results if r.backend == backend]
        for small, large in zip(rows, rows[1:], strict=False):
            n = large.generated.orders / small.generated.orders
            base = large.baseline_s / small.baseline_s
            out.append(f"{backend}: refresh({large.generated.orders:,})/refresh("
                       f"{small.generated.orders:,}) = {large.warm_s / small.warm_s:.2f}x warm "
                       f"for {n:.0f}x the orders; baseline {base:.2f}x")
    for r in results:
        p = r.fit.get("params", {})
        head = f"{r.backend} {r.generated.orders:,}"
        out.append(f"{head}: fit ok={r.fit.get('ok')} {r.fit.get('reason') or ''} "
                   + " ".join(f"{k}={v:.4g}" for k, v in p.items()))
        out.append(f"{head}: methods {r.methods}; tiers {r.tiers}; "
                   f"{r.snapshots:,} snapshots per run")
    out.append("baseline: the per-customer aggregate query alone (best of 3, warm); "
               "warm = a second refresh in the same process, as a long-lived worker runs it")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.valuation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=Scale.customers)
    parser.add_argument("--orders", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="rows in customer_order, one scaling row each (default: 100000 "
                             "1000000)")
    parser.add_argument("--seed", type=int, default=Scale.seed)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the SQLite file goes (default: a temporary directory)")
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]

    def say(message: str) -> None:
        print(f"[bench] {message}", flush=True)

    results = []
    with tempfile.TemporaryDirectory(prefix="baton-valuation-bench-", dir=args.workdir) as tmp:
        for backend in backends:
            for orders in args.orders:
                scale = Scale(customers=args.customers, orders=orders, seed=args.seed)
                with _database(backend, Path(tmp) / f"{backend}-{orders}") as url:
                    results.append(measure(url, backend, scale, say=say))
    print()
    print(format_report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
