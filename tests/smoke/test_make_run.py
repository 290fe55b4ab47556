"""`make run` end to end: the embedded stack comes up, takes a request, and stops cleanly.

Runs the real thing: make -> cli.py dev -> Temporal dev server + UI, worker, API, on free
ports with a fresh SQLite database and Temporal state in a temporary folder.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, col, select
from temporalio.client import Client

from models import Assignment, Employee, UserAccount
from models.db import make_engine
from workflows.search_attributes import CLI_TYPES

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 180.0
WORKFLOW_TIMEOUT_S = 60.0
SHUTDOWN_TIMEOUT_S = 60.0
MANAGER_USERNAME = "e020"
DEMO_PASSWORD = "baton-demo-relay"



# --- processes, read from /proc -----------------------------------------------------------


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str
    start: int  # clock ticks after boot: tells a reused pid apart
    cmd: str


def process_table() -> dict[int, ProcInfo]:
    table: dict[int, ProcInfo] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue  # exited meanwhile
        name_end = stat.rfind(")")
        fields = stat[name_end + 2:].split()
        table[int(entry)] = ProcInfo(
            pid=int(entry), ppid=int(fields[1]), pgid=int(fields[2]), sid=int(fields[3]),
            state=fields[0], start=int(fields[19]),
            cmd=cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
            or stat[:name_end + 1],
        )
    return table


def descendants(root: int, table: dict[int, ProcInfo]) -> list[ProcInfo]:
    found: list[ProcInfo] = []
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for info in table.values():
            if info.ppid == parent:
                found.append(info)
                frontier.append(info.pid)
    return found


def survivors(make_pid: int, snapshot: list[ProcInfo]) -> list[ProcInfo]:
    """Live processes from the stack: in a session or group it made, or seen in the snapshot."""
    sessions = {make_pid} | {p.sid for p in snapshot}
    groups = {make_pid} | {p.pgid for p in snapshot}
    seen = {(p.pid, p.start) for p in snapshot}
    return [
        p for p in process_table().values()
        if p.state != "Z" and (p.sid in sessions or p.pgid in groups or (p.pid, p.start) in seen)
    ]


# --- ports ----------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --- the stack under test ---------------------------------------------------------------------


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    log_path: Path
    api_port: int
    temporal_port: int
    ui_port: int
    database_url: str
    snapshot: list[ProcInfo]

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float) -> int | None:
        """SIGINT to make's process group, as Ctrl+C in a terminal; returns make's exit code."""
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill_everything(self) -> None:
        """Last resort after a failed test: nothing of the stack may outlive it."""
        for info in survivors(self.process.pid, self.snapshot):
            with suppress(ProcessLookupError):
                os.kill(info.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    api_port, temporal_port, ui_port = free_ports(3)
    data_dir = tmp_path / "data"
    database_url = f"sqlite:///{data_dir / 'baton.db'}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("BATON_") and k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env.update({
        "BATON_API_PORT": str(api_port),
        "BATON_TEMPORAL_PORT": str(temporal_port),
        "BATON_TEMPORAL_UI_PORT": str(ui_port),
        "BATON_TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
        "BATON_DATA_DIR": str(data_dir),
        "BATON_DATABASE_URL": database_url,
        "PYTHONUNBUFFERED": "1",
    })
    log_path = tmp_path / "make-run.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(["make", "run"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    s = Stack(process, log_path, api_port, temporal_port, ui_port, database_url, [])
    try:
        yield s
    finally:
        if process.poll() is None or survivors(process.pid, s.snapshot):
            s.stop(timeout=30)
            s.kill_everything()


def _wait_until_up(stack: Stack) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    docs = ui = False
    with httpx.Client(timeout=3) as http:
        while time.monotonic() < deadline:
            code = stack.process.poll()
            if code is not None:
                pytest.fail(f"`make run` exited with code {code} before the stack was up")
            try:
                docs = docs or http.get(f"{stack.api}/docs").status_code == 200
                ui = ui or http.get(f"http://127.0.0.1:{stack.ui_port}/").status_code < 500
            except httpx.HTTPError:
                pass
            if docs and ui:
                return
            time.sleep(1)
    pytest.fail(f"stack not up within {STARTUP_TIMEOUT_S:.0f} s (API /docs 200: {docs}, "
                f"Temporal UI answers: {ui})")


def _pick_request(database_url: str) -> dict[str, object]:
    """From the demo data: the manager, two salespeople of their team, one owned customer."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            account = session.exec(
                select(UserAccount).where(UserAccount.username == MANAGER_USERNAME)
            ).one()
            team = session.exec(
                select(Employee)
                .where(Employee.manager_id == account.employee_id, Employee.role == "sales")
                .order_by(col(Employee.id))
            ).all()
            assert len(team) >= 2, "the demo manager should lead at least two salespeople"
            source, target = team[0], team[1]
            customer_id = session.exec(
                select(Assignment.customer_id)
                .where(Assignment.employee_id == source.id, col(Assignment.end_at).is_(None))
                .order_by(col(Assignment.customer_id))
            ).first()
            assert customer_id is not None, "the demo salesperson should own customers"
    finally:
        engine.dispose()
    return {"from_employee_id": source.id, "to_employee_id": target.id,
            "customer_ids": [customer_id], "reason": "TERRITORY_REALIGNMENT"}


async def _wait_for_pending_approval(temporal_port: int, request_id: object) -> str:
    client = await Client.connect(f"127.0.0.1:{temporal_port}")
    query = f"BatonRequestId = '{request_id}' AND BatonStage = 'PENDING_APPROVAL'"
    deadline = time.monotonic() + WORKFLOW_TIMEOUT_S
    while time.monotonic() < deadline:
        async for execution in client.list_workflows(query):
            return execution.id
        await asyncio.sleep(1)
    pytest.fail(f"no workflow matched {query!r} within {WORKFLOW_TIMEOUT_S:.0f} s")


@pytest.mark.smoke
async def test_make_run_serves_a_request_and_stops_cleanly(stack: Stack) -> None:
    try:
        _wait_until_up(stack)
        # every process of the stack, while it runs (children have sessions of their own)
        stack.snapshot = descendants(stack.process.pid, process_table())
        names = " | ".join(p.cmd for p in stack.snapshot)
        for part in ("temporal server start-dev", "worker.py", "uvicorn"):
            assert part in names, f"{part!r} is not running under make run: {names}"

        body = _pick_request(stack.database_url)
        async with httpx.AsyncClient(base_url=stack.api, timeout=30) as http:
            login = await http.post("/api/v1/auth/login",
                                    json={"username": MANAGER_USERNAME, "password": DEMO_PASSWORD})
            assert login.status_code == 200, login.text
            token = login.json()
            assert token["token_type"].lower() == "bearer"
            submitted = await http.post(
                "/api/v1/reassignments", json=body,
                headers={"Authorization": f"Bearer {token['access_token']}",
                         "Idempotency-Key": str(uuid.uuid4())},
            )
            assert submitted.status_code == 201, submitted.text
            request = submitted.json()
            assert request["workflow_id"] == f"reassignment-{request['id']}"

        workflow_id = await _wait_for_pending_approval(stack.temporal_port, request["id"])
        assert workflow_id == request["workflow_id"]

        code = stack.stop(timeout=SHUTDOWN_TIMEOUT_S)
        assert code is not None, f"`make run` did not exit within {SHUTDOWN_TIMEOUT_S:.0f} s"
        left = survivors(stack.process.pid, stack.snapshot)
        assert not left, "processes outlived `make run`: " + "; ".join(
            f"{p.pid} {p.cmd}" for p in left)
        still_open = [port for port in (stack.api_port, stack.temporal_port, stack.ui_port)
                      if port_open(port)]
        assert not still_open, f"ports still open after shutdown: {still_open}"
        assert "[baton] stopped" in stack.output()
    except BaseException:
        print(f"----- output of `make run` ({stack.log_path}) -----")
        print(stack.output())
        raise


def test_compose_registers_the_same_search_attributes_as_make_run() -> None:
    """docker-compose.yml's init container lists the attributes by hand; keep it in step."""
    text = (ROOT / "docker-compose.yml").read_text()
    block = re.search(r"SEARCH_ATTRIBUTES: >-\n((?:\s+\w+=\w+\n)+)", text)
    assert block, "docker-compose.yml has no SEARCH_ATTRIBUTES block"
    listed = dict(pair.split("=") for pair in block.group(1).split())
    assert listed == CLI_TYPES
