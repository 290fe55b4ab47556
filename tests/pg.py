"""A throwaway PostgreSQL server for tests.

`temporary_postgres()` initdb's a cluster in a temporary directory, starts it on 127.0.0.1 at a
free port (durability switched off, for speed), yields a base URL such as
`postgresql+psycopg://postgres@127.0.0.1:54321/`, and stops and removes it on exit, also when
the body raises. The server binaries refuse to run as root; as root they run as the `postgres`
user through `runuser`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BIN_DIRS = ("/usr/lib/postgresql/15/bin",)
OS_USER = "postgres"  # the OS user that runs the server when we are root
DB_USER = "postgres"  # the database superuser created by initdb

_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
    "max_connections": "300",
    "shared_buffers": "'32MB'",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",  # failing statements are the tests' business
}


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries were not found."""


def find_bin_dir() -> Path | None:
    """The directory with initdb and pg_ctl: $BATON_PG_BIN, the Debian path, or the PATH."""
    candidates = [os.environ.get("BATON_PG_BIN", ""), *DEFAULT_BIN_DIRS]
    which = shutil.which("pg_ctl")
    if which:
        candidates.append(str(Path(which).parent))
    for candidate in candidates:
        if candidate and all((Path(candidate) / b).is_file() for b in ("initdb", "pg_ctl")):
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _run(cmd: list[str], *, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    if _as_root():
        cmd = ["runuser", "-u", OS_USER, "--", *cmd]
    # cwd: the server user may not be allowed into the caller's working directory
    return subprocess.run(cmd, cwd=cwd, check=check, capture_output=True, text=True,
                          env={**os.environ, "LC_ALL": "C", "TZ": "UTC"})


@dataclass
class PostgresCluster:
    """A running private cluster: its URL, and stop/start on the same data directory and port
    (for tests of a database outage)."""

    url: str
    data: Path
    root: Path
    log: Path
    pg_ctl: str

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m <mode>`: fast ends the sessions and shuts down cleanly."""
        _checked(_run([self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop"],
                      cwd=self.root, check=False), "pg_ctl stop", self.log)

    def start(self) -> None:
        """Start it again with the same configuration (port, socket directory, data)."""
        _checked(_run([self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                       "start"], cwd=self.root, check=False), "pg_ctl start", self.log)


@contextmanager
def temporary_postgres(bin_dir: Path | None = None, *, attempts: int = 3) -> Iterator[str]:
    """Run a private PostgreSQL cluster for the duration of the block; yield its base URL."""
    with postgres_cluster(bin_dir, attempts=attempts) as cluster:
        yield cluster.url


@contextmanager
def postgres_cluster(bin_dir: Path | None = None, *, attempts: int = 3
                     ) -> Iterator[PostgresCluster]:
    """Like temporary_postgres, but yield the cluster itself (which can be stopped/started)."""
    bin_dir = bin_dir or find_bin_dir()
    if bin_dir is None:
        raise PostgresUnavailable(
            "PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql-15 "
            "or set BATON_PG_BIN"
        )
    initdb, pg_ctl = str(bin_dir / "initdb"), str(bin_dir / "pg_ctl")
    root = Path(tempfile.mkdtemp(prefix="baton-pg-"))
    data, log = root / "data", root / "server.log"
    try:
        if _as_root():
            shutil.chown(root, OS_USER, OS_USER)
        _checked(_run([initdb, "-D", str(data), "-U", DB_USER, "-A", "trust", "-E", "UTF8",
                       "--no-locale", "--no-instructions"], cwd=root, check=False), "initdb")
        base_conf = (data / "postgresql.conf").read_text()
        for attempt in range(1, attempts + 1):
            port = _free_port()
            settings = {**_SETTINGS, "port": str(port), "unix_socket_directories": f"'{root}'"}
            (data / "postgresql.conf").write_text(
                base_conf + "\n# baton tests\n"
                + "".join(f"{k} = {v}\n" for k, v in settings.items())
            )
            result = _run([pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "start"],
                          cwd=root, check=False)
            if result.returncode == 0:
                break
            if attempt == attempts:  # most likely the port was taken between probe and start
                _checked(result, "pg_ctl start", log)
        yield PostgresCluster(f"postgresql+psycopg://{DB_USER}@127.0.0.1:{port}/",
                              data, root, log, pg_ctl)
    finally:
        if (data / "postmaster.pid").exists():  # also after a start that timed out
            _run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], cwd=root,
                 check=False)
        shutil.rmtree(root, ignore_errors=True)


def _checked(result: subprocess.CompletedProcess[str], what: str,
             log: Path | None = None) -> None:
    if result.returncode == 0:
        return
    server_log = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    raise RuntimeError(
        f"{what} failed with exit code {result.returncode}\n{result.stdout}\n{result.stderr}\n"
        f"{server_log}"
    )


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM (e.g. from `timeout`) into KeyboardInterrupt while the block runs.

    Python dies on SIGTERM without running `finally` blocks, which would leave the server
    running. As KeyboardInterrupt, pytest still tears its fixtures down. Only on the main
    thread and only when nobody else handles SIGTERM.
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def _interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def database_url(base_url: str, name: str) -> str:
    """The SQLAlchemy URL of database `name` on the server at `base_url`."""
    from sqlalchemy.engine import make_url

    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def _admin_conninfo(base_url: str) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(base_url).set(drivername="postgresql", database="postgres")
    return url.render_as_string(hide_password=False)


def _admin(base_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(_admin_conninfo(base_url), autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]  (identifiers are ours: t_<hex>)


@contextmanager
def fresh_database(base_url: str) -> Iterator[str]:
    """Create an empty database `t_<uuid hex>`; yield its URL; drop it (WITH FORCE) at exit.

    Dispose the engines you made for it before leaving the block; FORCE ends any that remain.
    """
    import uuid

    name = f"t_{uuid.uuid4().hex}"
    _admin(base_url, f'CREATE DATABASE "{name}"')
    try:
        yield database_url(base_url, name)
    finally:
        _admin(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
