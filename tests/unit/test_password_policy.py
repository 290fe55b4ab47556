"""The password policy (domain/password_policy.py) on its own."""

from __future__ import annotations

import pytest

from domain.password_policy import password_issues
from models.demo_data import DEMO_PASSWORD
from tests.factories import PASSWORD


def codes(password: str, **kwargs: object) -> set[str]:
    args: dict[str, object] = {"username": "e020", "employee_no": "E020",
                               "other_inputs": ["Ma Xiaodong", "ma.xiaodong@example.test"]}
    args.update(kwargs)
    return {i.code for i in password_issues(password, **args)}  # type: ignore[arg-type]


@pytest.mark.parametrize("password", [PASSWORD, DEMO_PASSWORD, "quiet lantern over seven hills",
                                      "Tr0ub4dor&3-horse"])
def test_long_unguessable_passwords_pass(password: str) -> None:
    assert codes(password) == set()


@pytest.mark.parametrize(("password", "expected"), [
    ("short", {"too-short"}),
    ("password1234", {"too-guessable"}),
    ("123456789012", {"too-guessable"}),
    ("iloveyou2024", {"too-guessable"}),
    ("my-E020-longer-phrase", {"contains-username"}),  # username e020 == employee no
    ("xiaodong1990!", {"too-guessable"}),  # from the person's own name
])
def test_weak_passwords_are_refused_with_their_reasons(password: str,
                                                       expected: set[str]) -> None:
    assert expected <= codes(password)


def test_username_and_employee_number_are_separate_checks() -> None:
    found = codes("lantern-E777-over-hills", username="hu", employee_no="E777")
    assert found == {"contains-employee-no"}
    assert "contains-username" in codes("a-quiet-huxiaoming-lantern", username="huxiaoming",
                                        employee_no="E200")


def test_the_minimums_are_settings() -> None:
    assert codes("abc horse ten", min_length=20) >= {"too-short"}
    assert codes("aaaaaaaaaaaaaaaa", min_score=0) == set()


def test_the_reason_says_what_to_do() -> None:
    [issue] = password_issues("password1234", username="x", employee_no="y")
    assert "common password" in issue.message
