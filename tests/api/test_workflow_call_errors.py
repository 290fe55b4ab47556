"""How a failed Update call maps to a problem: a broken connection or a workflow retrying its
last task is a passing condition (503, try again), not a refusal (502). Both were seen in the
soak-sized fault runs: the SDK raises UNKNOWN "transport error" for an Update in flight when
the server stops, and the server answers WorkflowNotReady while a workflow task that timed out
(workers starved of CPU) is retried."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel
from temporalio.service import RPCError, RPCStatusCode

from api.problems import Problem
from api.services.workflow_calls import execute_action
from domain.stages import Stage


class Failing:
    """A client whose every Update fails with `error`."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def get_workflow_handle(self, workflow_id: str) -> Failing:
        return self

    async def execute_update(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error


class Comment(BaseModel):
    comment: str = "ok"


@pytest.mark.parametrize(("status", "message", "http_status", "slug"), [
    (RPCStatusCode.UNKNOWN, "transport error", 503, "temporal-unavailable"),
    (RPCStatusCode.UNAVAILABLE, "connection refused", 503, "temporal-unavailable"),
    (RPCStatusCode.DEADLINE_EXCEEDED, "deadline exceeded", 503, "temporal-unavailable"),
    (RPCStatusCode.FAILED_PRECONDITION, "Unable to perform workflow execution update due to "
     "Workflow Task in failed state.", 503, "workflow-not-ready"),
    (RPCStatusCode.FAILED_PRECONDITION, "some other precondition", 502, "temporal-error"),
    (RPCStatusCode.NOT_FOUND, "workflow not found", 409, "request-closed"),
    (RPCStatusCode.INVALID_ARGUMENT, "bad update name", 502, "temporal-error"),
])
async def test_update_rpc_errors(status: RPCStatusCode, message: str, http_status: int,
                                 slug: str) -> None:
    client: Any = Failing(RPCError(message, status, b""))
    with pytest.raises(Problem) as raised:
        await execute_action(client, request_id=7, workflow_id="reassignment-7",
                             stage=Stage.PENDING_APPROVAL, update="approve", arg=Comment())
    assert (raised.value.status, raised.value.slug) == (http_status, slug)
    if http_status == 503:
        assert raised.value.headers["Retry-After"]
        assert "try again" in raised.value.detail
