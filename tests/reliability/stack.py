"""The production-like stack for fault tests: every piece can be killed, stopped and restarted.

As tests/prod/conftest.py (whose environment, seal and process helpers this reuses): a
private PostgreSQL cluster, the Temporal dev server, the API under uvicorn with 2 processes
and 2 worker.py processes, as real OS processes in production mode. In addition:
- PostgreSQL is a cluster of its own (tests/pg.py postgres_cluster), so stopping it touches
  no other test's database, and it restarts on the same port and data directory;
- the dev server keeps its state in a file (--db-filename), so it restarts where it stopped;
- a worker slot can be SIGKILLed and started again (same metrics port).
"""

from __future__ import annotations

import json
import secrets
import socket
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from tests.conftest import _in_ci, binary
from tests.factories import SmallOrg
from tests.payload_keys import TEST_DATA_CONVERTER
from tests.pg import PostgresCluster, find_bin_dir, fresh_database, postgres_cluster
from tests.prod.conftest import (
    API_WORKERS,
    NAMESPACE,
    SEAL_PASSWORD,
    START_TIMEOUT_S,
    _environment,
    _pollers_include,
    _seal_pkcs12,
)
from tests.prod.processes import PYTHON, ROOT, Proc, Processes, free_ports, wait_until
from workflows.search_attributes import CLI_TYPES

WORKER_SLOTS = 2


@dataclass
class FaultStack:
    processes: Processes
    cluster: PostgresCluster
    database_url: str
    temporal_argv: list[str]
    temporal_address: str
    temporal: Proc
    workers: list[Proc]  # the process now in each slot
    worker_metrics_ports: list[int]
    api: Proc
    api_port: int
    client: Client  # the test's own Temporal connection (reconnects by itself)
    org: SmallOrg
    customers: list[int]  # one per lifecycle, all A1's

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def alive(self) -> None:
        """Raise if a process died that nobody stopped on purpose."""
        self.processes.check_alive(self.temporal, self.api, *self.workers)

    # --- workers --------------------------------------------------------------------------

    def start_worker(self, slot: int) -> Proc:
        port = self.worker_metrics_ports[slot]
        proc = self.processes.start("worker", [PYTHON, str(ROOT / "worker.py")], env={
            **self.processes.env, "BATON_WORKER_METRICS_ADDRESS": f"127.0.0.1:{port}"})
        if slot < len(self.workers):
            self.workers[slot] = proc
        else:
            self.workers.append(proc)
        return proc

    def kill_worker(self, slot: int) -> Proc:
        """SIGKILL the worker in `slot`, as a crash would; returns the dead process."""
        victim = self.workers[slot]
        victim.kill()
        return victim

    # --- Temporal -------------------------------------------------------------------------

    def start_temporal(self) -> Proc:
        self.temporal = self.processes.start("temporal", self.temporal_argv)
        return self.temporal

    def stop_temporal(self) -> None:
        self.temporal.killed_on_purpose = True  # not a crash: alive() ignores it
        self.temporal.stop()

    async def wait_temporal(self) -> None:
        await wait_until("the Temporal frontend", self.client.service_client.check_health,
                         timeout=START_TIMEOUT_S,
                         alive=lambda: self.processes.check_alive(self.temporal))

    # --- PostgreSQL -----------------------------------------------------------------------

    def stop_postgres(self) -> None:
        self.cluster.stop("fast")

    def start_postgres(self) -> None:
        self.cluster.start()

    async def wait_api_ready(self) -> float:
        """Seconds until /readyz answers 200 (database and Temporal both up)."""
        started = time.monotonic()

        async def ready() -> bool:
            async with httpx.AsyncClient(timeout=5) as http:
                for _ in range(API_WORKERS * 2):  # likely to reach each API process
                    r = await http.get(f"{self.api_url}/readyz")
                    if r.status_code != 200:
                        return False
            return True

        await wait_until(f"{self.api_url}/readyz", ready, timeout=START_TIMEOUT_S,
                         alive=self.alive, interval=0.2)
        return time.monotonic() - started


@asynccontextmanager
async def fault_stack(tmp_path: Path, *, customers: int) -> AsyncIterator[FaultStack]:
    """Start the whole stack with `customers` extra customers seeded; stop all at exit."""
    if find_bin_dir() is None:  # as tests/conftest.py's postgres_server
        reason = "PostgreSQL server binaries not found (install postgresql-15)"
        if _in_ci():
            pytest.fail(f"{reason}; CI is set, so this fails instead of skipping.")
        pytest.skip(reason)
    dirs = {name: tmp_path / name for name in ("logs", "data", "run", "temporal")}
    for directory in dirs.values():
        directory.mkdir()
    temporal_port, api_port, *metrics_ports = free_ports(2 + WORKER_SLOTS)
    temporal_address = f"127.0.0.1:{temporal_port}"
    with ExitStack() as exits:
        cluster = exits.enter_context(postgres_cluster())
        database_url = exits.enter_context(fresh_database(cluster.url))
        processes = Processes(dirs["logs"], _environment(
            database_url=database_url, temporal_address=temporal_address, api_port=api_port,
            data_dir=dirs["data"], seal=_seal_pkcs12(tmp_path / "seal", SEAL_PASSWORD),
            metrics_token=secrets.token_urlsafe(24), prometheus_dir=tmp_path / "prometheus"),
            dirs["run"])
        (tmp_path / "prometheus").mkdir()
        try:
            argv = [binary("temporal"), "server", "start-dev", "--headless",
                    "--ip", "127.0.0.1", "--port", str(temporal_port),
                    "--namespace", NAMESPACE, "--log-level", "warn",
                    # its state survives a restart (the default keeps it in memory)
                    "--db-filename", str(dirs["temporal"] / "temporal.db")]
            for name, kind in CLI_TYPES.items():
                argv += ["--search-attribute", f"{name}={kind}"]
            temporal = processes.start("temporal", argv)
            processes.run("migrate", [PYTHON, str(ROOT / "cli.py"), "migrate"])
            seeded = json.loads(processes.run(
                "seed", [PYTHON, "-m", "tests.reliability.seed", str(customers)]))
            org = SmallOrg(**seeded["org"])
            org.usernames = {int(k): v for k, v in org.usernames.items()}

            async def connected() -> Client:
                client = await Client.connect(temporal_address, namespace=NAMESPACE,
                                              data_converter=TEST_DATA_CONVERTER)
                await client.service_client.check_health()
                return client

            client = await wait_until(f"Temporal at {temporal_address}", connected,
                                      timeout=START_TIMEOUT_S,
                                      alive=lambda: processes.check_alive(temporal))
            stack = FaultStack(
                processes=processes, cluster=cluster, database_url=database_url,
                temporal_argv=argv, temporal_address=temporal_address, temporal=temporal,
                workers=[], worker_metrics_ports=metrics_ports, api=temporal,
                api_port=api_port, client=client, org=org, customers=seeded["customers"])
            for slot in range(WORKER_SLOTS):
                stack.start_worker(slot)
            stack.api = processes.start("api", [
                PYTHON, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
                "--port", str(api_port), "--workers", str(API_WORKERS)])
            await stack.wait_api_ready()
            # the SDK's default worker identity is pid@host
            identities = {f"{w.pid}@{socket.gethostname()}" for w in stack.workers}
            await wait_until("both workers to poll the task queue",
                             lambda: _pollers_include(client, identities),
                             timeout=START_TIMEOUT_S, alive=stack.alive)
            yield stack
        except BaseException:
            processes.dump_logs()
            raise
        finally:
            processes.stop_all()
            left = processes.leftovers()
            assert not left, f"processes outlived the test: {left}"

