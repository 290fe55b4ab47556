"""The valuation refresh activity: aggregate in SQL, fit once, bulk-write a dated run."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from temporalio import activity

from domain.valuation import (
    FORMULAS,
    METHOD_FIT,
    ValuationRefreshResult,
    fit_and_value,
    tier_cutoffs,
)
from models.db import SessionFactory
from models.valuation import ValuationRun
from models.valuation_queries import finished_run, order_stats, write_run

log = logging.getLogger(__name__)
HEARTBEAT_EVERY = 10.0  # seconds; the workflow's heartbeat timeout is a few times this


@contextmanager
def _heartbeating(phase: str, every: float = HEARTBEAT_EVERY) -> Iterator[None]:
    """Heartbeat from a side thread while a long, blocking step (the fit) runs."""
    if not activity.in_activity():
        yield
        return
    activity.heartbeat(phase)
    ctx = contextvars.copy_context()  # the activity context lives in a context variable
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            ctx.run(activity.heartbeat, phase)

    thread = threading.Thread(target=beat, name=f"heartbeat-{phase}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _result(run: ValuationRun, reused: bool) -> ValuationRefreshResult:
    assert run.id is not None
    params = run.model_params or {}
    fit = params.get("fit", {})
    return ValuationRefreshResult(
        run_id=run.id, run_key=run.run_key, as_of=run.as_of, horizon_months=run.horizon_months,
        customers=run.customers, fitted_customers=run.fitted_customers, reused=reused,
        fit_ok=bool(fit.get("ok")), fit_reason=fit.get("reason"))


class ValuationActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    def _finished(self, run_key: str) -> ValuationRun | None:
        with self._sessions() as session:
            return finished_run(session, run_key)

    @activity.defn(name="refresh_valuations")
    def refresh_valuations(self, run_key: str, as_of: datetime, horizon_months: int,
                           note: str | None = None) -> ValuationRefreshResult:
        """Value every customer as of `as_of` and store one run with one snapshot each.

        Idempotent on run_key: a retry finds the finished run and returns it, writing nothing.
        Reads and the fit happen outside any write transaction (on SQLite a write transaction
        holds the database lock); the run and its snapshots are written in one transaction.
        """
        done = self._finished(run_key)
        if done is not None:
            return _result(done, reused=True)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        with self._sessions() as session:
            stats = order_stats(session, as_of)
        timings["aggregate"] = time.perf_counter() - started

        t0 = time.perf_counter()
        with _heartbeating("fit"):
            valuations, fit = fit_and_value(stats, as_of, horizon_months)
        timings["fit_and_value"] = time.perf_counter() - t0

        methods: dict[str, int] = {}
        tiers: dict[str, int] = {}
        for v in valuations:
            methods[v.method] = methods.get(v.method, 0) + 1
            tiers[v.tier] = tiers.get(v.tier, 0) + 1
        params = {"fit": fit.summary(), "methods": methods, "tiers": tiers,
                  "tier_cutoffs_fen": tier_cutoffs(valuations), "formulas": FORMULAS,
                  "timings_s": {k: round(v, 3) for k, v in timings.items()}}
        if activity.in_activity():
            activity.heartbeat("write")
        try:
            with self._sessions() as session:
                done = finished_run(session, run_key)  # a concurrent attempt got there first
                if done is not None:
                    return _result(done, reused=True)
                run = write_run(session, run_key=run_key, as_of=as_of,
                                horizon_months=horizon_months, valuations=valuations,
                                model_params=params, note=note)
                result = _result(run, reused=False)
        except IntegrityError:  # the same run_key committed by another attempt meanwhile
            done = self._finished(run_key)
            if done is None:
                raise
            return _result(done, reused=True)
        log.info("valuation run %s: %d customers, %d by %s, %.1fs", result.run_id,
                 result.customers, result.fitted_customers, METHOD_FIT,
                 time.perf_counter() - started)
        return result
