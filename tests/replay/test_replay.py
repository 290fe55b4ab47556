"""Replays the checked-in histories of every workflow type against the current workflow code:
catches non-determinism before a deployment does (docs/WORKFLOW-CHANGES.md)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.payload_keys import TEST_DATA_CONVERTER
from worker import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
RECORD = ".venv/bin/python -m tests.replay.record_history"


def _load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def _workflow_type(history: WorkflowHistory) -> str:
    started = history.events[0].workflow_execution_started_event_attributes
    return started.workflow_type.name


def _registered_types() -> set[str]:
    # the name @workflow.defn gave each class (the SDK keeps no public accessor for it)
    return {workflow._Definition.must_from_class(cls).name or "" for cls in WORKFLOWS}


def test_every_registered_workflow_type_has_a_recorded_history():
    recorded = Counter(_workflow_type(_load(path)) for path in HISTORIES)
    missing = _registered_types() - set(recorded)
    assert not missing, (f"no recorded history for {sorted(missing)}: add a kind to "
                         f"tests/replay/record_history.py and run `{RECORD} <kind>`")
    assert set(recorded) <= _registered_types(), "a history of a type no worker registers"


def test_histories_are_whole_closed_runs():
    """A stub or a history cut off mid-run would replay trivially."""
    for path in HISTORIES:
        history = _load(path)
        last = history.events[-1]
        closed = any(last.HasField(f) for f in (
            "workflow_execution_completed_event_attributes",
            "workflow_execution_continued_as_new_event_attributes"))
        assert closed, f"{path.name} does not end with the run's close"
        assert len(history.events) >= 10, path.name
        if _workflow_type(history) == "ReassignmentWorkflow":
            assert len(history.events) > 50, f"{path.name}: not a full lifecycle"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replay(path: Path):
    history = _load(path)
    # as production replays (cli.py replay): every registered workflow, with the payload
    # codec, which passes the plaintext payloads of histories recorded before encryption
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=TEST_DATA_CONVERTER)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, (
        f"{path.name} ({_workflow_type(history)}) no longer replays: a workflow change "
        f"needs workflow.patched (docs/WORKFLOW-CHANGES.md): {result.replay_failure}")


def test_the_newest_lifecycle_renders_on_the_documents_queue_and_seals_after_the_sign():
    """The v6 history records the patched paths (documents-task-queue-v1, seal-after-sign-v1),
    so replaying it exercises them: every render and the seal on `<queue>-documents`, and the
    seal scheduled after the sign Update has answered."""
    history = _load(Path(__file__).parent / "histories"
                    / "full_lifecycle_v6_documents_queue_seal_after_sign.json")
    events = history.events
    queue = events[0].workflow_execution_started_event_attributes.task_queue.name
    scheduled = [(i, e.activity_task_scheduled_event_attributes) for i, e in enumerate(events)
                 if e.HasField("activity_task_scheduled_event_attributes")]
    documents = {"render_personal_report", "render_agreement", "seal_agreement"}
    queues = {(a.activity_type.name, a.task_queue.name) for _, a in scheduled}
    assert {q for name, q in queues if name in documents} == {f"{queue}-documents"}
    assert {q for name, q in queues if name not in documents} == {queue}
    accepts = [e.workflow_execution_update_accepted_event_attributes for e in events
               if e.HasField("workflow_execution_update_accepted_event_attributes")]
    accepted = {a.protocol_instance_id: a.accepted_request.input.name for a in accepts}
    [sign_answered] = [i for i, e in enumerate(events)
                       if e.HasField("workflow_execution_update_completed_event_attributes")
                       and accepted[e.workflow_execution_update_completed_event_attributes
                                    .meta.update_id] == "sign"]
    [seal] = [i for i, a in scheduled if a.activity_type.name == "seal_agreement"]
    assert seal > sign_answered
