"""Replays checked-in histories against the current workflow code: catches non-determinism."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.reassignment import ReassignmentWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_checked_in():
    assert HISTORIES, "record one with: .venv/bin/python -m tests.replay.record_history"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replay(path: Path):
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    assert len(history.events) > 50  # a full lifecycle, not a stub
    replayer = Replayer(workflows=[ReassignmentWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
