"""The reassignment lifecycle (DESIGN.md): approval, communication, consent, transfer, protection.

A thin orchestration over domain DTOs. Every DB write goes through an activity keyed by
(workflow id, transition seq); human actions are Updates whose validators reject wrong actor,
wrong stage and repeats before anything is written.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.documents import DocumentActivities
    from activities.notifications import DELIVERY_ATTEMPT_TIMEOUT, NotificationActivities
    from activities.reassignment import OWNERSHIP_CHANGED, ReassignmentActivities
    from domain.stages import Role, Stage
    from domain.workflow_dto import (
        ActionInput,
        ActionRejection,
        AppealOutcome,
        AppealState,
        AppealWrite,
        ApprovalLevel,
        ApprovalWrite,
        EscalationRequest,
        HistoryEntry,
        LevelState,
        LevelStatus,
        Notification,
        NotificationDeliveryInput,
        OwnershipTransfer,
        ReasonedActionInput,
        ReassignApprovalInput,
        ReassignmentInput,
        ReassignmentState,
        RequestContext,
        ResolveAppealInput,
        SignatureWrite,
        SignInput,
        TransitionRecord,
    )
    from domain.workflow_text import reassignment_current
    from workflows import search_attributes as sa

WRITE_TIMEOUT = timedelta(seconds=30)
RENDER_TIMEOUT = timedelta(minutes=5)
# renders and seals heartbeat every 5 s, so a worker that dies mid-render is noticed in
# 30 s rather than at the 5-minute timeout
RENDER_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
# workflow.patched ids: histories recorded before a change replay along the old path
PATCH_PERSONAL_REPORT = "personal-report-v1"
PATCH_AGREEMENT = "agreement-and-seal-v1"
# e-mail and group-robot delivery after each in-app notice, and the notices it added
# (APPROVED to the requester; escalations delivered too)
PATCH_DELIVERY = "notification-delivery"
# renders and seals on their own task queue (documents_task_queue), so database writes never
# wait for a render's activity slot
PATCH_DOCUMENT_QUEUE = "documents-task-queue-v1"
# the sign Update answers once SIGNED is written; the seal follows on its own, and the main
# path waits for it before ownership moves
PATCH_SEAL_AFTER_SIGN = "seal-after-sign-v1"
WRITE_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))
SIGNABLE_STAGES = frozenset({Stage.COMMUNICATION, Stage.AWAITING_SIGNATURE})
# bounded: about 8 minutes of retries, then the rows stay `failed` for HR to see
DELIVERY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=30), backoff_coefficient=2.0,
                             maximum_interval=timedelta(minutes=5), maximum_attempts=5)


def documents_task_queue(task_queue: str) -> str:
    """The queue of the document activities beside a worker's `task_queue`: the worker serves
    both (worker.build_worker), and the workflow derives it from its own queue."""
    return f"{task_queue}-documents"


def _reject(kind: ActionRejection, message: str) -> ApplicationError:
    # ApplicationError fails only the Update, never the workflow task
    return ApplicationError(message, type=kind.value, non_retryable=True)


@workflow.defn(name="ReassignmentWorkflow")
class ReassignmentWorkflow:
    @workflow.init
    def __init__(self, inp: ReassignmentInput) -> None:
        self._ctx: RequestContext | None = None
        self._state = ReassignmentState(request_id=inp.request_id, stage=Stage.SUBMITTED)
        self._seq = 0
        self._notices = 0
        self._written_stage = Stage.SUBMITTED
        self._write_lock = asyncio.Lock()
        self._signed = False
        self._window_end: datetime | None = None
        self._appeal_paused_at: datetime | None = None
        self._agreement_pending = False
        self._deliveries: list[asyncio.Task[object]] = []
        self._seal_after_sign = False
        self._sealing: asyncio.Task[None] | None = None

    # --- main line ---------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: ReassignmentInput) -> ReassignmentState:
        self._show_current()
        ctx = await workflow.execute_activity_method(
            ReassignmentActivities.assess_request, inp,
            start_to_close_timeout=WRITE_TIMEOUT, retry_policy=WRITE_RETRY,
        )
        self._ctx = ctx
        self._state = self._state.model_copy(update=dict(
            requester_id=ctx.requester_id, from_employee_id=ctx.from_employee_id,
            to_employee_id=ctx.to_employee_id, customer_ids=ctx.customer_ids, terms=ctx.terms,
            levels=[LevelState(level=lv.level, role=lv.role, approver_id=lv.approver_id)
                    for lv in ctx.chain],
        ))
        if ctx.violations:
            self._set_stage(Stage.REJECTED)
            await self._record("POLICY_VIOLATION", detail={
                "violations": [v.model_dump() for v in ctx.violations]})
            await self._notify("REJECTED", "The request broke the policy and was rejected.",
                               [ctx.requester_id])
            return await self._finish()

        self._set_stage(Stage.PENDING_APPROVAL)
        await self._record("APPROVAL_STARTED", approval_plan=[
            ApprovalWrite(level=lv.level, role=lv.role, approver_id=lv.approver_id,
                          status=LevelStatus.WAITING) for lv in self._state.levels])
        await self._notify_receiver()
        for level in self._state.levels:
            if not await self._run_level(level):
                return await self._finish()

        if ctx.departure_effective_at is not None:
            return await self._departure_handover(ctx.departure_effective_at)

        await self._communication_window()
        if self._closed():
            return await self._finish()
        if not self._signed and not await self._await_signature():
            return await self._finish()
        await self._await_seal()  # no transfer on an agreement that is not sealed yet
        if self._closed():  # cancelled while the seal ran
            return await self._finish()
        await self._take_effect()
        return await self._finish()

    async def _run_level(self, level: LevelState) -> bool:
        """Wait for one level's decision, reminding and escalating on its SLA."""
        now = workflow.now()
        rule = self._ctx_chain()[level.level - 1]
        level.status = LevelStatus.PENDING
        level.opened_at, level.reminder_at = now, now + rule.reminder_after
        level.due_at = now + rule.sla
        self._state.current_level = level.level
        self._set_stage(Stage.PENDING_APPROVAL, deadline=level.due_at, pending=level.eligible)
        await self._record("APPROVAL_LEVEL_OPENED", detail={"level": level.level},
                           approval=self._approval_write(level))
        await self._notify("APPROVAL_REQUESTED",
                           f"Please review reassignment request {self._state.request_id} "
                           f"(approval level {level.level}).", [level.approver_id],
                           params=_level_params(level))
        escalated = False
        while level.status == LevelStatus.PENDING and not self._closed():
            target = level.due_at if level.reminded else level.reminder_at
            try:
                timeout = None if escalated else max(target - workflow.now(), timedelta(0))
                await workflow.wait_condition(
                    lambda: level.status != LevelStatus.PENDING or self._closed(),
                    timeout=timeout)
            except TimeoutError:
                if not level.reminded:
                    level.reminded = True
                    await self._notify("APPROVAL_REMINDER",
                                       f"Approval level {level.level} of request "
                                       f"{self._state.request_id} is due at "
                                       f"{level.due_at.isoformat()}.", level.eligible,
                                       params=_level_params(level))
                else:
                    escalated = True
                    await self._escalate(level)
        return level.status == LevelStatus.APPROVED and not self._closed()

    async def _escalate(self, level: LevelState) -> None:
        assert self._ctx is not None
        excluded = {self._ctx.requester_id, self._ctx.from_employee_id,
                    *(lv.approver_id for lv in self._state.levels),
                    *(e for lv in self._state.levels for e in lv.escalated_to)}
        async with self._write_lock:
            self._seq += 1
            result = await workflow.execute_activity_method(
                ReassignmentActivities.escalate_approval,
                EscalationRequest(workflow_id=workflow.info().workflow_id, seq=self._seq,
                                  request_id=self._state.request_id, at=workflow.now(),
                                  level=level.level, pending_approver_id=level.approver_id,
                                  excluded_ids=sorted(excluded),
                                  stage_deadline=level.due_at),
                start_to_close_timeout=WRITE_TIMEOUT, retry_policy=WRITE_RETRY,
            )
            self._history("APPROVAL_ESCALATED", None,
                          {"level": level.level,
                           "escalation_approver_id": result.escalation_approver_id})
            seq = self._seq
        approver = result.escalation_approver_id
        if approver is not None:
            # escalate_approval wrote the in-app record (key escalation-<seq>) itself
            self._deliver(f"escalation-{seq}", "APPROVAL_ESCALATED", _level_params(level))
        if approver is not None and approver not in level.escalated_to:
            level.escalated_to.append(approver)
            if self._state.stage == Stage.PENDING_APPROVAL and level.status == LevelStatus.PENDING:
                self._set_stage(Stage.PENDING_APPROVAL, deadline=level.due_at,
                                pending=level.eligible)

    async def _communication_window(self) -> None:
        """Weeks (or demo minutes) to read the report, appeal, and perhaps sign early."""
        assert self._ctx is not None
        self._window_end = workflow.now() + self._ctx.rules.communication_window
        self._state.current_level = None
        self._set_stage(Stage.COMMUNICATION, deadline=self._window_end)
        await self._record("COMMUNICATION_STARTED")
        await self._render_report()
        await self._render_agreement()
        window = {"window_end": self._window_end.isoformat()}
        await self._notify("REPORT_AVAILABLE",
                           "Your personal analysis report is ready; you may appeal or sign.",
                           [self._ctx.from_employee_id], params=window)
        await self._notify("STAGE_CHANGED", "A reassignment to you was approved.",
                           [self._ctx.to_employee_id], params={"stage": Stage.COMMUNICATION.value})
        if self._delivery_on():
            await self._notify("APPROVED", "The request was approved at every level.",
                               [self._ctx.requester_id], params=window)
        while not self._closed():
            if self._appeal_paused_at is not None:
                # an open appeal pauses the window; resolve_appeal extends and resumes it
                await workflow.wait_condition(
                    lambda: self._appeal_paused_at is None or self._closed())
                continue
            remaining = self._window_end - workflow.now()
            if remaining <= timedelta(0):
                return
            try:
                await workflow.wait_condition(
                    lambda: self._appeal_paused_at is not None or self._closed(),
                    timeout=remaining)
            except TimeoutError:
                return

    async def _render_report(self) -> None:
        """The personal analysis report, in the salesperson's language; its hash is stored."""
        if not workflow.patched(PATCH_PERSONAL_REPORT):
            return
        assert self._window_end is not None
        sha256 = await workflow.execute_activity_method(
            DocumentActivities.render_personal_report,
            args=[self._state.request_id, self._window_end], task_queue=self._documents_queue(),
            start_to_close_timeout=RENDER_TIMEOUT, heartbeat_timeout=RENDER_HEARTBEAT_TIMEOUT,
            retry_policy=WRITE_RETRY)
        self._state.report_sha256 = sha256

    async def _render_agreement(self) -> None:
        if not workflow.patched(PATCH_AGREEMENT):
            return
        self._agreement_pending = True  # no signature until the version to sign exists
        try:
            ref = await workflow.execute_activity_method(
                DocumentActivities.render_agreement, self._state.request_id,
                task_queue=self._documents_queue(),
                start_to_close_timeout=RENDER_TIMEOUT, heartbeat_timeout=RENDER_HEARTBEAT_TIMEOUT,
                retry_policy=WRITE_RETRY)
        finally:
            self._agreement_pending = False
        self._state.agreement_version, self._state.agreement_sha256 = ref.version, ref.sha256

    async def _await_signature(self) -> bool:
        """Returns True once signed; False when declined, cancelled or expired."""
        assert self._ctx is not None
        deadline = workflow.now() + self._ctx.rules.signature_deadline
        self._set_stage(Stage.AWAITING_SIGNATURE, deadline=deadline,
                        pending=[self._ctx.from_employee_id])
        await self._record("SIGNATURE_REQUESTED")
        await self._notify_receiver()
        await self._notify("SIGNATURE_REQUESTED",
                           f"Please sign or decline the agreement by {deadline.isoformat()}.",
                           [self._ctx.from_employee_id], params={"deadline": deadline.isoformat()})
        rules = self._ctx.rules
        reminders = sorted(deadline - before for before in rules.signature_reminders_before
                           if deadline - before > workflow.now())
        while not (self._signed or self._closed()):
            target = reminders[0] if reminders else deadline
            try:
                await workflow.wait_condition(lambda: self._signed or self._closed(),
                                              timeout=max(target - workflow.now(), timedelta(0)))
            except TimeoutError:
                if reminders:
                    reminders.pop(0)
                    await self._notify("SIGNATURE_REMINDER",
                                       f"The agreement awaits your decision until "
                                       f"{deadline.isoformat()}.", [self._ctx.from_employee_id],
                                       params={"deadline": deadline.isoformat()})
                    continue
                self._set_stage(Stage.EXPIRED_NO_CONSENT)
                await self._record("SIGNATURE_DEADLINE_PASSED")
                await self._notify("EXPIRED_NO_CONSENT",
                                   "The signature deadline passed without consent; ownership "
                                   "is unchanged.",
                                   [self._ctx.requester_id, self._ctx.from_employee_id,
                                    self._ctx.to_employee_id], role=Role.HR)
                return False
        return self._signed and not self._closed()

    async def _take_effect(self) -> None:
        assert self._ctx is not None and self._state.terms is not None
        effective_at = workflow.now()
        if not await self._move_ownership(effective_at):
            return
        protection = self._state.terms.protection_period
        if protection <= timedelta(0):
            self._set_stage(Stage.COMPLETED)
            await self._record("COMPLETED_WITHOUT_PROTECTION")
            return
        protection_end = effective_at + protection
        self._state.protection_end = protection_end
        self._set_stage(Stage.PROTECTION, deadline=protection_end)
        await self._record("PROTECTION_STARTED", protection_end=protection_end)
        await self._notify_receiver()
        # a protection of seconds (a demo policy) can be over once the writes above return;
        # a negative sleep would fail every workflow task from here on. Skipping it adds no
        # command where the old code made none (that code failed here), so no patch is needed.
        remaining = protection_end - workflow.now()
        if remaining > timedelta(0):
            await workflow.sleep(remaining)
        self._set_stage(Stage.COMPLETED)
        await self._record("PROTECTION_ENDED")
        await self._notify("COMPLETED", "The protection period has ended.",
                           [self._ctx.from_employee_id, self._ctx.to_employee_id])

    async def _departure_handover(self, leave_date: datetime) -> ReassignmentState:
        """The owner is leaving: no contract change is sought, so no window or signature."""
        # never backdate: orders already booked keep the attribution they had
        effective_at = max(leave_date, workflow.now())
        if effective_at > workflow.now():
            self._state.current_level = None
            self._set_stage(Stage.SCHEDULED, deadline=effective_at)
            await self._record("HANDOVER_SCHEDULED")
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(self._closed,
                                              timeout=effective_at - workflow.now())
            if self._closed():
                return await self._finish()
        if await self._move_ownership(workflow.now()):
            self._set_stage(Stage.COMPLETED)
            await self._record("HANDOVER_COMPLETED")
        return await self._finish()

    async def _move_ownership(self, effective_at: datetime) -> bool:
        assert self._ctx is not None
        self._state.effective_at = effective_at
        self._state.current_level = None
        self._set_stage(Stage.EFFECTIVE)
        transfer = OwnershipTransfer(
            workflow_id=workflow.info().workflow_id, request_id=self._state.request_id,
            from_employee_id=self._ctx.from_employee_id, to_employee_id=self._ctx.to_employee_id,
            customer_ids=self._ctx.customer_ids, effective_at=effective_at)
        try:
            await self._record("OWNERSHIP_TRANSFERRED", effective_at=effective_at,
                               ownership_transfer=transfer)
        except ActivityError as err:
            cause = err.cause
            if not (isinstance(cause, ApplicationError) and cause.type == OWNERSHIP_CHANGED):
                raise
            # nothing was written; close the case and tell HR instead of forcing a transfer
            self._state.effective_at = None
            self._set_stage(Stage.CANCELLED)
            await self._record("OWNERSHIP_CHANGED_ELSEWHERE", detail={"error": cause.message})
            await self._notify("CANCELLED", cause.message, [self._ctx.requester_id],
                               role=Role.HR, params={"reason": cause.message})
            return False
        protection = self._state.terms.protection_period if self._state.terms else None
        ends = {"protection_end": (effective_at + protection).isoformat()} if (
            protection and protection > timedelta(0)
            and self._ctx.departure_effective_at is None) else {}
        await self._notify("OWNERSHIP_TRANSFERRED", "The reassignment has taken effect.",
                           [self._ctx.from_employee_id, self._ctx.to_employee_id,
                            self._ctx.requester_id], params=ends)
        return True

    async def _finish(self) -> ReassignmentState:
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._await_seal()  # a signed agreement is sealed whatever happens next
        # a delivery still retrying would be abandoned by a closed workflow: let it end (its
        # retry policy is bounded; its failure is recorded, never raised)
        while pending := [d for d in self._deliveries if not d.done()]:
            await asyncio.gather(*pending, return_exceptions=True)
        return self._snapshot()

    # --- human actions -----------------------------------------------------------------

    @workflow.update
    async def approve(self, inp: ActionInput) -> ReassignmentState:
        self._check_decision(inp)
        level = self._pending_level()
        level.status = LevelStatus.APPROVED
        self._decide(level, inp, inp.comment)
        await self._record("APPROVED", actor_id=inp.actor_id, detail={"level": level.level},
                           on_behalf_of=inp.on_behalf_of, approval=self._approval_write(level))
        return self._snapshot()

    @approve.validator
    def _validate_approve(self, inp: ActionInput) -> None:
        self._check_decision(inp)

    @workflow.update
    async def reject(self, inp: ReasonedActionInput) -> ReassignmentState:
        self._check_decision(inp)
        level = self._pending_level()
        level.status = LevelStatus.REJECTED
        self._decide(level, inp, inp.reason)
        self._set_stage(Stage.REJECTED)
        await self._record("REJECTED", actor_id=inp.actor_id,
                           detail={"level": level.level, "reason": inp.reason},
                           on_behalf_of=inp.on_behalf_of, approval=self._approval_write(level))
        await self._notify_parties("REJECTED", f"The request was rejected: {inp.reason}",
                                   params={"reason": inp.reason})
        return self._snapshot()

    @reject.validator
    def _validate_reject(self, inp: ReasonedActionInput) -> None:
        self._check_decision(inp)

    @workflow.update
    async def reassign_approval(self, inp: ReassignApprovalInput) -> ReassignmentState:
        self._check_reassign_approval(inp)
        level = self._pending_level()
        previous = level.approver_id
        level.approver_id = inp.new_approver_id
        # the SLA clock keeps running: HR reassigns precisely because the level is late
        self._set_stage(Stage.PENDING_APPROVAL, deadline=level.due_at, pending=level.eligible)
        await self._record("APPROVAL_REASSIGNED", actor_id=inp.actor_id,
                           detail={"level": level.level, "from_approver_id": previous,
                                   "to_approver_id": inp.new_approver_id, "reason": inp.reason},
                           approval=self._approval_write(level))
        await self._notify("APPROVAL_REQUESTED",
                           f"Approval level {level.level} of request {self._state.request_id} "
                           f"was handed to you by HR; it is due at "
                           f"{level.due_at.isoformat() if level.due_at else 'once'}.",
                           [inp.new_approver_id], params=_level_params(level))
        return self._snapshot()

    @reassign_approval.validator
    def _validate_reassign_approval(self, inp: ReassignApprovalInput) -> None:
        self._check_reassign_approval(inp)

    @workflow.update
    async def withdraw(self, inp: ReasonedActionInput) -> ReassignmentState:
        self._check_withdraw(inp)
        self._set_stage(Stage.WITHDRAWN)
        await self._record("WITHDRAWN", actor_id=inp.actor_id, detail={"reason": inp.reason})
        await self._notify_parties("WITHDRAWN", f"The request was withdrawn: {inp.reason}",
                                   params={"reason": inp.reason})
        return self._snapshot()

    @withdraw.validator
    def _validate_withdraw(self, inp: ReasonedActionInput) -> None:
        self._check_withdraw(inp)

    @workflow.update
    async def cancel(self, inp: ReasonedActionInput) -> ReassignmentState:
        self._check_cancel(inp)
        self._set_stage(Stage.CANCELLED)
        await self._record("CANCELLED", actor_id=inp.actor_id, detail={"reason": inp.reason})
        await self._notify_parties("CANCELLED", f"The request was cancelled by HR: {inp.reason}",
                                   params={"reason": inp.reason})
        return self._snapshot()

    @cancel.validator
    def _validate_cancel(self, inp: ReasonedActionInput) -> None:
        self._check_cancel(inp)

    @workflow.update
    async def appeal(self, inp: ReasonedActionInput) -> ReassignmentState:
        self._check_appeal(inp)
        assert self._ctx is not None
        now = workflow.now()
        self._appeal_paused_at = now
        self._state.appeals.append(AppealState(appellant_id=inp.actor_id, reason=inp.reason,
                                               opened_at=now))
        self._set_stage(Stage.APPEAL_REVIEW, pending=self._ctx.hr_ids)
        await self._record("APPEAL_OPENED", actor_id=inp.actor_id, appeal=AppealWrite(
            number=len(self._state.appeals), appellant_id=inp.actor_id, reason=inp.reason))
        await self._notify("APPEAL_OPENED",
                           f"Request {self._state.request_id} has an appeal to resolve.", [],
                           role=Role.HR)
        return self._snapshot()

    @appeal.validator
    def _validate_appeal(self, inp: ReasonedActionInput) -> None:
        self._check_appeal(inp)

    @workflow.update
    async def resolve_appeal(self, inp: ResolveAppealInput) -> ReassignmentState:
        self._check_resolve_appeal(inp)
        assert self._appeal_paused_at is not None and self._window_end is not None
        now = workflow.now()
        appeal = self._state.appeals[-1]
        appeal.outcome, appeal.resolved_by, appeal.resolved_at = inp.outcome, inp.actor_id, now
        write = AppealWrite(number=len(self._state.appeals), appellant_id=appeal.appellant_id,
                            reason=appeal.reason, outcome=inp.outcome, resolved_by=inp.actor_id,
                            comment=inp.comment)
        if inp.outcome == AppealOutcome.CANCEL:
            self._set_stage(Stage.CANCELLED)
            await self._record("APPEAL_RESOLVED", actor_id=inp.actor_id, appeal=write,
                               detail={"outcome": inp.outcome.value})
            await self._notify_parties("CANCELLED", "HR upheld the appeal and cancelled the "
                                                    "request.",
                                       params={"outcome": inp.outcome.value})
            return self._snapshot()
        self._window_end += now - self._appeal_paused_at
        self._appeal_paused_at = None
        terms = inp.amended_terms if inp.outcome == AppealOutcome.AMEND else None
        if terms is not None:
            self._state.terms = terms
        self._set_stage(Stage.COMMUNICATION, deadline=self._window_end)
        await self._record("APPEAL_RESOLVED", actor_id=inp.actor_id, appeal=write, terms=terms,
                           detail={"outcome": inp.outcome.value})
        if terms is not None:
            await self._render_report()  # the report explains the amended terms
            await self._render_agreement()  # a new version: the old one can no longer be signed
        assert self._ctx is not None
        await self._notify("APPEAL_RESOLVED",
                           f"HR resolved your appeal: {inp.outcome.value.lower()}.",
                           [self._ctx.from_employee_id],
                           params={"outcome": inp.outcome.value,
                                   "window_end": self._window_end.isoformat()})
        return self._snapshot()

    @resolve_appeal.validator
    def _validate_resolve_appeal(self, inp: ResolveAppealInput) -> None:
        self._check_resolve_appeal(inp)

    @workflow.update
    async def sign(self, inp: SignInput) -> ReassignmentState:
        self._check_signer(inp)
        version = self._state.agreement_version
        # decided before _signed wakes the main path, so that it knows a seal is coming
        self._seal_after_sign = version is not None and workflow.patched(PATCH_SEAL_AFTER_SIGN)
        self._signed = True
        self._state.signed_at = workflow.now()
        try:
            await self._record("SIGNED", actor_id=inp.actor_id, signature=SignatureWrite(
                signer_id=inp.actor_id, decision="SIGNED", typed_name=inp.typed_name,
                method=inp.method, ip=inp.ip, user_agent=inp.user_agent,
                document_hash=inp.document_hash, credential_id=inp.credential_id),
                detail={"agreement_version": self._state.agreement_version,
                        "document_hash": inp.document_hash, "method": inp.method})
        except BaseException:
            self._seal_after_sign = False  # nothing to seal: the main path must not wait
            raise
        if version is not None:
            # the organisation's PAdES seal over the signed agreement and its evidence page: a
            # render, so the answer does not wait for it (it timed out behind busy renders)
            if self._seal_after_sign:
                self._sealing = asyncio.create_task(self._seal(version))
            else:
                await self._seal(version)
        return self._snapshot()

    async def _seal(self, agreement_version: int) -> None:
        self._state.sealed_sha256 = await workflow.execute_activity_method(
            DocumentActivities.seal_agreement, args=[self._state.request_id, agreement_version],
            task_queue=self._documents_queue(),
            start_to_close_timeout=RENDER_TIMEOUT, heartbeat_timeout=RENDER_HEARTBEAT_TIMEOUT,
            retry_policy=WRITE_RETRY)

    async def _await_seal(self) -> None:
        """The seal the sign Update starts once SIGNED is written (its failure fails the run;
        a certificate that cannot be read is retried until the settings are fixed)."""
        if self._seal_after_sign:
            await workflow.wait_condition(
                lambda: self._sealing is not None or not self._seal_after_sign)
        if self._sealing is not None:
            await self._sealing

    @sign.validator
    def _validate_sign(self, inp: SignInput) -> None:
        self._check_signer(inp)

    @workflow.update
    async def decline(self, inp: ReasonedActionInput) -> ReassignmentState:
        self._check_signer(inp)
        assert self._ctx is not None
        self._state.declined_at = workflow.now()
        self._set_stage(Stage.DECLINED)
        await self._record("DECLINED", actor_id=inp.actor_id, detail={"reason": inp.reason},
                           signature=SignatureWrite(signer_id=inp.actor_id, decision="DECLINED",
                                                    reason=inp.reason))
        await self._notify("DECLINED", f"The salesperson declined: {inp.reason}. Ownership is "
                                       "unchanged.",
                           [self._ctx.requester_id, self._ctx.to_employee_id], role=Role.HR,
                           params={"reason": inp.reason})
        return self._snapshot()

    @decline.validator
    def _validate_decline(self, inp: ReasonedActionInput) -> None:
        self._check_signer(inp)

    @workflow.query
    def get_state(self) -> ReassignmentState:
        return self._snapshot()

    # --- validation (read-only; shared by validators and handlers) ---------------------

    def _require_stage(self, allowed: set[Stage] | frozenset[Stage], action: str) -> None:
        if self._state.stage not in allowed:
            raise _reject(ActionRejection.WRONG_STAGE,
                          f"cannot {action} while the request is {self._state.stage.value}")

    def _check_decision(self, inp: ActionInput) -> None:
        self._require_stage({Stage.PENDING_APPROVAL}, "approve or reject")
        assert self._ctx is not None
        # under a delegation both the delegate and the approver they stand in for count
        people = {inp.actor_id} | ({inp.on_behalf_of} if inp.on_behalf_of is not None else set())
        if self._ctx.requester_id in people:
            raise _reject(ActionRejection.FOUR_EYES,
                          "the requester cannot approve or reject their own request")
        level = self._pending_level()
        for other in self._state.levels:
            if people & {other.decided_by, other.decided_for}:
                # a delegate racing their principal (or the reverse) is told who decided
                who = ("you" if inp.actor_id in {other.decided_by, other.decided_for} else
                       f"employee {inp.on_behalf_of}, for whom you stand in,")
                if other is level:
                    raise _reject(ActionRejection.ALREADY_DONE,
                                  f"{who} already decided level {level.level}")
                raise _reject(ActionRejection.FOUR_EYES,
                              f"{who} already approved level {other.level}; one person "
                              "approves at most one level")
        if level.status == LevelStatus.APPROVED and level.level < len(self._state.levels):
            # approved, and the workflow is still writing it before it opens the next level:
            # for the next level's approver that is "not yet", not "already done"
            raise _reject(ActionRejection.WRONG_STAGE,
                          f"level {level.level} was just approved and level {level.level + 1} "
                          f"is opening; if you approve level {level.level + 1}, try again in a "
                          "moment")
        if level.status != LevelStatus.PENDING:
            raise _reject(ActionRejection.ALREADY_DONE,
                          f"level {level.level} was already decided")
        principal = inp.on_behalf_of if inp.on_behalf_of is not None else inp.actor_id
        if principal not in level.eligible:
            raise _reject(ActionRejection.WRONG_ACTOR,
                          f"you are not an approver of level {level.level}"
                          + ("" if inp.on_behalf_of is None else
                             f", and neither is employee {inp.on_behalf_of}, whom you stand in "
                             "for"))

    def _check_reassign_approval(self, inp: ReassignApprovalInput) -> None:
        if Role.HR not in inp.actor_roles:
            raise _reject(ActionRejection.WRONG_ACTOR, "only HR may reassign an approval")
        self._require_stage({Stage.PENDING_APPROVAL}, "reassign an approval")
        assert self._ctx is not None
        level = self._pending_level()
        if inp.level is not None and inp.level != level.level:
            raise _reject(ActionRejection.WRONG_STAGE,
                          f"level {inp.level} is not the open level; level {level.level} is")
        if level.status != LevelStatus.PENDING:
            raise _reject(ActionRejection.ALREADY_DONE, f"level {level.level} was decided")
        new = inp.new_approver_id
        if new == level.approver_id:
            raise _reject(ActionRejection.ALREADY_DONE,
                          f"employee {new} already is the approver of level {level.level}")
        if new in (self._ctx.requester_id, self._ctx.from_employee_id,
                   self._ctx.to_employee_id):
            raise _reject(ActionRejection.FOUR_EYES,
                          "the requester and the two salespeople cannot approve this request")
        if any(new in (other.decided_by, other.decided_for) for other in self._state.levels):
            raise _reject(ActionRejection.FOUR_EYES,
                          f"employee {new} already decided a level; one person approves at "
                          "most one level")

    def _check_withdraw(self, inp: ReasonedActionInput) -> None:
        self._require_open("withdraw")
        assert self._ctx is not None
        if inp.actor_id != self._ctx.requester_id:
            raise _reject(ActionRejection.WRONG_ACTOR, "only the requester may withdraw")

    def _check_cancel(self, inp: ReasonedActionInput) -> None:
        if Role.HR not in inp.actor_roles:
            raise _reject(ActionRejection.WRONG_ACTOR, "only HR may cancel a request")
        self._require_open("cancel")

    def _require_open(self, action: str) -> None:
        if self._ctx is None or not self._state.stage.before_effective:
            raise _reject(ActionRejection.WRONG_STAGE,
                          f"cannot {action}: the request is {self._state.stage.value}")

    def _check_appeal(self, inp: ReasonedActionInput) -> None:
        if self._ctx is not None and inp.actor_id != self._ctx.from_employee_id:
            raise _reject(ActionRejection.WRONG_ACTOR,
                          "only the salesperson who would lose the customers may appeal")
        self._require_stage({Stage.COMMUNICATION}, "appeal")
        if self._signed:
            raise _reject(ActionRejection.WRONG_STAGE, "the agreement is already signed")

    def _check_resolve_appeal(self, inp: ResolveAppealInput) -> None:
        if Role.HR not in inp.actor_roles:
            raise _reject(ActionRejection.WRONG_ACTOR, "only HR resolves appeals")
        self._require_stage({Stage.APPEAL_REVIEW}, "resolve an appeal")
        if inp.outcome == AppealOutcome.AMEND and inp.amended_terms is None:
            raise _reject(ActionRejection.INVALID, "AMEND needs amended_terms")

    def _check_signer(self, inp: ActionInput) -> None:
        if self._ctx is not None and inp.actor_id != self._ctx.from_employee_id:
            raise _reject(ActionRejection.WRONG_ACTOR,
                          "only the salesperson who would lose the customers signs or declines")
        self._require_stage(SIGNABLE_STAGES, "sign or decline")
        if self._signed:
            raise _reject(ActionRejection.ALREADY_DONE, "the agreement is already signed")
        if isinstance(inp, SignInput) and self._agreement_pending:
            raise _reject(ActionRejection.WRONG_STAGE,
                          "the agreement is still being prepared; sign it once it is ready")
        current = self._state.agreement_sha256
        if isinstance(inp, SignInput) and current is not None and inp.document_hash != current:
            raise _reject(ActionRejection.STALE_DOCUMENT,
                          f"this is not the current agreement: version "
                          f"{self._state.agreement_version} (SHA-256 {current}) replaced it; "
                          "read the current version and sign that")

    # --- internals ---------------------------------------------------------------------

    def _closed(self) -> bool:
        return self._state.stage.is_terminal

    def _ctx_chain(self) -> list[ApprovalLevel]:
        assert self._ctx is not None
        return self._ctx.chain

    def _pending_level(self) -> LevelState:
        number = self._state.current_level
        if number is None:
            raise _reject(ActionRejection.WRONG_STAGE, "no approval level is open")
        return self._state.levels[number - 1]

    def _decide(self, level: LevelState, inp: ActionInput, comment: str | None) -> None:
        level.decided_by, level.decided_at, level.comment = inp.actor_id, workflow.now(), comment
        level.decided_for = inp.on_behalf_of
        self._state.pending_approvers = []
        workflow.upsert_search_attributes(sa.stage_updates(
            self._state.stage.value, [], self._state.stage_deadline))
        self._show_current()

    def _approval_write(self, level: LevelState) -> ApprovalWrite:
        return ApprovalWrite(level=level.level, role=level.role, approver_id=level.approver_id,
                             status=level.status, due_at=level.due_at,
                             escalated_to=level.escalated_to, decided_by=level.decided_by,
                             decided_for=level.decided_for, comment=level.comment)

    def _set_stage(self, stage: Stage, *, deadline: datetime | None = None,
                   pending: list[int] | None = None) -> None:
        """Change the in-memory stage at once, so later validators see it; the write follows."""
        self._state.stage = stage
        self._state.stage_deadline = deadline
        self._state.pending_approvers = list(pending or [])
        workflow.upsert_search_attributes(
            sa.stage_updates(stage.value, self._state.pending_approvers, deadline))
        self._show_current()

    def _show_current(self) -> None:
        """The Temporal UI's one line for this run (ids only). Read through the built-in
        metadata query, so it adds no command to the history and replays unchanged."""
        state = self._state
        level = state.current_level if state.stage == Stage.PENDING_APPROVAL else None
        workflow.set_current_details(reassignment_current(
            request_id=state.request_id, stage=state.stage.value, level=level,
            levels=len(state.levels), deadline=state.stage_deadline,
            pending=state.pending_approvers))

    async def _record(self, event: str, *, actor_id: int | None = None,
                      detail: dict | None = None, **fields: object) -> None:
        """Write the current stage plus `fields` and an audit event, in seq order."""
        async with self._write_lock:
            self._seq += 1
            stage = self._state.stage
            record = TransitionRecord(
                workflow_id=workflow.info().workflow_id, seq=self._seq,
                request_id=self._state.request_id, at=workflow.now(), event=event,
                from_stage=self._written_stage, to_stage=stage, actor_id=actor_id,
                stage_deadline=self._state.stage_deadline, detail=detail or {}, **fields)
            self._written_stage = stage
            self._history(event, actor_id, detail or {})
            await workflow.execute_activity_method(
                ReassignmentActivities.record_transition, record,
                start_to_close_timeout=WRITE_TIMEOUT, retry_policy=WRITE_RETRY,
            )

    def _history(self, event: str, actor_id: int | None, detail: dict) -> None:
        self._state.history.append(HistoryEntry(
            seq=self._seq, at=workflow.now(), event=event, stage=self._state.stage,
            actor_id=actor_id, detail=detail))

    async def _notify(self, kind: str, message: str, recipients: list[int], *,
                      role: Role | None = None, params: Mapping[str, str | int] | None = None,
                      ) -> None:
        """The in-app records (awaited: they are the source), then their delivery (not)."""
        self._notices += 1
        key = f"{self._notices}-{kind}"[:100]
        await workflow.execute_activity_method(
            ReassignmentActivities.notify,
            Notification(workflow_id=workflow.info().workflow_id,
                         key=key, request_id=self._state.request_id,
                         kind=kind, message=message, recipient_ids=sorted(set(recipients)),
                         recipient_role=role),
            start_to_close_timeout=WRITE_TIMEOUT, retry_policy=WRITE_RETRY,
        )
        self._deliver(key, kind, params or {})

    def _documents_queue(self) -> str | None:
        """The documents queue; None (the workflow's own queue) along the old path."""
        if not workflow.patched(PATCH_DOCUMENT_QUEUE):
            return None
        return documents_task_queue(workflow.info().task_queue)

    def _delivery_on(self) -> bool:
        return workflow.patched(PATCH_DELIVERY)

    def _deliver(self, key: str, kind: str, params: Mapping[str, str | int]) -> None:
        """E-mail and robots, started and left to run: a slow or failing channel never holds
        up the lifecycle or an Update's answer. _finish waits for them before closing."""
        if not self._delivery_on():
            return
        self._deliveries.append(workflow.start_activity_method(
            NotificationActivities.deliver_notifications,
            NotificationDeliveryInput(workflow_id=workflow.info().workflow_id, key=key,
                                      request_id=self._state.request_id, kind=kind,
                                      params=dict(params)),
            start_to_close_timeout=DELIVERY_ATTEMPT_TIMEOUT, retry_policy=DELIVERY_RETRY))

    async def _notify_receiver(self) -> None:
        """B does not sign, but hears of every stage (DESIGN.md)."""
        assert self._ctx is not None
        await self._notify("STAGE_CHANGED",
                           f"Request {self._state.request_id} that gives you customers is now "
                           f"{self._state.stage.value}.", [self._ctx.to_employee_id],
                           params={"stage": self._state.stage.value})

    async def _notify_parties(self, kind: str, message: str,
                              params: Mapping[str, str | int] | None = None) -> None:
        if self._ctx is None:
            return
        await self._notify(kind, message, [self._ctx.requester_id, self._ctx.from_employee_id,
                                           self._ctx.to_employee_id], params=params)

    def _snapshot(self) -> ReassignmentState:
        return self._state.model_copy(deep=True)


def _level_params(level: LevelState) -> dict[str, str | int]:
    params: dict[str, str | int] = {"level": level.level}
    if level.due_at is not None:
        params["due_at"] = level.due_at.isoformat()
    return params
