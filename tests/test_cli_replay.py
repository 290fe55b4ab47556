"""`cli.py replay`: the upgrade check that replays histories with the new code (OPERATIONS.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from temporalio.client import WorkflowHistory

import cli
from tests.payload_keys import TEST_DATA_CONVERTER

HISTORIES = sorted((Path(__file__).parent / "replay" / "histories").glob("*.json"))
# ReassignmentWorkflow's (the other workflow types' histories sort before them)
LIFECYCLES = [p for p in HISTORIES if p.stem.startswith("full_lifecycle")]


async def _stream(histories: list[WorkflowHistory]) -> AsyncIterator[WorkflowHistory]:
    for history in histories:
        yield history


def _load(path: Path, text: str | None = None) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"wf-{path.stem}", text or path.read_text())


async def test_recorded_lifecycles_replay_with_this_code() -> None:
    assert HISTORIES
    summary = await cli.replay_histories(_stream([_load(p) for p in HISTORIES]),
                                         TEST_DATA_CONVERTER)
    assert summary.replayed == len(HISTORIES)
    assert summary.failures == {}


async def test_a_history_the_code_no_longer_matches_is_reported_not_raised() -> None:
    """Code that would schedule another activity than the history recorded (a change made
    without workflow.patched) is named, and the other histories still replay."""
    path = LIFECYCLES[0]
    text = path.read_text()
    assert text.count('"name": "assess_request"') == 1
    changed = _load(path, text.replace('"name": "assess_request"', '"name": "assess_v2"'))
    changed = WorkflowHistory("wf-changed", changed.events)
    summary = await cli.replay_histories(_stream([changed, _load(HISTORIES[-1])]),
                                         TEST_DATA_CONVERTER)
    assert summary.replayed == 2
    assert list(summary.failures) == ["wf-changed"]
    assert "Nondeterminism error" in summary.failures["wf-changed"]
    assert "assess_request" in summary.failures["wf-changed"]


def test_the_command_replays_running_workflows_by_default() -> None:
    args = cli.build_parser().parse_args(["replay"])
    assert args.func is cli.cmd_replay
    assert args.query == "ExecutionStatus = 'Running'" and args.limit == 1000
    args = cli.build_parser().parse_args(
        ["replay", "--query", "WorkflowType = 'ReassignmentWorkflow'", "--limit", "50"])
    assert args.query == "WorkflowType = 'ReassignmentWorkflow'" and args.limit == 50
