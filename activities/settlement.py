"""Activities of the monthly commission settlement: set-based SQL through the engine."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics
from domain.periods import next_period, period_bounds, period_of
from domain.workflow_dto import (
    FinalizeRequest,
    FinalizeResult,
    PeriodToClose,
    SettlementInput,
    SettlementPlan,
)
from models import Order
from models.audit import audit
from models.commission_engine import closed_through, finalize_period, recompute_period
from models.db import SessionFactory


class SettlementActivities:
    def __init__(self, sessions: SessionFactory, timezone: str) -> None:
        self._sessions = sessions
        self._tz = timezone

    @activity.defn(name="plan_settlement")
    def plan_settlement(self, inp: SettlementInput, as_of: datetime) -> SettlementPlan:
        """Which month is open now, and which earlier months still await finalisation."""
        current = period_of(as_of, self._tz)
        with self._sessions() as session:
            closed = closed_through(session)
            first = closed and next_period(closed)
            if first is None:
                first = session.exec(select(func.min(Order.period))).one()[0] or current
        to_close = []
        period = first
        while period < current:
            _, end = period_bounds(period, self._tz)
            to_close.append(PeriodToClose(period=period,
                                          not_before=end if inp.skip_grace else end + inp.grace))
            period = next_period(period)
        return SettlementPlan(open_period=current, closed_through=closed, to_close=to_close)

    @activity.defn(name="recompute_open_period")
    def recompute_open_period(self, period: str) -> int:
        with self._sessions() as session:
            lines = recompute_period(session, period)
            # the lines are derived data: one summary event per run, not one per line
            audit(session, "COMMISSION_RECOMPUTED", entity=("commission_period", period),
                  after={"period": period, "lines": lines},
                  detail={"workflow_id": activity.info().workflow_id}
                  if activity.in_activity() else {})
            return lines

    @activity.defn(name="finalize_settlement_period")
    def finalize_settlement_period(self, req: FinalizeRequest) -> FinalizeResult:
        """Idempotent on run_key: a retried activity finds its run finished and returns it."""
        with self._sessions() as session:
            closed = closed_through(session)
            if closed is not None and req.period <= closed:
                # another run (the schedule, or HR by hand) already settled it
                return FinalizeResult(period=req.period, lines_written=0,
                                      statements_finalized=0)
            if closed is not None and req.period != next_period(closed):
                raise ApplicationError(f"finalise {next_period(closed)} before {req.period}",
                                       type="OUT_OF_ORDER", non_retryable=True)
            run = finalize_period(session, req.period, run_key=req.run_key, trigger=req.trigger,
                                  requested_by=req.requested_by)
            result = FinalizeResult(period=req.period, lines_written=run.lines_written,
                                    statements_finalized=run.statements_finalized)
        # committed: a retry finds the month closed above and counts nothing
        metrics.settlement_finalized(req.trigger)
        return result
