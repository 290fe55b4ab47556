"""Data migration from an existing system: the import files' columns and their pure checks.

One definition per kind of file (`KINDS`) drives everything: parsing and checking each cell,
the checks across the rows of a file (duplicate keys, overlapping periods, two current
owners), the templates (`cli.py import template KIND`), the exporter's header and the column
reference in docs/IMPORT.md (`python -m domain.importing`; a test compares the two).

Nothing here touches the database: models/importing.py resolves codes against it, decides
create / update / unchanged / conflict, and writes. Cells arrive as text (CSV cells, or
spreadsheet cells that domain.tabular already turned into text).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from domain.stages import Role

MAX_RATE_BP = 10_000
MAX_AMOUNT_FEN = 90_000_000_000  # as models/order_ingest: amount x rate x share fits in 64 bits
_INTEGER = re.compile(r"[+-]?\d+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


class ColumnType(StrEnum):
    TEXT = "text"
    CODE = "code"  # letters, digits, _ . - (a natural key or a reference to one)
    INTEGER = "integer"
    DATETIME = "datetime"
    CHOICE = "choice"
    LIST = "list"  # comma-separated choices
    EMAIL = "email"


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    required: bool
    example: str
    description: str
    max_length: int = 200
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    not_future: bool = False  # a time that must have happened already
    refers_to: str | None = None  # the kind whose key this column names

    def rules(self) -> str:
        """The column's rules in words, for the docs and the template's column sheet."""
        parts: list[str] = []
        if self.type == ColumnType.CODE:
            parts.append(f"letters, digits, `_ . -`; at most {self.max_length} characters")
        elif self.type in (ColumnType.TEXT, ColumnType.EMAIL):
            parts.append(f"at most {self.max_length} characters")
        if self.type == ColumnType.DATETIME:
            parts.append("ISO 8601 with an offset (`2025-03-01T09:30:00+08:00`), or a date or "
                         "a time without one, read in the organisation's timezone")
        if self.choices:
            joined = ", ".join(f"`{c}`" for c in self.choices)
            parts.append(("one or more of " if self.type == ColumnType.LIST else "one of ")
                         + joined)
        if self.minimum is not None or self.maximum is not None:
            parts.append(f"whole number from {self.minimum} to {self.maximum}")
        if self.not_future:
            parts.append("not in the future")
        if self.refers_to:
            parts.append(f"must exist: in the database or in the {self.refers_to} file")
        return "; ".join(parts)


@dataclass(frozen=True)
class Kind:
    name: str  # as typed on the command line and used as the file name
    title: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # the natural key: a rerun matches stored rows by it
    on_rerun: str  # what a rerun may change, in words

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


_ROLES = tuple(r.value for r in Role)
_WHEN = "2025-03-01T09:30:00+08:00"

ORG_UNITS = Kind(
    name="org-units", title="Org units",
    description="The company's tree of units: the company, departments and sales teams.",
    key=("code",),
    on_rerun="name, function, parent and head may change (a reorganisation); the code is the "
             "key and never changes.",
    columns=(
        Column("code", ColumnType.CODE, True, "TEAM-EAST", "the unit's code in the old system",
               max_length=40),
        Column("name", ColumnType.TEXT, True, "华东销售组", "the unit's name"),
        Column("function", ColumnType.CHOICE, True, "team", "what the unit does",
               choices=("company", "sales", "team", "hr", "legal", "finance", "other")),
        Column("parent_code", ColumnType.CODE, False, "SALES",
               "the unit above it; empty for the company", max_length=40, refers_to="org-units"),
        Column("head_employee_no", ColumnType.CODE, False, "E020", "who heads the unit",
               max_length=40, refers_to="employees"),
    ),
)

EMPLOYEES = Kind(
    name="employees", title="Employees",
    description="Everyone who proposes, approves, owns customers or signs; optionally with a "
                "login (username and roles). Imported logins get no usable password: an "
                "administrator sets one (`POST /api/v1/accounts/{id}/password`).",
    key=("employee_no",),
    on_rerun="every column may change except employee_no (the key) and an existing login's "
             "username; a change of roles or a departure (status LEFT) ends that person's "
             "sessions.",
    columns=(
        Column("employee_no", ColumnType.CODE, True, "E100", "the employee number",
               max_length=40),
        Column("name", ColumnType.TEXT, True, "李娜", "full name"),
        Column("email", ColumnType.EMAIL, False, "e100@example.com", "work email",
               max_length=320),
        Column("phone", ColumnType.TEXT, False, "+86 138 0000 0000", "work phone",
               max_length=40),
        Column("role", ColumnType.CHOICE, True, "sales", "the job role",
               choices=_ROLES),
        Column("org_unit_code", ColumnType.CODE, True, "TEAM-EAST", "the unit they work in",
               max_length=40, refers_to="org-units"),
        Column("manager_no", ColumnType.CODE, False, "E020", "their direct manager",
               max_length=40, refers_to="employees"),
        Column("status", ColumnType.CHOICE, False, "EMPLOYED", "EMPLOYED when empty",
               choices=("EMPLOYED", "LEFT")),
        Column("hired_at", ColumnType.DATETIME, False, "2021-07-01", "first day of work",
               not_future=True),
        Column("leave_date", ColumnType.DATETIME, False, "",
               "last day; required when status is LEFT, may be in the future otherwise"),
        Column("locale", ColumnType.CHOICE, False, "zh-CN", "language of pages and documents; "
               "zh-CN when empty", choices=("zh-CN", "en")),
        Column("username", ColumnType.CODE, False, "e100", "login name; empty: no login",
               max_length=100),
        Column("account_roles", ColumnType.LIST, False, "sales", "the login's roles, "
               "comma-separated; required with a username", choices=_ROLES),
    ),
)

CUSTOMERS = Kind(
    name="customers", title="Customers",
    description="The customers. Who owns them is in the owners and assignments files.",
    key=("code",),
    on_rerun="name and contact details may change; found_by_employee_no and created_at are "
             "history: a different value is reported as a conflict.",
    columns=(
        Column("code", ColumnType.CODE, True, "C0001", "the customer's code", max_length=40),
        Column("name", ColumnType.TEXT, True, "上海华兴贸易有限公司", "the customer's name"),
        Column("found_by_employee_no", ColumnType.CODE, False, "E100",
               "the salesperson who found the customer", max_length=40,
               refers_to="employees"),
        Column("contact_name", ColumnType.TEXT, False, "王经理", "contact person (personal data)"),
        Column("contact_phone", ColumnType.TEXT, False, "021-5555-0000", "contact phone",
               max_length=40),
        Column("contact_email", ColumnType.EMAIL, False, "buyer@example.com", "contact email",
               max_length=320),
        Column("created_at", ColumnType.DATETIME, False, "2023-05-10",
               "when the customer was won; the import's time when empty", not_future=True),
    ),
)

PLANS = Kind(
    name="plans", title="Commission plans",
    description="Each salesperson's commission rates over time (basis points: 300 = 3.00%). "
                "A plan without effective_to lasts until the employee's next plan.",
    key=("employee_no", "effective_from"),
    on_rerun="nothing: plans are history. A plan stored with other rates is a conflict; to "
             "change rates from some day on, add a plan starting that day.",
    columns=(
        Column("employee_no", ColumnType.CODE, True, "E100", "whose plan", max_length=40,
               refers_to="employees"),
        Column("effective_from", ColumnType.DATETIME, True, "2024-01-01",
               "first moment the rates apply"),
        Column("effective_to", ColumnType.DATETIME, False, "",
               "first moment they no longer apply; empty: until the next plan"),
        Column("base_rate_bp", ColumnType.INTEGER, True, "300",
               "rate on customers the employee found", minimum=0, maximum=MAX_RATE_BP),
        Column("inherited_rate_bp", ColumnType.INTEGER, True, "200",
               "rate on customers received by reassignment", minimum=0, maximum=MAX_RATE_BP),
    ),
)

_SOURCE = ("FOUND", "REASSIGNMENT")

ASSIGNMENTS = Kind(
    name="assignments", title="Historical assignments",
    description="Who owned a customer before its current owner: closed periods "
                "[start_at, end_at). Periods of one customer may not overlap each other or "
                "the current owner's.",
    key=("customer_code", "start_at"),
    on_rerun="nothing: history is never rewritten. A period stored with another owner, end "
             "or source is a conflict.",
    columns=(
        Column("customer_code", ColumnType.CODE, True, "C0001", "the customer", max_length=40,
               refers_to="customers"),
        Column("employee_no", ColumnType.CODE, True, "E101", "who owned it", max_length=40,
               refers_to="employees"),
        Column("start_at", ColumnType.DATETIME, True, "2022-01-01", "owned from",
               not_future=True),
        Column("end_at", ColumnType.DATETIME, True, "2023-06-30", "owned until (exclusive)",
               not_future=True),
        Column("source", ColumnType.CHOICE, False, "FOUND", "FOUND (base rate) or "
               "REASSIGNMENT (inherited rate); FOUND when empty", choices=_SOURCE),
    ),
)

OWNERS = Kind(
    name="owners", title="Current owners",
    description="Who owns each customer now, and since when: one row per customer.",
    key=("customer_code",),
    on_rerun="nothing: once stored, ownership moves only through a reassignment request. A "
             "different owner, start or source is a conflict.",
    columns=(
        Column("customer_code", ColumnType.CODE, True, "C0001", "the customer", max_length=40,
               refers_to="customers"),
        Column("employee_no", ColumnType.CODE, True, "E100", "who owns it now", max_length=40,
               refers_to="employees"),
        Column("start_at", ColumnType.DATETIME, True, "2023-07-01", "owned since",
               not_future=True),
        Column("source", ColumnType.CHOICE, False, "FOUND", "FOUND (base rate) or "
               "REASSIGNMENT (inherited rate); FOUND when empty", choices=_SOURCE),
    ),
)

# the columns of models/order_ingest.CSV_COLUMNS (a test keeps them equal); that module checks
# the rows, so these definitions serve the template, the export and the docs
ORDERS = Kind(
    name="orders", title="Orders",
    description="Orders, refunds and cancellations, checked by the same code as "
                "`POST /api/v1/orders/import`. Commission is computed for the new orders.",
    key=("external_id",),
    on_rerun="nothing: an external id names one order for good. Other content under a stored "
             "id is a conflict; correct an order with a REFUND or CANCELLATION under a new id.",
    columns=(
        Column("external_id", ColumnType.CODE, True, "SO-2025-000123",
               "the order's id in the old system", max_length=100),
        Column("kind", ColumnType.CHOICE, False, "ORDER", "ORDER when empty",
               choices=("ORDER", "REFUND", "CANCELLATION")),
        Column("customer_code", ColumnType.CODE, False, "C0001",
               "required for an ORDER; a refund takes its original's customer", max_length=40,
               refers_to="customers"),
        Column("amount_fen", ColumnType.INTEGER, False, "1250000",
               "fen, positive (a refund too); required except for a whole cancellation",
               minimum=1, maximum=MAX_AMOUNT_FEN),
        Column("currency", ColumnType.CHOICE, True, "CNY", "only CNY", choices=("CNY",)),
        Column("booked_at", ColumnType.DATETIME, True, _WHEN, "when the order was booked",
               not_future=True),
        Column("product_line", ColumnType.TEXT, False, "industrial", "free text",
               max_length=100),
        Column("original_external_id", ColumnType.CODE, False, "",
               "for a REFUND or CANCELLATION: the order it takes money back from",
               max_length=100, refers_to="orders"),
    ),
)

# dependency order: a kind refers only to kinds before it (and org units to employees, whose
# heads are set after the employees are in)
KINDS: dict[str, Kind] = {k.name: k for k in (ORG_UNITS, EMPLOYEES, CUSTOMERS, PLANS,
                                               ASSIGNMENTS, OWNERS, ORDERS)}


def kind_named(name: str) -> Kind:
    """The kind for a name as typed (org-units, org_units, Org-Units)."""
    wanted = name.strip().lower().replace("_", "-")
    if wanted not in KINDS:
        raise KeyError(f"unknown kind {name!r}; choose one of {', '.join(KINDS)}")
    return KINDS[wanted]


# --- problems ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong, where a spreadsheet shows it: file, row (the header is row 1), column."""

    file: str
    row: int | None  # None: the file as a whole
    column: str | None
    value: str
    code: str
    message: str  # what is wrong and how to fix it

    def as_row(self) -> dict[str, str]:
        return {"file": self.file, "row": "" if self.row is None else str(self.row),
                "column": self.column or "", "value": self.value, "code": self.code,
                "message": self.message}


PROBLEM_COLUMNS = ("file", "row", "column", "value", "code", "message")


# --- one row ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sheet:
    """A file's rows as text: the header as given, and (row number, cells by column)."""

    file: str
    header: tuple[str, ...]
    rows: tuple[tuple[int, Mapping[str, str | None]], ...]
    header_row: int = 1


@dataclass
class Record:
    """A row that passed its own checks: typed values by column (None for empty cells)."""

    row: int
    values: dict[str, Any]
    raw: Mapping[str, str | None] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.values.get(name)

    def key(self, kind: Kind) -> tuple[Any, ...]:
        return tuple(self.values[c] for c in kind.key)


def check_header(kind: Kind, sheet: Sheet) -> list[Problem]:
    """Unknown, repeated or missing required columns; any column order is fine."""
    problems: list[Problem] = []
    known = set(kind.column_names)
    expected = ",".join(kind.column_names)
    for name in sheet.header:
        if name and name not in known:
            problems.append(Problem(sheet.file, sheet.header_row, name, name, "UNKNOWN_COLUMN",
                                    f"{name!r} is not a column of {kind.name}; the columns "
                                    f"are {expected} (`cli.py import template {kind.name}`)."))
    for name in sorted({n for n in sheet.header if n and sheet.header.count(n) > 1}):
        problems.append(Problem(sheet.file, sheet.header_row, name, name, "REPEATED_COLUMN",
                                f"the column {name} appears more than once; keep one."))
    for column in kind.columns:
        if column.required and column.name not in sheet.header:
            problems.append(Problem(sheet.file, sheet.header_row, column.name, "",
                                    "MISSING_COLUMN", f"the required column {column.name} is "
                                    f"missing from the header; add it ({column.description})."))
    return problems


def parse_datetime(text: str, timezone: str) -> datetime:
    """ISO 8601; a date, or a time without an offset, is read in the organisation's timezone."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return datetime.combine(date.fromisoformat(text), time(), ZoneInfo(timezone))
    parsed = datetime.fromisoformat(text.replace(" ", "T", 1) if " " in text else text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(timezone))
    return parsed


def format_datetime(value: datetime, timezone: str) -> str:
    """As the exporter writes times: ISO 8601 in the organisation's timezone, exact."""
    return value.astimezone(ZoneInfo(timezone)).isoformat()


def parse_row(kind: Kind, sheet_file: str, row: int, cells: Mapping[str, str | None], *,
              timezone: str, now: datetime) -> tuple[Record | None, list[Problem]]:
    """Check each cell of one row on its own, and the rules between cells of the row."""
    problems: list[Problem] = []
    values: dict[str, Any] = {}

    def bad(column: str, code: str, message: str) -> None:
        problems.append(Problem(sheet_file, row, column, cells.get(column) or "", code,
                                message))

    for column in kind.columns:
        text = (cells.get(column.name) or "").strip()
        if not text:
            if column.required:
                bad(column.name, "REQUIRED", f"{column.name} is required ({column.description}"
                    f"), e.g. {column.example!r}.")
            values[column.name] = None
            continue
        value = _parse_cell(column, text, timezone, now, bad)
        values[column.name] = value
    if problems:
        return None, problems
    _check_row_rules(kind, values, bad)
    if problems:
        return None, problems
    return Record(row=row, values=values, raw=cells), []


def _parse_cell(column: Column, text: str, timezone: str, now: datetime,
                bad: Any) -> Any:
    name = column.name
    if column.type == ColumnType.INTEGER:
        if not _INTEGER.fullmatch(text):
            bad(name, "NOT_INTEGER", f"{name} must be a whole number, e.g. {column.example}; "
                "no decimals, units or thousands separators.")
            return None
        number = int(text)
        if column.minimum is not None and number < column.minimum:
            code = "NEGATIVE" if number < 0 else "TOO_SMALL"
            bad(name, code, f"{name} must be at least {column.minimum}; got {number}.")
            return None
        if column.maximum is not None and number > column.maximum:
            bad(name, "TOO_LARGE", f"{name} may be at most {column.maximum}"
                + (" (basis points: 10000 = 100%)" if column.maximum == MAX_RATE_BP else "")
                + f"; got {number}.")
            return None
        return number
    if column.type == ColumnType.DATETIME:
        try:
            value = parse_datetime(text, timezone)
        except ValueError:
            bad(name, "INVALID_DATETIME", f"{name} must be a date (2025-03-01) or an ISO 8601 "
                f"time ({_WHEN}); got {text!r}.")
            return None
        if column.not_future and value > now:
            bad(name, "IN_FUTURE", f"{name} {text} is in the future; it records something "
                "that happened. Check the date (day and month swapped?).")
            return None
        return value
    if len(text) > column.max_length:
        bad(name, "TOO_LONG", f"{name} may have at most {column.max_length} characters; it "
            f"has {len(text)}.")
        return None
    if column.type == ColumnType.CODE and not _CODE.fullmatch(text):
        bad(name, "INVALID_CODE", f"{name} may hold letters, digits and _ . - only (no "
            f"spaces); got {text!r}.")
        return None
    if column.type == ColumnType.EMAIL and not _EMAIL.fullmatch(text):
        bad(name, "INVALID_EMAIL", f"{name} is not an email address; got {text!r}.")
        return None
    if column.type == ColumnType.CHOICE:
        match = _choice(text, column.choices)
        if match is None:
            bad(name, "INVALID_CHOICE", f"{name} must be one of {', '.join(column.choices)}; "
                f"got {text!r}.")
        return match
    if column.type == ColumnType.LIST:
        items = [t.strip() for t in re.split(r"[,;]", text) if t.strip()]
        matched = [_choice(t, column.choices) for t in items]
        unknown = [t for t, m in zip(items, matched, strict=True) if m is None]
        if unknown or not items:
            bad(name, "INVALID_CHOICE", f"{name} lists {', '.join(unknown) or 'nothing'}, "
                f"which is not one of {', '.join(column.choices)}; separate several by commas.")
            return None
        return list(dict.fromkeys(m for m in matched if m))  # each once, as given
    return text


def _choice(text: str, choices: Sequence[str]) -> str | None:
    return next((c for c in choices if c.lower() == text.lower()), None)


def _check_row_rules(kind: Kind, values: Mapping[str, Any], bad: Any) -> None:
    """Rules between the cells of one row."""
    if kind is EMPLOYEES:
        if values["manager_no"] is not None and values["manager_no"] == values["employee_no"]:
            bad("manager_no", "SELF_MANAGER", "an employee cannot be their own manager; give "
                "the manager's employee number or leave it empty.")
        if values["status"] == "LEFT" and values["leave_date"] is None:
            bad("leave_date", "REQUIRED", "leave_date is required when status is LEFT.")
        if values["username"] is not None and not values["account_roles"]:
            bad("account_roles", "REQUIRED", "a login needs at least one role, e.g. sales.")
        if values["account_roles"] and values["username"] is None:
            bad("username", "REQUIRED", "account_roles are given but no username; add the "
                "login name, or clear the roles.")
        if (values["hired_at"] is not None and values["leave_date"] is not None
                and values["leave_date"] < values["hired_at"]):
            bad("leave_date", "BEFORE_START", "leave_date is before hired_at.")
    elif kind is ORG_UNITS:
        if values["parent_code"] is not None and values["parent_code"] == values["code"]:
            bad("parent_code", "SELF_PARENT", "a unit cannot be its own parent.")
    elif kind is ASSIGNMENTS and values["end_at"] <= values["start_at"]:
        bad("end_at", "NOT_AFTER_START", "end_at must be after start_at.")
    elif kind is PLANS and values["effective_to"] is not None \
            and values["effective_to"] <= values["effective_from"]:
        bad("effective_to", "NOT_AFTER_START", "effective_to must be after effective_from.")


# --- across the rows of a file ----------------------------------------------------------------


def duplicate_keys(kind: Kind, file: str, records: Sequence[Record]) -> list[Problem]:
    """A natural key given twice: the later row is reported, naming the earlier one."""
    problems: list[Problem] = []
    first: dict[tuple[Any, ...], int] = {}
    for record in records:
        key = record.key(kind)
        if key in first:
            what = ("a second current owner for this customer" if kind is OWNERS
                    else f"the same {' and '.join(kind.key)} as")
            column = kind.key[-1]
            problems.append(Problem(file, record.row, column, _text(record.values[column]),
                                    "TWO_CURRENT_OWNERS" if kind is OWNERS else "DUPLICATE_ROW",
                                    f"{what} row {first[key]}; keep one row"
                                    + (": a customer has one current owner at a time; earlier "
                                       "owners go in the assignments file." if kind is OWNERS
                                       else ".")))
        else:
            first[key] = record.row
    return problems


@dataclass(frozen=True)
class Period:
    """A period [start, end) of one customer's (or one employee's plan) history."""

    start: datetime
    end: datetime | None  # None: open
    label: str  # where it comes from: "row 5 of owners.csv", "stored assignment 12"
    record: Record | None = None  # None for a stored period
    file: str = ""


def overlapping(periods: Iterable[Period]) -> list[tuple[Period, Period]]:
    """Pairs (earlier, later) of periods that overlap; only pairs where the later is new."""
    ordered = sorted(periods, key=lambda p: p.start)
    found: list[tuple[Period, Period]] = []
    for i, later in enumerate(ordered):
        if later.record is None:
            continue
        for earlier in ordered[:i]:
            if earlier.end is None or earlier.end > later.start:
                found.append((earlier, later))
                break
    return found


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def cell_text(value: Any, timezone: str) -> str:
    """A typed value as the exporter writes it."""
    if isinstance(value, datetime):
        return format_datetime(value, timezone)
    return _text(value)


# --- documentation ----------------------------------------------------------------------------


def columns_markdown() -> str:
    """The column reference of docs/IMPORT.md, one section per kind, in import order."""
    out: list[str] = []
    for kind in KINDS.values():
        out += [f"### `{kind.name}`: {kind.title}", "", kind.description, "",
                f"Key: {', '.join(f'`{k}`' for k in kind.key)}. On a rerun: {kind.on_rerun}",
                "", "| column | type | required | example | meaning and rules |",
                "|---|---|:-:|---|---|"]
        for c in kind.columns:
            rules = c.rules()
            meaning = c.description + (f". {rules[0].upper()}{rules[1:]}" if rules else "")
            example = f"`{c.example}`" if c.example else ""
            out.append(f"| `{c.name}` | {c.type.value} | {'yes' if c.required else '-'} | "
                       f"{example} | {meaning.replace('|', '/')} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(columns_markdown(), end="")
