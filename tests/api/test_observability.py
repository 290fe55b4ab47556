"""Health probes, the API's Prometheus metrics, request ids and JSON logs (issue 8).

/readyz with both dependencies up, and the worker's metrics, run against the dev server in
test_observability_devserver.py.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.main import create_app
from logging_config import configure_logging
from models import Employee
from tests.api.conftest import Api, api_settings, assert_problem

ROOT = Path(__file__).resolve().parents[2]
DOWN_DATABASE = "postgresql+psycopg://baton:x@127.0.0.1:1/baton"  # nothing listens


def samples(text: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {frozenset(s.labels.items()): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == name}


class _HealthyService:
    async def check_health(self, **_: Any) -> bool:
        return True


class HealthyTemporal:
    """Just enough of a client for the readiness probe: Temporal answers."""

    service_client = _HealthyService()


@pytest.fixture
async def client_for() -> AsyncIterator[Any]:
    clients: list[httpx.AsyncClient] = []

    def make(**overrides: Any) -> httpx.AsyncClient:
        app = create_app(api_settings(**{"db_url": "sqlite://", **overrides}))
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://baton.test")
        http.app = app  # type: ignore[attr-defined]
        clients.append(http)
        return http

    yield make
    for http in clients:
        await http.aclose()


# --- probes ----------------------------------------------------------------------------------


async def test_liveness_answers_with_every_dependency_down(client_for: Any) -> None:
    http = client_for(db_url=DOWN_DATABASE)
    r = await http.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "alive"}


async def test_not_ready_while_temporal_is_down(api: Api) -> None:
    r = await api.http.get("/readyz")  # the api fixture's Temporal is a closed port
    body = assert_problem(r, 503, "not-ready")
    assert body["checks"] == {"database": "ok", "temporal": "unavailable"}
    assert "BATON_TEMPORAL_ADDRESS" in body["detail"]
    assert "BATON_DATABASE_URL" not in body["detail"]
    assert r.headers["retry-after"] == "5"


async def test_not_ready_while_the_database_is_down(client_for: Any) -> None:
    http = client_for(db_url=DOWN_DATABASE)
    http.app.state.temporal.use(HealthyTemporal())
    r = await http.get("/readyz")
    body = assert_problem(r, 503, "not-ready")
    assert body["checks"] == {"database": "unavailable", "temporal": "ok"}
    assert "BATON_DATABASE_URL" in body["detail"]
    assert "Temporal" not in body["detail"]


async def test_the_old_health_endpoint_still_answers(api: Api) -> None:
    r = await api.http.get("/api/v1/health")
    assert r.status_code == 200
    assert r.json()["database"] == "ok"


# --- metrics ---------------------------------------------------------------------------------


async def test_metrics_count_requests_by_route_template_never_the_raw_path(api: Api) -> None:
    auth = await api.auth(api.org.manager_a)
    for request_id in (918273, 918274):
        await api.http.get(f"/api/v1/reassignments/{request_id}", headers=auth)
    await api.http.get("/no/such/page/565656")
    r = await api.http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    detail = "/api/v1/reassignments/{request_id}"
    counts = samples(r.text, "baton_http_requests_total")
    assert counts[frozenset({("method", "GET"), ("route", detail), ("status", "404")})] == 2
    assert counts[frozenset({("method", "GET"), ("route", "unmatched"),
                             ("status", "404")})] == 1
    assert counts[frozenset({("method", "POST"), ("route", "/api/v1/auth/login"),
                             ("status", "200")})] == 1
    buckets = samples(r.text, "baton_http_request_duration_seconds_bucket")
    mine = {dict(labels)["le"]: v for labels, v in buckets.items()
            if ("route", detail) in labels and ("status_class", "4xx") in labels}
    assert mine["+Inf"] == 2 and len(mine) > 5  # a histogram, with its buckets
    for raw in ("918273", "918274", "565656"):
        assert raw not in r.text


async def test_metrics_token_when_set(client_for: Any) -> None:
    http = client_for(metrics_token="scrape-me-0123456789")
    r = await http.get("/metrics")
    assert_problem(r, 401, "metrics-token-required")
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = await http.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert_problem(r, 401, "metrics-token-required")
    r = await http.get("/metrics", headers={"Authorization": "Bearer scrape-me-0123456789"})
    assert r.status_code == 200
    assert "baton_http_requests_total" in r.text


MULTIPROCESS_CHILD = """
import asyncio, sys, httpx
from api.main import create_app
from tests.api.conftest import api_settings

async def main(n, show):
    app = create_app(api_settings("sqlite://"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as http:
        for _ in range(n):
            assert (await http.get("/healthz")).status_code == 200
        if show:
            print((await http.get("/metrics")).text)

asyncio.run(main(int(sys.argv[1]), sys.argv[2] == "show"))
"""


def test_multiprocess_mode_adds_up_every_api_process(tmp_path: Path) -> None:
    """As under `uvicorn --workers 2`: two processes count, either one's /metrics has both."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}

    def child(n: int, show: bool) -> str:
        done = subprocess.run([sys.executable, "-c", MULTIPROCESS_CHILD, str(n),
                               "show" if show else "quiet"], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    child(3, show=False)
    text = child(2, show=True)
    counts = samples(text, "baton_http_requests_total")
    assert counts[frozenset({("method", "GET"), ("route", "/healthz"), ("status", "200")})] == 5
    assert len(list(tmp_path.glob("*.db"))) >= 2  # one file per process


# --- request ids and logs --------------------------------------------------------------------


async def test_request_id_is_kept_when_sane_and_made_otherwise(api: Api) -> None:
    r = await api.http.get("/healthz", headers={"X-Request-ID": "lb-7f3a.42:x"})
    assert r.headers["x-request-id"] == "lb-7f3a.42:x"
    for bad in ("has spaces", "<script>", "x" * 200):
        r = await api.http.get("/healthz", headers={"X-Request-ID": bad})
        made = r.headers["x-request-id"]
        assert made != bad and len(made) == 32 and int(made, 16) >= 0
    r = await api.http.get("/healthz")
    assert len(r.headers["x-request-id"]) == 32


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging("json", "INFO", stream)
    try:
        yield stream
    finally:
        logging.getLogger().removeHandler(handler)


async def test_json_log_lines_carry_the_request_id_and_no_names(
        api: Api, json_log: io.StringIO) -> None:
    with api.sessions() as session:
        employee = session.get(Employee, api.org.sales_a1)
        assert employee is not None
        name = employee.name
    auth = await api.auth(api.org.hr_staff)
    r = await api.http.get("/api/v1/employees", params={"q": name}, headers={
        **auth, "X-Request-ID": "trace-employees-1"})
    assert r.status_code == 200 and name in r.text  # the answer has the name; the logs not
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    access = [line for line in lines if line.get("request_id") == "trace-employees-1"]
    assert access, lines
    line = access[-1]
    assert line["route"] == "/api/v1/employees" and line["status"] == 200
    assert line["level"] == "INFO" and line["logger"] == "baton.access"
    assert isinstance(line["duration_ms"], float) and line["time"].endswith("+00:00")
    everything = json_log.getvalue()
    assert name not in everything
    assert "q=" not in everything and "?" not in everything  # no query strings
