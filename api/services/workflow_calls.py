"""Calls into a request's running workflow: human actions (Updates) and its live state (Query).

Maps what Temporal answers to problem documents the client can act on.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from pydantic import BaseModel
from temporalio.client import (
    Client,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.problems import Problem, temporal_unavailable_problem
from domain.stages import Stage
from domain.workflow_dto import HTTP_STATUS_FOR_REJECTION, ActionRejection, ReassignmentState

log = logging.getLogger(__name__)

UPDATE_TIMEOUT_S = 60.0  # the update handler runs a DB activity; a stuck worker must not hang us
QUERY_TIMEOUT = timedelta(seconds=5)

_REJECTION_TITLES = {
    ActionRejection.WRONG_ACTOR: "Not yours to do",
    ActionRejection.WRONG_STAGE: "Not possible at this stage",
    ActionRejection.ALREADY_DONE: "Already done",
    ActionRejection.FOUR_EYES: "Four-eyes rule",
    ActionRejection.INVALID: "Invalid action",
    ActionRejection.STALE_DOCUMENT: "A newer agreement exists",
}

# UNKNOWN: what the SDK raises when the connection breaks mid-call ("transport error", e.g.
# the server stopped while an Update waited); whether the call landed is unknown, as for the
# others, so the answer is "unavailable, check and try again", not a refusal
UNAVAILABLE_STATUSES = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED,
                                  RPCStatusCode.CANCELLED, RPCStatusCode.RESOURCE_EXHAUSTED,
                                  RPCStatusCode.UNKNOWN})


def closed_problem(request_id: int, stage: Stage) -> Problem:
    if stage == Stage.SUBMITTED:
        detail = (f"Request {request_id}'s workflow has not started. The requester should "
                  "submit again with the same Idempotency-Key to start it.")
    else:
        detail = (f"Request {request_id} is closed (stage {stage.value}); its workflow no "
                  "longer accepts actions.")
    return Problem(409, "request-closed", "The request is closed", detail,
                   extra={"stage": stage.value})


async def execute_action(
    client: Client, *, request_id: int, workflow_id: str, stage: Stage, update: str,
    arg: BaseModel,
) -> ReassignmentState:
    """Run one human action as a workflow Update and return the workflow's new state."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        result = await asyncio.wait_for(
            handle.execute_update(update, arg, result_type=ReassignmentState),
            UPDATE_TIMEOUT_S,
        )
    except WorkflowUpdateFailedError as exc:
        raise rejection_problem(exc, update) from exc
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:  # never started, or already completed
            raise closed_problem(request_id, stage) from exc
        if exc.status in UNAVAILABLE_STATUSES:
            raise temporal_unavailable_problem(
                f"The workflow service could not be reached ({exc.message}). The action may "
                "not have been recorded; check the request and try again.") from exc
        if workflow_not_ready(exc):
            raise Problem(503, "workflow-not-ready", "The workflow is not ready",
                          "The workflow is retrying its last step (a worker stopped or was too "
                          "slow), and takes no actions until that step is done. Nothing was "
                          "changed; try again in a moment.",
                          headers={"Retry-After": "5"}) from exc
        # neither gone nor unavailable: say which status, so an operator can tell what it was
        log.warning("%s Update on %s refused by Temporal: %s: %s", update, workflow_id,
                    exc.status.name if exc.status is not None else "?", exc.message)
        raise Problem(502, "temporal-error", "Workflow service error",
                      f"The workflow service refused the call: {exc.message}") from exc
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
        raise Problem(504, "workflow-timeout", "The workflow did not answer in time",
                      "The workflow did not answer in time (is a worker running?). The action "
                      "may still be applied; check the request before trying again.") from exc
    assert isinstance(result, ReassignmentState)
    return result


def workflow_not_ready(exc: RPCError) -> bool:
    """Temporal's WorkflowNotReady (FAILED_PRECONDITION): the workflow's last task failed or
    timed out and is being retried, and until one completes the server admits no Update.
    Transient (seen with workers killed or starved of CPU), unlike other preconditions."""
    if exc.status != RPCStatusCode.FAILED_PRECONDITION:
        return False
    details = exc.grpc_status.details if exc.grpc_status is not None else []
    return any(d.type_url.endswith("WorkflowNotReadyFailure") for d in details) or \
        "Workflow Task in failed state" in exc.message


def rejection_problem(exc: WorkflowUpdateFailedError, update: str) -> Problem:
    cause = exc.cause
    message = getattr(cause, "message", None) or str(cause) or "the workflow refused the action"
    kind = cause.type if isinstance(cause, ApplicationError) else None
    if kind is not None and kind in ActionRejection._value2member_map_:
        code = ActionRejection(kind)
        return Problem(HTTP_STATUS_FOR_REJECTION[code], f"action-{code.value.lower()}",
                       _REJECTION_TITLES[code], message,
                       extra={"code": code.value, "action": update})
    # Not one of the validator's codes: still a refusal by the workflow, with its message.
    kind = kind or type(cause).__name__
    return Problem(409, "action-refused", "The workflow refused the action", message,
                   extra={"code": kind, "action": update})


async def live_state(
    client: Client, workflow_id: str
) -> tuple[ReassignmentState | None, str | None]:
    """The workflow's own view of the request, or (None, why not)."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        state = await asyncio.wait_for(
            handle.query("get_state", result_type=ReassignmentState, rpc_timeout=QUERY_TIMEOUT),
            QUERY_TIMEOUT.total_seconds() + 2,
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None, "the workflow was not found (not started yet, or past retention)"
        return None, f"the workflow service is unavailable: {exc.message}"
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as exc:
        return None, f"the workflow could not answer: {exc}"
    except TimeoutError:
        return None, "the workflow did not answer in time (is a worker running?)"
    except Exception as exc:  # the record is still worth returning without the live view
        log.warning("get_state query on %s failed", workflow_id, exc_info=exc)
        return None, f"the workflow state could not be read: {type(exc).__name__}"
    if not isinstance(state, ReassignmentState):
        return None, "the workflow answered in an unexpected shape"
    return state, None
