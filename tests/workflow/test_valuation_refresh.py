"""ValuationRefreshWorkflow on the time-skipping server, the refresh activity's idempotency, the
set-based aggregation against the pure reference, and latest_snapshots (both backends)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlmodel import func, select
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.valuation import ValuationActivities
from domain.valuation import (
    METHOD_FIT,
    METHOD_RUN_RATE,
    ValuationRefreshInput,
    ValuationRefreshResult,
    summarize,
)
from models import Assignment, Customer, Order, OrderKind, ValuationRun, ValuationSnapshot
from models.valuation_queries import latest_snapshots, order_stats
from tests.conftest import binary
from tests.payload_keys import TEST_DATA_CONVERTER
from worker import VALUATION_SCHEDULE_ID, build_worker, ensure_valuation_schedule
from workflows import search_attributes as sa
from workflows.valuation import ValuationRefreshWorkflow

TZ = "Asia/Shanghai"
AS_OF = datetime(2026, 3, 1, tzinfo=UTC)


def _counts(sessions) -> tuple[int, int]:
    with sessions() as s:
        return (s.exec(select(func.count()).select_from(ValuationRun)).one(),
                s.exec(select(func.count()).select_from(ValuationSnapshot)).one())


def _add_repeat_customers(sessions, owner: int, n: int) -> list[int]:
    """n customers with 2..9 orders over the last year and a refund now and then."""
    ids = []
    with sessions() as s:
        for i in range(n):
            c = Customer(code=f"V{i:03d}", name=f"Valued {i}", found_by_employee_id=owner)
            s.add(c)
            s.flush()
            assert c.id is not None
            ids.append(c.id)
            s.add(Assignment(customer_id=c.id, employee_id=owner,
                             start_at=AS_OF - timedelta(days=500)))
            orders = 2 + i % 8
            gap = 300 // orders + i % 5
            for k in range(orders):
                s.add(Order(external_id=f"V-{i}-{k}", customer_id=c.id,
                            amount_fen=50_000 + 7_919 * ((i * 7 + k) % 13),
                            booked_at=AS_OF - timedelta(days=5 + i % 60 + gap * k, hours=i)))
            if i % 6 == 0:
                s.add(Order(external_id=f"V-{i}-r", customer_id=c.id, kind=OrderKind.REFUND,
                            amount_fen=-10_000, booked_at=AS_OF - timedelta(days=3)))
    return ids


async def test_workflow_writes_a_run_and_a_snapshot_for_every_customer(time_env, sessions, org):
    now = await time_env.get_current_time()
    with sessions() as s:  # a recent order for A1's customers, larger for each next one
        for i, c in enumerate(org.customers_a1):
            s.add(Order(external_id=f"WF-{i}", customer_id=c, amount_fen=100_000 * (i + 1),
                        booked_at=now - timedelta(days=10)))
    task_queue = f"valuation-{uuid.uuid4().hex[:6]}"
    async with build_worker(time_env.client, sessions, task_queue, timezone=TZ):
        result = await time_env.client.execute_workflow(
            "ValuationRefreshWorkflow", ValuationRefreshInput(label="on demand by HR"),
            id=f"valuation-{uuid.uuid4().hex[:6]}", task_queue=task_queue,
            result_type=ValuationRefreshResult)
    customers = org.customers_a1 + org.customers_a2 + org.customers_b1
    assert result.customers == len(customers) and not result.reused
    # 4 repeat customers are too few to fit: the fallback values everyone
    assert result.fitted_customers == 0 and not result.fit_ok
    assert result.fit_reason == "too few repeat customers to fit: 4 < 20"
    with sessions() as s:
        run = s.get(ValuationRun, result.run_id)
        assert run is not None and run.finished_at is not None
        assert run.note == "manual: on demand by HR"
        assert run.model_params["methods"] == {METHOD_RUN_RATE: len(customers)}
        snaps = s.exec(select(ValuationSnapshot).where(
            ValuationSnapshot.run_id == run.id)).all()
        latest = latest_snapshots(s, customers)
    assert sorted(x.customer_id for x in snaps) == sorted(customers)
    assert {x.method for x in snaps} == {METHOD_RUN_RATE}
    assert all(x.as_of == result.as_of for x in snaps)
    by_customer = {x.customer_id: x for x in snaps}
    assert [by_customer[c].order_count for c in customers] == [2] * 4 + [1] * 4
    a1 = [by_customer[c].expected_revenue_fen for c in org.customers_a1]
    assert a1 == sorted(a1) and a1[0] > 0
    assert by_customer[org.customers_a1[-1]].tier == "A"
    assert by_customer[org.customers_a1[-1]].recency_days == 10
    assert {c: x.run_id for c, x in latest.items()} == {c: result.run_id for c in customers}


async def test_a_retried_activity_writes_nothing_twice(time_env, sessions, org):
    """The first attempt writes the run, then fails as if the worker died before reporting;
    Temporal retries with the same run_key and the activity returns the finished run."""
    real = ValuationActivities(sessions)
    attempts: list[ValuationRefreshResult] = []

    @activity.defn(name="refresh_valuations")
    def flaky(run_key: str, as_of: datetime, horizon_months: int,
              note: str | None = None) -> ValuationRefreshResult:
        result = real.refresh_valuations(run_key, as_of, horizon_months, note)
        attempts.append(result)
        if activity.info().attempt == 1:
            raise RuntimeError("lost the result after committing")
        return result

    from concurrent.futures import ThreadPoolExecutor

    task_queue = f"valuation-retry-{uuid.uuid4().hex[:6]}"
    async with Worker(time_env.client, task_queue=task_queue,
                      workflows=[ValuationRefreshWorkflow], activities=[flaky],
                      activity_executor=ThreadPoolExecutor(2)):
        result = await time_env.client.execute_workflow(
            "ValuationRefreshWorkflow", ValuationRefreshInput(horizon_months=6),
            id=f"valuation-{uuid.uuid4().hex[:6]}", task_queue=task_queue,
            result_type=ValuationRefreshResult)
    assert [a.reused for a in attempts] == [False, True]
    assert attempts[0].run_id == attempts[1].run_id == result.run_id
    assert result.horizon_months == 6
    n_customers = len(org.customers_a1 + org.customers_a2 + org.customers_b1)
    assert _counts(sessions) == (1, n_customers)


def test_refresh_fits_the_model_and_is_idempotent_on_run_key(sessions, org):
    """Enough repeat customers for BG/NBD + Gamma-Gamma; the same run_key twice writes once."""
    extra = _add_repeat_customers(sessions, org.sales_a1, 30)
    acts = ValuationActivities(sessions)
    first = acts.refresh_valuations("test-run-1", AS_OF, 12)
    again = acts.refresh_valuations("test-run-1", AS_OF, 12)
    assert not first.reused and again.reused
    assert again.model_dump(exclude={"reused"}) == first.model_dump(exclude={"reused"})
    total = 8 + len(extra)
    assert _counts(sessions) == (1, total)
    assert first.fit_ok, first.fit_reason
    assert first.fitted_customers == len(extra)  # all of them have 2+ orders
    with sessions() as s:
        run = s.get(ValuationRun, first.run_id)
        assert run is not None
        params = run.model_params["fit"]["params"]
        assert set(params) == {"r", "alpha", "a", "b", "p", "q", "v"}
        assert run.model_params["methods"] == {METHOD_FIT: len(extra), METHOD_RUN_RATE: 8}
        snaps = {x.customer_id: x for x in s.exec(select(ValuationSnapshot)).all()}
    fitted = snaps[extra[0]]
    assert fitted.method == METHOD_FIT and fitted.expected_revenue_fen > 0
    figure = fitted.inputs["figures"]["expected_revenue_fen"]
    assert figure["method"] == METHOD_FIT and figure["inputs"]["frequency"] == 1
    assert fitted.owner_tenure_days == 500
    tiers = [x.tier for x in snaps.values()]
    assert tiers.count("A") >= 7 and tiers.count("C") >= 19

    # a second run (a new key) is the newest for everyone; an unfinished one never counts
    second = acts.refresh_valuations("test-run-2", AS_OF + timedelta(days=1), 12)
    with sessions() as s:
        s.add(ValuationRun(run_key="crashed", as_of=AS_OF + timedelta(days=2)))
    assert _counts(sessions) == (3, 2 * total)
    with sessions() as s:
        latest = latest_snapshots(s, [extra[0], org.customers_a1[0], 999_999])
        assert {c: x.run_id for c, x in latest.items()} == {
            extra[0]: second.run_id, org.customers_a1[0]: second.run_id}


def test_sql_aggregation_equals_the_pure_reference(sessions, org):
    extra = _add_repeat_customers(sessions, org.sales_b1, 12)
    since = AS_OF - timedelta(days=365.2425)
    with sessions() as s:
        c = extra[0]  # rows just inside, on, and outside the window and after as_of
        for j, at in enumerate([since, since + timedelta(microseconds=1), AS_OF,
                                AS_OF + timedelta(seconds=1)]):
            s.add(Order(external_id=f"EDGE-{j}", customer_id=c, amount_fen=1_000 * (j + 1),
                        booked_at=at))
        s.add(Order(external_id="EDGE-r", customer_id=c, kind=OrderKind.CANCELLATION,
                    amount_fen=-4_000, booked_at=since - timedelta(days=1)))
        s.add(Customer(code="EMPTY", name="No orders yet"))
    with sessions() as s:
        aggregated = {x.customer_id: x for x in order_stats(s, AS_OF)}
        rows = s.exec(select(Order.customer_id, Order.booked_at, Order.amount_fen)).all()
        owners = {a.customer_id: a.start_at for a in s.exec(select(Assignment)).all()}
        customers = s.exec(select(Customer.id)).all()
    assert sorted(aggregated) == sorted(customers)
    for cid in customers:
        orders = [(at, amount) for c, at, amount in rows if c == cid]
        assert aggregated[cid] == summarize(cid, orders, owners.get(cid), AS_OF), cid
    edge = aggregated[extra[0]]
    # regular rows 50,000 + 57,919 and a 10,000 refund; the edge row at `since` and the one
    # after as_of are outside the window; the cancellation before it only counts for lifetime
    assert edge.t12m_revenue_fen == 97_919 + 2_000 + 3_000
    assert edge.lifetime_revenue_fen == 97_919 + 1_000 + 2_000 + 3_000 - 4_000
    assert (edge.order_count, edge.t12m_order_count, edge.refund_count) == (5, 4, 2)
    assert edge.last_order_at == AS_OF
    empty = [x for x in aggregated.values() if x.order_count == 0]
    assert len(empty) == 1 and empty[0].first_order_at is None


def test_the_activity_heartbeats_from_a_side_thread_during_a_long_step():
    import time as _time

    from temporalio.testing import ActivityEnvironment

    from activities.valuation import _heartbeating

    env = ActivityEnvironment()
    beats: list[tuple] = []
    env.on_heartbeat = lambda *details: beats.append(details)

    def long_step() -> None:
        with _heartbeating("fit", every=0.02):
            _time.sleep(0.2)  # a blocking fit that never heartbeats itself

    env.run(long_step)
    assert len(beats) >= 3 and set(beats) == {("fit",)}


def test_bench_generator_at_toy_scale(engine):
    """bench.valuation's base: exactly the rows asked for, refunds after their original and
    never after as_of, every customer with an order and an owner; the aggregate agrees."""
    from bench.valuation import AS_OF as BENCH_AS_OF
    from bench.valuation import Scale, generate

    generated = generate(engine, Scale(customers=150, orders=3_000, salespeople=7, seed=3))
    assert (generated.customers, generated.orders, generated.refunds) == (150, 3_000, 30)
    with engine.connect() as conn:
        bad_refunds = conn.execute(text(
            "SELECT count(*) FROM customer_order r JOIN customer_order o "
            "ON o.id = r.original_order_id WHERE r.booked_at <= o.booked_at "
            "OR r.customer_id <> o.customer_id OR r.amount_fen >= 0")).scalar_one()
        assert bad_refunds == 0
    from models.db import session_factory

    with session_factory(engine)() as s:
        stats = order_stats(s, BENCH_AS_OF)
    assert len(stats) == 150 and all(x.order_count >= 1 and x.owner_since for x in stats)
    assert sum(x.order_count + x.refund_count for x in stats) == 3_000
    assert sum(x.order_count >= 2 for x in stats) == generated.repeat_customers


@pytest.mark.devserver
async def test_nightly_schedule_is_created_once():
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"), search_attributes=sa.ALL_KEYS,
        data_converter=TEST_DATA_CONVERTER, ui=False)
    try:
        await ensure_valuation_schedule(env.client, "baton", TZ)
        await ensure_valuation_schedule(env.client, "baton", TZ)  # a worker restart
        described = await env.client.get_schedule_handle(VALUATION_SCHEDULE_ID).describe()
        spec = described.schedule.spec
        assert spec.time_zone_name == TZ
        assert spec.cron_expressions == ["30 2 * * *"] or spec.calendars
        assert described.schedule.action.workflow == "ValuationRefreshWorkflow"
    finally:
        await env.shutdown()
