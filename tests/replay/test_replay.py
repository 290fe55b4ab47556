"""Replays checked-in histories against the current workflow code: catches non-determinism."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.payload_keys import TEST_DATA_CONVERTER
from workflows.reassignment import ReassignmentWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_checked_in():
    assert HISTORIES, "record one with: .venv/bin/python -m tests.replay.record_history"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replay(path: Path):
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    assert len(history.events) > 50  # a full lifecycle, not a stub
    # as production replays: with the payload codec, which passes the plaintext payloads of
    # histories recorded before encryption through untouched
    replayer = Replayer(workflows=[ReassignmentWorkflow], data_converter=TEST_DATA_CONVERTER)
    await replayer.replay_workflow(history)
