"""Real OS processes for the production-like test: start, watch, stop, and leave nothing behind.

Each process runs in a session of its own (so a signal to its group reaches its children, e.g.
uvicorn's worker processes) and writes to its own log file, which `Processes.dump_logs()`
prints when a test fails.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
STOP_TIMEOUT_S = 30.0  # the worker waits up to 20 s for running activities on SIGTERM
LOG_TAIL_CHARS = 12_000


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (all bound at once, so never the same twice)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def group_alive(pgid: int) -> bool:
    """True while any process of the group exists (zombies included until reaped)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Proc:
    """One started process (and its process group), with its log."""

    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes]
    killed_on_purpose: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal_group(self, signum: int) -> None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def kill(self) -> None:
        """SIGKILL the process alone, as a crash would (its group's other members stay)."""
        self.killed_on_purpose = True
        with suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=STOP_TIMEOUT_S)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM to the group, SIGKILL after `timeout`; the exit code of the process itself
        (None if it had to be killed)."""
        self.signal_group(signal.SIGTERM)
        code: int | None
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        deadline = time.monotonic() + timeout
        while group_alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.1)  # children (uvicorn's workers) leave after their parent
        if code is None or group_alive(self.pid):
            self.signal_group(signal.SIGKILL)
            with suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        return code


@dataclass
class Processes:
    """Every process a test started, so that all of them are stopped and their logs shown."""

    log_dir: Path
    env: dict[str, str]
    # the processes' working directory: not the checkout, whose .env settings.py would read
    cwd: Path
    started: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None
              ) -> Proc:
        index = sum(1 for p in self.started if p.name == name)
        log_path = self.log_dir / (f"{name}.log" if index == 0 else f"{name}-{index + 1}.log")
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(list(argv), cwd=self.cwd, env=env or self.env,
                                     stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        proc = Proc(name, list(argv), log_path, popen)
        self.started.append(proc)
        return proc

    def run(self, name: str, argv: Sequence[str], *, timeout: float = 120.0,
            stdin: str | None = None) -> str:
        """Run a command to completion (a CLI step); its output, or fail with its log."""
        log_path = self.log_dir / f"{name}.log"
        result = subprocess.run(list(argv), cwd=self.cwd, env=self.env, input=stdin,
                                capture_output=True, text=True, timeout=timeout)
        log_path.write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise AssertionError(f"`{' '.join(argv)}` exited with {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result.stdout

    def check_alive(self, *procs: Proc) -> None:
        for proc in procs:
            if proc.killed_on_purpose:
                continue
            code = proc.popen.poll()
            if code is not None:
                raise AssertionError(f"{proc.name} (pid {proc.pid}) exited with code {code}; "
                                     f"its log:\n{proc.log()[-LOG_TAIL_CHARS:]}")

    def stop_all(self) -> dict[str, int | None]:
        """Stop the API and the workers before Temporal (reverse start order); the exit
        codes of those that were still running, by log file name (None: had to be killed)."""
        codes: dict[str, int | None] = {}
        for proc in reversed(self.started):
            if proc.running() or group_alive(proc.pid):
                codes[proc.log_path.stem] = proc.stop()
        return codes

    def leftovers(self) -> list[str]:
        """Process groups of ours that still exist (must be none after stop_all)."""
        return [f"{p.name} (pgid {p.pid})" for p in self.started if group_alive(p.pid)]

    def dump_logs(self) -> None:
        for log_path in sorted(self.log_dir.glob("*.log")):
            text = log_path.read_text(errors="replace")
            print(f"----- {log_path.name} (last {LOG_TAIL_CHARS} chars of {len(text)}) -----")
            print(text[-LOG_TAIL_CHARS:])


async def wait_until(what: str, check: Callable[[], Any], *, timeout: float,
                     alive: Callable[[], None] = lambda: None, interval: float = 0.5) -> Any:
    """Poll `check` (sync or async) until it returns something truthy, and return that;
    `alive` raises when a process it needs has died."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        alive()
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
        except Exception as exc:  # not up yet
            last_error = f"{type(exc).__name__}: {exc}"
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                         + (f" (last error: {last_error})" if last_error else ""))

