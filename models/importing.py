"""Data migration: import the files of domain.importing into the database, and export them.

A run takes one or more files (one per kind) and is all-or-nothing, in the caller's
transaction:
1. every file is read and every row checked on its own (domain.importing);
2. in dependency order, each kind's rows are checked against the database and the run's other
   files (unknown codes, overlapping periods, two current owners, conflicts with stored
   history) and applied (flushed, not committed), so that later kinds see them;
3. if anything was wrong, or on a dry run, the transaction is rolled back: nothing is written.
   Otherwise one summary audit event (DATA_IMPORTED, with the counts) is added.

Rows are matched to stored ones by their natural key (Kind.key): an identical row is
"unchanged", a row whose changeable columns differ is "updated", and a row that would rewrite
history (Kind.on_rerun) is a conflict. Orders go through models.order_ingest, as the API's
import does.
"""

from __future__ import annotations

import contextlib
import secrets
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from domain.importing import (
    ASSIGNMENTS,
    CUSTOMERS,
    EMPLOYEES,
    KINDS,
    ORDERS,
    ORG_UNITS,
    OWNERS,
    PLANS,
    Kind,
    Period,
    Problem,
    Record,
    Sheet,
    cell_text,
    check_header,
    duplicate_keys,
    parse_datetime,
    parse_row,
)
from domain.tabular import FileProblem, read_table
from models.audit import audit
from models.commission import CommissionPlan
from models.commission_engine import recompute_since
from models.customer import Assignment, AssignmentSource, Customer, Order, OrderKind
from models.login import RevokeReason, end_all_sessions
from models.order_ingest import CSV_COLUMNS, RawRow, ingest
from models.org import Employee, EmploymentStatus, OrgUnit, UserAccount

EVENT_IMPORTED = "DATA_IMPORTED"
_EMPLOYEE_COLUMN = {"org_unit_id": "org_unit_code"}  # Employee field -> file column
_CHUNK = 500
assert ORDERS.column_names == CSV_COLUMNS, "domain.importing.ORDERS must match order_ingest"


@dataclass
class KindCounts:
    kind: str
    file: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "rows": self.rows, "created": self.created,
                "updated": self.updated, "unchanged": self.unchanged}


@dataclass
class ImportReport:
    dry_run: bool
    counts: list[KindCounts] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    written: bool = False
    audit_event_id: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def bad_rows(self) -> int:
        return len({(p.file, p.row) for p in self.problems})


@dataclass(frozen=True)
class ImportFile:
    kind: Kind
    name: str  # shown in the report
    data: bytes


class ImportNotFound(LookupError):
    """A folder given to `import all` holds none of the expected files."""


def files_in_directory(directory: Path) -> tuple[list[ImportFile], list[str]]:
    """`<kind>.csv` or `<kind>.xlsx` (or with _ for -) for each kind present in `directory`;
    and the names of other .csv/.xlsx files there, which are not imported."""
    if not directory.is_dir():
        raise ImportNotFound(f"{directory} is not a folder")
    found: list[ImportFile] = []
    used: set[Path] = set()
    for name, kind in KINDS.items():
        paths = [directory / f"{stem}.{ext}" for stem in dict.fromkeys(
            (name, name.replace("-", "_"))) for ext in ("csv", "xlsx")]
        present = [p for p in paths if p.is_file()]
        if len(present) > 1:
            raise ImportNotFound(f"{' and '.join(p.name for p in present)} are both in "
                                 f"{directory}; keep one file per kind")
        if present:
            used.add(present[0])
            found.append(ImportFile(kind, present[0].name, present[0].read_bytes()))
    if not found:
        expected = ", ".join(f"{k}.csv" for k in KINDS)
        raise ImportNotFound(f"{directory} holds none of {expected} (or .xlsx)")
    others = sorted(p.name for p in directory.iterdir()
                    if p.suffix.lower() in (".csv", ".xlsx") and p not in used)
    return found, others


def run_import(session: Session, files: Sequence[ImportFile], *, timezone: str, now: datetime,
               dry_run: bool, actor_id: int | None = None, via: str = "cli") -> ImportReport:
    """Check and (unless dry_run or anything is wrong) import `files` in the caller's session.

    On a dry run or any problem the session is rolled back before returning.
    """
    report = ImportReport(dry_run=dry_run)
    by_kind: dict[str, ImportFile] = {}
    for f in files:
        if f.kind.name in by_kind:
            report.problems.append(Problem(f.name, None, None, "", "KIND_TWICE",
                                           f"two files of {f.kind.name} "
                                           f"({by_kind[f.kind.name].name}, {f.name}); give one."))
        by_kind[f.kind.name] = f

    sheets: dict[str, Sheet] = {}
    records: dict[str, list[Record]] = {}
    for name, kind in KINDS.items():
        if name not in by_kind:
            continue
        f = by_kind[name]
        counts = KindCounts(kind=name, file=f.name)
        report.counts.append(counts)
        try:
            sheet = read_table(f.name, f.data, timezone=timezone, sheet_name=name)
        except FileProblem as exc:
            report.problems.append(exc.problem)
            continue
        header_problems = check_header(kind, sheet)
        report.problems += header_problems
        counts.rows = len(sheet.rows)
        if header_problems:
            continue
        sheets[name] = sheet
        records[name] = _parse_rows(kind, sheet, timezone, now, report.problems)
        if kind is not ORDERS:
            report.problems += duplicate_keys(kind, f.name, records[name])

    run = _Run(session, report, sheets, records, timezone, now)
    run.apply()
    report.problems.sort(key=lambda p: (list(KINDS).index(_kind_of(p.file, by_kind)),
                                        p.row or 0))
    if report.problems or dry_run:
        session.rollback()
        return report
    event = audit(session, EVENT_IMPORTED, actor_id=actor_id, entity=("import", None),
                  before=None, after={c.kind: c.as_dict() for c in report.counts},
                  reason=f"data import ({via})", occurred_at=now)
    session.flush()
    report.written = True
    report.audit_event_id = event.id
    return report


def _kind_of(file: str, by_kind: Mapping[str, ImportFile]) -> str:
    return next((k for k, f in by_kind.items() if f.name == file), next(iter(KINDS)))


def _parse_rows(kind: Kind, sheet: Sheet, timezone: str, now: datetime,
                problems: list[Problem]) -> list[Record]:
    out: list[Record] = []
    for number, cells in sheet.rows:
        if "__extra__" in cells:
            problems.append(Problem(sheet.file, number, None, cells["__extra__"] or "",
                                    "EXTRA_CELLS", "the row has more cells than the header "
                                    "has columns; remove them or add their column."))
            continue
        if kind is ORDERS:  # order_ingest checks these; only the time may not lie ahead
            record, row_problems = parse_row(ORDERS, sheet.file, number, cells,
                                             timezone=timezone, now=now)
            problems += [p for p in row_problems if p.code == "IN_FUTURE"]
            out.append(Record(row=number, values={}, raw=cells))
            continue
        record, row_problems = parse_row(kind, sheet.file, number, cells, timezone=timezone,
                                         now=now)
        problems += row_problems
        if record is not None:
            out.append(record)
    return out


class _Run:
    """One import run inside one transaction: lookups by code, and one step per kind."""

    def __init__(self, session: Session, report: ImportReport, sheets: Mapping[str, Sheet],
                 records: Mapping[str, list[Record]], timezone: str, now: datetime) -> None:
        self.session, self.report, self.timezone, self.now = session, report, timezone, now
        self.sheets, self.records = sheets, records
        self.counts = {c.kind: c for c in report.counts}
        # keys named in this run's files (valid rows or not): a reference to one of them is
        # not reported again when that row failed its own checks
        self.named: dict[str, set[str]] = {
            name: {(cells.get(KINDS[name].key[0]) or "").strip()
                   for _n, cells in sheet.rows} for name, sheet in sheets.items()}
        self.units = {u.code: u for u in session.exec(select(OrgUnit)) if u.code}
        self.employees = {e.employee_no: e for e in session.exec(select(Employee))}
        self.customers: dict[str, Customer] = {}
        self.recompute_from: datetime | None = None
        self.unit_outcome: dict[int, str] = {}  # org-units row -> created/updated/unchanged

    # -- helpers

    def problem(self, kind: Kind, record: Record, column: str | None, code: str,
                message: str) -> None:
        value = record.values.get(column) if column else None
        text = cell_text(value, self.timezone) if value is not None else \
            (record.raw.get(column) or "" if column else "")
        self.report.problems.append(Problem(self.sheets[kind.name].file, record.row, column,
                                            text, code, message))

    def ref(self, kind: Kind, record: Record, column: str, found: Mapping[str, Any],
            target: Kind, noun: str) -> Any:
        """The stored object a code names; None (and a problem unless the code is a row of
        the run that failed its own checks) when there is none."""
        code = record[column]
        if code is None:
            return None
        if code in found:
            return found[code]
        if code not in self.named.get(target.name, set()):
            self.problem(kind, record, column, f"UNKNOWN_{noun.upper().replace(' ', '_')}",
                         f"no {noun} has the code {code!r}, neither in the database nor in the "
                         f"{target.name} file; check the code, or add the {noun} to the "
                         f"{target.name} file.")
        return None

    def given(self, kind: Kind, column: str) -> bool:
        """Whether the file has the column: one left out changes no stored value."""
        return column in self.sheets[kind.name].header

    def count(self, kind: Kind, outcome: str) -> None:
        counts = self.counts[kind.name]
        setattr(counts, outcome, getattr(counts, outcome) + 1)

    def conflict(self, kind: Kind, record: Record, column: str, stored: Any,
                 message: str) -> None:
        self.problem(kind, record, column, "CONFLICT",
                     f"stored as {cell_text(stored, self.timezone) or 'empty'}; {message}")

    def later_recompute(self, since: datetime) -> None:
        if self.recompute_from is None or since < self.recompute_from:
            self.recompute_from = since

    # -- the steps, in dependency order

    def apply(self) -> None:
        if ORG_UNITS.name in self.records:
            self.org_units()
        if EMPLOYEES.name in self.records:
            self.employees_step()
        if ORG_UNITS.name in self.records:
            self.unit_heads()
        self.load_customers()
        if CUSTOMERS.name in self.records:
            self.customers_step()
        if PLANS.name in self.records:
            self.plans()
        if ASSIGNMENTS.name in self.records or OWNERS.name in self.records:
            self.assignments()
        failed = bool(self.report.problems)
        if self.recompute_from is not None and not failed and not self.report.dry_run:
            recompute_since(self.session, since=self.recompute_from)
        if ORDERS.name in self.sheets:
            self.orders(validate_only=failed or self.report.dry_run)

    def org_units(self) -> None:
        rows = self.records[ORG_UNITS.name]
        outcome = self.unit_outcome
        for r in rows:
            unit = self.units.get(r["code"])
            if unit is None:
                unit = OrgUnit(code=r["code"], name=r["name"], function=r["function"])
                self.session.add(unit)
                self.units[r["code"]] = unit
                outcome[r.row] = "created"
            else:
                changed = (unit.name, unit.function) != (r["name"], r["function"])
                unit.name, unit.function = r["name"], r["function"]
                outcome[r.row] = "updated" if changed else "unchanged"
        self.session.flush()
        for r in rows:
            if not self.given(ORG_UNITS, "parent_code"):
                break
            unit = self.units[r["code"]]
            parent = self.ref(ORG_UNITS, r, "parent_code", self.units, ORG_UNITS, "org unit")
            parent_id = parent.id if parent is not None else None
            if parent is not None and self._cycle(unit, parent):
                self.problem(ORG_UNITS, r, "parent_code", "PARENT_CYCLE",
                             f"{r['parent_code']} is inside {r['code']}; a unit cannot be "
                             "placed under its own sub-unit.")
                continue
            self._touch(r.row, unit.parent_id != parent_id)
            unit.parent_id = parent_id
            self.session.add(unit)
        self.session.flush()

    def _touch(self, row: int, changed: bool) -> None:
        if changed and self.unit_outcome.get(row) == "unchanged":
            self.unit_outcome[row] = "updated"

    def _cycle(self, unit: OrgUnit, parent: OrgUnit) -> bool:
        by_id = {u.id: u for u in self.units.values()}
        seen: set[int | None] = set()
        current: OrgUnit | None = parent
        while current is not None and current.id not in seen:
            if current.id == unit.id:
                return True
            seen.add(current.id)
            current = by_id.get(current.parent_id)
        return False

    def unit_heads(self) -> None:
        """After the employees: a unit's head may be an employee of this run."""
        for r in self.records[ORG_UNITS.name]:
            unit = self.units[r["code"]]
            if not self.given(ORG_UNITS, "head_employee_no"):
                self.count(ORG_UNITS, self.unit_outcome[r.row])
                continue
            head = self.ref(ORG_UNITS, r, "head_employee_no", self.employees, EMPLOYEES,
                            "employee")
            head_id = head.id if head is not None else None
            self._touch(r.row, unit.head_employee_id != head_id)
            unit.head_employee_id = head_id
            self.session.add(unit)
            self.count(ORG_UNITS, self.unit_outcome[r.row])
        self.session.flush()

    def employees_step(self) -> None:
        rows = self.records[EMPLOYEES.name]
        accounts = {a.employee_id: a for a in self.session.exec(select(UserAccount))}
        usernames = {a.username: a for a in accounts.values()}
        password_hash: str | None = None
        outcome: dict[int, str] = {}
        for r in rows:
            unit = self.ref(EMPLOYEES, r, "org_unit_code", self.units, ORG_UNITS, "org unit")
            if unit is None:
                continue
            status = EmploymentStatus(r["status"] or "EMPLOYED")
            fields = {"name": r["name"], "email": r["email"], "phone": r["phone"],
                      "role": r["role"], "org_unit_id": unit.id, "status": status,
                      "hired_at": r["hired_at"], "leave_date": r["leave_date"],
                      "locale": r["locale"] or "zh-CN"}
            employee = self.employees.get(r["employee_no"])
            if employee is not None:  # a column left out of the file leaves its values alone
                fields = {k: v for k, v in fields.items()
                          if self.given(EMPLOYEES, _EMPLOYEE_COLUMN.get(k, k))}
            if employee is None:
                employee = Employee(employee_no=r["employee_no"], **fields)
                self.session.add(employee)
                self.session.flush()
                self.employees[employee.employee_no] = employee
                outcome[r.row] = "created"
            else:
                changed = any(getattr(employee, k) != v for k, v in fields.items())
                leaving = employee.status != EmploymentStatus.LEFT and \
                    status == EmploymentStatus.LEFT
                for k, v in fields.items():
                    setattr(employee, k, v)
                self.session.add(employee)
                outcome[r.row] = "updated" if changed else "unchanged"
                account = accounts.get(employee.id)  # type: ignore[arg-type]
                if leaving and account is not None:
                    end_all_sessions(self.session, account, RevokeReason.OFFBOARDED, self.now)
            if r["username"] is None:
                continue  # an empty username never removes a login: disable it in the API
            account = accounts.get(employee.id)  # type: ignore[arg-type]
            holder = usernames.get(r["username"])
            if account is None:
                if holder is not None:
                    self.problem(EMPLOYEES, r, "username", "USERNAME_TAKEN",
                                 f"the username {r['username']} belongs to another employee's "
                                 "login; choose another.")
                    continue
                if password_hash is None:  # one unusable secret per run: argon2 is slow
                    from models.passwords import hash_password
                    password_hash = hash_password(secrets.token_urlsafe(32))
                assert employee.id is not None
                account = UserAccount(username=r["username"], password_hash=password_hash,
                                      employee_id=employee.id, roles=r["account_roles"],
                                      created_at=self.now)
                self.session.add(account)
                accounts[employee.id] = usernames[account.username] = account
                if outcome[r.row] == "unchanged":
                    outcome[r.row] = "updated"
            elif account.username != r["username"]:
                self.conflict(EMPLOYEES, r, "username", account.username,
                              "a login's username is not changed by an import; leave the "
                              "stored one in the file.")
            elif sorted(account.roles) != sorted(r["account_roles"]):
                account.roles = r["account_roles"]
                account.token_version += 1  # tokens carrying the old roles stop working
                self.session.add(account)
                if outcome[r.row] == "unchanged":
                    outcome[r.row] = "updated"
        self.session.flush()
        for r in rows:  # managers: any row of the file may name any other
            employee = self.employees.get(r["employee_no"])
            if employee is None or r.row not in outcome:
                continue
            if not self.given(EMPLOYEES, "manager_no"):
                self.count(EMPLOYEES, outcome[r.row])
                continue
            manager = self.ref(EMPLOYEES, r, "manager_no", self.employees, EMPLOYEES,
                               "employee")
            manager_id = manager.id if manager is not None else None
            if employee.manager_id != manager_id and outcome[r.row] == "unchanged":
                outcome[r.row] = "updated"
            employee.manager_id = manager_id
            self.session.add(employee)
            self.count(EMPLOYEES, outcome[r.row])
        self.session.flush()

    def load_customers(self) -> None:
        codes: set[str] = set()
        for name in (CUSTOMERS.name, ASSIGNMENTS.name, OWNERS.name):
            column = "code" if name == CUSTOMERS.name else "customer_code"
            codes |= {r[column] for r in self.records.get(name, [])}
        for chunk in _chunks(sorted(codes)):
            for c in self.session.exec(select(Customer).where(col(Customer.code).in_(chunk))):
                self.customers[c.code] = c

    def customers_step(self) -> None:
        for r in self.records[CUSTOMERS.name]:
            finder = self.ref(CUSTOMERS, r, "found_by_employee_no", self.employees, EMPLOYEES,
                              "employee")
            if finder is None and r["found_by_employee_no"] is not None:
                continue
            finder_id = finder.id if finder is not None else None
            changeable = {"name": r["name"], "contact_name": r["contact_name"],
                          "contact_phone": r["contact_phone"],
                          "contact_email": r["contact_email"]}
            changeable = {k: v for k, v in changeable.items() if self.given(CUSTOMERS, k)}
            customer = self.customers.get(r["code"])
            if customer is None:
                customer = Customer(code=r["code"], found_by_employee_id=finder_id,
                                    created_at=r["created_at"] or self.now, **changeable)
                self.session.add(customer)
                self.customers[customer.code] = customer
                self.count(CUSTOMERS, "created")
                continue
            if self.given(CUSTOMERS, "found_by_employee_no") \
                    and customer.found_by_employee_id != finder_id:
                stored = next((e.employee_no for e in self.employees.values()
                               if e.id == customer.found_by_employee_id), None)
                self.conflict(CUSTOMERS, r, "found_by_employee_no", stored,
                              "who found a customer decides the commission rate on it and is "
                              "not changed by an import.")
                continue
            if r["created_at"] is not None and customer.created_at != r["created_at"]:
                self.conflict(CUSTOMERS, r, "created_at", customer.created_at,
                              "when a customer was won is history; leave the stored time or "
                              "empty the cell.")
                continue
            changed = any(getattr(customer, k) != v for k, v in changeable.items())
            for k, v in changeable.items():
                setattr(customer, k, v)
            self.session.add(customer)
            self.count(CUSTOMERS, "updated" if changed else "unchanged")
        self.session.flush()

    def plans(self) -> None:
        rows = self.records[PLANS.name]
        by_employee: dict[int, list[tuple[Record, Employee]]] = defaultdict(list)
        for r in rows:
            employee = self.ref(PLANS, r, "employee_no", self.employees, EMPLOYEES, "employee")
            if employee is not None and employee.id is not None:
                by_employee[employee.id].append((r, employee))
        stored_plans: dict[int, list[CommissionPlan]] = defaultdict(list)
        for chunk in _chunks(sorted(by_employee)):
            for p in self.session.exec(select(CommissionPlan).where(
                    col(CommissionPlan.employee_id).in_(chunk))):
                stored_plans[p.employee_id].append(p)
        for employee_id, entries in by_employee.items():
            stored = {p.effective_from: p for p in stored_plans[employee_id]}
            starts = sorted(set(stored) | {r["effective_from"] for r, _e in entries})
            latest_stored = max(stored, default=None)
            for r, _employee in sorted(entries, key=lambda e: e[0]["effective_from"]):
                start = r["effective_from"]
                following = next((s for s in starts if s > start), None)
                end = r["effective_to"] if r["effective_to"] is not None else following
                if following is not None and r["effective_to"] is not None \
                        and r["effective_to"] > following:
                    self.problem(PLANS, r, "effective_to", "OVERLAPPING_PERIOD",
                                 f"this plan runs past the start of the employee's next plan "
                                 f"({cell_text(following, self.timezone)}); end it there or "
                                 "leave effective_to empty.")
                    continue
                plan = stored.get(start)
                if plan is not None:
                    # an open stored plan that a new plan of this file closes is unchanged
                    closed_by_new = plan.effective_to is None and r["effective_to"] is None \
                        and following is not None and following not in stored
                    same = (plan.base_rate_bp, plan.inherited_rate_bp) == \
                        (r["base_rate_bp"], r["inherited_rate_bp"]) \
                        and (plan.effective_to == end or closed_by_new)
                    if same:
                        self.count(PLANS, "unchanged")
                    else:
                        self.conflict(PLANS, r, "base_rate_bp",
                                      f"{plan.base_rate_bp}/{plan.inherited_rate_bp} bp until "
                                      f"{cell_text(plan.effective_to, self.timezone) or 'open'}",
                                      "plans are history and are not rewritten; to change "
                                      "the rates from some day on, add a plan starting then.")
                    continue
                if latest_stored is not None and start < latest_stored:
                    self.problem(PLANS, r, "effective_from", "PLAN_NOT_AFTER_LATEST",
                                 "the employee has a stored plan starting later "
                                 f"({cell_text(latest_stored, self.timezone)}); plans are "
                                 "appended, never inserted before stored ones.")
                    continue
                if latest_stored is not None:  # the new plan closes the stored open one
                    last = stored[latest_stored]
                    if last.effective_to is None or last.effective_to > start:
                        last.effective_to = start
                        self.session.add(last)
                self.session.add(CommissionPlan(
                    employee_id=employee_id, effective_from=start, effective_to=end,
                    base_rate_bp=r["base_rate_bp"], inherited_rate_bp=r["inherited_rate_bp"],
                    created_at=self.now))
                self.count(PLANS, "created")
                self.later_recompute(start)
        self.session.flush()

    def assignments(self) -> None:
        """History and current owners together: their periods must not overlap."""
        periods: dict[int, list[Period]] = defaultdict(list)
        new_rows: list[tuple[Kind, Record, Customer, Employee]] = []
        entries = [(ASSIGNMENTS, r) for r in self.records.get(ASSIGNMENTS.name, [])] + \
            [(OWNERS, r) for r in self.records.get(OWNERS.name, [])]
        resolved: list[tuple[Kind, Record, Customer, Employee]] = []
        failed = {(p.file, p.row) for p in self.report.problems}  # e.g. a repeated key
        entries = [(k, r) for k, r in entries
                   if (self.sheets[k.name].file, r.row) not in failed]
        for kind, r in entries:
            customer = self.ref(kind, r, "customer_code", self.customers, CUSTOMERS, "customer")
            employee = self.ref(kind, r, "employee_no", self.employees, EMPLOYEES, "employee")
            if customer is not None and employee is not None:
                resolved.append((kind, r, customer, employee))
        customer_ids = sorted({c.id for _k, _r, c, _e in resolved if c.id is not None})
        stored: dict[int, list[Assignment]] = defaultdict(list)
        for chunk in _chunks(customer_ids):
            for a in self.session.exec(select(Assignment).where(
                    col(Assignment.customer_id).in_(chunk))):
                stored[a.customer_id].append(a)
        numbers = {e.id: e.employee_no for e in self.employees.values()}
        for kind, r, customer, employee in resolved:
            assert customer.id is not None
            source = AssignmentSource(r["source"] or "FOUND")
            end = r["end_at"] if kind is ASSIGNMENTS else None
            if kind is OWNERS:
                match = next((a for a in stored[customer.id] if a.end_at is None), None)
            else:
                match = next((a for a in stored[customer.id] if a.start_at == r["start_at"]),
                             None)
            if match is not None:
                same = (match.employee_id, match.start_at, match.end_at, match.source) == \
                    (employee.id, r["start_at"], end, source)
                if same:
                    self.count(kind, "unchanged")
                elif kind is OWNERS:
                    self.conflict(kind, r, "employee_no",
                                  f"{numbers.get(match.employee_id)} since "
                                  f"{cell_text(match.start_at, self.timezone)} "
                                  f"({match.source})",
                                  "once stored, a customer's owner changes only through a "
                                  "reassignment request.")
                else:
                    self.conflict(kind, r, "employee_no",
                                  f"{numbers.get(match.employee_id)} until "
                                  f"{cell_text(match.end_at, self.timezone) or 'now'} "
                                  f"({match.source})",
                                  "history is never rewritten by an import.")
                continue
            new_rows.append((kind, r, customer, employee))
            periods[customer.id].append(Period(r["start_at"], end, f"row {r.row}", r,
                                               kind.name))
        for customer_id, stored_items in stored.items():
            periods[customer_id] += [Period(a.start_at, a.end_at, f"stored assignment {a.id}")
                                     for a in stored_items]
        clashing: set[int] = set()
        for customer_periods in periods.values():
            for earlier, later in _overlaps(customer_periods):
                # blame a new row, rather history than a current owner, else the later one
                reported = later if later.record is not None else earlier
                if earlier.record is not None and later.record is not None \
                        and earlier.file == ASSIGNMENTS.name and later.file == OWNERS.name:
                    reported = earlier
                other = earlier if reported is later else later
                assert reported.record is not None
                clashing.add(id(reported.record))
                where = other.label + (f" of {self.sheets[other.file].file}"
                                       if other.file else "")
                self.problem(KINDS[reported.file], reported.record, "start_at",
                             "OVERLAPPING_PERIOD",
                             f"this period overlaps {where} "
                             f"({cell_text(other.start, self.timezone)} to "
                             f"{cell_text(other.end, self.timezone) or 'now'}); a customer has "
                             "one owner at a time: fix the dates.")
        for kind, r, customer, employee in new_rows:
            if id(r) in clashing:
                continue
            assert customer.id is not None and employee.id is not None
            self.session.add(Assignment(customer_id=customer.id, employee_id=employee.id,
                                        start_at=r["start_at"],
                                        end_at=r["end_at"] if kind is ASSIGNMENTS else None,
                                        source=AssignmentSource(r["source"] or "FOUND")))
            self.count(kind, "created")
            self.later_recompute(r["start_at"])
        self.session.flush()

    def orders(self, *, validate_only: bool) -> None:
        sheet = self.sheets[ORDERS.name]
        raw = [RawRow(index=i, line=number, data=self._order_cells(cells))
               for i, (number, cells) in enumerate(sheet.rows) if "__extra__" not in cells]
        if not raw:
            return
        result = ingest(self.session, raw, timezone=self.timezone, dry_run=validate_only,
                        event_type=None)
        values = {r.index: r.data for r in raw}
        for e in result.errors:
            cells = values.get(e.index, {}) if e.index is not None else {}
            self.report.problems.append(Problem(
                sheet.file, e.line, e.field, (cells.get(e.field) or "") if e.field else "",
                e.code, e.message))
        counts = self.counts[ORDERS.name]
        counts.created += result.created + result.would_create
        counts.unchanged += result.duplicates


    def _order_cells(self, cells: Mapping[str, str | None]) -> dict[str, str | None]:
        """The row for order_ingest, its time with an offset: a date, or a time without an
        offset, is read in the organisation's timezone here as in every other file."""
        data = {k: v for k, v in cells.items() if k in CSV_COLUMNS}
        booked = data.get("booked_at")
        if booked:
            with contextlib.suppress(ValueError):  # order_ingest reports a bad time
                data["booked_at"] = parse_datetime(booked, self.timezone).isoformat()
        return data


def _overlaps(periods: Iterable[Period]) -> list[tuple[Period, Period]]:
    """(earlier, later) pairs that overlap where at least one is a row of the run."""
    found: list[tuple[Period, Period]] = []
    reach: Period | None = None  # the period reaching furthest so far
    for p in sorted(periods, key=lambda p: (p.start, p.record is not None)):
        if reach is not None and (reach.end is None or reach.end > p.start) \
                and (p.record is not None or reach.record is not None):
            found.append((reach, p))
            continue  # a reported row does not extend the reach
        if reach is None or (reach.end is not None and (p.end is None or p.end > reach.end)):
            reach = p
    return found


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start:start + _CHUNK]


# --- export -----------------------------------------------------------------------------------


def export_rows(session: Session, timezone: str) -> dict[str, list[list[str]]]:
    """Every kind's rows as the import files hold them (the same columns, in order)."""
    def t(value: Any) -> str:
        return cell_text(value, timezone)

    units = list(session.exec(select(OrgUnit).order_by(col(OrgUnit.id))))
    unit_code = {u.id: u.code or f"OU{u.id}" for u in units}
    employees = list(session.exec(select(Employee).order_by(col(Employee.employee_no))))
    number = {e.id: e.employee_no for e in employees}
    accounts = {a.employee_id: a for a in session.exec(select(UserAccount))}
    customers = list(session.exec(select(Customer).order_by(col(Customer.code))))
    code = {c.id: c.code for c in customers}
    out: dict[str, list[list[str]]] = {}
    out[ORG_UNITS.name] = [[unit_code[u.id], u.name, u.function, unit_code.get(u.parent_id, ""),
                            number.get(u.head_employee_id, "")] for u in units]
    out[EMPLOYEES.name] = []
    for e in employees:
        account = accounts.get(e.id)  # type: ignore[arg-type]
        out[EMPLOYEES.name].append([
            e.employee_no, e.name, t(e.email), t(e.phone), e.role, unit_code[e.org_unit_id],
            number.get(e.manager_id, ""), e.status.value, t(e.hired_at), t(e.leave_date),
            e.locale, account.username if account else "",
            ",".join(account.roles) if account else ""])
    out[CUSTOMERS.name] = [[c.code, c.name, number.get(c.found_by_employee_id, ""),
                            t(c.contact_name), t(c.contact_phone), t(c.contact_email),
                            t(c.created_at)] for c in customers]
    plans = session.exec(select(CommissionPlan).order_by(col(CommissionPlan.employee_id),
                                                         col(CommissionPlan.effective_from)))
    out[PLANS.name] = sorted([[number[p.employee_id], t(p.effective_from), t(p.effective_to),
                               str(p.base_rate_bp), str(p.inherited_rate_bp)] for p in plans])
    assignments = list(session.exec(select(Assignment).order_by(col(Assignment.start_at))))
    out[ASSIGNMENTS.name] = sorted(
        [[code[a.customer_id], number[a.employee_id], t(a.start_at), t(a.end_at),
          a.source.value] for a in assignments if a.end_at is not None])
    out[OWNERS.name] = sorted(
        [[code[a.customer_id], number[a.employee_id], t(a.start_at), a.source.value]
         for a in assignments if a.end_at is None])
    orders = list(session.exec(select(Order)))
    external = {o.id: o.external_id for o in orders}
    # originals before the refunds that point at them, each in booking order
    orders.sort(key=lambda o: (o.kind != OrderKind.ORDER, o.booked_at, o.external_id))
    out[ORDERS.name] = [[
        o.external_id, o.kind.value, code[o.customer_id],
        "" if o.kind == OrderKind.CANCELLATION else str(abs(o.amount_fen)), o.currency,
        t(o.booked_at), t(o.product_line), external.get(o.original_order_id, "")]
        for o in orders]
    return out


def format_report(report: ImportReport) -> list[str]:
    """The summary per file, then the problems as a table (file, row, column, value, why)."""
    lines: list[str] = []
    verb = "would create" if report.dry_run else "created"
    for c in report.counts:
        lines.append(f"{c.file}: {c.rows} rows; {c.created} {verb}, {c.updated} "
                     f"{'would update' if report.dry_run else 'updated'}, {c.unchanged} "
                     "unchanged")
    if report.problems:
        table: list[tuple[str, ...]] = [("file", "row", "column", "value", "problem")]
        for p in report.problems:
            value = p.value if len(p.value) <= 30 else p.value[:29] + "…"
            table.append((p.file, "" if p.row is None else str(p.row), p.column or "", value,
                          f"{p.code}: {p.message}"))
        widths = [max(len(row[i]) for row in table) for i in range(4)]
        lines.append("")
        for row in table:
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
                         + "  " + row[4])
        lines.append("")
        lines.append(f"{len(report.problems)} problem(s) in {report.bad_rows} row(s); nothing "
                     "was written: an import is written only when every row of every file is "
                     "valid (check fixes with --dry-run)")
    elif report.dry_run:
        lines.append("dry run: every row is valid; nothing was written")
    else:
        lines.append(f"imported in one transaction (audit event {report.audit_event_id})")
    return lines

