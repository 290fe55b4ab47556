"""Probes for an orchestrator and the scrape endpoint for Prometheus, at the root (no login).

- GET /healthz: liveness. The process answers; touches no dependency, so a database or
  Temporal outage never gets a healthy API process restarted.
- GET /readyz: readiness. The database and Temporal both answer within READY_TIMEOUT_S; else
  503 problem+json naming what is down and what to check, so a load balancer stops sending
  traffic until it is back.
- GET /metrics: Prometheus text format (api/observability.py). Open on the private network
  unless BATON_METRICS_TOKEN is set; then it wants `Authorization: Bearer <token>`.
The older GET /api/v1/health (api/routes/health.py) stays as it was.
"""

from __future__ import annotations

import asyncio
import hmac
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Header, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.deps import SessionFactoryDep, SettingsDep, public
from api.problems import Problem
from api.temporal import TemporalConnector
from domain.permissions import Action
from models.db import SessionFactory

if TYPE_CHECKING:  # api.observability installs this router
    from api.observability import ApiMetrics

router = APIRouter(tags=["operations"])

READY_TIMEOUT_S = 3.0
OK, DOWN = "ok", "unavailable"


class LiveOut(BaseModel):
    status: str = "alive"


class ReadyOut(BaseModel):
    status: str
    checks: dict[str, str]


def _select_one(sessions: SessionFactory) -> None:
    with sessions() as session:
        session.connection().exec_driver_sql("SELECT 1")


async def _database_up(sessions: SessionFactory) -> bool:
    try:
        # a hung connect keeps its thread until the driver gives up; the probe answers anyway
        await asyncio.wait_for(run_in_threadpool(_select_one, sessions), READY_TIMEOUT_S)
        return True
    except Exception:
        return False


async def _temporal_up(connector: TemporalConnector) -> bool:
    async def check() -> bool:
        client = await connector.get()
        return bool(await client.service_client.check_health(
            timeout=timedelta(seconds=READY_TIMEOUT_S)))

    try:
        return await asyncio.wait_for(check(), READY_TIMEOUT_S)
    except Exception:
        return False


@router.get("/healthz", response_model=LiveOut, dependencies=[public(Action.HEALTH)])
async def healthz() -> LiveOut:
    """Liveness: this process answers. Checks no dependency."""
    return LiveOut()


@router.get("/readyz", response_model=ReadyOut, dependencies=[public(Action.HEALTH)],
            responses={503: {"description": "the database or Temporal is unreachable"}})
async def readyz(request: Request, sessions: SessionFactoryDep, settings: SettingsDep
                 ) -> ReadyOut:
    """Readiness: the database and Temporal both answer. 503 problem+json names which is down."""
    connector: TemporalConnector = request.app.state.temporal
    database, temporal = await asyncio.gather(_database_up(sessions), _temporal_up(connector))
    checks = {"database": OK if database else DOWN, "temporal": OK if temporal else DOWN}
    if database and temporal:
        return ReadyOut(status="ready", checks=checks)
    down = []
    if not database:
        down.append("the database does not answer: check BATON_DATABASE_URL and that the "
                    "database server is running and reachable from the API")
    if not temporal:
        down.append(f"Temporal at {settings.temporal_address} does not answer: check "
                    "BATON_TEMPORAL_ADDRESS and that the Temporal frontend is running")
    detail = "; ".join(down)
    raise Problem(503, "not-ready", "Not ready", detail[0].upper() + detail[1:] + ".",
                  headers={"Retry-After": "5"}, extra={"checks": checks})


@router.get("/metrics", dependencies=[public(Action.METRICS_READ)],
            response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}},
                       401: {"description": "BATON_METRICS_TOKEN is set and was not sent"}})
async def metrics(request: Request, settings: SettingsDep,
                  authorization: Annotated[str | None, Header()] = None) -> Response:
    """Prometheus metrics of the API: request counts and latencies by route template."""
    if settings.metrics_token is not None:
        expected = f"Bearer {settings.metrics_token.get_secret_value()}"
        if not authorization or not hmac.compare_digest(authorization.encode(),
                                                        expected.encode()):
            raise Problem(401, "metrics-token-required", "Metrics token required",
                          "This server protects /metrics: send `Authorization: Bearer <token>`"
                          " with the value of BATON_METRICS_TOKEN (Prometheus: "
                          "`authorization: {credentials: ...}` in the scrape config).",
                          headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    api_metrics: ApiMetrics = request.app.state.metrics
    body = await run_in_threadpool(api_metrics.exposition)  # multiprocess mode reads files
    return Response(body, media_type=CONTENT_TYPE_LATEST)
