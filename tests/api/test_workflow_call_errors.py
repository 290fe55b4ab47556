"""How a failed Update call maps to a problem: a broken connection is an outage (503), not a
refusal (502). Seen in the Temporal-outage fault run: the SDK raises UNKNOWN "transport
error" for an Update in flight when the server stops."""

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
        assert "may not have been recorded" in raised.value.detail
