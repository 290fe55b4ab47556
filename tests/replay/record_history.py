"""Record workflow histories for the replay test (tests/replay/test_replay.py).

Each KIND drives one workflow type on the time-skipping server with the real worker and real
activities, encrypted by the payload codec as production writes them, and writes its history to
tests/replay/histories/<name>.json. Record after an intentional workflow change that went
through `workflow.patched` (docs/WORKFLOW-CHANGES.md), under a NEW name: the older histories
stay, so the old code paths keep being replayed.

    .venv/bin/python -m tests.replay.record_history reassignment  # -> DEFAULT_NAMES[kind]
    .venv/bin/python -m tests.replay.record_history settlement valuation bulk
    .venv/bin/python -m tests.replay.record_history reassignment --name full_lifecycle_v6_x
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from domain.bulk import BulkStatus
from domain.policy import Terms
from domain.stages import Role, Stage
from domain.valuation import ValuationRefreshInput, ValuationRefreshResult
from domain.workflow_dto import (
    ActionInput,
    AppealOutcome,
    FinalizeResult,
    ReasonedActionInput,
    ReassignApprovalInput,
    ReassignmentState,
    ResolveAppealInput,
    SettlementInput,
    SignInput,
)
from models.db import make_engine, migrate, session_factory
from temporal_client import register_search_attributes
from tests.conftest import binary
from tests.factories import build_small_org
from tests.payload_keys import TEST_DATA_CONVERTER
from tests.workflow.conftest import Harness, wait_stage, wait_until
from worker import build_worker

HISTORIES = Path(__file__).parent / "histories"
TIMEZONE = "Asia/Shanghai"

# the file each kind writes unless --name says otherwise; bump the suffix on a new patch
DEFAULT_NAMES = {
    "reassignment": "full_lifecycle_v6_documents_queue_seal_after_sign",
    "settlement": "settlement_v1",
    "valuation": "valuation_refresh_v1",
    "bulk": "bulk_v1",
}


async def reassignment(h: Harness) -> list[WorkflowHistory]:
    """The longest path: escalation, a delegate, HR's hand-over of a level, an appeal that
    amends the terms (a second report and agreement), the signature with its seal, the
    transfer, protection and its end; e-mail/robot delivery after every notice."""
    org = h.org
    handle = await h.submit_and_start(requester=org.manager_a, from_id=org.sales_a1,
                                      to_id=org.sales_a2, customers=org.customers_a1[:2])
    state = await wait_stage(handle, Stage.PENDING_APPROVAL, level=1)
    await h.env.sleep(timedelta(minutes=5))  # level 1's reminder and escalation
    state = await wait_until(handle, lambda s: bool(s.levels[0].escalated_to))
    # level 1: a delegate stands in for the approver (the API checked the delegation)
    await handle.execute_update("approve", ActionInput(
        actor_id=org.manager_b, on_behalf_of=state.levels[0].approver_id, comment="for them"))
    state = await wait_stage(handle, Stage.PENDING_APPROVAL, level=2)
    # level 2: HR hands the level to someone who has not decided anything yet
    decided = {org.manager_b, state.levels[0].approver_id}
    parties = {org.manager_a, org.sales_a1, org.sales_a2}
    substitute = next(e for e in (org.hr_staff, org.director, org.ceo)
                      if e not in decided | parties | {lv.approver_id for lv in state.levels})
    await handle.execute_update("reassign_approval", ReassignApprovalInput(
        actor_id=org.hr_head, actor_roles=[Role.HR], new_approver_id=substitute, level=2,
        reason="approver on leave"))
    await handle.execute_update("approve", ActionInput(actor_id=substitute))
    for level in state.levels[2:]:
        await wait_stage(handle, Stage.PENDING_APPROVAL, level=level.level)
        await handle.execute_update("approve", ActionInput(actor_id=level.approver_id))
    state = await wait_until(handle, lambda s: s.agreement_sha256 is not None)
    await handle.execute_update("appeal", ReasonedActionInput(
        actor_id=org.sales_a1, reason="please reconsider"))
    assert state.terms is not None
    amended = Terms.model_validate({**state.terms.model_dump(), "protection_share_bp": 7_000})
    await handle.execute_update("resolve_appeal", ResolveAppealInput(
        actor_id=org.hr_head, actor_roles=[Role.HR], outcome=AppealOutcome.AMEND,
        amended_terms=amended))
    first = state.agreement_sha256
    # the amended terms make a new agreement version: sign that one
    state = await wait_until(handle, lambda s: s.agreement_sha256 not in (None, first))
    await handle.execute_update("sign", SignInput(actor_id=org.sales_a1, typed_name="Li",
                                                  document_hash=state.agreement_sha256))
    final: ReassignmentState = await handle.result()
    assert final.stage == Stage.COMPLETED, final.stage
    return [await handle.fetch_history()]


async def settlement(h: Harness) -> list[WorkflowHistory]:
    """Plans the months to close, finalises each after its grace, recomputes the open one."""
    from tests.workflow.test_settlement import _book

    _book(h.sessions, h.org, await h.env.get_current_time())
    handle = await h.client.start_workflow(
        "CommissionSettlementWorkflow", SettlementInput(trigger="manual",
                                                        grace=timedelta(days=40)),
        id=f"settlement-{uuid.uuid4().hex[:6]}", task_queue=h.task_queue,
        result_type=list[FinalizeResult])
    assert await handle.result()
    return [await handle.fetch_history()]


async def valuation(h: Harness) -> list[WorkflowHistory]:
    handle = await h.client.start_workflow(
        "ValuationRefreshWorkflow", ValuationRefreshInput(label="recorded for replay"),
        id=f"valuation-{uuid.uuid4().hex[:6]}", task_queue=h.task_queue,
        result_type=ValuationRefreshResult)
    assert (await handle.result()).customers > 0
    return [await handle.fetch_history()]


async def bulk(h: Harness) -> list[WorkflowHistory]:
    """Three groups, two per run: the first run continues as new, the second completes.
    Both runs' histories are kept (the continue-as-new and the closing path)."""
    from tests.workflow.test_bulk import start_bulk, start_reorganisation, three_group_csv

    reorganisation = start_reorganisation(h, three_group_csv(h))
    handle = await start_bulk(h, reorganisation, groups_per_run=2, starts_per_second=5)
    result = await handle.result()
    assert result.status == BulkStatus.COMPLETED and result.runs == 2, result
    first = await h.client.get_workflow_handle(handle.id, run_id=handle.result_run_id
                                               ).fetch_history()
    last = await h.client.get_workflow_handle(handle.id).fetch_history()  # the newest run
    assert first.events[-1].HasField("workflow_execution_continued_as_new_event_attributes")
    assert last.events[-1].HasField("workflow_execution_completed_event_attributes")
    return [first, last]


KINDS: dict[str, Callable[[Harness], Awaitable[list[WorkflowHistory]]]] = {
    "reassignment": reassignment, "settlement": settlement, "valuation": valuation,
    "bulk": bulk,
}


async def record(kind: str, name: str) -> list[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/baton.db"
        migrate(url)
        sessions = session_factory(make_engine(url))
        with sessions() as s:
            org = build_small_org(s)
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=binary("temporal-test-server"),
            data_converter=TEST_DATA_CONVERTER)  # encrypted, as production writes them
        try:
            await register_search_attributes(env.client, "default")
            task_queue = f"record-{uuid.uuid4().hex[:6]}"
            async with build_worker(env.client, sessions, task_queue, timezone=TIMEZONE):
                histories = await KINDS[kind](Harness(env, env.client, sessions, org,
                                                      task_queue))
        finally:
            await env.shutdown()
    paths = []
    for i, history in enumerate(histories, start=1):
        path = HISTORIES / (f"{name}.json" if len(histories) == 1 else f"{name}_run{i}.json")
        path.write_text(history.to_json())
        print(f"wrote {path} ({len(history.events)} events)")
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.replay.record_history",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kinds", nargs="+", choices=sorted(KINDS), metavar="KIND",
                        help=f"one or more of {', '.join(sorted(KINDS))}")
    parser.add_argument("--name", help="file name without .json (one kind only); default "
                        + ", ".join(f"{k}: {v}" for k, v in DEFAULT_NAMES.items()))
    args = parser.parse_args()
    if args.name and len(args.kinds) > 1:
        parser.error("--name names one history: give one KIND with it")
    for kind in args.kinds:
        asyncio.run(record(kind, args.name or DEFAULT_NAMES[kind]))


if __name__ == "__main__":
    main()
