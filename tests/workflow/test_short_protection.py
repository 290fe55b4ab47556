"""A protection period shorter than the writes that start it (a demo policy of seconds on a
busy worker): the workflow completes instead of failing every workflow task on a negative
timer (found by bench/lifecycle.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.stages import Stage
from domain.workflow_dto import ActionInput, SignInput
from models.db import SessionFactory
from tests.factories import SmallOrg, build_small_org, fast_policy_rules
from tests.workflow.conftest import Harness, state_of, wait_stage
from tests.workflow.test_signing_e2e import current_agreement


@pytest.fixture
def org(sessions: SessionFactory) -> SmallOrg:
    with sessions() as session:
        # over before PROTECTION_STARTED and the receiver's notice are written
        return build_small_org(session, rules=fast_policy_rules(
            protection_period=timedelta(milliseconds=1)))


async def test_protection_that_ended_during_its_writes_completes(harness: Harness) -> None:
    org = harness.org
    handle = await harness.submit_and_start(requester=org.manager_a, from_id=org.sales_a1,
                                            to_id=org.sales_a2, customers=org.customers_a1[:1])
    state = await wait_stage(handle, Stage.PENDING_APPROVAL, level=1)
    for level in state.levels:
        await wait_stage(handle, Stage.PENDING_APPROVAL, level=level.level)
        await handle.execute_update("approve", ActionInput(actor_id=level.approver_id))
    document = (await current_agreement(handle)).agreement_sha256
    await handle.execute_update("sign", SignInput(actor_id=org.sales_a1, typed_name="Li",
                                                  document_hash=document))
    await harness.env.sleep(timedelta(minutes=11))  # the communication window
    final = await handle.result()
    assert final.stage == Stage.COMPLETED
    assert final.protection_end is not None and final.effective_at is not None
    assert final.protection_end - final.effective_at == timedelta(milliseconds=1)
    events = [h.event for h in (await state_of(handle)).history]
    assert events[-3:] == ["OWNERSHIP_TRANSFERRED", "PROTECTION_STARTED", "PROTECTION_ENDED"]
