"""Reading and writing the import files: CSV (UTF-8, with or without a BOM) and Excel .xlsx.

Bytes in, bytes out; no files, no database. Every cell is handed on as text, so CSV and Excel
are checked by the same code. Row numbers are the ones a spreadsheet shows (the header is
row 1, blank rows count).
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from domain.importing import Column, Kind, Problem, Sheet

MAX_ROWS = 200_000
XLSX_MAGIC = b"PK\x03\x04"


class FileProblem(ValueError):
    """The file cannot be read as a table at all."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _refuse(file: str, code: str, message: str, row: int | None = None) -> FileProblem:
    return FileProblem(Problem(file, row, None, "", code, message))


def read_table(file: str, data: bytes, *, timezone: str, sheet_name: str | None = None) -> Sheet:
    """A CSV or .xlsx file (told apart by content, not name) as a Sheet of text cells."""
    if data.startswith(XLSX_MAGIC):
        return _read_xlsx(file, data, timezone, sheet_name)
    return _read_csv(file, data)


def _sheet(file: str, records: list[tuple[int, list[str]]]) -> Sheet:
    nonblank = [(n, cells) for n, cells in records if any(c.strip() for c in cells)]
    if not nonblank:
        raise _refuse(file, "EMPTY_FILE", "the file is empty; the first row must be the "
                      "header (see `cli.py import template`).", 1)
    header_row, header_cells = nonblank[0]
    header = tuple(c.strip().lstrip("\ufeff").lower() for c in header_cells)
    while header and not header[-1]:  # trailing empty header cells (spreadsheets add them)
        header = header[:-1]
    rows: list[tuple[int, Mapping[str, str | None]]] = []
    for number, cells in nonblank[1:]:
        if len(rows) >= MAX_ROWS:
            raise _refuse(file, "FILE_TOO_LARGE", f"a file holds at most {MAX_ROWS} rows; "
                          "split it.", number)
        extra = [c for c in cells[len(header):] if c.strip()]
        values: dict[str, str | None] = {
            name: (cells[i].strip() if i < len(cells) and cells[i].strip() else None)
            for i, name in enumerate(header) if name}
        if extra:
            values["__extra__"] = ",".join(extra)
        rows.append((number, values))
    return Sheet(file=file, header=header, rows=tuple(rows), header_row=header_row)


def _read_csv(file: str, data: bytes) -> Sheet:
    try:
        text = codecs.decode(data, "utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _refuse(file, "NOT_UTF8", f"the file is not UTF-8 text (byte {exc.start}); save "
                      "it as 'CSV UTF-8' or as .xlsx.") from exc
    records: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for number, cells in enumerate(reader, start=1):
            records.append((number, cells))
    except csv.Error as exc:
        raise _refuse(file, "CSV_SYNTAX", f"not valid CSV near row {len(records) + 1}: {exc}; "
                      "check the quotes.", len(records) + 1) from exc
    return _sheet(file, records)


def _read_xlsx(file: str, data: bytes, timezone: str, sheet_name: str | None) -> Sheet:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise _refuse(file, "NOT_XLSX", f"the file cannot be read as an Excel workbook "
                      f"({exc.__class__.__name__}); save it again as .xlsx.") from exc
    try:
        sheet = book[sheet_name] if sheet_name and sheet_name in book.sheetnames \
            else book.worksheets[0]
        records = [(number, [_cell_text(v, timezone) for v in row])
                   for number, row in enumerate(sheet.iter_rows(values_only=True), start=1)]
    finally:
        book.close()
    return _sheet(file, records)


def _cell_text(value: Any, timezone: str) -> str:
    """A spreadsheet cell as the text a CSV would hold. Excel times carry no zone: they are
    read in the organisation's timezone."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=ZoneInfo(timezone))
        return aware.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- writing ----------------------------------------------------------------------------------


def write_csv(header: Sequence[str], rows: Sequence[Sequence[str]]) -> bytes:
    """UTF-8 with a BOM, so that Excel opens Chinese text correctly."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return codecs.BOM_UTF8 + out.getvalue().encode("utf-8")


def write_xlsx(kind: Kind, rows: Sequence[Sequence[str]]) -> bytes:
    """The kind's sheet (cells as text, so times keep their offset and microseconds) and a
    second sheet, "columns", describing each column."""
    from openpyxl import Workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = kind.name
    sheet.append(list(kind.column_names))
    for cell, column in zip(sheet[1], kind.columns, strict=True):
        cell.font = Font(bold=True)
        cell.comment = Comment(_column_note(column), "Baton")
        cell.number_format = "@"
    for row in rows:
        sheet.append(list(row))
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            cell.number_format = "@"  # text: Excel must not turn codes or times into numbers
    for index, column in enumerate(kind.columns, start=1):
        sheet.column_dimensions[sheet.cell(1, index).column_letter].width = \
            max(12, min(40, len(column.example) + 4, len(column.name) + 20))
    doc = book.create_sheet("columns")
    doc.append(["column", "type", "required", "example", "meaning", "rules"])
    for cell in doc[1]:
        cell.font = Font(bold=True)
    for column in kind.columns:
        doc.append([column.name, column.type.value, "yes" if column.required else "no",
                    column.example, column.description, column.rules()])
    doc.append([])
    doc.append([f"key: {', '.join(kind.key)}", "", "", "", f"on a rerun: {kind.on_rerun}"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _column_note(column: Column) -> str:
    required = "required" if column.required else "optional"
    rules = column.rules()
    return f"{column.type.value}, {required}: {column.description}" + \
        (f". {rules}" if rules else "")


def template_rows(kind: Kind) -> list[list[str]]:
    """The example row of a template."""
    return [[c.example for c in kind.columns]]
