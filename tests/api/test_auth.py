"""Login, tokens and the caller's profile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
from sqlmodel import select

from tests.api.conftest import TEST_SECRET, Api, assert_problem, expired_token
from tests.factories import PASSWORD


async def test_login_returns_a_bearer_token_and_me_describes_the_caller(api: Api) -> None:
    r = await api.http.post("/api/v1/auth/login", json={"username": "e020", "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 30 * 60
    claims = jwt.decode(body["access_token"], TEST_SECRET, algorithms=["HS256"])
    assert claims["emp"] == api.org.manager_a and set(claims["roles"]) == {"manager", "sales"}

    me = await api.http.get("/api/v1/me",
                            headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200, me.text
    assert me.json()["employee_id"] == api.org.manager_a
    assert me.json()["employee_no"] == "E020"


async def test_oauth2_form_login_for_the_docs_authorize_button(api: Api) -> None:
    r = await api.http.post("/api/v1/auth/token",
                            data={"username": "e200", "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "bearer"


async def test_wrong_password_is_401_problem(api: Api) -> None:
    r = await api.http.post("/api/v1/auth/login", json={"username": "e020", "password": "nope"})
    body = assert_problem(r, 401, "invalid-credentials")
    assert "WWW-Authenticate" in r.headers
    assert "password" in body["detail"]
    r = await api.http.post("/api/v1/auth/login", json={"username": "ghost", "password": "x"})
    assert_problem(r, 401, "invalid-credentials")


async def test_employee_who_left_cannot_log_in(api: Api) -> None:
    r = await api.http.post("/api/v1/auth/login", json={"username": "e103", "password": PASSWORD})
    assert_problem(r, 401, "account-inactive")


async def test_expired_token_is_401_problem_with_challenge(api: Api) -> None:
    token = expired_token(api.org.manager_a, ["manager"])
    r = await api.http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    body = assert_problem(r, 401, "token-expired")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert "log in again" in body["detail"].lower()


async def test_forged_or_missing_token_is_401(api: Api) -> None:
    forged = jwt.encode({"sub": "1", "emp": api.org.hr_head, "roles": ["hr"],
                         "exp": datetime.now(UTC) + timedelta(minutes=5)},
                        "another-secret-another-secret-another-secret", algorithm="HS256")
    r = await api.http.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert_problem(r, 401, "invalid-token")
    r = await api.http.get("/api/v1/reassignments")
    assert_problem(r, 401, "not-authenticated")
    assert "WWW-Authenticate" in r.headers


async def test_malformed_login_body_is_422_problem(api: Api) -> None:
    r = await api.http.post("/api/v1/auth/login", json={"username": "e020"})
    body = assert_problem(r, 422, "validation-failed")
    assert {"field": "password", "location": "body"}.items() <= body["errors"][0].items()


async def test_disabled_account_cannot_log_in(api: Api) -> None:
    from models import UserAccount

    with api.sessions() as s:
        account = s.exec(select(UserAccount).where(UserAccount.username == "e021")).one()
        account.is_active = False
        s.add(account)
    r = await api.http.post("/api/v1/auth/login", json={"username": "e021", "password": PASSWORD})
    assert_problem(r, 401, "account-inactive")


async def test_token_stops_working_once_the_employee_has_left(api: Api) -> None:
    from models import Employee, EmploymentStatus

    headers = await api.auth(api.org.sales_b1)
    assert (await api.http.get("/api/v1/me", headers=headers)).status_code == 200
    with api.sessions() as s:
        employee = s.get(Employee, api.org.sales_b1)
        assert employee is not None
        employee.status = EmploymentStatus.LEFT
        s.add(employee)
    assert_problem(await api.http.get("/api/v1/me", headers=headers), 401, "account-inactive")
