"""Monthly commission settlement: recompute the open month, then finalise the months before it
once their grace period has passed. Started by a Temporal Schedule, or by HR by hand."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.settlement import SettlementActivities
    from domain.workflow_dto import FinalizeRequest, FinalizeResult, SettlementInput
    from domain.workflow_text import settlement_current

SQL_TIMEOUT = timedelta(minutes=30)  # a year of a big book is minutes of set-based SQL
RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1))


@workflow.defn(name="CommissionSettlementWorkflow")
class CommissionSettlementWorkflow:
    def __init__(self) -> None:
        self._finalized: list[FinalizeResult] = []
        self._open_period: str | None = None

    @workflow.run
    async def run(self, inp: SettlementInput) -> list[FinalizeResult]:
        workflow.set_current_details(settlement_current(None, []))
        plan = await workflow.execute_activity_method(
            SettlementActivities.plan_settlement, args=[inp, workflow.now()],
            start_to_close_timeout=timedelta(minutes=1), retry_policy=RETRY)
        self._open_period = plan.open_period
        workflow.set_current_details(settlement_current(plan.open_period, []))
        await workflow.execute_activity_method(
            SettlementActivities.recompute_open_period, plan.open_period,
            start_to_close_timeout=SQL_TIMEOUT, retry_policy=RETRY)
        if not inp.finalize:
            return []
        for month in plan.to_close:
            workflow.set_current_details(settlement_current(
                plan.open_period, self._finalized_periods(), month.period, month.not_before))
            wait = month.not_before - workflow.now()
            if wait > timedelta(0):
                await workflow.sleep(wait)  # late orders for the month may still arrive
            result = await workflow.execute_activity_method(
                SettlementActivities.finalize_settlement_period,
                FinalizeRequest(period=month.period,
                                run_key=f"{workflow.info().workflow_id}:{month.period}",
                                trigger=inp.trigger, requested_by=inp.requested_by),
                start_to_close_timeout=SQL_TIMEOUT, retry_policy=RETRY)
            self._finalized.append(result)
        workflow.set_current_details(settlement_current(plan.open_period,
                                                        self._finalized_periods()))
        return self._finalized

    def _finalized_periods(self) -> list[str]:
        return [r.period for r in self._finalized]

    @workflow.query
    def progress(self) -> dict[str, object]:
        return {"open_period": self._open_period,
                "finalized": [r.period for r in self._finalized]}
