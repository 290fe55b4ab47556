"""The worker's log lines carry the workflow and activity ids, and no statement values."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from temporalio.testing import ActivityEnvironment

from logging_config import configure_logging
from models.db import make_engine


@pytest.fixture
def lines() -> Iterator[Any]:
    stream = io.StringIO()
    handler = configure_logging("json", "INFO", stream)

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    try:
        yield read
    finally:
        logging.getLogger().removeHandler(handler)


def test_a_module_logger_inside_an_activity_names_its_workflow_and_activity(lines: Any) -> None:
    def some_activity() -> None:
        logging.getLogger("activities.example").info("wrote %d rows", 3)

    env = ActivityEnvironment()
    env.info = env.info.__class__(**{**env.info.__dict__, "workflow_id": "reassignment-42",
                                     "activity_type": "record_transition"})
    env.run(some_activity)
    [line] = [ln for ln in lines() if ln["logger"] == "activities.example"]
    assert line["message"] == "wrote 3 rows"
    assert line["workflow_id"] == "reassignment-42"
    assert line["activity_type"] == "record_transition"


def test_the_sdk_workflow_logger_extras_become_fields(lines: Any) -> None:
    # what temporalio's workflow.logger attaches to each record
    logging.getLogger("temporalio.workflow").info("stage changed", extra={
        "temporal_workflow": {"workflow_id": "reassignment-7", "run_id": "r-1",
                              "workflow_type": "ReassignmentWorkflow", "namespace": "default"}})
    [line] = [ln for ln in lines() if ln["message"] == "stage changed"]
    assert (line["workflow_id"], line["workflow_type"]) == ("reassignment-7",
                                                            "ReassignmentWorkflow")
    assert "temporal_workflow" not in line  # flattened, not printed twice


def test_database_errors_leave_out_the_values(lines: Any) -> None:
    name = "".join(["王", "小明"])  # not a literal: the traceback quotes this file's lines
    engine = make_engine("sqlite://")
    with engine.connect() as connection:
        connection.execute(text("CREATE TABLE person (name TEXT UNIQUE)"))
        connection.execute(text("INSERT INTO person VALUES (:name)"), {"name": name})
        with pytest.raises(Exception) as caught:
            connection.execute(text("INSERT INTO person VALUES (:name)"), {"name": name})
    logging.getLogger("api.problems").error("unhandled", exc_info=caught.value)
    logged = json.dumps(lines(), ensure_ascii=False)
    assert "UNIQUE constraint failed" in logged  # the error is there, its values are not
    assert name not in str(caught.value) and name not in logged
