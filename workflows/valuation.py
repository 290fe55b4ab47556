"""Valuation refresh: value the whole customer base as of now and store a dated snapshot per
customer. Started nightly by a Temporal Schedule, or on demand (by name, with
ValuationRefreshInput). Reassignment assessments read the newest finished run; they never refit.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.valuation import ValuationActivities
    from domain.valuation import ValuationRefreshInput, ValuationRefreshResult
    from domain.workflow_text import valuation_summary

REFRESH_TIMEOUT = timedelta(hours=1)  # 20k customers / 1M orders take about a minute
HEARTBEAT_TIMEOUT = timedelta(minutes=2)  # the activity heartbeats every 10 s, also mid-fit
RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5), maximum_attempts=5)


@workflow.defn(name="ValuationRefreshWorkflow")
class ValuationRefreshWorkflow:
    def __init__(self) -> None:
        self._result: ValuationRefreshResult | None = None

    @workflow.run
    async def run(self, inp: ValuationRefreshInput) -> ValuationRefreshResult:
        info = workflow.info()
        # one key per workflow run: the activity's retries share it and write nothing twice
        run_key = f"{info.workflow_id}/{info.run_id}"
        if len(run_key) > 100:  # the column's width
            run_key = "sha256:" + hashlib.sha256(run_key.encode()).hexdigest()
        note = f"{inp.trigger}: {inp.label}" if inp.label else inp.trigger
        # the Temporal UI's line (ids and codes only: the label is free text)
        workflow.set_current_details(valuation_summary(inp.trigger, inp.horizon_months))
        self._result = await workflow.execute_activity_method(
            ValuationActivities.refresh_valuations,
            args=[run_key, workflow.now(), inp.horizon_months, note],
            start_to_close_timeout=REFRESH_TIMEOUT, heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=RETRY)
        return self._result

    @workflow.query
    def result(self) -> ValuationRefreshResult | None:
        return self._result
