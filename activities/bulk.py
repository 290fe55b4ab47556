"""Activities of the bulk reorganisation workflow. Idempotent: a retry writes nothing twice.

A group's request is recorded under the Idempotency-Key `reorganisation-<id>-group-<n>` of the
HR employee who started the reorganisation, through the same insert as the API's submit
(models.submission); a retry finds the request that key already made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from domain.bulk import (
    BulkCancelInput,
    BulkCounters,
    BulkStatus,
    CancelChildrenResult,
    ChildOutcome,
    GroupPlan,
    GroupRequest,
    ResolvedRow,
    RowFailure,
    validate_rows,
)
from domain.policy import default_terms
from domain.stages import PRE_EFFECTIVE_STAGES, Reason, Stage
from domain.workflow_dto import ReasonedActionInput, ReassignmentState, workflow_id_for
from models.assessment import build_assessment
from models.audit import audit
from models.bulk import Reorganisation, ReorganisationRow, RowStatus
from models.bulk_plan import employee_facts_many
from models.db import SessionFactory
from models.facts import customer_facts
from models.policy import PolicyVersion
from models.reassignment import ReassignmentRequest
from models.submission import canonical_hash, find_by_key, insert_request

REORGANISATION_NOT_FOUND = "REORGANISATION_NOT_FOUND"
CHILD_NOT_READY = "CHILD_NOT_READY"


def group_key(reorganisation_id: int, group_no: int) -> str:
    return f"reorganisation-{reorganisation_id}-group-{group_no}"


def _reorganisation(session: Session, reorganisation_id: int) -> Reorganisation:
    reorganisation = session.get(Reorganisation, reorganisation_id)
    if reorganisation is None:
        raise ApplicationError(f"reorganisation {reorganisation_id} does not exist",
                               type=REORGANISATION_NOT_FOUND, non_retryable=True)
    return reorganisation


def _group_rows(session: Session, reorganisation_id: int, group_no: int
                ) -> list[ReorganisationRow]:
    return list(session.exec(select(ReorganisationRow).where(
        ReorganisationRow.reorganisation_id == reorganisation_id,
        ReorganisationRow.group_no == group_no).order_by(col(ReorganisationRow.row_number))))


def _failures(rows: Sequence[ReorganisationRow]) -> list[RowFailure]:
    return [RowFailure(row_number=r.row_number, customer_id=r.customer_id, reason=r.error or "")
            for r in rows if r.status == RowStatus.FAILED]


def _group_request(group_no: int, rows: Sequence[ReorganisationRow],
                   request: ReassignmentRequest | None) -> GroupRequest:
    first = rows[0]
    out = GroupRequest(group_no=group_no, from_employee_id=first.from_employee_id,
                       to_employee_id=first.to_employee_id, failures=_failures(rows))
    if request is not None:
        assert request.id is not None
        out.request_id, out.workflow_id = request.id, request.workflow_id
        out.requester_id, out.reason = request.requester_id, request.reason
        out.policy_version_id = request.policy_version_id
        out.customer_ids = list(request.customer_ids)
        out.row_count = sum(1 for r in rows if r.request_id == request.id)
    return out


class BulkActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    @activity.defn(name="load_reorganisation_groups")
    def load_groups(self, reorganisation_id: int, first_group: int, count: int
                    ) -> list[GroupPlan]:
        """Groups first_group .. first_group+count-1 with their customers, in row order."""
        with self._sessions() as session:
            rows = session.exec(select(ReorganisationRow).where(
                ReorganisationRow.reorganisation_id == reorganisation_id,
                col(ReorganisationRow.group_no) >= first_group,
                col(ReorganisationRow.group_no) < first_group + count,
            ).order_by(col(ReorganisationRow.group_no), col(ReorganisationRow.row_number))).all()
        groups: dict[int, GroupPlan] = {}
        for r in rows:
            g = groups.setdefault(r.group_no, GroupPlan(
                group_no=r.group_no, from_employee_id=r.from_employee_id,
                to_employee_id=r.to_employee_id, customer_ids=[], row_numbers=[]))
            g.customer_ids.append(r.customer_id)
            g.row_numbers.append(r.row_number)
        return list(groups.values())

    @activity.defn(name="create_group_request")
    def create_group_request(self, reorganisation_id: int, group_no: int) -> GroupRequest:
        """Record the group's request, checked again now: rows that can no longer move are
        marked FAILED with the reason and left out; the others go into one request."""
        try:
            return self._create_group_request(reorganisation_id, group_no)
        except IntegrityError:
            # a concurrent attempt with the same key won: answer with what it made
            return self._create_group_request(reorganisation_id, group_no)

    def _create_group_request(self, reorganisation_id: int, group_no: int) -> GroupRequest:
        now = datetime.now(UTC)
        with self._sessions() as session:
            reorganisation = _reorganisation(session, reorganisation_id)
            requester = reorganisation.created_by_id
            key = group_key(reorganisation_id, group_no)
            rows = _group_rows(session, reorganisation_id, group_no)
            if not rows:
                raise ApplicationError(f"reorganisation {reorganisation_id} has no group "
                                       f"{group_no}", non_retryable=True)
            existing = find_by_key(session, requester, key)
            if existing is not None:
                return _group_request(group_no, rows, existing)
            if all(r.status == RowStatus.FAILED for r in rows):
                return _group_request(group_no, rows, None)  # an earlier attempt found none
            policy = session.get(PolicyVersion, reorganisation.policy_version_id)
            assert policy is not None and policy.id is not None  # foreign key
            rules = policy.parsed_rules()
            reason = Reason(reorganisation.reason)
            planned = [r for r in rows if r.status == RowStatus.PLANNED]
            facts = customer_facts(session, [r.customer_id for r in planned])
            people = {r.to_employee_id for r in planned} | {
                f.current_owner_id for f in facts.values() if f.current_owner_id is not None}
            outcomes = validate_rows(
                [ResolvedRow(row_number=r.row_number, customer_ref=str(r.customer_id),
                             new_owner_ref=str(r.to_employee_id), customer_id=r.customer_id,
                             to_employee_id=r.to_employee_id,
                             # the owner at planning time: a change since then fails the row
                             expected_owner_ref=str(r.from_employee_id),
                             expected_owner_id=r.from_employee_id) for r in planned],
                rules=rules, reason=reason, customers=facts,
                employees=employee_facts_many(session, people), now=now)
            by_number = {r.row_number: r for r in planned}
            movable = []
            for out in outcomes:
                row = by_number[out.row_number]
                if out.valid:
                    movable.append(row)
                else:
                    row.status = RowStatus.FAILED.value
                    row.error = "; ".join(e.message for e in out.errors)[:2000]
                    session.add(row)
            if not movable:
                session.commit()
                return _group_request(group_no, rows, None)
            first = movable[0]
            customer_ids = [r.customer_id for r in movable]
            note = f"Reorganisation {reorganisation_id}" + (
                f": {reorganisation.note}" if reorganisation.note else "")
            assessment = build_assessment(session, owner_id=first.from_employee_id,
                                          customer_ids=customer_ids, rules=rules,
                                          terms=default_terms(rules), as_of=now)
            payload = {"from_employee_id": first.from_employee_id,
                       "to_employee_id": first.to_employee_id, "customer_ids": customer_ids,
                       "reason": reason.value, "note": note}
            request = insert_request(
                session, requester_id=requester, from_employee_id=first.from_employee_id,
                to_employee_id=first.to_employee_id, customer_ids=customer_ids, reason=reason,
                note=note[:2000], key=key, digest=canonical_hash(payload),
                policy_version_id=policy.id, terms=assessment.suggested.terms,
                assessment=assessment, now=now)
            for row in movable:
                row.status, row.request_id = RowStatus.REQUESTED.value, request.id
                session.add(row)
            session.commit()
            return _group_request(group_no, rows, request)

    @activity.defn(name="record_reorganisation_progress")
    def record_progress(self, reorganisation_id: int, started_group_nos: list[int],
                        not_started: list[RowFailure], counters: BulkCounters,
                        status: BulkStatus) -> None:
        """Rows of started groups become STARTED, rows whose workflow could not start FAILED;
        the counters and status are set (absolute values, so a retry changes nothing)."""
        with self._sessions() as session:
            reorganisation = _reorganisation(session, reorganisation_id)
            if started_group_nos:
                session.execute(update(ReorganisationRow).where(
                    col(ReorganisationRow.reorganisation_id) == reorganisation_id,
                    col(ReorganisationRow.group_no).in_(started_group_nos),
                    col(ReorganisationRow.status) == RowStatus.REQUESTED.value,
                ).values(status=RowStatus.STARTED.value))
            for failure in not_started:
                session.execute(update(ReorganisationRow).where(
                    col(ReorganisationRow.reorganisation_id) == reorganisation_id,
                    col(ReorganisationRow.row_number) == failure.row_number,
                ).values(status=RowStatus.FAILED.value, error=failure.reason[:2000]))
            for name, value in counters.model_dump().items():
                setattr(reorganisation, name, value)
            closing = status in (BulkStatus.COMPLETED, BulkStatus.CANCELLED)
            if closing and reorganisation.finished_at is None:
                reorganisation.finished_at = datetime.now(UTC)
                audit(session, f"REORGANISATION_{status.value}",
                      actor_id=reorganisation.cancelled_by_id,
                      entity=("reorganisation", reorganisation_id),
                      after=counters.model_dump(), reason=reorganisation.cancel_reason)
            reorganisation.status = status.value
            session.add(reorganisation)
            session.commit()

    @activity.defn(name="cancel_reorganisation_children")
    async def cancel_children(self, reorganisation_id: int,
                              inp: BulkCancelInput) -> CancelChildrenResult:
        """Cancel every request of the reorganisation that has not taken effect, through the
        request workflow's own `cancel` Update as HR; those in effect are left alone.

        Safe to repeat: a request already cancelled answers as such. A request whose workflow
        has not yet read its request (still SUBMITTED) cannot be cancelled yet, so the
        activity fails retryably after doing the others, and the retry finishes the job.
        """
        request_ids = await asyncio.to_thread(self._mark_cancelling, reorganisation_id, inp)
        client = activity.client()
        result = CancelChildrenResult()
        not_ready: list[int] = []
        action = ReasonedActionInput(actor_id=inp.actor_id, actor_roles=inp.actor_roles,
                                     reason=f"Reorganisation {reorganisation_id} was "
                                            f"cancelled: {inp.reason}"[:2000])
        for request_id in request_ids:
            activity.heartbeat(request_id)
            handle = client.get_workflow_handle(workflow_id_for(request_id))
            try:
                state = await handle.query("get_state", result_type=ReassignmentState)
                if state.stage in PRE_EFFECTIVE_STAGES and state.stage != Stage.SUBMITTED:
                    state = await handle.execute_update("cancel", action,
                                                        result_type=ReassignmentState)
            except WorkflowUpdateFailedError:
                state = await handle.query("get_state", result_type=ReassignmentState)
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
                result.outcomes[request_id] = ChildOutcome.ALREADY_CLOSED  # past retention
                continue
            if state.stage == Stage.CANCELLED:
                result.outcomes[request_id] = ChildOutcome.CANCELLED
            elif state.stage == Stage.SUBMITTED:
                not_ready.append(request_id)
            elif state.stage in PRE_EFFECTIVE_STAGES:
                not_ready.append(request_id)  # moved on between the query and the update
            elif state.stage in (Stage.EFFECTIVE, Stage.PROTECTION, Stage.COMPLETED):
                result.outcomes[request_id] = ChildOutcome.LEFT_IN_EFFECT
            else:
                result.outcomes[request_id] = ChildOutcome.ALREADY_CLOSED
        await asyncio.to_thread(self._mark_cancelled, reorganisation_id, result)
        if not_ready:
            raise ApplicationError(f"request(s) {not_ready} not yet ready to cancel; retrying",
                                   type=CHILD_NOT_READY)
        return result

    def _mark_cancelling(self, reorganisation_id: int, inp: BulkCancelInput) -> list[int]:
        with self._sessions() as session:
            reorganisation = _reorganisation(session, reorganisation_id)
            if reorganisation.cancelled_by_id is None:
                reorganisation.cancelled_by_id, reorganisation.cancel_reason = (
                    inp.actor_id, inp.reason)
                reorganisation.status = BulkStatus.CANCELLING.value
                session.add(reorganisation)
            session.execute(update(ReorganisationRow).where(
                col(ReorganisationRow.reorganisation_id) == reorganisation_id,
                col(ReorganisationRow.status) == RowStatus.PLANNED.value,
            ).values(status=RowStatus.NOT_STARTED.value))
            session.commit()
            ids = session.exec(select(ReorganisationRow.request_id).where(
                ReorganisationRow.reorganisation_id == reorganisation_id,
                col(ReorganisationRow.request_id).is_not(None)).distinct()).all()
            return sorted(i for i in ids if i is not None)

    def _mark_cancelled(self, reorganisation_id: int, result: CancelChildrenResult) -> None:
        cancelled = [rid for rid, o in result.outcomes.items() if o == ChildOutcome.CANCELLED]
        if not cancelled:
            return
        with self._sessions() as session:
            session.execute(update(ReorganisationRow).where(
                col(ReorganisationRow.reorganisation_id) == reorganisation_id,
                col(ReorganisationRow.request_id).in_(cancelled),
            ).values(status=RowStatus.CANCELLED.value))
            session.commit()
