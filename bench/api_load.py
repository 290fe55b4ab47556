"""API under load: 100 concurrent clients against details, filtered lists and the approval inbox.

    .venv/bin/python -m bench.api_load                          # both backends, 100k/1M, 60 s
    .venv/bin/python -m bench.api_load --backend sqlite --customers 10000 --orders 100000 \\
        --duration 15                                           # while developing

For each backend it builds a fresh database (schema by Alembic) and seeds it in bulk: the
settlement benchmark's book of business (bench.settlement.generate: customers, assignment
history, 1M orders by COPY on PostgreSQL, reassignments in protection and completed), plus an
org around it (team managers, a director, HR, legal and finance, every salesperson under their
team's manager, a login account for each), open requests in every stage with their approval
steps (so the approvers' inboxes hold work, some overdue), and two settled months (commission
lines and final statements). Then it starts the API as real uvicorn processes on loopback
(`--workers`, default 2, one per core here) with no Temporal reachable (the request detail then
answers from the database, `live` empty), and runs locust headless with `--users` clients and
no think time for `--duration` seconds (saturation: `--users` requests always in flight). With
`--think-time MIN MAX` a second run follows on the same database and API processes, each client
waiting MIN..MAX seconds between requests like a person reading a page (`--think-only` skips
the saturation run). Bearer tokens are made once, before the run.

It prints p50/p95/p99 per endpoint and per group, the error count, and the ratio of each to
the baseline: GET /healthz (touches nothing) in the same mix, under the same load. Goals: p99
<= 50 ms for details and <= 150 ms for filtered, paginated lists, with 0 errors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.engine import Connection, Engine

from bench.settlement import Scale, _proc_stat, generate
from models import ApprovalStep, Employee, ReassignmentRequest, RequestCustomer, UserAccount
from models.commission_engine import finalize_period
from models.db import make_engine, migrate, session_factory

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LOCUSTFILE = Path(__file__).with_name("locustfile_api.py")
JWT_SECRET = "bench-api-load-secret-0123456789abcdef-not-for-production"
SETTLED = ("2025-11", "2025-12")  # months settled before the run (lines + final statements)
GOALS_MS = {"detail": 50.0, "list": 150.0}
GROUPS = ("baseline", "detail", "list", "inbox")
CHUNK = 20_000
# stages of the extra requests: (stage, share); PENDING_APPROVAL waits at level 1, 2 or 3
STAGE_MIX = (("PENDING_APPROVAL", 0.5), ("COMMUNICATION", 0.1), ("AWAITING_SIGNATURE", 0.1),
             ("REJECTED", 0.15), ("WITHDRAWN", 0.15))


@dataclass
class Org:
    """Who is who after seeding, for the locust plan."""

    hr: list[int] = field(default_factory=list)
    managers: dict[int, list[int]] = field(default_factory=dict)  # manager -> team sales
    director: int = 0
    sales: list[int] = field(default_factory=list)
    accounts: dict[int, tuple[int, str]] = field(default_factory=dict)  # emp -> (user, name)
    request_ids: list[int] = field(default_factory=list)
    statements: list[tuple[int, str]] = field(default_factory=list)
    customer_codes: dict[int, list[str]] = field(default_factory=dict)  # owner -> codes
    pending: int = 0
    seconds: float = 0.0


def _table(model: type) -> Any:
    return model.__table__  # type: ignore[attr-defined]


def _insert(conn: Connection, table: Any, rows: list[dict]) -> None:
    for i in range(0, len(rows), CHUNK):
        conn.execute(insert(table), rows[i:i + CHUNK])


def _max_id(conn: Connection, table: str) -> int:
    return int(conn.execute(text(f"SELECT COALESCE(MAX(id), 0) FROM {table}")).scalar_one())


def seed_org(engine: Engine, *, requests: int, seed: int) -> Org:
    """The org, accounts, open requests with approval steps and two settled months, on top of
    bench.settlement.generate's book."""
    started = time.perf_counter()
    rnd = random.Random(seed)
    org = Org()
    now = datetime.now(UTC)
    postgres = engine.dialect.name == "postgresql"
    from models.passwords import hash_password

    password_hash = hash_password("bench-password-not-used-for-login")  # argon2 once
    with engine.begin() as conn:
        teams = [int(r[0]) for r in conn.execute(text(
            "SELECT id FROM org_unit WHERE function = 'team' ORDER BY id"))]
        org.sales = [int(r[0]) for r in conn.execute(text(
            "SELECT id FROM employee WHERE role = 'sales' ORDER BY id"))]
        org.hr = [int(r[0]) for r in conn.execute(text(
            "SELECT id FROM employee WHERE role = 'hr' ORDER BY id"))]
        next_id = _max_id(conn, "employee") + 1
        hired = now - timedelta(days=2000)
        people: list[dict] = []

        def person(role: str, unit: int, manager: int | None, label: str) -> int:
            nonlocal next_id
            people.append({"id": next_id, "employee_no": f"BENCH-{label}", "name": label,
                           "role": role, "org_unit_id": unit, "manager_id": manager,
                           "hired_at": hired})
            next_id += 1
            return next_id - 1

        org.director = person("director", 2, None, "Director")
        for i, team in enumerate(teams):
            org.managers[person("manager", team, org.director, f"Manager {i}")] = []
        org.hr += [person("hr", 3, None, f"HR {i}") for i in range(2)]
        person("legal", 1, None, "Legal")
        person("finance", 1, None, "Finance")
        _insert(conn, _table(Employee), people)
        managers = list(org.managers)
        for manager, team in zip(managers, teams, strict=True):
            members = [int(r[0]) for r in conn.execute(text(
                "SELECT id FROM employee WHERE role = 'sales' AND org_unit_id = :t ORDER BY id"),
                {"t": team})]
            org.managers[manager] = members
            conn.execute(text("UPDATE employee SET manager_id = :m WHERE role = 'sales' "
                              "AND org_unit_id = :t"), {"m": manager, "t": team})
        employees = [int(r[0]) for r in conn.execute(text("SELECT id FROM employee"))]
        first_user = _max_id(conn, "user_account") + 1
        org.accounts = {emp: (first_user + i, f"bench{emp}") for i, emp in enumerate(employees)}
        _insert(conn, _table(UserAccount), [
            {"id": user, "username": name, "employee_id": emp, "password_hash": password_hash,
             "roles": [], "is_active": True, "created_at": now}
            for emp, (user, name) in org.accounts.items()])

        # customers that are still with their finder: free to be in a new request
        free: dict[int, list[int]] = {}
        for customer, owner in conn.execute(text(
                "SELECT customer_id, employee_id FROM assignment WHERE end_at IS NULL "
                "AND source = 'FOUND' ORDER BY customer_id")):
            free.setdefault(int(owner), []).append(int(customer))
        for owner, customers in free.items():
            org.customer_codes[owner] = [f"BC{c:07d}" for c in customers[:20]]
        team_of = {s: m for m, members in org.managers.items() for s in members}
        rows, links, steps = [], [], []
        first_request = _max_id(conn, "reassignment_request") + 1
        requester = org.hr[-1]  # files the requests; never an approver here (four eyes)
        stages = [s for s, _ in STAGE_MIX]
        weights = [w for _, w in STAGE_MIX]
        owners = [o for o in free if o in team_of and len(free[o]) > 1]
        for n in range(requests):
            rid = first_request + n
            a = rnd.choice(owners)
            if not free[a]:
                continue
            customer = free[a].pop()
            manager = team_of[a]
            b = rnd.choice([s for s in org.managers[manager] if s != a])
            stage = rnd.choices(stages, weights)[0]
            created = now - timedelta(hours=rnd.randint(1, 24 * 20))
            rows.append({
                "id": rid, "workflow_id": f"reassignment-{rid}", "idempotency_key": f"load-{rid}",
                "payload_hash": "0" * 64, "requester_id": requester, "from_employee_id": a,
                "to_employee_id": b, "customer_ids": [customer],
                "reason": "TERRITORY_REALIGNMENT", "stage": stage, "policy_version_id": 1,
                "terms": {}, "value_fen": rnd.randint(10_000, 50_000_000),
                "created_at": created, "updated_at": created,
                "stage_deadline": created + timedelta(days=3),
                "closed_at": created if stage in ("REJECTED", "WITHDRAWN") else None})
            links.append({"request_id": rid, "customer_id": customer})
            chain = [(1, "manager", manager), (2, "director", org.director), (3, "hr", org.hr[0])]
            open_level = rnd.randint(1, 3) if stage == "PENDING_APPROVAL" else (
                1 if stage in ("REJECTED", "WITHDRAWN") else 4)
            org.pending += stage == "PENDING_APPROVAL"
            for level, role, approver in chain:
                due = created + timedelta(days=level * 3)
                step = {"request_id": rid, "level": level, "role": role,
                        "approver_id": approver, "escalated_to": [], "status": "WAITING",
                        "due_at": None, "decided_by_id": None, "decided_at": None}
                if level < open_level:
                    step.update(status="APPROVED", decided_by_id=approver,
                                decided_at=created + timedelta(hours=level), due_at=due)
                elif level == open_level:
                    if stage == "REJECTED":
                        step.update(status="REJECTED", decided_by_id=approver,
                                    decided_at=created + timedelta(hours=1), due_at=due)
                    elif stage == "PENDING_APPROVAL":
                        step.update(status="PENDING", due_at=due)
                steps.append(step)
        _insert(conn, _table(ReassignmentRequest), rows)
        _insert(conn, _table(RequestCustomer), links)
        _insert(conn, _table(ApprovalStep), steps)
        if postgres:
            for table in ("employee", "user_account", "reassignment_request", "approval_step"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
        org.request_ids = [int(r[0]) for r in conn.execute(text(
            "SELECT id FROM reassignment_request ORDER BY id"))]
    sessions = session_factory(engine)
    for period in SETTLED:
        with sessions() as session:
            finalize_period(session, period, run_key=f"bench-load-{period}", trigger="bench")
    with engine.connect() as conn:
        org.statements = [(int(e), str(p)) for e, p in conn.execute(text(
            "SELECT employee_id, period FROM statement ORDER BY employee_id, period"))]
    if postgres:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    org.seconds = time.perf_counter() - started
    return org


def make_plan(org: Org, path: Path) -> None:
    """Bearer tokens made once (long-lived, for the bench's own secret) and the ids to ask for."""
    from api.security import Actor, issue_token
    from domain.stages import Role
    from settings import Settings

    settings = Settings(jwt_secret=JWT_SECRET, jwt_ttl_minutes=24 * 60)

    def token(employee: int, role: Role) -> str:
        user, name = org.accounts[employee]
        return issue_token(Actor(user_id=user, employee_id=employee, username=name,
                                 roles=frozenset({role}), token_version=0), settings)

    sales = [s for s in org.sales if org.customer_codes.get(s)]
    plan = {
        "personas": {
            "hr": [{"token": token(e, Role.HR)} for e in org.hr],
            "manager": [{"token": token(m, Role.MANAGER), "team": team}
                        for m, team in org.managers.items()],
            "sales": [{"token": token(s, Role.SALES), "customer_codes": org.customer_codes[s]}
                      for s in sales[:100]],
            "approver": [{"token": token(m, Role.MANAGER)} for m in org.managers]
                        + [{"token": token(org.director, Role.DIRECTOR)},
                           {"token": token(org.hr[0], Role.HR)}],
        },
        "request_ids": org.request_ids,
        "statements": org.statements,
        "periods": list(SETTLED),
        "stages": ["PENDING_APPROVAL", "COMMUNICATION", "AWAITING_SIGNATURE", "REJECTED",
                   "PROTECTION", "COMPLETED"],
    }
    path.write_text(json.dumps(plan))


# --- processes ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(url: str, workdir: Path) -> dict[str, str]:
    metrics = workdir / "prometheus"
    metrics.mkdir(exist_ok=True)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("BATON_")},
        "PYTHONPATH": str(ROOT),  # this checkout, whatever is installed in the venv
        "BATON_DATABASE_URL": url,
        "BATON_JWT_SECRET": JWT_SECRET,
        "BATON_DATA_DIR": str(workdir / "data"),
        # nothing listens there: the API serves from the database (the request's `live` empty)
        "BATON_TEMPORAL_ADDRESS": f"127.0.0.1:{_free_port()}",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
    }


@dataclass
class Server:
    base: str
    pid: int  # uvicorn's main process; its workers are its children

    def cpu_seconds(self) -> float:
        """CPU seconds of the main process and its live children (Linux /proc): what the API
        spent, whatever else loads the machine."""
        total = 0.0
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                found = _proc_stat(int(entry.name))
                if found and (found[0] == self.pid or int(entry.name) == self.pid):
                    total += found[1]
        return total


@contextlib.contextmanager
def api_server(url: str, workdir: Path, workers: int, *, profile: Path | None = None
               ) -> Iterator[Server]:
    """uvicorn on loopback with `workers` processes (or one under pyinstrument)."""
    port = _free_port()
    argv = [PYTHON, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log", "--log-level", "warning"]
    if profile is not None:  # one process, so that one profile sees every request
        renderer = "text" if profile.suffix == ".txt" else "html"
        argv = [PYTHON, "-m", "pyinstrument", "-r", renderer, "-o", str(profile), "-m",
                "uvicorn", *argv[3:]]
    else:
        argv += ["--workers", str(workers)]
    with open(workdir / "api.log", "ab") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(argv, cwd=workdir, env=server_env(url, workdir), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # imports alone take 10 s on a loaded machine
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                    break
            except OSError as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the API did not start; see {workdir / 'api.log'}"
                                       ) from exc
                time.sleep(0.3)
        yield Server(base, proc.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_locust(base: str, plan: Path, workdir: Path, *, users: int, duration: int,
               spawn_rate: int, think: tuple[float, float] | None = None) -> dict:
    samples = workdir / "samples.json"
    samples.unlink(missing_ok=True)
    env = {**os.environ, "BENCH_API_PLAN": str(plan), "BENCH_API_SAMPLES": str(samples),
           "PYTHONPATH": str(ROOT)}
    env.pop("BENCH_API_THINK", None)
    if think is not None:
        env["BENCH_API_THINK"] = f"{think[0]},{think[1]}"
    # --stop-timeout: requests still in flight when the time is up finish and are counted
    # (longer than the 30 s pool and busy timeouts, so a slow one is not silently dropped)
    result = subprocess.run(
        [PYTHON, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", base,
         "-u", str(users), "-r", str(spawn_rate), "-t", f"{duration}s", "--only-summary",
         "--stop-timeout", "45", "--loglevel", "WARNING"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=duration + 180)
    if not samples.exists():
        raise RuntimeError(f"locust wrote no samples (exit {result.returncode}):\n"
                           f"{result.stderr[-3000:]}")
    data: dict = json.loads(samples.read_text())
    return data


# --- figures -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation): a value that was measured."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


@dataclass
class Row:
    name: str
    count: int
    errors: int
    p50: float
    p95: float
    p99: float


def summarise(data: dict) -> tuple[list[Row], list[Row]]:
    """(per endpoint, per group) rows; a group pools its endpoints' samples."""
    samples: dict[str, list[float]] = data["samples"]
    errors: dict[str, list[str]] = data["errors"]
    endpoints: list[Row] = []
    pooled: dict[str, list[float]] = {}
    group_errors: dict[str, int] = {}
    for name in sorted(samples):
        values = samples[name]
        group = name.split(":", 1)[0]
        pooled.setdefault(group, []).extend(values)
        group_errors[group] = group_errors.get(group, 0) + len(errors.get(name, []))
        endpoints.append(Row(name, len(values), len(errors.get(name, [])),
                             percentile(values, 50), percentile(values, 95),
                             percentile(values, 99)))
    groups = [Row(g, len(pooled[g]), group_errors[g], percentile(pooled[g], 50),
                  percentile(pooled[g], 95), percentile(pooled[g], 99))
              for g in GROUPS if g in pooled]
    return endpoints, groups


def format_rows(backend: str, rows: list[Row], baseline: Row | None, duration: int) -> list[str]:
    out = []
    for r in rows:
        ratio = ""
        if baseline is not None and baseline.p99 > 0:
            ratio = (f" {r.p50 / baseline.p50:>6.1f}x {r.p95 / baseline.p95:>6.1f}x "
                     f"{r.p99 / baseline.p99:>6.1f}x")
        goal = GOALS_MS.get(r.name.split(":", 1)[0])
        verdict = "" if goal is None else ("  ok" if r.p99 <= goal and not r.errors
                                           else f"  MISSED (p99 goal {goal:.0f} ms)")
        out.append(f"{backend:<13} {r.name:<34} {r.count:>7} {r.count / duration:>6.0f} "
                   f"{r.errors:>6} {r.p50:>7.1f} {r.p95:>7.1f} {r.p99:>7.1f}{ratio}{verdict}")
    return out


HEADER = (f"{'backend':<13} {'endpoint / group':<34} {'reqs':>7} {'req/s':>6} {'errors':>6} "
          f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'x p50':>7} {'x p95':>7} {'x p99':>7}")


@contextlib.contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'load.db'}"
        return
    from tests.pg import fresh_database, temporary_postgres

    with temporary_postgres() as server, fresh_database(server) as url:
        yield url


def run_backend(backend: str, args: argparse.Namespace, workdir: Path,
                say: Callable[[str], None]) -> list[str]:
    with database(backend, workdir) as url:
        migrate(url)
        engine = make_engine(url)
        try:
            book = generate(engine, Scale(orders=args.orders, customers=args.customers,
                                          salespeople=args.salespeople,
                                          reassigned=args.customers // 20, seed=args.seed))
            say(f"{backend}: generated {book.customers:,} customers, {book.orders:,} orders "
                f"in {book.seconds:.1f} s")
            org = seed_org(engine, requests=args.requests, seed=args.seed)
            say(f"{backend}: org of {len(org.accounts):,} employees with accounts, "
                f"{len(org.request_ids):,} requests ({org.pending:,} waiting for approval), "
                f"{len(org.statements):,} statements in {org.seconds:.1f} s")
        finally:
            engine.dispose()
        plan = workdir / "plan.json"
        make_plan(org, plan)
        # a --keep-profile directory gets HTML; a path ending in .txt gets pyinstrument's text
        text = args.keep_profile is not None and args.keep_profile.suffix == ".txt"
        profile = (workdir / f"profile-{backend}.{'txt' if text else 'html'}"
                   if args.profile else None)
        models: list[tuple[str, tuple[float, float] | None]] = []
        if not args.think_only:
            models.append((backend, None))
        if args.think_time is not None:
            models.append((f"{backend}/think", (args.think_time[0], args.think_time[1])))
        lines: list[str] = []
        with api_server(url, workdir, args.workers, profile=profile) as server:
            processes = ("1 process under pyinstrument" if profile
                         else f"{args.workers} uvicorn workers")
            for label, think in models:
                lines += run_load_model(label, think, server, plan, workdir, args, processes,
                                        say)
        if profile is not None and args.keep_profile:
            kept = (args.keep_profile.with_name(f"{args.keep_profile.stem}-{backend}.txt")
                    if text else Path(args.keep_profile) / profile.name)
            kept.write_bytes(profile.read_bytes())
            say(f"{backend}: profile in {kept}")
        return lines


def run_load_model(label: str, think: tuple[float, float] | None, server: Server, plan: Path,
                   workdir: Path, args: argparse.Namespace, processes: str,
                   say: Callable[[str], None]) -> list[str]:
    """One locust run against the running API; its rows, labelled `label`."""
    model = ("no think time (saturation)" if think is None
             else f"think time {think[0]:g}-{think[1]:g} s")
    say(f"{label}: API at {server.base} ({processes}); {args.users} clients, {model}, for "
        f"{args.duration} s; load average {os.getloadavg()[0]:.1f}")
    cpu_before = server.cpu_seconds()
    data = run_locust(server.base, plan, workdir, users=args.users, duration=args.duration,
                      spawn_rate=args.spawn_rate, think=think)
    api_cpu = server.cpu_seconds() - cpu_before
    load = os.getloadavg()
    endpoints, groups = summarise(data)
    for name, messages in data["errors"].items():
        say(f"{label}: {len(messages)} errors on {name}, e.g. {messages[0]}")
    baseline = next((g for g in groups if g.name == "baseline"), None)
    requests = sum(g.count for g in groups)
    achieved = requests / args.duration
    # without think time the clients offer whatever the API can take; with it, at most
    # users / mean think time (less by the response times)
    offered = ("unbounded (each client asks again at once)" if think is None
               else f"<= {args.users / ((think[0] + think[1]) / 2):.0f} req/s")
    per_request = 1000 * api_cpu / max(1, requests)
    say(f"{label}: {requests:,} requests ({achieved:.0f} req/s achieved, offered {offered}); "
        f"the API processes used {api_cpu:.1f} CPU s ({per_request:.1f} ms per request, all "
        f"endpoints); load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    return (format_rows(label, endpoints, baseline, args.duration) + ["-" * 130]
            + format_rows(label, groups, baseline, args.duration)
            + [f"{label:<9} {model}: achieved {achieved:.0f} req/s, offered {offered}; API CPU "
               f"{per_request:.1f} ms per request ({api_cpu:.1f} s for {requests:,} requests); "
               f"load average {load[0]:.1f}", "=" * 130])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api_load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--salespeople", type=int, default=300)
    parser.add_argument("--requests", type=int, default=2_000,
                        help="open and closed requests with approval steps (besides the "
                             "generated reassignments); default 2000")
    parser.add_argument("--users", type=int, default=100, help="concurrent clients")
    parser.add_argument("--spawn-rate", type=int, default=100)
    parser.add_argument("--duration", type=int, default=60, help="seconds per backend")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--think-time", type=float, nargs=2, metavar=("MIN", "MAX"),
                        default=None,
                        help="also run with each client waiting MIN..MAX s between requests "
                             "(after the saturation run, same database and API)")
    parser.add_argument("--think-only", action="store_true",
                        help="with --think-time: skip the saturation run")
    parser.add_argument("--seed", type=int, default=20250101)
    parser.add_argument("--profile", action="store_true",
                        help="one API process under pyinstrument instead of --workers")
    parser.add_argument("--keep-profile", type=Path, default=None,
                        help="with --profile: a directory to copy the HTML profile to, or "
                             "a path ending in .txt for text (PATH-BACKEND.txt)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.think_only and args.think_time is None:
        parser.error("--think-only needs --think-time MIN MAX")
    if args.think_time is not None and not 0 <= args.think_time[0] <= args.think_time[1]:
        parser.error("--think-time needs 0 <= MIN <= MAX")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]

    def say(message: str) -> None:
        print(f"[bench] {message}", flush=True)

    from tests.pg import sigterm_as_interrupt

    lines: list[str] = []
    with sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="baton-load-",
                                                             dir=args.workdir) as tmp:
        for backend in backends:
            workdir = Path(tmp) / backend
            workdir.mkdir()
            lines += run_backend(backend, args, workdir, say)
    print()
    print(HEADER)
    print("-" * 130)
    print("\n".join(lines))
    print(f"x: ratio to the baseline (GET /healthz, same clients, same run); goals: p99 <= "
          f"{GOALS_MS['detail']:.0f} ms details, <= {GOALS_MS['list']:.0f} ms lists, 0 errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
