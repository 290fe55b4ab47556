"""Bulk reorganisation: many customer moves at once, as one request per (from, to) pair.

Pure: parsing an uploaded CSV into rows, splitting one salesperson's customers among others by
a stated rule, validating every row against the facts and the policy, grouping the valid moves
into requests, and adding up the impact. The DTOs that cross the BulkReassignmentWorkflow's
boundary live here too. Nothing here reads a database or a clock.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from domain.impact import Assessment
from domain.policy import CustomerFacts, EmployeeFacts, PolicyRules, check_request
from domain.stages import Reason, Role

# the API's limit on one request (api.schemas.SubmitIn.customer_ids): bigger groups are split
MAX_CUSTOMERS_PER_REQUEST = 200
MAX_ROWS = 20_000

# the CSV's columns; each pair names one thing either by id or by its code, exactly one of them
CUSTOMER_COLUMNS = ("customer_id", "customer_code")
NEW_OWNER_COLUMNS = ("new_owner_id", "new_owner_employee_no")
EXPECTED_OWNER_COLUMNS = ("expected_owner_id", "expected_owner_employee_no")
NOTE_COLUMN = "note"
KNOWN_COLUMNS = frozenset((*CUSTOMER_COLUMNS, *NEW_OWNER_COLUMNS, *EXPECTED_OWNER_COLUMNS,
                           NOTE_COLUMN))


class SplitRule(StrEnum):
    """How "move all customers of A to B, C, ..." shares them out. Both are deterministic."""

    # customers by id, dealt out to the targets in the order given
    ROUND_ROBIN = "ROUND_ROBIN"
    # customers by trailing-12-month revenue, largest first (ties by id), each to the target
    # with the smallest total so far (ties: the earlier target): greedy balancing of value
    BALANCED_VALUE = "BALANCED_VALUE"


@dataclass(frozen=True)
class Ref:
    """A customer or employee as the file names it: by database id or by code."""

    id: int | None = None
    code: str | None = None

    def __str__(self) -> str:
        return str(self.id) if self.id is not None else (self.code or "")


@dataclass(frozen=True)
class UploadedRow:
    row_number: int  # the line in the file (the header is line 1), as a spreadsheet shows it
    customer: Ref
    new_owner: Ref
    expected_owner: Ref | None = None
    note: str | None = None


@dataclass(frozen=True)
class RowError:
    row_number: int
    code: str
    message: str
    column: str | None = None


class FileError(ValueError):
    """The file as a whole cannot be read (no header, unknown columns, too many rows)."""


def _ref(record: Mapping[str, str | None], columns: tuple[str, str], row_number: int,
         errors: list[RowError], *, required: bool) -> Ref | None:
    id_column, code_column = columns
    raw_id = (record.get(id_column) or "").strip()
    raw_code = (record.get(code_column) or "").strip()
    if raw_id and raw_code:
        errors.append(RowError(row_number, "BOTH_ID_AND_CODE",
                               f"fill either {id_column} or {code_column}, not both",
                               id_column))
        return None
    if raw_id:
        if not raw_id.isdigit():
            errors.append(RowError(row_number, "NOT_AN_ID",
                                   f"{id_column} must be a whole number, not {raw_id!r}",
                                   id_column))
            return None
        return Ref(id=int(raw_id))
    if raw_code:
        return Ref(code=raw_code)
    if required:
        errors.append(RowError(row_number, "MISSING_VALUE",
                               f"fill {id_column} or {code_column}", id_column))
    return None


def parse_csv(text: str) -> tuple[list[UploadedRow], list[RowError]]:
    """Rows of the reorganisation file, and the rows that cannot even be read.

    Raises FileError when the file itself is unusable, saying which columns it needs.
    """
    text = text.removeprefix("\ufeff")  # Excel writes a byte-order mark
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or []) if h is not None]
    if not header:
        raise FileError("the file is empty; the first line must name the columns, e.g. "
                        "customer_code,new_owner_employee_no,expected_owner_employee_no,note")
    unknown = [h for h in header if h not in KNOWN_COLUMNS]
    if unknown:
        raise FileError(f"unknown column(s) {', '.join(unknown)}; the columns are "
                        f"{', '.join(sorted(KNOWN_COLUMNS))}")
    for pair in (CUSTOMER_COLUMNS, NEW_OWNER_COLUMNS):
        if not set(pair) & set(header):
            raise FileError(f"the file needs a column {pair[0]} or {pair[1]}")
    reader.fieldnames = header
    rows: list[UploadedRow] = []
    errors: list[RowError] = []
    for record in reader:
        row_number = reader.line_num
        if len(rows) + len(errors) >= MAX_ROWS:
            raise FileError(f"the file has more than {MAX_ROWS} rows; split it")
        if None in record:  # more cells than columns
            errors.append(RowError(row_number, "TOO_MANY_CELLS",
                                   f"the row has more cells than the {len(header)} columns"))
            continue
        if not any((v or "").strip() for v in record.values()):
            continue  # a blank line
        problems: list[RowError] = []
        customer = _ref(record, CUSTOMER_COLUMNS, row_number, problems, required=True)
        new_owner = _ref(record, NEW_OWNER_COLUMNS, row_number, problems, required=True)
        expected = _ref(record, EXPECTED_OWNER_COLUMNS, row_number, problems, required=False)
        note = (record.get(NOTE_COLUMN) or "").strip() or None
        if note is not None and len(note) > 2000:
            problems.append(RowError(row_number, "NOTE_TOO_LONG",
                                     "the note may be at most 2000 characters", NOTE_COLUMN))
        if problems or customer is None or new_owner is None:
            errors.extend(problems)
            continue
        rows.append(UploadedRow(row_number, customer, new_owner, expected, note))
    return rows, errors


@dataclass(frozen=True)
class ResolvedRow:
    """An uploaded row with its references looked up (None: nothing by that id or code)."""

    row_number: int
    customer_ref: str
    new_owner_ref: str
    customer_id: int | None
    to_employee_id: int | None
    expected_owner_ref: str | None = None
    expected_owner_id: int | None = None
    note: str | None = None


def split_rule(customers: list[tuple[int, int]], targets: list[int],
               rule: SplitRule) -> dict[int, int]:
    """customer id -> target for (customer id, value in fen) pairs, by `rule`."""
    if not targets:
        raise ValueError("name at least one salesperson to receive the customers")
    if len(set(targets)) != len(targets):
        raise ValueError("a receiving salesperson is named twice")
    if rule == SplitRule.ROUND_ROBIN:
        ordered = sorted(customers)
        return {cid: targets[i % len(targets)] for i, (cid, _) in enumerate(ordered)}
    totals = [0] * len(targets)
    out: dict[int, int] = {}
    for cid, value in sorted(customers, key=lambda c: (-c[1], c[0])):
        slot = min(range(len(targets)), key=lambda i: (totals[i], i))
        totals[slot] += value
        out[cid] = targets[slot]
    return out


@dataclass
class RowOutcome:
    row_number: int
    customer_ref: str
    new_owner_ref: str
    customer_id: int | None
    from_employee_id: int | None
    to_employee_id: int | None
    note: str | None = None
    errors: list[RowError] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors


# policy violations that concern the batch, not a row: reported once, by the caller
BATCH_LEVEL_CODES = frozenset({"REASON_NOT_ALLOWED"})


def validate_rows(
    rows: list[ResolvedRow], *, rules: PolicyRules, reason: Reason,
    customers: Mapping[int, CustomerFacts], employees: Mapping[int, EmployeeFacts],
    now: datetime,
) -> list[RowOutcome]:
    """Every reason each row may not start, with the policy's own checks (domain.policy):
    ownership, the receiver, protection, open requests and cooling-off; plus the file's own:
    a customer named twice, and the owner the file expects."""
    first_row: dict[int, int] = {}
    outcomes = []
    for row in rows:
        out = RowOutcome(row.row_number, row.customer_ref, row.new_owner_ref, row.customer_id,
                         None, row.to_employee_id, row.note)
        outcomes.append(out)
        err = out.errors.append
        if row.customer_id is None or row.customer_id not in customers:
            err(RowError(row.row_number, "UNKNOWN_CUSTOMER",
                         f"no customer {row.customer_ref}", "customer"))
        if row.to_employee_id is None:
            err(RowError(row.row_number, "UNKNOWN_EMPLOYEE",
                         f"no employee {row.new_owner_ref}", "new_owner"))
        if row.expected_owner_ref is not None and row.expected_owner_id is None:
            err(RowError(row.row_number, "UNKNOWN_EMPLOYEE",
                         f"no employee {row.expected_owner_ref}", "expected_owner"))
        if row.customer_id is None or row.customer_id not in customers:
            continue
        cid = row.customer_id
        if cid in first_row:
            err(RowError(row.row_number, "DUPLICATE_ROW",
                         f"customer {row.customer_ref} is already moved in row {first_row[cid]}",
                         "customer"))
            continue
        first_row[cid] = row.row_number
        facts = customers[cid]
        out.from_employee_id = facts.current_owner_id
        if facts.current_owner_id is None:
            err(RowError(row.row_number, "CUSTOMER_INACTIVE",
                         f"customer {row.customer_ref} has no current owner", "customer"))
            continue
        if row.expected_owner_id is not None and row.expected_owner_id != facts.current_owner_id:
            err(RowError(row.row_number, "EXPECTED_OWNER_MISMATCH",
                         f"customer {row.customer_ref} is owned by employee "
                         f"{facts.current_owner_id}, not {row.expected_owner_ref}",
                         "expected_owner"))
        if row.to_employee_id is None:
            continue
        violations = check_request(
            rules=rules, reason=reason, from_employee=employees.get(facts.current_owner_id),
            to_employee=employees.get(row.to_employee_id), customer_ids=[cid],
            customers={cid: facts}, now=now)
        for v in violations:
            if v.code not in BATCH_LEVEL_CODES:
                err(RowError(row.row_number, v.code, v.message,
                             "new_owner" if v.field == "to_employee_id" else "customer"))
    return outcomes


def batch_errors(rules: PolicyRules, reason: Reason) -> list[str]:
    """What is wrong with the batch as a whole (its one reason)."""
    if reason not in rules.allowed_reasons:
        allowed = ", ".join(r.value for r in rules.allowed_reasons)
        return [f"reason {reason.value} is not allowed by the policy; use one of: {allowed}"]
    return []


@dataclass(frozen=True)
class MoveGroup:
    """One future request: customers moving from one salesperson to another."""

    group_no: int  # 1-based, in (from, to, first row) order
    from_employee_id: int
    to_employee_id: int
    customer_ids: tuple[int, ...]
    row_numbers: tuple[int, ...]


def group_moves(outcomes: Iterable[RowOutcome],
                max_per_request: int = MAX_CUSTOMERS_PER_REQUEST) -> list[MoveGroup]:
    """The valid rows as requests: one per (from, to), split when larger than a request may be.
    Deterministic: pairs in id order, customers in row order."""
    by_pair: dict[tuple[int, int], list[RowOutcome]] = defaultdict(list)
    for out in outcomes:
        if out.valid:
            assert out.from_employee_id is not None and out.to_employee_id is not None
            assert out.customer_id is not None
            by_pair[(out.from_employee_id, out.to_employee_id)].append(out)
    groups: list[MoveGroup] = []
    for (from_id, to_id), rows in sorted(by_pair.items()):
        rows.sort(key=lambda r: r.row_number)
        for start in range(0, len(rows), max_per_request):
            chunk = rows[start:start + max_per_request]
            groups.append(MoveGroup(len(groups) + 1, from_id, to_id,
                                    tuple(r.customer_id for r in chunk if r.customer_id),
                                    tuple(r.row_number for r in chunk)))
    return groups


# --- impact totals ---------------------------------------------------------------------------


class OwnerImpact(BaseModel):
    """What one losing salesperson gives up in the whole reorganisation."""

    employee_id: int
    customers: int
    requests: int
    t12m_revenue_fen: int
    expected_revenue_fen: int
    projected_loss_fen: int
    suggested_compensation_fen: int


class ImpactTotals(BaseModel):
    rows: int
    valid_rows: int
    invalid_rows: int
    customers: int
    groups: int
    t12m_revenue_fen: int
    expected_revenue_fen: int
    projected_loss_fen: int
    suggested_compensation_fen: int
    owners: list[OwnerImpact]


def impact_totals(rows: int, outcomes: list[RowOutcome], groups: list[MoveGroup],
                  assessments: Mapping[int, Assessment]) -> ImpactTotals:
    """Sums over the groups' assessments (group_no -> the assessment a submit would store)."""
    owners: dict[int, OwnerImpact] = {}
    for g in groups:
        a = assessments[g.group_no]
        o = owners.setdefault(g.from_employee_id, OwnerImpact(
            employee_id=g.from_employee_id, customers=0, requests=0, t12m_revenue_fen=0,
            expected_revenue_fen=0, projected_loss_fen=0, suggested_compensation_fen=0))
        o.customers += len(g.customer_ids)
        o.requests += 1
        o.t12m_revenue_fen += a.total_t12m_revenue_fen
        o.expected_revenue_fen += a.total_expected_revenue_fen
        o.projected_loss_fen += a.projected_loss_fen
        o.suggested_compensation_fen += a.suggested.terms.compensation_fen
    listed = sorted(owners.values(), key=lambda o: (-o.projected_loss_fen, o.employee_id))
    valid = sum(1 for o in outcomes if o.valid)
    return ImpactTotals(
        rows=rows, valid_rows=valid, invalid_rows=rows - valid,
        customers=sum(len(g.customer_ids) for g in groups), groups=len(groups),
        t12m_revenue_fen=sum(o.t12m_revenue_fen for o in listed),
        expected_revenue_fen=sum(o.expected_revenue_fen for o in listed),
        projected_loss_fen=sum(o.projected_loss_fen for o in listed),
        suggested_compensation_fen=sum(o.suggested_compensation_fen for o in listed),
        owners=listed)


# --- the workflow's DTOs ----------------------------------------------------------------------


class BulkStatus(StrEnum):
    RUNNING = "RUNNING"
    CANCELLING = "CANCELLING"
    COMPLETED = "COMPLETED"  # every group was tried; some may have failed
    CANCELLED = "CANCELLED"


class RowFailure(BaseModel):
    row_number: int
    customer_id: int | None = None
    reason: str


class BulkCounters(BaseModel):
    started_groups: int = 0
    failed_groups: int = 0
    started_rows: int = 0
    failed_rows: int = 0


class BulkInput(BaseModel):
    """Also the continue-as-new input: the cursor and the counters so far travel with it."""

    reorganisation_id: int
    total_groups: int
    total_rows: int
    starts_per_second: int = Field(default=10, ge=1, le=1_000)
    groups_per_run: int = Field(default=100, ge=1, le=10_000)  # then continue-as-new
    next_group: int = 1
    counters: BulkCounters = Field(default_factory=BulkCounters)
    failures: list[RowFailure] = Field(default_factory=list)
    cancel: BulkCancelInput | None = None  # a cancel that arrived just before continue-as-new
    runs: int = 1


class BulkCancelInput(BaseModel):
    actor_id: int
    actor_roles: list[Role] = Field(default_factory=list)
    reason: str = Field(min_length=1, max_length=2000)


class GroupPlan(BaseModel):
    group_no: int
    from_employee_id: int
    to_employee_id: int
    customer_ids: list[int]
    row_numbers: list[int]


class GroupRequest(BaseModel):
    """The request made for one group (None when no row of it could still be moved)."""

    group_no: int
    request_id: int | None = None
    workflow_id: str | None = None
    from_employee_id: int
    to_employee_id: int
    customer_ids: list[int] = Field(default_factory=list)
    row_count: int = 0
    failures: list[RowFailure] = Field(default_factory=list)
    # for the request workflow's static details, as the API's start gives them
    requester_id: int | None = None
    reason: str = ""
    policy_version_id: int | None = None


class StartedGroups(BaseModel):
    reorganisation_id: int
    group_nos: list[int]
    failures: list[RowFailure] = Field(default_factory=list)  # of groups not started at all


class ChildOutcome(StrEnum):
    CANCELLED = "CANCELLED"
    ALREADY_CLOSED = "ALREADY_CLOSED"  # ended before the cancel (rejected, withdrawn, ...)
    LEFT_IN_EFFECT = "LEFT_IN_EFFECT"  # took effect already: left alone


class CancelChildrenResult(BaseModel):
    outcomes: dict[int, ChildOutcome] = Field(default_factory=dict)  # request id -> outcome


class BulkProgress(BaseModel):
    reorganisation_id: int
    status: BulkStatus
    total_groups: int
    total_rows: int
    started_groups: int
    failed_groups: int
    started_rows: int
    failed_rows: int
    failures: list[RowFailure] = Field(default_factory=list)
    cancelled_requests: list[int] = Field(default_factory=list)
    left_in_effect_requests: list[int] = Field(default_factory=list)
    runs: int = 1  # workflow runs so far (continue-as-new)

    @property
    def done_groups(self) -> int:
        return self.started_groups + self.failed_groups


BulkInput.model_rebuild()
