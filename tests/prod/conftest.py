"""The production-like stack, as real processes: PostgreSQL, the Temporal dev server, the API
under uvicorn with 2 worker processes, and 2 separate Baton workers.

Everything is configured as an operator would: BATON_* environment variables (settings.py),
the schema by `python cli.py migrate`, a seal certificate from a password-protected PKCS#12
file, a fixed payload key, a random JWT secret. Free ports are chosen at run time. Every
process has its own log under tmp_path, printed when the test fails; all are stopped at the
end, and the test checks that none is left.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from tests.conftest import binary
from tests.factories import SmallOrg
from tests.payload_keys import TEST_DATA_CONVERTER, TEST_PAYLOAD_KEYS
from tests.pg import fresh_database
from tests.prod.processes import (
    PYTHON,
    ROOT,
    Proc,
    Processes,
    free_ports,
    port_open,
    wait_until,
)
from workflows.search_attributes import CLI_TYPES

NAMESPACE = "default"
TASK_QUEUE = "baton"
START_TIMEOUT_S = 120.0  # generous: the CI machine may be slow and shared
API_WORKERS = 2
READY_PATH = "/readyz"  # 200 once the database and Temporal both answer
SEAL_PASSWORD = "prod-like-seal-password"


@dataclass
class ProdStack:
    processes: Processes
    temporal: Proc
    workers: list[Proc]
    api_port: int
    temporal_address: str
    database_url: str
    metrics_token: str
    prometheus_dir: Path  # PROMETHEUS_MULTIPROC_DIR of the API's processes
    worker_metrics_urls: list[str]  # one per worker, in the order of `workers`
    client: Client  # the test's own connection, for the workflow's history
    org: SmallOrg
    api: Proc | None = None  # the uvicorn master now serving (start_api)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def alive(self) -> None:
        self.processes.check_alive(self.temporal, *self.workers,
                                   *([self.api] if self.api else []))

    def worker_metrics_url(self, worker: Proc) -> str:
        return self.worker_metrics_urls[self.workers.index(worker)]

    def worker_identity(self, worker: Proc) -> str:
        """The identity a worker process gives Temporal (the SDK's default: pid@host)."""
        return f"{worker.pid}@{socket.gethostname()}"

    async def wait_api_ready(self) -> None:
        async def ready() -> bool:
            async with httpx.AsyncClient(timeout=5) as http:
                for _ in range(API_WORKERS * 2):  # likely to reach each API process
                    r = await http.get(f"{self.api_url}{READY_PATH}")
                    if r.status_code != 200 or r.json().get("status") != "ready":
                        return False
            return True

        await wait_until(f"the API at {self.api_url}{READY_PATH}", ready,
                         timeout=START_TIMEOUT_S, alive=self.alive)

    def start_api(self) -> Proc:
        # as an operator's start script does: the multiprocess directory empty at each start
        shutil.rmtree(self.prometheus_dir, ignore_errors=True)
        self.prometheus_dir.mkdir()
        self.api = self.processes.start("api", [
            PYTHON, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
            "--port", str(self.api_port), "--workers", str(API_WORKERS),
            "--timeout-graceful-shutdown", "10"])
        return self.api

    async def restart_api(self) -> int | None:
        """SIGTERM the uvicorn master (it stops its workers), wait, start it again on the
        same port. Returns the old master's exit code."""
        assert self.api is not None
        code = self.api.stop()
        assert not port_open(self.api_port), "the API's port is still open after it stopped"
        self.start_api()
        await self.wait_api_ready()
        return code


def _seal_pkcs12(directory: Path, password: str) -> Path:
    """An organisation seal as production configures it: a PKCS#12 file with a password."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

    from documents.seal import ensure_dev_certificate

    made, _ = ensure_dev_certificate(directory / "made")  # any key pair and certificate
    key, cert, _extra = pkcs12.load_key_and_certificates(made.read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    path = directory / "org-seal.p12"
    path.write_bytes(pkcs12.serialize_key_and_certificates(
        b"baton prod-like", key, cert, None, BestAvailableEncryption(password.encode())))
    path.chmod(0o600)
    return path


def _environment(*, database_url: str, temporal_address: str, api_port: int,
                 data_dir: Path, seal: Path, metrics_token: str, prometheus_dir: Path
                 ) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    env.update({
        "BATON_DATABASE_URL": database_url,
        "BATON_TEMPORAL_ADDRESS": temporal_address,
        "BATON_TEMPORAL_NAMESPACE": NAMESPACE,
        "BATON_TASK_QUEUE": TASK_QUEUE,
        "BATON_PAYLOAD_KEYS": TEST_PAYLOAD_KEYS,
        "BATON_JWT_SECRET": secrets.token_urlsafe(48),
        "BATON_DATA_DIR": str(data_dir),
        "BATON_SEAL_PKCS12_PATH": str(seal),
        "BATON_SEAL_PKCS12_PASSWORD": SEAL_PASSWORD,
        "BATON_API_HOST": "127.0.0.1",
        "BATON_API_PORT": str(api_port),
        # production mode: the settings refuse development defaults (all set above)
        "BATON_ENV": "production",
        "BATON_WEBAUTHN_RP_ID": "baton.example.test",
        "BATON_WEBAUTHN_ORIGIN": "https://baton.example.test",
        "BATON_LOG_FORMAT": "json",
        "BATON_LOG_LEVEL": "INFO",
        "BATON_METRICS_TOKEN": metrics_token,
        # the API's processes add up their metrics in files here (read at import: real env)
        "PROMETHEUS_MULTIPROC_DIR": str(prometheus_dir),
        # the test logs in often from one address
        "BATON_LOGIN_RATE_LIMIT": "10000/minute",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(ROOT),  # they run outside the checkout (see Processes.cwd)
    })
    return env


async def _pollers(client: Client) -> set[str]:
    response = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=NAMESPACE, task_queue=TaskQueue(name=TASK_QUEUE),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
    return {poller.identity for poller in response.pollers}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test, so the fixture knows whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"prodlike_{report.when}", report)


def _failed(node: pytest.Item) -> bool:
    return any(getattr(node, f"prodlike_{when}", None) is not None
               and getattr(node, f"prodlike_{when}").failed for when in ("setup", "call"))


@pytest_asyncio.fixture
async def prod_stack(request: pytest.FixtureRequest, postgres_server: str,
                     tmp_path: Path) -> AsyncIterator[ProdStack]:
    log_dir, data_dir, run_dir = tmp_path / "logs", tmp_path / "data", tmp_path / "run"
    for directory in (log_dir, data_dir, run_dir):
        directory.mkdir()
    temporal_port, api_port, *worker_metrics_ports = free_ports(4)
    metrics_token, prometheus_dir = secrets.token_urlsafe(24), tmp_path / "prometheus"
    temporal_address = f"127.0.0.1:{temporal_port}"
    with fresh_database(postgres_server) as database_url:
        processes = Processes(log_dir, _environment(
            database_url=database_url, temporal_address=temporal_address, api_port=api_port,
            data_dir=data_dir, seal=_seal_pkcs12(tmp_path / "seal", SEAL_PASSWORD),
            metrics_token=metrics_token, prometheus_dir=prometheus_dir), run_dir)
        try:
            argv = [binary("temporal"), "server", "start-dev", "--headless",
                    "--ip", "127.0.0.1", "--port", str(temporal_port),
                    "--namespace", NAMESPACE, "--log-level", "warn",
                    # a workflow task failing twice in a row shows in a search attribute
                    "--dynamic-config-value",
                    "system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute=2"]
            for name, kind in CLI_TYPES.items():
                argv += ["--search-attribute", f"{name}={kind}"]
            temporal = processes.start("temporal", argv)
            # the schema and the data while Temporal starts
            processes.run("migrate", [PYTHON, str(ROOT / "cli.py"), "migrate"])
            org = SmallOrg(**json.loads(processes.run("seed", [PYTHON, "-m", "tests.prod.seed"])))
            org.usernames = {int(k): v for k, v in org.usernames.items()}

            async def connected() -> Client:
                client = await Client.connect(temporal_address, namespace=NAMESPACE,
                                              data_converter=TEST_DATA_CONVERTER)
                await client.service_client.check_health()
                return client

            client = await wait_until(f"Temporal at {temporal_address}", connected,
                                      timeout=START_TIMEOUT_S,
                                      alive=lambda: processes.check_alive(temporal))
            # each worker process serves its Temporal SDK metrics on a port of its own
            workers = [processes.start("worker", [PYTHON, str(ROOT / "worker.py")], env={
                **processes.env, "BATON_WORKER_METRICS_ADDRESS": f"127.0.0.1:{port}"})
                for port in worker_metrics_ports]
            stack = ProdStack(
                processes=processes, temporal=temporal, workers=workers, api_port=api_port,
                temporal_address=temporal_address, database_url=database_url,
                metrics_token=metrics_token, prometheus_dir=prometheus_dir,
                worker_metrics_urls=[f"http://127.0.0.1:{port}/metrics"
                                     for port in worker_metrics_ports],
                client=client, org=org)
            stack.start_api()
            await stack.wait_api_ready()
            identities = {stack.worker_identity(w) for w in workers}
            await wait_until("both workers to poll the task queue",
                             lambda: _pollers_include(client, identities),
                             timeout=START_TIMEOUT_S, alive=stack.alive)
            yield stack
        except BaseException:
            processes.dump_logs()  # the stack did not come up
            raise
        finally:
            try:
                codes = processes.stop_all()
                left = processes.leftovers()
                assert not left, f"processes outlived the test: {left}"
                # Baton's processes shut down cleanly on SIGTERM
                unclean = {name: code for name, code in codes.items()
                           if name != "temporal" and code != 0}
                assert not unclean, f"exit codes after SIGTERM: {unclean}"
            finally:
                if _failed(request.node):
                    processes.dump_logs()


async def _pollers_include(client: Client, identities: set[str]) -> bool:
    return identities <= await _pollers(client)
