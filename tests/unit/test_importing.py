"""The pure part of the data import: reading CSV/.xlsx as text, checking cells and rows."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook

from domain.importing import (
    EMPLOYEES,
    OWNERS,
    PLANS,
    check_header,
    duplicate_keys,
    parse_datetime,
    parse_row,
)
from domain.tabular import FileProblem, read_table, write_csv

NOW = datetime(2026, 6, 1, tzinfo=UTC)
TZ = "Asia/Shanghai"


def problems_of(kind, cells):
    record, problems = parse_row(kind, "f.csv", 7, cells, timezone=TZ, now=NOW)
    return record, {(p.column, p.code) for p in problems}


def test_times_without_offset_are_read_in_the_org_timezone() -> None:
    shanghai = ZoneInfo(TZ)
    assert parse_datetime("2025-03-01", TZ) == datetime(2025, 3, 1, tzinfo=shanghai)
    assert parse_datetime("2025-03-01 09:30", TZ) == datetime(2025, 3, 1, 9, 30,
                                                              tzinfo=shanghai)
    assert parse_datetime("2025-03-01T01:30:00Z", TZ) == datetime(2025, 3, 1, 1, 30,
                                                                   tzinfo=UTC)


def test_employee_row_checks() -> None:
    good = {"employee_no": "E1", "name": "Li", "role": "Sales", "org_unit_code": "T1",
            "username": "e1", "account_roles": "sales, manager, sales"}
    record, problems = problems_of(EMPLOYEES, good)
    assert problems == set() and record is not None
    assert record["role"] == "sales" and record["account_roles"] == ["sales", "manager"]
    _, problems = problems_of(EMPLOYEES, {
        **good, "email": "not-an-email", "manager_no": "E1", "status": "LEFT",
        "account_roles": "sales,boss", "hired_at": "2099-01-01", "locale": "fr"})
    assert problems == {("email", "INVALID_EMAIL"), ("account_roles", "INVALID_CHOICE"),
                        ("hired_at", "IN_FUTURE"), ("locale", "INVALID_CHOICE")}
    # rules between cells are checked once each cell is fine
    _, problems = problems_of(EMPLOYEES, {**good, "manager_no": "E1", "status": "LEFT"})
    assert problems == {("manager_no", "SELF_MANAGER"), ("leave_date", "REQUIRED")}
    _, problems = problems_of(EMPLOYEES, {"employee_no": "E 1", "role": "sales"})
    assert problems == {("employee_no", "INVALID_CODE"), ("name", "REQUIRED"),
                        ("org_unit_code", "REQUIRED")}


@pytest.mark.parametrize("cells, expected", [
    ({"base_rate_bp": "-5"}, {("base_rate_bp", "NEGATIVE")}),
    ({"base_rate_bp": "10001"}, {("base_rate_bp", "TOO_LARGE")}),
    ({"inherited_rate_bp": "2.5%"}, {("inherited_rate_bp", "NOT_INTEGER")}),
    ({"effective_to": "2023-01-01"}, {("effective_to", "NOT_AFTER_START")}),
    ({"effective_from": "01/02/2024"}, {("effective_from", "INVALID_DATETIME")}),
])
def test_plan_rates_and_periods(cells: dict[str, str], expected: set[tuple[str, str]]) -> None:
    row = {"employee_no": "E1", "effective_from": "2024-01-01", "base_rate_bp": "300",
           "inherited_rate_bp": "200", **cells}
    assert problems_of(PLANS, row)[1] == expected


def test_two_current_owners_are_reported_on_the_second_row() -> None:
    rows = [parse_row(OWNERS, "o.csv", n, {"customer_code": c, "employee_no": "E1",
                                           "start_at": "2024-01-01"}, timezone=TZ, now=NOW)[0]
            for n, c in ((2, "C1"), (3, "C2"), (4, "C1"))]
    [problem] = duplicate_keys(OWNERS, "o.csv", [r for r in rows if r is not None])
    assert (problem.row, problem.code) == (4, "TWO_CURRENT_OWNERS")
    assert "row 2" in problem.message


def test_csv_with_bom_blank_rows_and_spreadsheet_row_numbers() -> None:
    data = write_csv(["customer_code", "employee_no", "start_at"],
                     [["C1", "E1", "2024-01-01"], ["", "", ""], ["C2", "E2", "2024-02-01"]])
    assert data.startswith(b"\xef\xbb\xbf")
    sheet = read_table("o.csv", data, timezone=TZ)
    assert sheet.header == ("customer_code", "employee_no", "start_at")
    assert [n for n, _ in sheet.rows] == [2, 4]  # the blank row 3 still counts
    assert check_header(OWNERS, sheet) == []
    missing = read_table("o.csv", b"customer_code,owner\nC1,E1\n", timezone=TZ)
    assert {(p.column, p.code) for p in check_header(OWNERS, missing)} == {
        ("owner", "UNKNOWN_COLUMN"), ("employee_no", "MISSING_COLUMN"),
        ("start_at", "MISSING_COLUMN")}
    with pytest.raises(FileProblem) as refused:
        read_table("o.csv", "名".encode("gbk"), timezone=TZ)
    assert refused.value.problem.code == "NOT_UTF8"


def test_xlsx_cells_become_text_and_dates_take_the_org_timezone() -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Customer_Code", "employee_no", "start_at", None])
    sheet.append(["C1", "E1", datetime(2024, 1, 2, 9, 30)])
    sheet.append([None, None, None])
    sheet.append([1001, "E2", "2024-02-01T00:00:00+00:00"])
    out = io.BytesIO()
    book.save(out)
    table = read_table("o.xlsx", out.getvalue(), timezone=TZ)
    assert table.header == ("customer_code", "employee_no", "start_at")
    assert [(n, dict(c)) for n, c in table.rows] == [
        (2, {"customer_code": "C1", "employee_no": "E1",
             "start_at": "2024-01-02T09:30:00+08:00"}),
        (4, {"customer_code": "1001", "employee_no": "E2",
             "start_at": "2024-02-01T00:00:00+00:00"})]
