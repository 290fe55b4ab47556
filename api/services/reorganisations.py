"""Bulk reorganisations: dry run, start, progress and cancel. Shared by the API, the HR page
and the CLI.

The database work is sync (run it in the thread pool); the Temporal calls are async. Nothing
holds a transaction while Temporal is awaited.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.problems import FieldError, Problem, temporal_unavailable_problem
from api.security import Actor
from domain.bulk import (
    BulkCancelInput,
    BulkCounters,
    BulkInput,
    BulkProgress,
    BulkStatus,
    FileError,
    ImpactTotals,
    RowError,
    RowFailure,
    SplitRule,
    parse_csv,
)
from domain.stages import Reason
from models.bulk import Reorganisation, ReorganisationRow, RowStatus
from models.bulk_plan import NoPolicyError, Plan, plan_rows, resolve_rows, rule_rows, store
from models.db import SessionFactory
from models.org import Employee
from settings import Settings

WORKFLOW_TYPE = "BulkReassignmentWorkflow"  # by name: the API never imports workflow code
MAX_FILE_BYTES = 5_000_000
MAX_ERRORS_SHOWN = 500  # a problem document lists at most this many row errors


class RuleIn(BaseModel):
    """"Move all customers of A to B, C, ..." split by a stated, deterministic rule."""

    model_config = {"extra": "forbid"}

    from_employee_id: int
    to_employee_ids: list[int] = Field(min_length=1, max_length=100)
    split: SplitRule = SplitRule.BALANCED_VALUE
    reason: Reason
    note: str | None = Field(default=None, max_length=2000)
    dry_run: bool = False


class RowErrorOut(BaseModel):
    row: int
    code: str
    message: str
    column: str | None = None


class GroupOut(BaseModel):
    group_no: int
    from_employee_id: int
    to_employee_id: int
    customers: int
    first_row: int


class PlanOut(BaseModel):
    """The dry run's answer: every row's problems and the impact totals. Nothing is written."""

    dry_run: bool = True
    ok: bool
    reason: Reason
    policy_version_id: int
    batch_errors: list[str]
    row_errors: list[RowErrorOut]
    totals: ImpactTotals
    groups: list[GroupOut]


class ReorganisationOut(BaseModel):
    id: int
    workflow_id: str | None
    status: BulkStatus
    reason: str
    note: str | None
    source: str
    file_name: str | None
    created_by_id: int
    created_at: datetime
    finished_at: datetime | None
    cancel_reason: str | None
    totals: ImpactTotals
    progress: BulkProgress
    # where the progress came from: the running workflow's query, or the database
    progress_source: str
    live_error: str | None = None


@dataclass(frozen=True)
class Upload:
    """What HR sent: a CSV file or a rule, and the batch's reason."""

    reason: Reason
    note: str | None
    csv_text: str | None = None
    file_name: str | None = None
    rule: RuleIn | None = None

    @property
    def source(self) -> str:
        return "RULE" if self.rule is not None else "CSV"

    @property
    def sha256(self) -> str | None:
        if self.csv_text is None:
            return None
        return hashlib.sha256(self.csv_text.encode("utf-8")).hexdigest()


def decode_upload(data: bytes) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise Problem(413, "file-too-large", "The file is too large",
                      f"The file has {len(data)} bytes; at most {MAX_FILE_BYTES} are accepted. "
                      "Split the reorganisation into several files.")
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in a Chinese locale saves GB18030
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise Problem(422, "file-unreadable", "The file is not text",
                  "The file could not be read as UTF-8 or GB18030 text. Save it as CSV "
                  "(UTF-8) and upload it again.")


def _row_errors_problem(plan: Plan) -> Problem:
    errors = plan.row_errors
    shown = errors[:MAX_ERRORS_SHOWN]
    rows = sorted({e.row_number for e in errors})
    detail = "; ".join(plan.batch_errors) or (
        f"{len(rows)} row(s) cannot be moved (rows {', '.join(map(str, rows[:20]))}"
        f"{', ...' if len(rows) > 20 else ''}). Nothing was started. Fix or remove these rows "
        "(the dry run lists every problem) and upload the file again.")
    if not plan.groups and not errors and not plan.batch_errors:
        detail = "The file names no customer to move."
    return Problem(
        422, "reorganisation-invalid", "The reorganisation cannot start", detail,
        errors=[FieldError(field=f"row {e.row_number}" + (f": {e.column}" if e.column else ""),
                           code=e.code, message=e.message, location="body") for e in shown],
        extra={"rows": rows, "batch_errors": plan.batch_errors})


def _plan(session: Session, upload: Upload, now: datetime) -> Plan:
    unreadable: list[RowError] = []
    if upload.rule is not None:
        rule = upload.rule
        if session.get(Employee, rule.from_employee_id) is None:
            raise Problem(422, "employee-unknown", "No such salesperson",
                          f"Employee {rule.from_employee_id} does not exist; name the "
                          "salesperson whose customers move by their employee id.",
                          errors=[FieldError(field="from_employee_id", code="unknown",
                                             message="no such employee", location="body")])
        try:
            rows = rule_rows(session, from_employee_id=rule.from_employee_id,
                             to_employee_ids=rule.to_employee_ids, rule=rule.split, now=now)
        except ValueError as exc:
            raise Problem(422, "rule-invalid", "The rule is not valid",
                          f"{exc}.", errors=[FieldError(field="to_employee_ids", code="invalid",
                                                        message=str(exc), location="body")]
                          ) from exc
    else:
        assert upload.csv_text is not None
        try:
            uploaded, unreadable = parse_csv(upload.csv_text)
        except FileError as exc:
            raise Problem(422, "file-invalid", "The file cannot be used",
                          f"{exc}. See docs/REORGANISATION.md for the file's columns.") from exc
        rows = resolve_rows(session, uploaded)
    try:
        return plan_rows(session, rows, reason=upload.reason, now=now, unreadable=unreadable)
    except NoPolicyError as exc:
        raise Problem(409, "no-published-policy", "No published policy",
                      "No reassignment policy is published, so no reorganisation can start. "
                      "Ask HR to publish a policy version.") from exc


def plan_out(plan: Plan) -> PlanOut:
    return PlanOut(
        ok=plan.ok, reason=plan.reason, policy_version_id=plan.policy_version_id,
        batch_errors=plan.batch_errors,
        row_errors=[RowErrorOut(row=e.row_number, code=e.code, message=e.message,
                                column=e.column) for e in plan.row_errors],
        totals=plan.totals,
        groups=[GroupOut(group_no=g.group_no, from_employee_id=g.from_employee_id,
                         to_employee_id=g.to_employee_id, customers=len(g.customer_ids),
                         first_row=g.row_numbers[0]) for g in plan.groups])


def dry_run(sessions: SessionFactory, upload: Upload, *, now: datetime | None = None
            ) -> PlanOut:
    """Validate every row and total the impact. Writes nothing."""
    with sessions() as session:
        out = plan_out(_plan(session, upload, now or datetime.now(UTC)))
        session.rollback()
    return out


@dataclass(frozen=True)
class Created:
    reorganisation: Reorganisation
    created: bool  # False: an earlier start with the same Idempotency-Key


def _find(session: Session, actor: Actor, key: str) -> Reorganisation | None:
    return session.exec(select(Reorganisation).where(
        Reorganisation.created_by_id == actor.employee_id,
        Reorganisation.idempotency_key == key)).first()


def create(sessions: SessionFactory, actor: Actor, upload: Upload, key: str,
           *, now: datetime | None = None) -> Created:
    """Store a fully valid reorganisation (422 listing every bad row otherwise)."""
    now = now or datetime.now(UTC)
    try:
        with sessions() as session:
            existing = _find(session, actor, key)
            if existing is not None:
                return Created(existing, False)
            plan = _plan(session, upload, now)
            if not plan.ok:
                raise _row_errors_problem(plan)
            reorganisation = store(session, plan, created_by_id=actor.employee_id, key=key,
                                   note=upload.note, source=upload.source,
                                   file_name=upload.file_name, file_sha256=upload.sha256,
                                   now=now)
    except IntegrityError:
        with sessions() as session:
            existing = _find(session, actor, key)
            if existing is None:
                raise
            return Created(existing, False)
    return Created(reorganisation, True)


async def start(client: Client | None, settings: Settings, reorganisation: Reorganisation
                ) -> None:
    """Start the reorganisation's workflow; already started is success."""
    assert reorganisation.id is not None and reorganisation.workflow_id is not None
    if client is None:
        raise temporal_unavailable_problem(
            f"Reorganisation {reorganisation.id} was saved, but its workflow could not be "
            "started. Send the same upload again with the same Idempotency-Key to start it."
        ).with_extra(reorganisation_id=reorganisation.id)
    inp = BulkInput(reorganisation_id=reorganisation.id,
                    total_groups=reorganisation.total_groups,
                    total_rows=reorganisation.total_rows,
                    starts_per_second=settings.bulk_starts_per_second,
                    groups_per_run=settings.bulk_groups_per_run)
    try:
        await client.start_workflow(
            WORKFLOW_TYPE, inp, id=reorganisation.workflow_id, task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=f"Reorganisation {reorganisation.id} · "
                           f"{reorganisation.total_groups} requests · "
                           f"{reorganisation.total_rows} customers")
    except WorkflowAlreadyStartedError:
        pass
    except RPCError as exc:
        raise temporal_unavailable_problem(
            f"Reorganisation {reorganisation.id} was saved, but its workflow could not be "
            f"started ({exc.message}). Send the same upload again with the same "
            "Idempotency-Key to start it.").with_extra(reorganisation_id=reorganisation.id
                                                      ) from exc


# --- reading ---------------------------------------------------------------------------------


def _load(sessions: SessionFactory, reorganisation_id: int
          ) -> tuple[Reorganisation, list[RowFailure]]:
    with sessions() as session:
        reorganisation = session.get(Reorganisation, reorganisation_id)
        if reorganisation is None:
            raise Problem(404, "not-found", "No such reorganisation",
                          f"Reorganisation {reorganisation_id} does not exist.")
        failed = session.exec(select(ReorganisationRow).where(
            ReorganisationRow.reorganisation_id == reorganisation_id,
            ReorganisationRow.status == RowStatus.FAILED.value)
            .order_by(col(ReorganisationRow.row_number))).all()
        return reorganisation, [RowFailure(row_number=r.row_number, customer_id=r.customer_id,
                                           reason=r.error or "") for r in failed]


def _stored_progress(sessions: SessionFactory, reorganisation: Reorganisation,
                     failures: list[RowFailure]) -> BulkProgress:
    with sessions() as session:
        cancelled = session.exec(select(ReorganisationRow.request_id).where(
            ReorganisationRow.reorganisation_id == reorganisation.id,
            ReorganisationRow.status == RowStatus.CANCELLED.value).distinct()).all()
    assert reorganisation.id is not None
    return BulkProgress(
        reorganisation_id=reorganisation.id, status=BulkStatus(reorganisation.status),
        total_groups=reorganisation.total_groups, total_rows=reorganisation.total_rows,
        started_groups=reorganisation.started_groups,
        failed_groups=reorganisation.failed_groups,
        started_rows=reorganisation.started_rows, failed_rows=reorganisation.failed_rows,
        failures=failures, cancelled_requests=sorted(i for i in cancelled if i is not None))


def _out(reorganisation: Reorganisation, progress: BulkProgress, source: str,
         live_error: str | None) -> ReorganisationOut:
    assert reorganisation.id is not None
    return ReorganisationOut(
        id=reorganisation.id, workflow_id=reorganisation.workflow_id, status=progress.status,
        reason=reorganisation.reason, note=reorganisation.note, source=reorganisation.source,
        file_name=reorganisation.file_name, created_by_id=reorganisation.created_by_id,
        created_at=reorganisation.created_at, finished_at=reorganisation.finished_at,
        cancel_reason=reorganisation.cancel_reason,
        totals=ImpactTotals.model_validate(reorganisation.totals), progress=progress,
        progress_source=source, live_error=live_error)


QUERY_TIMEOUT_S = 5.0


async def read(sessions: SessionFactory, client: Client | None, reorganisation_id: int
               ) -> ReorganisationOut:
    """Progress from the running workflow's query; from the database once it has closed
    (or when Temporal does not answer)."""
    reorganisation, failures = await asyncio.to_thread(_load, sessions, reorganisation_id)
    live_error: str | None = "the workflow service (Temporal) is unavailable"
    if client is not None and reorganisation.workflow_id:
        handle = client.get_workflow_handle(reorganisation.workflow_id)
        try:
            progress = await asyncio.wait_for(
                handle.query("progress", result_type=BulkProgress), QUERY_TIMEOUT_S)
            if progress.status in (BulkStatus.RUNNING, BulkStatus.CANCELLING):
                return _out(reorganisation, progress, "workflow", None)
            live_error = None  # closed: the database holds the final counts
        except RPCError as exc:
            live_error = ("the workflow was not found" if exc.status == RPCStatusCode.NOT_FOUND
                          else f"the workflow service is unavailable: {exc.message}")
        except (WorkflowQueryFailedError, TimeoutError) as exc:
            live_error = f"the workflow did not answer: {exc or 'timeout'}"
    stored = await asyncio.to_thread(_stored_progress, sessions, reorganisation, failures)
    return _out(reorganisation, stored, "database", live_error)


def list_recent(session: Session, limit: int = 20) -> list[Reorganisation]:
    return list(session.exec(select(Reorganisation)
                             .order_by(col(Reorganisation.id).desc()).limit(limit)))


# --- cancel ----------------------------------------------------------------------------------


async def cancel(sessions: SessionFactory, client: Client | None, settings: Settings,
                 actor: Actor, reorganisation_id: int, reason: str) -> ReorganisationOut:
    """Stop further starts and cancel every request of it not yet in effect.

    While the workflow runs this is its `cancel` Update. Once it has started every group it
    has closed; then a new run of the same workflow id does only the cancelling."""
    reorganisation, _ = await asyncio.to_thread(_load, sessions, reorganisation_id)
    if client is None:
        raise temporal_unavailable_problem()
    assert reorganisation.workflow_id is not None
    inp = BulkCancelInput(actor_id=actor.employee_id, actor_roles=sorted(actor.roles),
                          reason=reason)
    handle = client.get_workflow_handle(reorganisation.workflow_id)
    try:
        described = await handle.describe()
    except RPCError as exc:
        raise temporal_unavailable_problem(f"The workflow could not be read: {exc.message}"
                                           ) from exc
    if described.status == WorkflowExecutionStatus.RUNNING:
        try:
            await handle.execute_update("cancel", inp, result_type=BulkProgress)
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            message = getattr(cause, "message", None) or str(cause)
            kind = cause.type if isinstance(cause, ApplicationError) else None
            status = 403 if kind == "WRONG_ACTOR" else 409
            raise Problem(status, f"action-{(kind or 'refused').lower()}",
                          "The reorganisation cannot be cancelled", message) from exc
    else:
        if reorganisation.status == BulkStatus.CANCELLED.value:
            raise Problem(409, "action-already_done", "Already cancelled",
                          f"Reorganisation {reorganisation_id} was already cancelled.")
        # every group was started: cancel the requests in a run that starts nothing
        await client.start_workflow(
            WORKFLOW_TYPE, BulkInput(
                reorganisation_id=reorganisation_id, total_groups=reorganisation.total_groups,
                total_rows=reorganisation.total_rows,
                next_group=reorganisation.total_groups + 1, cancel=inp,
                counters=BulkCounters(started_groups=reorganisation.started_groups,
                                      failed_groups=reorganisation.failed_groups,
                                      started_rows=reorganisation.started_rows,
                                      failed_rows=reorganisation.failed_rows)),
            id=reorganisation.workflow_id, task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"Reorganisation {reorganisation_id} · cancelling")
    return await read(sessions, client, reorganisation_id)


def progress_fraction(progress: BulkProgress) -> float:
    """Groups done (started or failed) over all groups, for progress bars."""
    if progress.total_groups == 0:
        return 1.0
    return (progress.started_groups + progress.failed_groups) / progress.total_groups
