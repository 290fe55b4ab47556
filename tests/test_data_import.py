"""Data migration (issue 9, acceptance 2): `cli.py export`, `cli.py import all|KIND`, templates.

The demo data is loaded into a SQLite source database, exported to CSV and to .xlsx, and
imported into an EMPTY migrated database of each backend. The imported tables must reproduce
the demo data by natural keys and values; a rerun changes nothing; a file with five planted
errors reports exactly those five rows and writes nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import func
from sqlmodel import Session, SQLModel, select

import cli
from domain.importing import KINDS, columns_markdown
from models import (
    Assignment,
    AuditEvent,
    CommissionPlan,
    Customer,
    Employee,
    Order,
    OrgUnit,
    UserAccount,
)
from models.db import SessionFactory, make_engine, migrate, session_factory
from models.demo_data import load_demo_data
from models.importing import EVENT_IMPORTED
from settings import get_settings

ROOT = Path(__file__).resolve().parent.parent
TABLES: list[type[SQLModel]] = [OrgUnit, Employee, UserAccount, Customer, CommissionPlan,
                                Assignment, Order]

Snapshot = dict[str, list[tuple[Any, ...]]]


def snapshot(session: Session) -> Snapshot:
    """Every imported table by natural keys and values (ids replaced by the codes they name)."""
    units = {u.id: u for u in session.exec(select(OrgUnit))}
    people = {e.id: e for e in session.exec(select(Employee))}
    accounts = {a.employee_id: a for a in session.exec(select(UserAccount))}
    customers = {c.id: c for c in session.exec(select(Customer))}
    orders = list(session.exec(select(Order)))
    external = {o.id: o.external_id for o in orders}

    def no(employee_id: int | None) -> str | None:
        return people[employee_id].employee_no if employee_id is not None else None

    def unit(unit_id: int | None) -> str | None:
        return units[unit_id].code if unit_id is not None else None

    return {
        "org_units": sorted((u.code, u.name, u.function, unit(u.parent_id),
                             no(u.head_employee_id)) for u in units.values()),
        "employees": sorted((e.employee_no, e.name, e.email, e.phone, e.role,
                             unit(e.org_unit_id), no(e.manager_id), e.status, e.hired_at,
                             e.leave_date, e.locale,
                             accounts[e.id].username if e.id in accounts else None,
                             tuple(accounts[e.id].roles) if e.id in accounts else None,
                             accounts[e.id].is_active if e.id in accounts else None)
                            for e in people.values()),
        "customers": sorted((c.code, c.name, no(c.found_by_employee_id), c.contact_name,
                             c.contact_phone, c.contact_email, c.created_at)
                            for c in customers.values()),
        "plans": sorted((no(p.employee_id), p.effective_from, p.effective_to, p.base_rate_bp,
                         p.inherited_rate_bp) for p in session.exec(select(CommissionPlan))),
        "assignments": sorted((customers[a.customer_id].code, no(a.employee_id), a.start_at,
                               a.end_at, a.source) for a in session.exec(select(Assignment))),
        "orders": sorted((o.external_id, o.kind, customers[o.customer_id].code, o.amount_fen,
                          o.currency, o.booked_at, o.period, o.product_line,
                          external.get(o.original_order_id)) for o in orders),
    }


def row_counts(sessions: SessionFactory) -> dict[str, int]:
    with sessions() as s:
        counts = {t.__name__: int(s.exec(select(func.count()).select_from(t)).one())
                  for t in [*TABLES, AuditEvent]}
    return counts


CliRun = Callable[..., tuple[int, str]]


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The demo data in a SQLite database, its snapshot, and its export as CSV and .xlsx."""
    base = tmp_path_factory.mktemp("demo")
    url = f"sqlite:///{base / 'demo.db'}"
    migrate(url)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        load_demo_data(session, datetime.now(UTC) - timedelta(minutes=1))
    with session_factory(engine)() as session:
        expected = snapshot(session)
    engine.dispose()
    mp = pytest.MonkeyPatch()
    mp.setenv("BATON_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        for fmt in ("csv", "xlsx"):
            assert cli.main(["export", str(base / fmt), "--format", fmt]) == 0
    finally:
        mp.undo()
        get_settings.cache_clear()
    yield {"snapshot": expected, "csv": base / "csv", "xlsx": base / "xlsx"}


@pytest.fixture
def run_cli(db_url: str, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> Iterator[CliRun]:
    """`cli.py ARGS` in-process against the test's (empty, migrated) database."""
    monkeypatch.setenv("BATON_DATABASE_URL", db_url)
    get_settings.cache_clear()

    def run(*argv: str) -> tuple[int, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out + err

    yield run
    get_settings.cache_clear()


def summary(out: str) -> dict[str, tuple[int, int, int, int]]:
    """file -> (rows, created, updated, unchanged) from the report's first lines."""
    found = {}
    for line in out.splitlines():
        if ": " in line and " rows; " in line:
            file, rest = line.split(": ", 1)
            numbers = [int(w) for w in rest.replace(",", " ").replace(";", " ").split()
                       if w.isdigit()]
            found[file] = tuple(numbers[:4])
    return found


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_demo_data_round_trip_and_rerun(fmt: str, demo_export: dict[str, Any], run_cli: CliRun,
                                        sessions: SessionFactory) -> None:
    folder: Path = demo_export[fmt]
    assert all(v == 0 for v in row_counts(sessions).values()), "the target must be empty"

    code, out = run_cli("import", "all", str(folder), "--dry-run")
    assert code == 0, out
    assert all(v == 0 for v in row_counts(sessions).values()), "a dry run writes nothing"

    code, out = run_cli("import", "all", str(folder))
    assert code == 0, out
    expected: Snapshot = demo_export["snapshot"]
    with sessions() as s:
        imported = snapshot(s)
    for table, rows in expected.items():
        assert imported[table] == rows, f"{table} differs from the demo data"
    assert len(imported["orders"]) > 1000 and len(imported["customers"]) == 60
    counts = summary(out)
    assert counts[f"orders.{fmt}"] == (len(expected["orders"]), len(expected["orders"]), 0, 0)
    assert counts[f"owners.{fmt}"] == (60, 60, 0, 0)
    after_first = row_counts(sessions)
    assert after_first["AuditEvent"] == 1
    with sessions() as s:
        # imported orders earn commission like posted ones: the plans and owners were in first
        assert s.exec(select(func.count()).select_from(Order)).one() > 0
        from models import CommissionLine
        assert s.exec(select(func.count()).select_from(CommissionLine)).one() == \
            len(expected["orders"])

    # the rerun: nothing changes, every row is reported unchanged, one more summary event
    code, out = run_cli("import", "all", str(folder))
    assert code == 0, out
    for file, (rows, created, updated, unchanged) in summary(out).items():
        assert (created, updated, unchanged) == (0, 0, rows), file
    with sessions() as s:
        assert snapshot(s) == imported
        events = s.exec(select(AuditEvent).where(AuditEvent.event_type == EVENT_IMPORTED)
                        .order_by(AuditEvent.id)).all()
    assert row_counts(sessions) == {**after_first, "AuditEvent": 2}
    assert len(events) == 2
    assert events[0].after is not None and events[1].after is not None
    assert events[0].after["customers"]["created"] == 60
    assert all(c["created"] == 0 and c["updated"] == 0 for c in events[1].after.values())


# five planted errors of different kinds in the history file, the other files clean
PLANTED = {3: ("customer_code", "UNKNOWN_CUSTOMER"),
           4: ("employee_no", "UNKNOWN_EMPLOYEE"),
           5: ("start_at", "OVERLAPPING_PERIOD"),
           6: ("end_at", "IN_FUTURE"),
           7: ("start_at", "DUPLICATE_ROW")}


def planted_history(owners_csv: Path) -> str:
    owners = {r["customer_code"]: r for r in csv.DictReader(
        io.StringIO(owners_csv.read_text("utf-8-sig")))}
    since = datetime.fromisoformat(owners["C0002"]["start_at"])
    before = (since - timedelta(days=400)).isoformat()
    lines = [
        "customer_code,employee_no,start_at,end_at,source",
        "C0001,E101,2020-01-01,2021-01-01,FOUND",  # 2: fine
        "C9999,E101,2020-01-01,2021-01-01,FOUND",  # 3: no such customer
        "C0003,E999,2020-01-01,2021-01-01,FOUND",  # 4: no such employee
        # 5: runs into the current owner's period
        f"C0002,E105,{before},{(since + timedelta(days=1)).isoformat()},REASSIGNMENT",
        "C0004,E101,2020-01-01,2099-01-01,FOUND",  # 6: ends in the future
        "C0001,E102,2020-01-01,2020-06-01,FOUND",  # 7: the key of row 2 again
        "C0005,E102,2019-01-01,2019-06-01,REASSIGNMENT",  # 8: fine
    ]
    return "\n".join(lines) + "\n"


def test_planted_errors_report_exactly_those_rows_and_write_nothing(
        demo_export: dict[str, Any], run_cli: CliRun, sessions: SessionFactory,
        tmp_path: Path) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    for source in Path(demo_export["csv"]).iterdir():
        (folder / source.name).write_bytes(source.read_bytes())
    (folder / "assignments.csv").write_text(planted_history(folder / "owners.csv"), "utf-8")
    errors_csv = tmp_path / "problems.csv"

    before = row_counts(sessions)
    for extra in (["--dry-run"], []):
        code, out = run_cli("import", "all", str(folder), "--errors-out", str(errors_csv),
                            *extra)
        assert code == 1, out
        assert "5 problem(s) in 5 row(s); nothing was written" in out
        with errors_csv.open(encoding="utf-8-sig", newline="") as f:
            problems = list(csv.DictReader(f))
        assert {int(p["row"]): (p["column"], p["code"]) for p in problems} == PLANTED
        assert {p["file"] for p in problems} == {"assignments.csv"}
        assert all(p["message"] for p in problems)
        by_row = {int(p["row"]): p for p in problems}
        assert by_row[3]["value"] == "C9999" and "C9999" in by_row[3]["message"]
        assert "row 2" in by_row[7]["message"]
        assert "overlaps row 3 of owners.csv" in by_row[5]["message"]  # C0002's owner
        assert row_counts(sessions) == before  # not one row, not one audit event
    # the printed table names the same rows
    table_rows = [line for line in out.splitlines() if line.startswith("assignments.csv ")]
    assert sorted(int(line.split()[1]) for line in table_rows) == sorted(PLANTED)


def test_single_files_in_order_then_a_conflict_is_refused(
        demo_export: dict[str, Any], run_cli: CliRun, sessions: SessionFactory,
        tmp_path: Path) -> None:
    """One kind at a time (units first without heads), then history may not be rewritten."""
    folder: Path = demo_export["csv"]
    code, out = run_cli("import", "org-units", str(folder / "org-units.csv"))
    assert code == 1 and "UNKNOWN_EMPLOYEE" in out  # the heads are not employees yet
    units = (folder / "org-units.csv").read_text("utf-8-sig").splitlines()
    no_heads = [",".join(line.split(",")[:4] + [""]) for line in units]
    (tmp_path / "units.csv").write_text("\n".join(no_heads) + "\n", "utf-8")
    assert run_cli("import", "org_units", str(tmp_path / "units.csv"))[0] == 0
    outputs = {}
    for kind in ("employees", "org-units", "customers", "owners"):
        code, outputs[kind] = run_cli("import", kind, str(folder / f"{kind}.csv"))
        assert code == 0, outputs[kind]
    assert "org-units.csv: 6 rows; 0 created, 6 updated, 0 unchanged" in outputs["org-units"]
    with sessions() as s:
        heads = {u.code: u.head_employee_id for u in s.exec(select(OrgUnit))}
    assert all(heads.values()), "the second import of the units set their heads"

    owners = (folder / "owners.csv").read_text("utf-8-sig").splitlines()
    moved = [owners[0], owners[1].replace(",E100,", ",E101,")]
    (tmp_path / "owners.csv").write_text("\n".join(moved) + "\n", "utf-8")
    before = row_counts(sessions)
    code, out = run_cli("import", "owners", str(tmp_path / "owners.csv"))
    assert code == 1
    assert "CONFLICT" in out and "reassignment request" in out
    assert row_counts(sessions) == before


def test_help_names_every_kind(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["import", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in [*KINDS, "all", "template"])


@pytest.mark.parametrize("kind", list(KINDS))
def test_templates(kind: str, tmp_path: Path) -> None:
    for fmt in ("csv", "xlsx"):
        out = tmp_path / f"t.{fmt}"
        assert cli.main(["import", "template", kind, "--format", fmt, "-o", str(out)]) == 0
        columns = list(KINDS[kind].column_names)
        if fmt == "csv":
            rows = list(csv.reader(io.StringIO(out.read_text("utf-8-sig"))))
            assert rows[0] == columns and len(rows) == 2
            assert rows[1] == [c.example for c in KINDS[kind].columns]
        else:
            book = load_workbook(out)
            assert book.sheetnames == [kind, "columns"]
            assert [c.value for c in book[kind][1]] == columns
            assert all(c.comment is not None for c in book[kind][1])
            described = [r[0] for r in book["columns"].iter_rows(min_row=2, values_only=True)]
            assert described[:len(columns)] == columns


def test_docs_list_every_column_as_the_definitions_do() -> None:
    doc = (ROOT / "docs" / "IMPORT.md").read_text("utf-8")
    assert doc.endswith("\n\n" + columns_markdown()), \
        "docs/IMPORT.md: replace the column reference with `python -m domain.importing`"


SMALL = {
    "org-units": ["code,name,function,parent_code,head_employee_no",
                  "CO,Acme,company,,E1"],
    "employees": ["employee_no,name,role,org_unit_code,manager_no,username,account_roles",
                  "E1,Boss,director,CO,,e1,director",
                  "E2,Li,sales,CO,E1,e2,sales"],
    "customers": ["code,name,found_by_employee_no,created_at",
                  "C1,Wharf Ltd,E2,2024-01-01"],
    "plans": ["employee_no,effective_from,effective_to,base_rate_bp,inherited_rate_bp",
              "E2,2024-01-01,,300,200"],
    "owners": ["customer_code,employee_no,start_at", "C1,E2,2024-01-01"],
}


def write_folder(folder: Path, files: dict[str, list[str]]) -> Path:
    folder.mkdir(exist_ok=True)
    for name, lines in files.items():
        (folder / f"{name}.csv").write_text("\n".join(lines) + "\n", "utf-8")
    return folder


def test_a_rerun_updates_what_may_change_and_refuses_to_rewrite_history(
        run_cli: CliRun, sessions: SessionFactory, tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "1", SMALL)
    (folder / "customer.csv").write_text("code,name\nC9,Typo Ltd\n", "utf-8")
    code, out = run_cli("import", "all", str(folder))
    assert code == 0, out
    assert "not imported (not named after a kind): customer.csv" in out

    changed = {**SMALL,
               "employees": [SMALL["employees"][0], SMALL["employees"][1],
                             "E2,Li Na,sales,CO,E1,e2,\"sales,manager\""],
               "customers": [SMALL["customers"][0], "C1,Wharf Group,E2,2024-01-01"],
               # appended: closes the stored plan where it starts
               "plans": [*SMALL["plans"], "E2,2025-01-01,,350,250"]}
    code, out = run_cli("import", "all", str(write_folder(tmp_path / "2", changed)))
    assert code == 0, out
    counts = summary(out)
    assert counts["employees.csv"] == (2, 0, 1, 1)
    assert counts["customers.csv"] == (1, 0, 1, 0)
    assert counts["plans.csv"] == (2, 1, 0, 1)
    with sessions() as s:
        li = s.exec(select(Employee).where(Employee.employee_no == "E2")).one()
        account = s.exec(select(UserAccount).where(UserAccount.employee_id == li.id)).one()
        plans = s.exec(select(CommissionPlan).order_by(CommissionPlan.effective_from)).all()
    assert li.name == "Li Na"
    assert account.roles == ["sales", "manager"] and account.token_version == 1
    assert plans[0].effective_to == plans[1].effective_from
    assert (plans[1].base_rate_bp, plans[1].effective_to) == (350, None)
    assert run_cli("import", "all", str(tmp_path / "2"))[1].count("0 created, 0 updated") == 5
    # a column left out of a file leaves its stored values alone (an empty cell would clear)
    (tmp_path / "few.csv").write_text("employee_no,name,role,org_unit_code\nE2,Li Na,sales,CO\n",
                                      "utf-8")
    code, out = run_cli("import", "employees", str(tmp_path / "few.csv"))
    assert code == 0 and "few.csv: 1 rows; 0 created, 0 updated, 1 unchanged" in out, out
    with sessions() as s:
        li = s.exec(select(Employee).where(Employee.employee_no == "E2")).one()
        assert li.manager_id is not None

    before = row_counts(sessions)
    history = {"plans": [SMALL["plans"][0], "E2,2024-01-01,2025-01-01,310,200"],
               "customers": [SMALL["customers"][0], "C1,Wharf Group,E1,2024-01-01"],
               "employees": [SMALL["employees"][0], "E2,Li,sales,CO,E1,li,sales"]}
    code, out = run_cli("import", "all", str(write_folder(tmp_path / "3", history)))
    assert code == 1
    assert [line.split()[:4] for line in out.splitlines() if "CONFLICT" in line] == [
        ["employees.csv", "2", "username", "li"],
        ["customers.csv", "2", "found_by_employee_no", "E1"],
        ["plans.csv", "2", "base_rate_bp", "310"]]
    assert row_counts(sessions) == before
    with sessions() as s:  # the valid employee row of the refused run was not kept either
        assert s.exec(select(Employee).where(Employee.employee_no == "E2")).one().name == \
            "Li Na"


def test_orders_from_xlsx_report_their_spreadsheet_rows(
        run_cli: CliRun, sessions: SessionFactory, tmp_path: Path) -> None:
    from domain.importing import ORDERS
    from domain.tabular import write_xlsx

    assert run_cli("import", "all", str(write_folder(tmp_path / "org", SMALL)))[0] == 0
    rows = [["SO-1", "ORDER", "C1", "120000", "CNY", "2025-03-01T09:30:00+08:00", "", ""],
            ["SO-2", "ORDER", "C1", "-5", "CNY", "2025-03-02", "", ""],
            ["SO-3", "ORDER", "C1", "100", "CNY", "2099-03-02", "", ""],
            ["SO-4", "REFUND", "", "20000", "CNY", "2025-03-05", "", "SO-1"]]
    path = tmp_path / "orders.xlsx"
    path.write_bytes(write_xlsx(ORDERS, rows))
    before = row_counts(sessions)
    code, out = run_cli("import", "orders", str(path))
    assert code == 1
    reported = {tuple(line.split()[:3]) for line in out.splitlines()
                if line.startswith("orders.xlsx ")}
    assert reported == {("orders.xlsx", "3", "amount_fen"), ("orders.xlsx", "4", "booked_at")}
    assert "NOT_POSITIVE" in out and "IN_FUTURE" in out
    assert row_counts(sessions) == before

    path.write_bytes(write_xlsx(ORDERS, [rows[0], rows[3]]))
    code, out = run_cli("import", "orders", str(path))
    assert code == 0, out
    with sessions() as s:
        amounts = {o.external_id: o.amount_fen for o in s.exec(select(Order))}
        event = s.exec(select(AuditEvent).where(AuditEvent.event_type == EVENT_IMPORTED)
                       .order_by(AuditEvent.id.desc())).first()  # type: ignore[union-attr]
    assert amounts == {"SO-1": 120_000, "SO-4": -20_000}
    assert event is not None and event.after == {
        "orders": {"file": "orders.xlsx", "rows": 2, "created": 2, "updated": 0,
                   "unchanged": 0}}
    with sessions() as s:  # the import's summary is the only event: ingest wrote none
        assert s.exec(select(func.count()).select_from(AuditEvent)
                      .where(AuditEvent.event_type == "ORDERS_IMPORTED")).one() == 0
