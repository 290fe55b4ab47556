"""Liveness of the API's two dependencies."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from api.deps import OptionalTemporalClientDep, SessionFactoryDep, public
from api.schemas import HealthOut
from domain.permissions import Action
from models.db import SessionFactory

router = APIRouter(tags=["health"])


def _db_ok(sessions: SessionFactory) -> bool:
    try:
        with sessions() as session:
            session.connection().exec_driver_sql("SELECT 1")
        return True
    except Exception:
        return False


@router.get("/health", response_model=HealthOut, dependencies=[public(Action.HEALTH)])
async def health(response: Response, sessions: SessionFactoryDep,
                 client: OptionalTemporalClientDep) -> HealthOut:
    """200 while the database answers (Temporal down is "degraded"), 503 when it does not."""
    db_ok = await run_in_threadpool(_db_ok, sessions)
    temporal_ok = False
    if client is not None:
        try:
            temporal_ok = await asyncio.wait_for(
                client.service_client.check_health(timeout=timedelta(seconds=2)), 3)
        except Exception:
            temporal_ok = False
    if not db_ok:
        response.status_code = 503
    return HealthOut(status="down" if not db_ok else ("ok" if temporal_ok else "degraded"),
                     database="ok" if db_ok else "unavailable",
                     temporal="ok" if temporal_ok else "unavailable")
