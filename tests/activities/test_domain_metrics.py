"""Baton's domain counters count each real event once: a retried activity adds nothing.

The activities run in the SDK's ActivityEnvironment with a real Temporal runtime whose
metrics go to a MetricBuffer, so the test reads exactly what the SDK would export.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import ActivityEnvironment

from activities.reassignment import ReassignmentActivities
from activities.settlement import SettlementActivities
from domain.policy import default_terms
from domain.stages import Reason, Stage
from domain.workflow_dto import FinalizeRequest, SignatureWrite
from models import PolicyVersion, ReassignmentRequest
from models.db import SessionFactory
from tests.activities.test_idempotency import rec
from tests.factories import SmallOrg, fast_policy_rules


class Meter:
    """An activity environment whose metric meter records into a buffer."""

    def __init__(self) -> None:
        self.buffer = MetricBuffer(1000)
        self.runtime = Runtime(telemetry=TelemetryConfig(metrics=self.buffer))
        self.env = ActivityEnvironment()
        self.env.metric_meter = self.runtime.metric_meter

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.env.run(fn, *args)

    def counted(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], int]:
        totals: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        for update in self.buffer.retrieve_updates():
            labels = tuple(sorted((k, str(v)) for k, v in update.attributes.items()
                                  if k in ("stage", "decision", "trigger")))
            key = (update.metric.name, labels)
            totals[key] = totals.get(key, 0) + int(update.value)
        return totals


@pytest.fixture
def request_id(sessions: SessionFactory, org: SmallOrg) -> int:
    with sessions() as s:
        policy = s.get(PolicyVersion, org.policy_version_id)
        assert policy is not None
        req = ReassignmentRequest(
            idempotency_key=str(uuid.uuid4()), payload_hash="0" * 64, requester_id=org.manager_a,
            from_employee_id=org.sales_a1, to_employee_id=org.sales_a2,
            customer_ids=org.customers_a1[:2], reason=Reason.TERRITORY_REALIGNMENT.value,
            policy_version_id=policy.id,
            terms=default_terms(fast_policy_rules()).model_dump(mode="json"),
            workflow_id="reassignment-test")
        s.add(req)
        s.flush()
        assert req.id is not None
        return req.id


def test_a_transition_and_its_signature_count_once_however_often_retried(
        sessions: SessionFactory, request_id: int) -> None:
    meter = Meter()
    acts = ReassignmentActivities(sessions)
    first = rec(request_id, 1)
    signed = rec(request_id, 2, from_stage=Stage.COMMUNICATION, to_stage=Stage.EFFECTIVE,
                 signature=SignatureWrite(signer_id=1, decision="SIGNED", method="otp"))
    assert meter.run(acts.record_transition, first) is True
    assert meter.run(acts.record_transition, signed) is True
    # the retries: the records exist, nothing is counted again
    assert meter.run(acts.record_transition, first) is False
    assert meter.run(acts.record_transition, signed) is False
    assert meter.counted() == {
        ("baton_stage_transitions_total", (("stage", "PENDING_APPROVAL"),)): 1,
        ("baton_stage_transitions_total", (("stage", "EFFECTIVE"),)): 1,
        ("baton_signatures_total", (("decision", "SIGNED"),)): 1,
    }


def test_a_settlement_counts_once_however_often_retried(
        sessions: SessionFactory, org: SmallOrg) -> None:
    meter = Meter()
    acts = SettlementActivities(sessions, "Asia/Shanghai")
    req = FinalizeRequest(period="2025-12", run_key="run-1", trigger="manual")  # the org's orders
    first = meter.run(acts.finalize_settlement_period, req)
    again = meter.run(acts.finalize_settlement_period, req)
    assert first.lines_written > 0 and again.lines_written == 0
    assert meter.counted() == {("baton_settlements_total", (("trigger", "manual"),)): 1}
