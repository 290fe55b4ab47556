"""`cli.py reorganise`: the dry run prints every bad line and the totals, and writes nothing;
a start needs an HR or admin account (the run itself: tests/api/test_reorganisation_devserver)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select

import cli
from models import Customer, Reorganisation
from models.db import SessionFactory
from settings import get_settings
from tests.factories import SmallOrg


def run(db_url: str, monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    monkeypatch.setenv("BATON_DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        return cli.main(["reorganise", *argv])
    finally:
        get_settings.cache_clear()


def test_dry_run_reports_lines_and_totals(db_url: str, org: SmallOrg, sessions: SessionFactory,
                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with sessions() as s:
        codes = [s.get(Customer, c).code for c in org.customers_a1]  # type: ignore[union-attr]
    path = tmp_path / "moves.csv"
    path.write_text("customer_code,new_owner_employee_no\n"
                    f"{codes[0]},E101\n{codes[1]},E102\nNOPE,E101\n{codes[2]},E200\n")
    assert run(db_url, monkeypatch, str(path), "--dry-run") == 1
    out, err = capsys.readouterr()
    assert "line 4: UNKNOWN_CUSTOMER" in err and "line 5: RECEIVER_NOT_SALES" in err
    assert "4 rows, 2 with errors; 2 customers in 2 requests" in out
    # a clean file: exit 0; starting needs an account with the HR or admin role
    path.write_text(f"customer_code,new_owner_employee_no\n{codes[0]},E101\n")
    assert run(db_url, monkeypatch, str(path), "--dry-run") == 0
    assert run(db_url, monkeypatch, str(path)) == 2
    with pytest.raises(SystemExit, match="not HR or an administrator"):
        run(db_url, monkeypatch, str(path), "--as", "e020")
    with sessions() as s:
        assert s.exec(select(func.count()).select_from(Reorganisation)).one() == 0
