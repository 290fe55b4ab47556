"""`cli.py create-user`: the password policy applies, and the new account is audited."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import pytest
from sqlmodel import select

import cli
from models import AuditEvent, Employee, UserAccount
from models.db import SessionFactory
from models.passwords import verify_password
from settings import get_settings
from tests.factories import SmallOrg

CliRun = Callable[..., tuple[int, str, str]]


@pytest.fixture
def create_user(db_url: str, org: SmallOrg, sessions: SessionFactory,
                monkeypatch: pytest.MonkeyPatch,
                capsys: pytest.CaptureFixture[str]) -> Iterator[CliRun]:
    """`cli.py create-user ... --password-stdin` for a new employee E150 without an account."""
    monkeypatch.setenv("BATON_DATABASE_URL", db_url)
    get_settings.cache_clear()
    with sessions() as s:
        seller = s.get(Employee, org.sales_a1)
        assert seller is not None
        s.add(Employee(employee_no="E150", name="Sun New", role="sales",
                       org_unit_id=seller.org_unit_id))

    def run(password: str, *argv: str) -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
        code = cli.main(["create-user", *argv, "--password-stdin"])
        out, err = capsys.readouterr()
        return code, out, err

    yield run
    get_settings.cache_clear()


def test_create_user_applies_the_password_policy(create_user: CliRun,
                                                  sessions: SessionFactory) -> None:
    code, _out, err = create_user("sun-E150-pass", "--username", "sun", "--employee-no", "E150",
                                  "--roles", "sales")
    assert code == 2
    assert "choose another password" in err and "employee number" in err
    code, _out, err = create_user("short", "--username", "sun", "--employee-no", "E150",
                                  "--roles", "sales")
    assert code == 2 and "at least 12 characters" in err
    with sessions() as s:
        assert s.exec(select(UserAccount).where(UserAccount.username == "sun")).first() is None


def test_create_user_with_several_roles_is_audited(create_user: CliRun,
                                                   sessions: SessionFactory) -> None:
    code, out, err = create_user("amber kettle under northern stars", "--username", "sun",
                                 "--employee-no", "E150", "--roles", "Finance, sales")
    assert code == 0, err
    assert "with roles sales,finance" in out
    with sessions() as s:
        account = s.exec(select(UserAccount).where(UserAccount.username == "sun")).one()
        assert account.roles == ["sales", "finance"]
        assert verify_password("amber kettle under northern stars", account.password_hash)
        [event] = s.exec(select(AuditEvent).where(
            AuditEvent.event_type == "ACCOUNT_CREATED")).all()
        assert event.detail["via"] == "cli" and event.entity_type == "user_account"
        assert event.after is not None and event.after["username"] == "sun"


def test_create_user_refuses_unknown_roles_and_taken_names(create_user: CliRun) -> None:
    code, _out, err = create_user("amber kettle under northern stars", "--username", "sun",
                                  "--employee-no", "E150", "--roles", "wizard")
    assert code == 2 and "unknown role(s) wizard" in err
    code, _out, err = create_user("amber kettle under northern stars", "--username", "e020",
                                  "--employee-no", "E150", "--roles", "sales")
    assert code == 1 and "taken" in err
