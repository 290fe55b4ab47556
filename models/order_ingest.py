"""Order ingestion: validate a batch of orders, refunds and cancellations, then insert it.

Shared by the API (`POST /api/v1/orders`, `POST /api/v1/orders/import`) and the CLI
(`cli.py import-orders`). Nothing here knows about HTTP.

A batch is all-or-nothing:
1. Every row is checked on its own (shape: types, required and forbidden fields, currency,
   aware times), then against the database and the rows before it in the same batch (customer,
   original order, refundable remainder, booking order). Every bad row is reported.
2. `external_id` is the idempotency key. A row whose id is stored already with the same
   content hash is a duplicate (a no-op); with a different content hash it is a conflict.
3. Only a batch with no errors and no conflicts is written, in the caller's transaction,
   together with the commission recompute for the new rows and one audit event.

Refunds and cancellations are stored with a NEGATIVE amount, point at their original order and
belong to the original's customer. A cancellation without an amount takes back the whole
remainder of its original.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from domain.periods import period_of
from models.audit import AuditEvent, append_audit_event
from models.commission_engine import recompute_for_orders
from models.customer import Customer, Order, OrderKind
from models.types import utcnow

MAX_BATCH = 1_000  # rows per JSON request
MAX_IMPORT_ROWS = 50_000  # data rows per CSV file
MAX_EXTERNAL_ID = 100
MAX_PRODUCT_LINE = 100
# amount x rate_bp x share_bp (<= 10^8) must stay inside a signed 64-bit integer in SQL
MAX_AMOUNT_FEN = 90_000_000_000  # 900 million yuan
CURRENCY = "CNY"
CSV_COLUMNS = ("external_id", "kind", "customer_code", "amount_fen", "currency", "booked_at",
               "product_line", "original_external_id")
JSON_FIELDS = frozenset(CSV_COLUMNS) | {"customer_id"}
_CHUNK = 500  # ids per IN (...) list
_INTEGER = re.compile(r"[+-]?\d+")

EVENT_POSTED = "ORDERS_POSTED"
EVENT_IMPORTED = "ORDERS_IMPORTED"

RowStatus = Literal["created", "duplicate", "would_create"]
CONFLICT = "EXTERNAL_ID_CONFLICT"


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    """One thing wrong with one row. `index` is 0-based; `line` (CSV only) is 1-based.

    A problem with the input as a whole (e.g. a CSV header) has no index.
    """

    index: int | None
    external_id: str | None
    field: str | None
    code: str
    message: str
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "external_id": self.external_id,
                               "field": self.field, "code": self.code, "message": self.message}
        if self.line is not None:
            out = {"line": self.line, **out}
        return out


@dataclass(frozen=True)
class RowResult:
    index: int
    external_id: str
    status: RowStatus
    id: int | None  # None for rows a dry run would create
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "id": self.id,
                               "external_id": self.external_id, "status": self.status}
        if self.line is not None:
            out = {"line": self.line, **out}
        return out


@dataclass
class IngestReport:
    dry_run: bool
    rows: int
    created: int = 0
    duplicates: int = 0
    would_create: int = 0
    results: list[RowResult] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)  # every bad row, conflicts too
    conflicts: list[str] = field(default_factory=list)  # ids stored with other content
    recomputed_lines: int = 0  # commission lines the engine rewrote for the new rows

    @property
    def ok(self) -> bool:
        return not self.errors and not self.conflicts

    @property
    def only_conflicts(self) -> bool:
        """Everything wrong is an external id stored with other content (HTTP 409)."""
        return bool(self.conflicts) and all(e.code == CONFLICT for e in self.errors)

    @classmethod
    def refused(cls, problem: PayloadError, *, dry_run: bool) -> IngestReport:
        """The report for an input that could not be read as rows at all."""
        return cls(dry_run=dry_run, rows=0, errors=[RowError(
            index=None, external_id=None, field=None, code=problem.code,
            message=problem.message, line=problem.line)])

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "ok": self.ok,
            "rows": self.rows,
            "created": self.created,
            "duplicates": self.duplicates,
            "would_create": self.would_create,
            "conflicts": list(self.conflicts),
            "errors": [e.as_dict() for e in self.errors],
            "results": [r.as_dict() for r in self.results],
            "recomputed_lines": self.recomputed_lines,
        }


class PayloadError(ValueError):
    """The input as a whole is unusable (not a batch, too many rows, bad CSV header...)."""

    def __init__(self, code: str, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.line = code, message, line


class ConcurrentInsert(RuntimeError):
    """Another transaction stored one of these external ids between our check and insert."""


# --- input rows ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawRow:
    """One submitted row before validation: JSON values, or CSV strings."""

    index: int
    data: Mapping[str, Any]
    line: int | None = None  # CSV only

    @property
    def from_csv(self) -> bool:
        return self.line is not None


def rows_from_json(payload: Any) -> list[RawRow]:
    """One order object, or {"orders": [...]}, as raw rows."""
    if isinstance(payload, Mapping) and "orders" in payload:
        extra = sorted(set(payload) - {"orders"})
        if extra:
            raise PayloadError("BATCH_SHAPE",
                               f"A batch object has only the key \"orders\"; remove {extra}.")
        orders = payload["orders"]
        if not isinstance(orders, list):
            raise PayloadError("BATCH_SHAPE", "\"orders\" must be a list of order objects.")
        if not orders:
            raise PayloadError("BATCH_EMPTY", "\"orders\" is empty; send at least one order.")
        if len(orders) > MAX_BATCH:
            raise PayloadError("BATCH_TOO_LARGE",
                               f"A batch holds at most {MAX_BATCH} orders; this one has "
                               f"{len(orders)}. Split it into several requests.")
        return [RawRow(index=i, data=row) for i, row in enumerate(orders)]
    if isinstance(payload, Mapping):
        return [RawRow(index=0, data=payload)]
    raise PayloadError("BATCH_SHAPE",
                       "Send one order object, or {\"orders\": [...]} with up to "
                       f"{MAX_BATCH} order objects.")


def rows_from_csv(data: bytes) -> list[RawRow]:
    """Parse a CSV file with the header CSV_COLUMNS (any order; BOM and blank lines allowed).

    Raises PayloadError for a file that cannot be read as such at all.
    """
    try:
        text = codecs.decode(data, "utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PayloadError("NOT_UTF8", f"The file is not UTF-8 text (byte {exc.start} cannot "
                           "be decoded). Save it as UTF-8 CSV and try again.", line=None) from exc
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header: list[str] | None = None
        header_line = 0
        while header is None:
            cells = next(reader, None)
            if cells is None:
                raise PayloadError("EMPTY_FILE", "The file is empty. The first line must be "
                                   "the header: " + ",".join(CSV_COLUMNS), line=1)
            header_line = reader.line_num
            if any(c.strip() for c in cells):
                header = [c.strip().lower() for c in cells]
        _check_header(header, header_line)
        rows: list[RawRow] = []
        last_line = reader.line_num
        for cells in reader:
            line, last_line = last_line + 1, reader.line_num
            if not any(c.strip() for c in cells):
                continue  # blank line (e.g. trailing newlines)
            if len(rows) >= MAX_IMPORT_ROWS:
                raise PayloadError("FILE_TOO_LARGE", f"A file holds at most {MAX_IMPORT_ROWS} "
                                   "data rows; split it into several files.", line=line)
            if len(cells) != len(header):
                values: dict[str, Any] = {"__columns__": len(cells)}
                if cells:
                    values["external_id"] = cells[header.index("external_id")].strip() \
                        if len(cells) > header.index("external_id") else None
            else:
                values = {name: (cell.strip() or None) for name, cell in zip(header, cells,
                                                                            strict=True)}
            rows.append(RawRow(index=len(rows), data=values, line=line))
    except csv.Error as exc:
        raise PayloadError("CSV_SYNTAX", f"The file is not valid CSV near line "
                           f"{reader.line_num}: {exc}.", line=reader.line_num) from exc
    if not rows:
        raise PayloadError("NO_ROWS", "The file has a header but no data rows.", line=2)
    return rows


def _check_header(header: list[str], line: int) -> None:
    expected = ",".join(CSV_COLUMNS)
    missing = [c for c in CSV_COLUMNS if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    repeated = sorted({c for c in header if header.count(c) > 1})
    problems = []
    if missing:
        problems.append("missing " + ", ".join(missing))
    if unknown:
        problems.append("unknown " + ", ".join(repr(c) for c in unknown))
    if repeated:
        problems.append("repeated " + ", ".join(repeated))
    if problems:
        raise PayloadError("BAD_HEADER", f"Line {line} must be the header {expected} (any "
                           f"column order); found: {'; '.join(problems)}.", line=line)


# --- checking one row on its own -------------------------------------------------------------


@dataclass
class _Row:
    raw: RawRow
    external_id: str
    kind: OrderKind
    customer_code: str | None
    customer_id: int | None
    amount_fen: int | None  # as submitted: positive, or None for a whole-remainder cancellation
    currency: str
    booked_at: datetime  # UTC
    product_line: str | None
    original_external_id: str | None
    # filled by the batch checks
    resolved_customer: Customer | None = None
    content_hash: str = ""
    stored_amount_fen: int = 0  # signed, as written: negative for refunds and cancellations

    def content(self) -> dict[str, Any]:
        """The normalised content that the idempotency hash covers."""
        assert self.resolved_customer is not None
        return {
            "external_id": self.external_id,
            "kind": self.kind.value,
            "customer_code": self.resolved_customer.code,
            "amount_fen": self.amount_fen,
            "currency": self.currency,
            "booked_at": self.booked_at.isoformat(),
            "product_line": self.product_line,
            "original_external_id": self.original_external_id,
        }


def content_hash(content: Mapping[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class _Checker:
    def __init__(self, raw: RawRow) -> None:
        self.raw = raw
        self.errors: list[RowError] = []
        ext = raw.data.get("external_id") if isinstance(raw.data, Mapping) else None
        self.external_id = ext.strip() if isinstance(ext, str) and ext.strip() else None

    def error(self, field_name: str | None, code: str, message: str) -> None:
        self.errors.append(RowError(index=self.raw.index, external_id=self.external_id,
                                    field=field_name, code=code, message=message,
                                    line=self.raw.line))

    def failed(self, *field_names: str) -> bool:
        return any(e.field in field_names for e in self.errors)

    def text(self, name: str, *, max_length: int, required: bool) -> str | None:
        value = self.raw.data.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.error(name, "REQUIRED", f"{name} is required.")
            return None
        if not isinstance(value, str):
            self.error(name, "NOT_TEXT", f"{name} must be a string.")
            return None
        value = value.strip()
        if len(value) > max_length:
            self.error(name, "TOO_LONG",
                       f"{name} may have at most {max_length} characters; it has {len(value)}.")
            return None
        return value

    def integer(self, name: str) -> int | None:
        value = self.raw.data.get(name)
        if value is None:
            return None
        if self.raw.from_csv and isinstance(value, str) and _INTEGER.fullmatch(value):
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        self.error(name, "NOT_INTEGER", f"{name} must be a whole number of fen (e.g. 12345 for "
                   f"123.45 yuan); got {value!r}.")
        return None


def _check_shape(raw: RawRow) -> tuple[_Row | None, list[RowError]]:
    c = _Checker(raw)
    if not isinstance(raw.data, Mapping):
        c.error(None, "NOT_AN_OBJECT", "Each order must be a JSON object.")
        return None, c.errors
    if raw.from_csv and "__columns__" in raw.data:
        c.error(None, "WRONG_COLUMN_COUNT", f"The line has {raw.data['__columns__']} columns; "
                f"the header has {len(CSV_COLUMNS)}.")
        return None, c.errors
    for unknown in sorted(set(raw.data) - JSON_FIELDS):
        c.error(unknown, "UNKNOWN_FIELD", f"{unknown} is not an order field; allowed: "
                f"{', '.join(sorted(JSON_FIELDS))}.")

    external_id = c.text("external_id", max_length=MAX_EXTERNAL_ID, required=True)

    kind: OrderKind | None = OrderKind.ORDER
    kind_raw = c.text("kind", max_length=20, required=False)
    if kind_raw is not None:
        try:
            kind = OrderKind(kind_raw.upper())
        except ValueError:
            kind = None
            c.error("kind", "INVALID_KIND", f"kind must be one of "
                    f"{', '.join(k.value for k in OrderKind)}; got {kind_raw!r}.")

    customer_code = c.text("customer_code", max_length=40, required=False)
    customer_id = c.integer("customer_id")
    if customer_code is not None and customer_id is not None:
        c.error("customer_code", "CUSTOMER_AMBIGUOUS",
                "Give either customer_code or customer_id, not both.")
    elif customer_code is None and customer_id is None and kind == OrderKind.ORDER \
            and not c.failed("customer_code", "customer_id"):
        c.error("customer_code", "REQUIRED", "customer_code (or customer_id) is required.")

    amount = c.integer("amount_fen")
    if amount is None and not c.failed("amount_fen"):
        if kind in (OrderKind.ORDER, OrderKind.REFUND):
            c.error("amount_fen", "REQUIRED", f"amount_fen is required for {kind.value}.")
    elif amount is not None:
        if amount <= 0:
            c.error("amount_fen", "NOT_POSITIVE", "amount_fen must be greater than 0 (a refund "
                    "or cancellation is given as a positive amount; it is stored negative).")
        elif amount > MAX_AMOUNT_FEN:
            c.error("amount_fen", "TOO_LARGE",
                    f"amount_fen may be at most {MAX_AMOUNT_FEN} fen per row.")

    currency = c.text("currency", max_length=10, required=True)
    if currency is not None and currency.upper() != CURRENCY:
        c.error("currency", "UNSUPPORTED_CURRENCY",
                f"Only {CURRENCY} is accepted; got {currency!r}.")

    booked_at: datetime | None = None
    booked_raw = c.text("booked_at", max_length=64, required=True)
    if booked_raw is not None:
        try:
            parsed = datetime.fromisoformat(booked_raw)
        except ValueError:
            c.error("booked_at", "INVALID_DATETIME", "booked_at must be an ISO 8601 time with "
                    f"an offset, e.g. 2026-03-01T09:30:00+08:00; got {booked_raw!r}.")
        else:
            if parsed.tzinfo is None or parsed.utcoffset() is None:
                c.error("booked_at", "NAIVE_DATETIME", "booked_at has no UTC offset; add one "
                        f"(e.g. {booked_raw}+08:00 or {booked_raw}Z).")
            else:
                booked_at = parsed.astimezone(UTC)

    product_line = c.text("product_line", max_length=MAX_PRODUCT_LINE, required=False)

    original = c.text("original_external_id", max_length=MAX_EXTERNAL_ID, required=False)
    if kind in (OrderKind.REFUND, OrderKind.CANCELLATION) and original is None \
            and not c.failed("original_external_id"):
        c.error("original_external_id", "REQUIRED",
                f"original_external_id is required for a {kind.value}: the order it takes "
                "money back from.")
    if kind == OrderKind.ORDER and original is not None:
        c.error("original_external_id", "FORBIDDEN", "An ORDER has no original_external_id; "
                "set kind to REFUND or CANCELLATION to take money back from an earlier order.")

    if c.errors:
        return None, c.errors
    assert external_id is not None and kind is not None
    assert currency is not None and booked_at is not None
    return _Row(raw=raw, external_id=external_id, kind=kind, customer_code=customer_code,
                customer_id=customer_id, amount_fen=amount, currency=currency.upper(),
                booked_at=booked_at, product_line=product_line,
                original_external_id=original), []


# --- checking the batch against the database --------------------------------------------------


def _chunks(values: Iterable[Any]) -> Iterator[list[Any]]:
    items = list(dict.fromkeys(values))
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


@dataclass
class _Original:
    """An order that refunds may point at: stored already, or earlier in this batch."""

    external_id: str
    kind: OrderKind
    customer: Customer
    booked_at: datetime
    remaining_fen: int  # original amount minus every refund so far
    order_id: int | None = None  # None while it is a new row of this batch
    batch_index: int | None = None


def ingest(
    session: Session,
    raw_rows: Sequence[RawRow],
    *,
    timezone: str,
    dry_run: bool = False,
    actor_id: int | None = None,
    event_type: str | None = EVENT_POSTED,
) -> IngestReport:
    """Check `raw_rows` as one batch; unless `dry_run` or anything is wrong, insert them.

    Writes (in the caller's transaction, which the caller commits): the new Order rows, the
    commission recompute for them, and one audit event when anything was created (none when
    `event_type` is None). Raises
    ConcurrentInsert when another transaction stored one of the ids meanwhile.
    """
    report = IngestReport(dry_run=dry_run, rows=len(raw_rows))
    rows: list[_Row] = []
    for raw in raw_rows:
        row, errors = _check_shape(raw)
        report.errors.extend(errors)
        if row is not None:
            rows.append(row)

    customers_by_code, customers_by_id = _load_customers(session, rows)
    stored = _load_orders(session, {r.external_id for r in rows}
                          | {r.original_external_id for r in rows if r.original_external_id})
    refunded = _refunded_sums(session, [o.id for o in stored.values()
                                        if o.kind == OrderKind.ORDER and o.id is not None])
    stored_customers = _customers_by_id(session, [o.customer_id for o in stored.values()])
    originals: dict[str, _Original] = {}
    for order in stored.values():
        customer = stored_customers[order.customer_id]
        assert order.id is not None
        originals[order.external_id] = _Original(
            external_id=order.external_id, kind=OrderKind(order.kind), customer=customer,
            booked_at=order.booked_at, order_id=order.id,
            remaining_fen=order.amount_fen + refunded.get(order.id, 0))

    positions: dict[str, list[int]] = {}
    for row in rows:
        positions.setdefault(row.external_id, []).append(row.raw.index)
    failed_ids: set[str] = {e.external_id for e in report.errors if e.external_id}
    seen: dict[str, _Row] = {}  # first row of each external id in this batch
    new_rows: list[_Row] = []
    outcomes: dict[int, tuple[RowStatus, _Row]] = {}

    for row in rows:
        errors = _resolve(row, customers_by_code, customers_by_id, originals, positions,
                          failed_ids)
        if not errors:
            row.content_hash = content_hash(row.content())
            earlier = seen.get(row.external_id)
            existing = stored.get(row.external_id)
            if existing is not None:
                if existing.content_hash == row.content_hash:
                    outcomes[row.raw.index] = ("duplicate", row)
                else:
                    if row.external_id not in report.conflicts:
                        report.conflicts.append(row.external_id)
                    report.errors.append(_err(
                        row, "external_id", CONFLICT,
                        f"external_id {row.external_id!r} is stored already (order "
                        f"{existing.id}) with other content. An external id names one order "
                        "for good: correct it with a REFUND or CANCELLATION under a new id."))
                    failed_ids.add(row.external_id)
                seen.setdefault(row.external_id, row)
                continue
            if earlier is not None:
                if earlier.content_hash == row.content_hash:
                    outcomes[row.raw.index] = ("duplicate", earlier)
                else:
                    errors.append(_err(row, "external_id", "DUPLICATE_IN_BATCH",
                                       f"external_id {row.external_id!r} appears earlier in "
                                       f"this batch (index {earlier.raw.index}) with other "
                                       "content."))
                if not errors:
                    continue
        if not errors:
            errors = _check_new(row, originals)
        seen.setdefault(row.external_id, row)
        if errors:
            report.errors.extend(errors)
            failed_ids.add(row.external_id)
            continue
        new_rows.append(row)
        outcomes[row.raw.index] = ("would_create", row)
        assert row.resolved_customer is not None
        # later rows may refund this one (or, wrongly, a refund of this batch)
        originals.setdefault(row.external_id, _Original(
            external_id=row.external_id, kind=row.kind, customer=row.resolved_customer,
            booked_at=row.booked_at, remaining_fen=max(row.stored_amount_fen, 0),
            batch_index=row.raw.index))

    report.errors.sort(key=lambda e: -1 if e.index is None else e.index)
    if not report.ok and not dry_run:
        return report  # a dry run goes on to report what the good rows would do
    ids = _insert(session, new_rows, originals, timezone) if not dry_run else {}
    lines = {raw.index: raw.line for raw in raw_rows}
    for index in sorted(outcomes):
        status, row = outcomes[index]
        if status == "duplicate":
            order_id = stored[row.external_id].id if row.external_id in stored \
                else ids.get(row.external_id)
            report.duplicates += 1
        elif dry_run:
            order_id = None
            report.would_create += 1
        else:
            status, order_id = "created", ids[row.external_id]
            report.created += 1
        report.results.append(RowResult(index=index, external_id=row.external_id,
                                        status=status, id=order_id, line=lines[index]))
    if dry_run or not ids:
        return report

    created_ids = sorted(ids.values())
    report.recomputed_lines = int(recompute_for_orders(session, created_ids))
    if event_type is None:  # the caller audits the run (models.importing: one summary event)
        return report
    append_audit_event(session, AuditEvent(
        occurred_at=utcnow(), event_type=event_type, actor_id=actor_id,
        detail={"rows": report.rows, "created": report.created,
                "duplicates": report.duplicates, "order_ids": created_ids},
        # one event per batch: the orders are listed in the detail, the lines they moved
        # are a recomputation (derived), counted here
        entity_type="order", before=None,
        after={"created": report.created, "duplicates": report.duplicates,
               "recomputed_lines": report.recomputed_lines},
        chain_index=0, prev_hash="", hash=""))
    session.flush()
    return report


def _err(row: _Row, field_name: str | None, code: str, message: str) -> RowError:
    return RowError(index=row.raw.index, external_id=row.external_id, field=field_name,
                    code=code, message=message, line=row.raw.line)


def _load_customers(session: Session, rows: Sequence[_Row]
                    ) -> tuple[dict[str, Customer], dict[int, Customer]]:
    by_code: dict[str, Customer] = {}
    for chunk in _chunks(r.customer_code for r in rows if r.customer_code):
        for customer in session.exec(select(Customer).where(col(Customer.code).in_(chunk))):
            by_code[customer.code] = customer
    by_id = _customers_by_id(session, [r.customer_id for r in rows if r.customer_id is not None])
    return by_code, by_id


def _customers_by_id(session: Session, customer_ids: Iterable[int]) -> dict[int, Customer]:
    found: dict[int, Customer] = {}
    for chunk in _chunks(customer_ids):
        for customer in session.exec(select(Customer).where(col(Customer.id).in_(chunk))):
            assert customer.id is not None
            found[customer.id] = customer
    return found


def _load_orders(session: Session, external_ids: Iterable[str]) -> dict[str, Order]:
    """Stored orders with these ids, locked (PostgreSQL) so refunds on them serialise."""
    found: dict[str, Order] = {}
    for chunk in _chunks(sorted(external_ids)):  # one lock order for every caller
        query = select(Order).where(col(Order.external_id).in_(chunk)).with_for_update()
        for order in session.exec(query):
            found[order.external_id] = order
    return found


def _refunded_sums(session: Session, order_ids: Sequence[int]) -> dict[int, int]:
    """original order id -> sum of its refunds' (negative) amounts."""
    sums: dict[int, int] = {}
    for chunk in _chunks(order_ids):
        query = (select(Order.original_order_id, func.sum(Order.amount_fen))
                 .where(col(Order.original_order_id).in_(chunk))
                 .group_by(col(Order.original_order_id)))
        for original_id, total in session.exec(query):
            if original_id is not None:
                sums[original_id] = int(total or 0)
    return sums


def _resolve(
    row: _Row,
    by_code: Mapping[str, Customer],
    by_id: Mapping[int, Customer],
    originals: Mapping[str, _Original],
    positions: Mapping[str, list[int]],
    failed_ids: set[str],
) -> list[RowError]:
    """Find the row's customer (and original); enough to hash its content."""
    errors: list[RowError] = []
    named: Customer | None = None
    if row.customer_code is not None:
        named = by_code.get(row.customer_code)
        if named is None:
            errors.append(_err(row, "customer_code", "UNKNOWN_CUSTOMER",
                               f"No customer has the code {row.customer_code!r}."))
    elif row.customer_id is not None:
        named = by_id.get(row.customer_id)
        if named is None:
            errors.append(_err(row, "customer_id", "UNKNOWN_CUSTOMER",
                               f"No customer has the id {row.customer_id}."))
    if row.kind == OrderKind.ORDER:
        row.resolved_customer = named
        return errors

    assert row.original_external_id is not None
    original = originals.get(row.original_external_id)
    if original is None:
        later = [i for i in positions.get(row.original_external_id, []) if i > row.raw.index]
        if row.original_external_id in failed_ids:
            errors.append(_err(row, "original_external_id", "ORIGINAL_INVALID",
                               f"The original order {row.original_external_id!r} is in this "
                               "batch but is not valid itself; fix it first."))
        elif later:
            errors.append(_err(row, "original_external_id", "ORIGINAL_AFTER_REFUND",
                               f"The original order {row.original_external_id!r} comes later in "
                               f"this batch (index {later[0]}); list it before its refunds."))
        else:
            errors.append(_err(row, "original_external_id", "UNKNOWN_ORIGINAL",
                               f"No order has the external_id {row.original_external_id!r}."))
        return errors
    if original.kind != OrderKind.ORDER:
        errors.append(_err(row, "original_external_id", "REFUND_OF_REFUND",
                           f"{row.original_external_id!r} is itself a "
                           f"{original.kind.value}; refund or cancel the original ORDER "
                           "instead."))
        return errors
    if named is not None and named.id != original.customer.id:
        errors.append(_err(row, "customer_code" if row.customer_code else "customer_id",
                           "CUSTOMER_MISMATCH",
                           f"The original order belongs to customer {original.customer.code!r}, "
                           f"not {named.code!r}; a refund stays with the original's customer "
                           "(leave the customer out to use it)."))
    if not errors:
        row.resolved_customer = original.customer
    return errors


def _check_new(row: _Row, originals: dict[str, _Original]) -> list[RowError]:
    """Checks for a row that will be inserted; updates the original's remainder."""
    if row.kind == OrderKind.ORDER:
        assert row.amount_fen is not None
        row.stored_amount_fen = row.amount_fen
        return []
    assert row.original_external_id is not None
    original = originals[row.original_external_id]
    errors: list[RowError] = []
    if row.booked_at < original.booked_at:
        errors.append(_err(row, "booked_at", "BEFORE_ORIGINAL",
                           f"A {row.kind.value} cannot be booked before its original order "
                           f"({original.booked_at.isoformat()})."))
    amount = row.amount_fen if row.amount_fen is not None else original.remaining_fen
    if original.remaining_fen <= 0:
        errors.append(_err(row, "amount_fen", "NOTHING_REMAINING",
                           f"The original order {original.external_id!r} has been refunded "
                           "in full; nothing remains to refund or cancel."))
    elif amount > original.remaining_fen:
        errors.append(_err(row, "amount_fen", "EXCEEDS_REFUNDABLE",
                           f"{amount} fen is more than the {original.remaining_fen} fen that "
                           f"remain refundable on {original.external_id!r} (its amount minus "
                           "earlier refunds, including earlier rows of this batch)."))
    if not errors:
        original.remaining_fen -= amount
        row.stored_amount_fen = -amount  # the hash keeps the submitted (maybe absent) amount
    return errors


def _insert(
    session: Session,
    rows: Sequence[_Row],
    originals: Mapping[str, _Original],
    timezone: str,
) -> dict[str, int]:
    """Insert orders first, then refunds pointing at them; external id -> new order id."""
    ids: dict[str, int] = {}
    try:
        for phase in (OrderKind.ORDER, None):
            batch: list[tuple[_Row, Order]] = []
            for row in rows:
                if (row.kind == OrderKind.ORDER) != (phase == OrderKind.ORDER):
                    continue
                assert row.resolved_customer is not None and row.resolved_customer.id is not None
                original_id: int | None = None
                if row.kind != OrderKind.ORDER:
                    assert row.original_external_id is not None
                    original = originals[row.original_external_id]
                    original_id = original.order_id if original.order_id is not None \
                        else ids[original.external_id]
                order = Order(external_id=row.external_id, kind=row.kind,
                              original_order_id=original_id,
                              customer_id=row.resolved_customer.id,
                              amount_fen=row.stored_amount_fen,
                              currency=row.currency, booked_at=row.booked_at,
                              period=period_of(row.booked_at, timezone),
                              product_line=row.product_line, content_hash=row.content_hash)
                session.add(order)
                batch.append((row, order))
            session.flush()
            for row, order in batch:
                assert order.id is not None
                ids[row.external_id] = order.id
    except IntegrityError as exc:
        raise ConcurrentInsert("another request stored some of these external ids at the same "
                               "time; send the batch again") from exc
    return ids


# --- a text report, for the CLI ----------------------------------------------------------------


def format_report(report: IngestReport, source: str) -> list[str]:
    """Human-readable lines: a summary, then one line per problem (line number first)."""
    bad_rows = len({e.index for e in report.errors if e.index is not None})
    dups = f"{report.duplicates} duplicate{'s' if report.duplicates != 1 else ''}"
    if any(e.index is None for e in report.errors):
        head = f"{'dry run of' if report.dry_run else 'refused'} {source}: unreadable as it is"
    elif report.dry_run:
        head = (f"dry run of {source}: {report.rows} rows; {report.would_create} would be "
                f"created, {dups}, {bad_rows} bad")
    elif report.ok:
        head = f"imported {source}: {report.rows} rows; {report.created} created, {dups}"
    else:
        head = f"refused {source}: {report.rows} rows, {bad_rows} bad"
    lines = [head]
    for e in report.errors:
        where = f"line {e.line}" if e.line is not None else (
            f"row {e.index}" if e.index is not None else "file")
        who = f" ({e.external_id})" if e.external_id else ""
        what = f"{e.field} {e.code}" if e.field else e.code
        lines.append(f"{where}{who}: {what}: {e.message}")
    if report.dry_run:
        lines.append("dry run: nothing was written" + ("; the file is clean" if report.ok else
                                                        "; fix the lines above and run again"))
    elif not report.ok:
        lines.append("nothing was imported: a file is imported only when every row is valid "
                     "(check fixes with --dry-run)")
    return lines
