"""Baton's domain counters, on the worker's Temporal metrics endpoint.

They go through the SDK's metric meter (`activity.metric_meter()`), so they appear beside the
temporal_* metrics at BATON_WORKER_METRICS_ADDRESS, with the activity's namespace, task queue
and types as labels. Call them only after the activity's transaction committed a NEW record
(its idempotency check said so): a retried activity that finds its work done counts nothing,
and an attempt whose commit failed counted nothing either.

Labels are bounded enums (stages, decisions, triggers), never ids or names.
"""

from __future__ import annotations

from temporalio import activity

from domain.stages import Stage

STAGE_TRANSITIONS = "baton_stage_transitions_total"
SIGNATURES = "baton_signatures_total"
SETTLEMENTS = "baton_settlements_total"
SIGNATURE_DECISIONS = frozenset({"SIGNED", "DECLINED"})
SETTLEMENT_TRIGGERS = frozenset({"schedule", "manual"})


def _add(name: str, description: str, labels: dict[str, str]) -> None:
    if not activity.in_activity():  # called directly (a test, a script): nothing to report
        return
    activity.metric_meter().create_counter(name, description).add(1, labels)


def stage_entered(stage: Stage) -> None:
    _add(STAGE_TRANSITIONS, "Lifecycle transitions recorded, by the stage entered.",
         {"stage": stage.value})


def signature_recorded(decision: str) -> None:
    _add(SIGNATURES, "Signature decisions recorded (SIGNED or DECLINED).",
         {"decision": decision if decision in SIGNATURE_DECISIONS else "other"})


def settlement_finalized(trigger: str) -> None:
    _add(SETTLEMENTS, "Commission months finalised by a settlement run, by trigger.",
         {"trigger": trigger if trigger in SETTLEMENT_TRIGGERS else "other"})
