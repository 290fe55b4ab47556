"""Record a full-lifecycle history for the replay test.

Run after an intentional workflow change that went through `workflow.patched`, keeping the
older histories too:  .venv/bin/python -m tests.replay.record_history
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from domain.stages import Stage
from domain.workflow_dto import (
    ActionInput,
    AppealOutcome,
    ReasonedActionInput,
    ResolveAppealInput,
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


async def record(path: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/baton.db"
        migrate(url)
        sessions = session_factory(make_engine(url))
        with sessions() as s:
            org = build_small_org(s)
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=binary("temporal-test-server"),
            data_converter=TEST_DATA_CONVERTER)  # encrypted, as production writes them
        await register_search_attributes(env.client, "default")
        task_queue = f"record-{uuid.uuid4().hex[:6]}"
        async with build_worker(env.client, sessions, task_queue):
            h = Harness(env, env.client, sessions, org, task_queue)
            handle = await h.submit_and_start(requester=org.manager_a, from_id=org.sales_a1,
                                              to_id=org.sales_a2, customers=org.customers_a1[:2])
            state = await wait_stage(handle, Stage.PENDING_APPROVAL, level=1)
            await env.sleep(timedelta(minutes=5))  # reminder and escalation of level 1
            for level in state.levels:
                await wait_stage(handle, Stage.PENDING_APPROVAL, level=level.level)
                await handle.execute_update("approve", ActionInput(actor_id=level.approver_id))
            await wait_stage(handle, Stage.COMMUNICATION)
            await handle.execute_update("appeal", ReasonedActionInput(
                actor_id=org.sales_a1, reason="please reconsider"))
            await handle.execute_update("resolve_appeal", ResolveAppealInput(
                actor_id=org.hr_head, actor_roles=["hr"], outcome=AppealOutcome.UPHOLD))
            # the sign step names the current agreement version by its hash (from the state)
            state = await wait_until(handle, lambda s: s.agreement_sha256 is not None)
            await handle.execute_update("sign", SignInput(actor_id=org.sales_a1, typed_name="Li",
                                                          document_hash=state.agreement_sha256))
            await handle.result()
            history = await handle.fetch_history()
        await env.shutdown()
    path.write_text(history.to_json())
    print(f"wrote {path} ({len(history.events)} events)")


if __name__ == "__main__":
    asyncio.run(record(HISTORIES / "full_lifecycle_v4_notification_delivery.json"))
