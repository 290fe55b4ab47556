"""Bulk reorganisation: one child ReassignmentWorkflow per (from, to) group, started at a
limited rate, with continue-as-new every `groups_per_run` groups so the history stays small.

The groups were planned (and every row validated) when HR started the reorganisation; each
group's request is recorded by an idempotent activity and its workflow started as a child that
outlives this one (parent close policy ABANDON), with the same id and search attributes as a
request submitted through the API. A group that fails never stops the others. HR may cancel:
no further group starts, and every request not yet in effect is cancelled through its own
`cancel` Update.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.bulk import BulkActivities
    from domain import workflow_text
    from domain.bulk import (
        BulkCancelInput,
        BulkInput,
        BulkProgress,
        BulkStatus,
        ChildOutcome,
        GroupPlan,
        RowFailure,
    )
    from domain.stages import Role
    from domain.workflow_dto import ReassignmentInput
    from workflows import search_attributes as sa

WORKFLOW_NAME = "BulkReassignmentWorkflow"
WRITE_TIMEOUT = timedelta(minutes=2)  # a group's request is assessed as a submit would be
WRITE_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))
# cancelling waits for children still reading their request: retried every few seconds
CANCEL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1),
                           maximum_interval=timedelta(seconds=5))
RATE_WINDOW = timedelta(seconds=1)


def workflow_id_for(reorganisation_id: int) -> str:
    return f"reorganisation-{reorganisation_id}"


@workflow.defn(name=WORKFLOW_NAME)
class BulkReassignmentWorkflow:
    @workflow.init
    def __init__(self, inp: BulkInput) -> None:
        self._inp = inp
        self._counters = inp.counters.model_copy()
        self._failures = list(inp.failures)
        self._next_group = inp.next_group
        self._cancel: BulkCancelInput | None = inp.cancel
        self._status = BulkStatus.RUNNING if inp.cancel is None else BulkStatus.CANCELLING
        self._cancelled: list[int] = []
        self._left_in_effect: list[int] = []

    @workflow.run
    async def run(self, inp: BulkInput) -> BulkProgress:
        run_end = inp.next_group + inp.groups_per_run  # this run starts groups before this one
        while self._next_group <= inp.total_groups and self._cancel is None:
            if self._next_group >= run_end:
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._cancel is None:
                    workflow.continue_as_new(self._carry_over())
                break
            batch_start = workflow.now()
            count = min(inp.starts_per_second, run_end - self._next_group,
                        inp.total_groups - self._next_group + 1)
            groups = await workflow.execute_activity_method(
                BulkActivities.load_groups, args=[inp.reorganisation_id, self._next_group, count],
                start_to_close_timeout=WRITE_TIMEOUT, retry_policy=WRITE_RETRY)
            started: list[int] = []
            not_started: list[RowFailure] = []
            for group in groups:
                if self._cancel is not None:
                    break
                if await self._start_group(group, not_started):
                    started.append(group.group_no)
                self._next_group = group.group_no + 1
            if not groups:  # no rows left in the range (cannot happen for a stored plan)
                self._next_group += count
            await self._record(started, not_started)
            # at most starts_per_second starts in any second; a cancel ends the wait
            wait = RATE_WINDOW - (workflow.now() - batch_start)
            if self._cancel is None and self._next_group <= inp.total_groups and (
                    wait > timedelta(0)):
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(lambda: self._cancel is not None, timeout=wait)
        if self._cancel is not None:
            await self._cancel_children(self._cancel)
            self._status = BulkStatus.CANCELLED
        else:
            self._status = BulkStatus.COMPLETED
        await self._record([], [])
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._progress()

    async def _start_group(self, group: GroupPlan, not_started: list[RowFailure]) -> bool:
        """Record the group's request and start its workflow; False when it failed."""
        request = await workflow.execute_activity_method(
            BulkActivities.create_group_request, args=[self._inp.reorganisation_id,
                                                       group.group_no],
            start_to_close_timeout=WRITE_TIMEOUT, retry_policy=WRITE_RETRY)
        self._failures.extend(request.failures)
        self._counters.failed_rows += len(request.failures)
        if request.request_id is None or request.workflow_id is None:
            self._counters.failed_groups += 1
            return False
        try:
            await workflow.start_child_workflow(
                "ReassignmentWorkflow", ReassignmentInput(request_id=request.request_id),
                id=request.workflow_id, task_queue=workflow.info().task_queue,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=sa.initial(
                    request_id=request.request_id, customer_ids=request.customer_ids,
                    from_employee_id=request.from_employee_id,
                    to_employee_id=request.to_employee_id),
                # the Temporal UI's lines, as a request submitted through the API has them
                static_summary=workflow_text.reassignment_summary(
                    request.request_id, len(request.customer_ids), request.from_employee_id,
                    request.to_employee_id),
                static_details=workflow_text.reassignment_details(
                    request_id=request.request_id, requester_id=request.requester_id or 0,
                    from_employee_id=request.from_employee_id,
                    to_employee_id=request.to_employee_id, customer_ids=request.customer_ids,
                    reason=request.reason, policy_version_id=request.policy_version_id or 0),
            )
        except WorkflowAlreadyStartedError:
            pass  # an earlier attempt (before a reset or a retry) started it: fine
        except Exception as err:  # noqa: BLE001  (one group's failure never stops the others)
            failures = [RowFailure(row_number=n, customer_id=c,
                                   reason=f"the request's workflow could not start: {err}")
                        for n, c in zip(group.row_numbers, group.customer_ids, strict=True)
                        if c in request.customer_ids]
            not_started.extend(failures)
            self._failures.extend(failures)
            self._counters.failed_rows += len(failures)
            self._counters.failed_groups += 1
            return False
        self._counters.started_groups += 1
        self._counters.started_rows += request.row_count
        return True

    async def _record(self, started: list[int], not_started: list[RowFailure]) -> None:
        await workflow.execute_activity_method(
            BulkActivities.record_progress,
            args=[self._inp.reorganisation_id, started, not_started, self._counters,
                  self._status],
            start_to_close_timeout=WRITE_TIMEOUT, retry_policy=WRITE_RETRY)

    async def _cancel_children(self, cancel: BulkCancelInput) -> None:
        self._status = BulkStatus.CANCELLING
        result = await workflow.execute_activity_method(
            BulkActivities.cancel_children, args=[self._inp.reorganisation_id, cancel],
            start_to_close_timeout=timedelta(minutes=10), heartbeat_timeout=timedelta(minutes=1),
            retry_policy=CANCEL_RETRY)
        self._cancelled = sorted(r for r, o in result.outcomes.items()
                                 if o == ChildOutcome.CANCELLED)
        self._left_in_effect = sorted(r for r, o in result.outcomes.items()
                                      if o == ChildOutcome.LEFT_IN_EFFECT)

    def _carry_over(self) -> BulkInput:
        return self._inp.model_copy(update={
            "next_group": self._next_group, "counters": self._counters,
            "failures": self._failures, "cancel": self._cancel, "runs": self._inp.runs + 1})

    # --- HR's cancel and the progress query -------------------------------------------

    @workflow.update
    async def cancel(self, inp: BulkCancelInput) -> BulkProgress:
        self._check_cancel(inp)
        self._cancel = inp
        self._status = BulkStatus.CANCELLING
        return self._progress()

    @cancel.validator
    def _validate_cancel(self, inp: BulkCancelInput) -> None:
        self._check_cancel(inp)

    def _check_cancel(self, inp: BulkCancelInput) -> None:
        if not {Role.HR, Role.ADMIN} & set(inp.actor_roles):
            raise ApplicationError("only HR or an administrator may cancel a reorganisation",
                                   type="WRONG_ACTOR", non_retryable=True)
        if self._cancel is not None:
            raise ApplicationError("the reorganisation is already being cancelled",
                                   type="ALREADY_DONE", non_retryable=True)
        if self._status != BulkStatus.RUNNING:
            raise ApplicationError(f"the reorganisation is {self._status.value}",
                                   type="WRONG_STAGE", non_retryable=True)

    @workflow.query
    def progress(self) -> BulkProgress:
        return self._progress()

    def _progress(self) -> BulkProgress:
        c = self._counters
        return BulkProgress(
            reorganisation_id=self._inp.reorganisation_id, status=self._status,
            total_groups=self._inp.total_groups, total_rows=self._inp.total_rows,
            started_groups=c.started_groups, failed_groups=c.failed_groups,
            started_rows=c.started_rows, failed_rows=c.failed_rows,
            failures=list(self._failures), cancelled_requests=list(self._cancelled),
            left_in_effect_requests=list(self._left_in_effect), runs=self._inp.runs)
