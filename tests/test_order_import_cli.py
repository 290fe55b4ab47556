"""CSV import of orders: `cli.py import-orders` and POST /api/v1/orders/import.

Both use models.order_ingest: a dry run reports every bad row with its 1-based line number
(the header is line 1) and writes nothing; a real import writes only a clean file, in one
transaction.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import col, select

import cli
from api.deps import get_temporal_client
from api.main import create_app
from models import AuditEvent, Order, OrderKind
from models.db import SessionFactory
from settings import get_settings
from tests.api.conftest import Api, FakeTemporal, api_settings, assert_problem
from tests.factories import SmallOrg

ROOT = Path(__file__).resolve().parent.parent
HEADER = ("external_id,kind,customer_code,amount_fen,currency,booked_at,product_line,"
          "original_external_id")

CLEAN = "\n".join([
    HEADER,
    "IMP-1,ORDER,A1-000,100000,CNY,2026-02-01T10:00:00+08:00,widgets,",
    "IMP-2,,B1-000,250000,CNY,2026-02-02T10:00:00Z,,",  # kind defaults to ORDER
    'IMP-3,REFUND,,40000,CNY,2026-02-10T10:00:00+08:00,"widgets, large",IMP-1',
    "IMP-4,CANCELLATION,B1-000,,CNY,2026-02-11T10:00:00+08:00,,IMP-2",
    "", "",  # blank trailing lines
]) + "\n"

# lines:  1 header, 2 ok, 3 unknown customer, 4 naive time, 5 ok, 6 USD,
#         7 over-refund of line 2, 8 wrong column count, 9 refund of unknown original
DIRTY = "\n".join([
    HEADER,
    "BAD-OK-1,ORDER,A1-000,1000,CNY,2026-02-01T10:00:00+08:00,,",
    "BAD-1,ORDER,NOPE,1000,CNY,2026-02-01T10:00:00+08:00,,",
    "BAD-2,ORDER,A1-000,1000,CNY,2026-02-01 10:00:00,,",
    "BAD-OK-2,ORDER,A2-000,500,CNY,2026-02-03T10:00:00+08:00,,",
    "BAD-3,ORDER,A1-000,1000,USD,2026-02-01T10:00:00+08:00,,",
    "BAD-4,REFUND,,1001,CNY,2026-02-05T10:00:00+08:00,,BAD-OK-1",
    "BAD-5,ORDER,A1-000,1000",
    "BAD-6,REFUND,,10,CNY,2026-02-05T10:00:00+08:00,,NOT-THERE",
]) + "\n"
DIRTY_LINES = {3: "UNKNOWN_CUSTOMER", 4: "NAIVE_DATETIME", 6: "UNSUPPORTED_CURRENCY",
               7: "EXCEEDS_REFUNDABLE", 8: "WRONG_COLUMN_COUNT", 9: "UNKNOWN_ORIGINAL"}


def counts(sessions: SessionFactory) -> tuple[int, int]:
    with sessions() as s:
        return (int(s.exec(select(func.count()).select_from(Order)).one()),
                int(s.exec(select(func.count()).select_from(AuditEvent)).one()))


CliRun = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run_cli(db_url: str, org: SmallOrg, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> Iterator[CliRun]:
    """`cli.py import-orders ARGS` in-process on the test database: (exit code, out, err)."""
    monkeypatch.setenv("BATON_DATABASE_URL", db_url)
    get_settings.cache_clear()

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(["import-orders", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    yield run
    get_settings.cache_clear()


def write(tmp_path: Path, text: str, name: str = "orders.csv", *, bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


# --- CLI -------------------------------------------------------------------------------------


def test_cli_dry_run_reports_every_bad_line_and_writes_nothing(
        run_cli: CliRun, tmp_path: Path, sessions: SessionFactory) -> None:
    before = counts(sessions)
    code, out, _ = run_cli(str(write(tmp_path, DIRTY, bom=True)), "--dry-run")
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "dry run of orders.csv: 8 rows; 2 would be created, 0 duplicates, 6 bad"
    reported = {int(line.split(":")[0].split()[1]): line for line in lines[1:-1]}
    assert set(reported) == set(DIRTY_LINES)
    for number, code_name in DIRTY_LINES.items():
        assert code_name in reported[number]
    assert "(BAD-1): customer_code UNKNOWN_CUSTOMER: No customer has the code 'NOPE'" \
        in reported[3]
    assert lines[-1].startswith("dry run: nothing was written")
    assert counts(sessions) == before
    # the real import refuses the same file with the same report
    code, out, _ = run_cli(str(tmp_path / "orders.csv"))
    assert code == 1 and "nothing was imported" in out
    assert counts(sessions) == before


def test_cli_imports_a_clean_file(run_cli: CliRun, tmp_path: Path, sessions: SessionFactory,
                                  org: SmallOrg) -> None:
    path = write(tmp_path, CLEAN, bom=True)
    code, out, _ = run_cli(str(path), "--dry-run")
    assert code == 0, out
    assert out.splitlines()[0] == \
        "dry run of orders.csv: 4 rows; 4 would be created, 0 duplicates, 0 bad"
    before = counts(sessions)
    code, out, _ = run_cli(str(path))
    assert code == 0, out
    assert out.splitlines()[0] == "imported orders.csv: 4 rows; 4 created, 0 duplicates"
    assert counts(sessions) == (before[0] + 4, before[1] + 1)
    with sessions() as s:
        rows = {o.external_id: o for o in s.exec(
            select(Order).where(col(Order.external_id).like("IMP-%")))}
        assert rows["IMP-2"].kind == OrderKind.ORDER and rows["IMP-2"].product_line is None
        assert rows["IMP-3"].amount_fen == -40_000
        assert rows["IMP-3"].product_line == "widgets, large"
        assert rows["IMP-3"].customer_id == org.customers_a1[0]
        assert rows["IMP-4"].amount_fen == -250_000  # the whole remainder
        event = s.exec(select(AuditEvent).where(AuditEvent.event_type == "ORDERS_IMPORTED")).one()
        assert event.actor_id is None and event.detail["created"] == 4
    # importing the same file again is a no-op
    code, out, _ = run_cli(str(path))
    assert code == 0 and "0 created, 4 duplicates" in out
    assert counts(sessions) == (before[0] + 4, before[1] + 1)


@pytest.mark.parametrize("text, message", [
    ("external_id,kind,customer,amount_fen,currency,booked_at,product_line,"
     "original_external_id\nX,ORDER,A1-000,1,CNY,2026-02-01T00:00:00Z,,\n",
     "line 1: BAD_HEADER: Line 1 must be the header external_id,kind,customer_code,"),
    ("", "line 1: EMPTY_FILE"),
    (HEADER + "\n\n", "line 2: NO_ROWS"),
])
def test_cli_wrong_file(run_cli: CliRun, tmp_path: Path, sessions: SessionFactory,
                        text: str, message: str) -> None:
    before = counts(sessions)
    code, out, _ = run_cli(str(write(tmp_path, text)), "--dry-run")
    assert code == 1
    assert out.startswith("dry run of orders.csv: unreadable as it is\n")
    assert message in out
    if "BAD_HEADER" in message:
        assert "missing customer_code; unknown 'customer'" in out
    assert counts(sessions) == before


def test_cli_missing_file(run_cli: CliRun, tmp_path: Path) -> None:
    code, _, err = run_cli(str(tmp_path / "nope.csv"))
    assert code == 2 and "cannot read" in err


def test_cli_as_a_script_does_not_import_the_api(db_url: str, org: SmallOrg,
                                                 tmp_path: Path) -> None:
    path = write(tmp_path, CLEAN)
    script = ("import sys, cli\n"
              f"code = cli.main(['import-orders', {str(path)!r}, '--dry-run'])\n"
              "assert not [m for m in sys.modules if m == 'api' or m.startswith('api.')]\n"
              "sys.exit(code)\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=120,
                            env={**os.environ, "BATON_DATABASE_URL": db_url})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 would be created" in result.stdout


# --- API ---------------------------------------------------------------------------------------

IMPORT_URL = "/api/v1/orders/import"


@pytest.fixture
async def web(db_url: str, org: SmallOrg, sessions: SessionFactory) -> AsyncIterator[Api]:
    """The API on the test database (as tests/api/conftest.py builds it)."""
    app = create_app(api_settings(db_url))
    app.dependency_overrides[get_temporal_client] = FakeTemporal
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://baton.test") as http:
        yield Api(http=http, org=org, sessions=sessions, app=app)


async def test_api_dry_run_and_refused_import(web: Api) -> None:
    headers = {**await web.auth(web.org.hr_staff), "Content-Type": "text/csv"}
    before = web.counts()
    r = await web.http.post(IMPORT_URL, params={"dry_run": "true"},
                            content=("\ufeff" + DIRTY).encode(), headers=headers)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["dry_run"] is True and report["ok"] is False
    assert (report["rows"], report["would_create"], report["created"]) == (8, 2, 0)
    assert {e["line"]: e["code"] for e in report["errors"]} == DIRTY_LINES
    assert all(e["message"] for e in report["errors"])
    r = await web.http.post(IMPORT_URL, params={"dry_run": "false"}, content=DIRTY.encode(),
                            headers=headers)
    problem = assert_problem(r, 422, "orders-invalid")
    assert {e["line"]: e["code"] for e in problem["errors"]} == DIRTY_LINES
    assert web.counts() == before
    with web.sessions() as s:
        assert s.exec(select(Order).where(col(Order.external_id).like("BAD-%"))).first() is None


async def test_api_imports_a_clean_file_as_csv_body_or_multipart(web: Api) -> None:
    auth = await web.auth(web.org.hr_staff)
    dry = await web.http.post(IMPORT_URL, params={"dry_run": "true"}, content=CLEAN.encode(),
                              headers={**auth, "Content-Type": "text/csv; charset=utf-8"})
    assert dry.status_code == 200 and dry.json()["ok"] and dry.json()["would_create"] == 4
    assert [x["status"] for x in dry.json()["results"]] == ["would_create"] * 4
    assert [x["line"] for x in dry.json()["results"]] == [2, 3, 4, 5]
    r = await web.http.post(IMPORT_URL, files={"file": ("orders.csv", CLEAN.encode(),
                                                        "text/csv")}, headers=auth)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["ok"], body["created"], body["duplicates"]) == (True, 4, 0)
    assert all(x["status"] == "created" and x["id"] for x in body["results"])
    again = await web.http.post(IMPORT_URL, content=CLEAN.encode(),
                                headers={**auth, "Content-Type": "text/csv"})
    assert again.status_code == 200
    assert (again.json()["created"], again.json()["duplicates"]) == (0, 4)
    with web.sessions() as s:
        events = s.exec(select(AuditEvent).where(
            AuditEvent.event_type == "ORDERS_IMPORTED")).all()
        assert [(e.actor_id, e.detail["created"]) for e in events] == [(web.org.hr_staff, 4)]


async def test_api_import_wrong_input(web: Api) -> None:
    auth = await web.auth(web.org.hr_staff)
    r = await web.http.post(IMPORT_URL, params={"dry_run": "true"},
                            content=b"id,amount\n1,2\n", headers={**auth,
                                                                  "Content-Type": "text/csv"})
    assert r.status_code == 200
    [error] = r.json()["errors"]
    assert (error["line"], error["index"], error["code"]) == (1, None, "BAD_HEADER")
    problem = assert_problem(await web.http.post(
        IMPORT_URL, content=b"id,amount\n1,2\n", headers={**auth, "Content-Type": "text/csv"}),
        422, "orders-invalid")
    assert "must be the header" in problem["detail"]
    assert_problem(await web.http.post(IMPORT_URL, json={"x": 1}, headers=auth), 415)
    assert_problem(await web.http.post(IMPORT_URL, content=b"\xff\xfe\x00",
                                       headers={**auth, "Content-Type": "text/csv"}), 422)
    assert_problem(await web.http.post(
        IMPORT_URL, content=CLEAN.encode(),
        headers={**await web.auth(web.org.sales_a1), "Content-Type": "text/csv"}), 403)
