"""CommissionSettlementWorkflow on the time-skipping server, and its Schedule on the dev server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from domain.periods import period_bounds, period_of, previous_period
from domain.workflow_dto import FinalizeResult, SettlementInput
from models import CommissionLine, CommissionPlan, Order, SettlementRun, Statement
from tests.conftest import binary
from tests.payload_keys import TEST_DATA_CONVERTER
from worker import SETTLEMENT_SCHEDULE_ID, build_worker, ensure_settlement_schedule
from workflows import search_attributes as sa

TZ = "Asia/Shanghai"


def _book(sessions, org, now: datetime) -> tuple[str, str, str]:
    """A plan and one order in each of the last three months (the last one still open)."""
    this_month = period_of(now, TZ)
    last, before = previous_period(this_month), previous_period(previous_period(this_month))
    with sessions() as s:
        s.add(CommissionPlan(employee_id=org.sales_b1, effective_from=datetime(2020, 1, 1,
                             tzinfo=UTC), base_rate_bp=500, inherited_rate_bp=200))
        starts = [period_bounds(p, TZ)[0] for p in (before, last, this_month)]
        for i, start in enumerate(starts):
            booked = min(start + timedelta(days=10), now)  # inside each month
            s.add(Order(external_id=f"S-{i}", customer_id=org.customers_b1[0],
                        amount_fen=100_000 * (i + 1), booked_at=booked))
    return before, last, this_month


async def test_settlement_finalises_past_months_after_grace_and_recomputes_the_open_one(
        sessions, org):
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"),
        data_converter=TEST_DATA_CONVERTER)
    try:
        now = await env.get_current_time()
        # the factory's orders are older; a settlement closes every month from the first order
        task_queue = f"settle-{uuid.uuid4().hex[:6]}"
        async with build_worker(env.client, sessions, task_queue, timezone=TZ):
            _book(sessions, org, now)
            handle = await env.client.start_workflow(
                "CommissionSettlementWorkflow",
                SettlementInput(trigger="manual", grace=timedelta(days=40)),
                id=f"settlement-{uuid.uuid4().hex[:6]}", task_queue=task_queue,
                result_type=list[FinalizeResult])
            results = await handle.result()  # time skips through the grace period
            after = await env.get_current_time()
    finally:
        await env.shutdown()
    this_month = period_of(now, TZ)
    last = previous_period(this_month)
    assert [r.period for r in results][-1] == last
    # last month ended less than 40 days ago: the workflow waited for its grace to pass
    assert after - now > timedelta(days=5)
    with sessions() as s:
        finals = {st.period for st in s.exec(select(Statement).where(
            Statement.status == "FINAL")).all()}
        assert last in finals and this_month not in finals
        open_lines = s.exec(select(CommissionLine).where(
            CommissionLine.period == this_month)).all()
        assert [line.amount_fen for line in open_lines] == [15_000]  # 300000 x 5%
        runs = s.exec(select(SettlementRun).order_by(SettlementRun.id)).all()
        assert [r.finalized_period for r in runs] == [r.period for r in results]


@pytest.mark.devserver
async def test_monthly_schedule_is_created_once():
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"), search_attributes=sa.ALL_KEYS,
        data_converter=TEST_DATA_CONVERTER, ui=False)
    try:
        await ensure_settlement_schedule(env.client, "baton", TZ)
        await ensure_settlement_schedule(env.client, "baton", TZ)  # a worker restart
        described = await env.client.get_schedule_handle(SETTLEMENT_SCHEDULE_ID).describe()
        spec = described.schedule.spec
        assert spec.time_zone_name == TZ
        assert spec.cron_expressions == ["0 1 1 * *"] or spec.calendars
        action = described.schedule.action
        assert action.workflow == "CommissionSettlementWorkflow"
    finally:
        await env.shutdown()
