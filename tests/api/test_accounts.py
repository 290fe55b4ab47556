"""Account administration (admin only, every change audited) and offboarding (HR): an
employee who has left can no longer log in or use a token, and their records remain."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt
import pytest
from sqlmodel import col, func, select

from models import AuditEvent, Employee, EmploymentStatus, ReassignmentRequest, Statement
from models.org import UserAccount
from models.types import utcnow
from tests.api.conftest import TEST_SECRET, Api, assert_problem
from tests.factories import PASSWORD

STRONG = "amber kettle under northern stars"


@pytest.fixture
def admin(api: Api) -> int:
    """The CEO's account also holds the admin role."""
    with api.sessions() as s:
        account = s.exec(select(UserAccount).where(
            UserAccount.employee_id == api.org.ceo)).one()
        account.roles = ["director", "admin"]
        s.add(account)
    return api.org.ceo


def new_employee(api: Api, no: str = "E150") -> int:
    with api.sessions() as s:
        unit = s.get(Employee, api.org.sales_a1)
        assert unit is not None
        e = Employee(employee_no=no, name="Sun New", email=f"{no.lower()}@example.test",
                     role="sales", org_unit_id=unit.org_unit_id, manager_id=api.org.manager_a)
        s.add(e)
        s.flush()
        assert e.id is not None
        return e.id


def events(api: Api, *types: str) -> list[AuditEvent]:
    with api.sessions() as s:
        return list(s.exec(select(AuditEvent).where(col(AuditEvent.event_type).in_(types))
                           .order_by(col(AuditEvent.chain_index))).all())


async def login(api: Api, username: str, password: str = PASSWORD) -> Any:
    return await api.http.post("/api/v1/auth/login",
                               json={"username": username, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_admin_manages_accounts_and_every_change_is_audited(api: Api, admin: int) -> None:
    headers = await api.auth(admin)
    employee_id = new_employee(api)

    r = await api.http.get("/api/v1/accounts", headers=headers, params={"q": "e02"})
    assert r.status_code == 200, r.text
    assert [a["username"] for a in r.json()["items"]] == ["e020", "e021"]
    assert "password_hash" not in r.text

    # create, with two roles
    r = await api.http.post("/api/v1/accounts", headers=headers, json={
        "employee_id": employee_id, "username": "sun", "roles": ["sales", "finance"],
        "password": STRONG})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["roles"] == ["sales", "finance"] and created["is_active"]
    account_id = created["id"]
    first = (await login(api, "sun", STRONG)).json()

    # new roles: the old access token stops, a refresh brings the new roles
    r = await api.http.put(f"/api/v1/accounts/{account_id}/roles", headers=headers,
                           json={"roles": ["sales"]})
    assert r.status_code == 200 and r.json()["roles"] == ["sales"]
    assert_problem(await api.http.get("/api/v1/me", headers=bearer(first["access_token"])),
                   401, "token-revoked")
    r = await api.http.post("/api/v1/auth/refresh",
                            json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    assert jwt.decode(r.json()["access_token"], TEST_SECRET,
                      algorithms=["HS256"])["roles"] == ["sales"]
    second = r.json()

    # disable: no login, sessions end; enable: login again
    r = await api.http.post(f"/api/v1/accounts/{account_id}/disable", headers=headers,
                            json={"reason": "suspected misuse"})
    assert r.status_code == 200 and not r.json()["is_active"]
    assert_problem(await login(api, "sun", STRONG), 401, "account-inactive")
    assert_problem(await api.http.get("/api/v1/me", headers=bearer(second["access_token"])),
                   401, "account-inactive")
    r = await api.http.post(f"/api/v1/accounts/{account_id}/enable", headers=headers)
    assert r.status_code == 200 and r.json()["is_active"]
    assert (await login(api, "sun", STRONG)).status_code == 200
    r = await api.http.post("/api/v1/auth/refresh",
                            json={"refresh_token": second["refresh_token"]})
    assert_problem(r, 401, "refresh-token-revoked")  # disabling ended that session for good

    # lock-out, then unlock
    for _ in range(5):
        await login(api, "sun", "wrong")
    r = await api.http.get("/api/v1/accounts", headers=headers, params={"locked": True})
    assert [a["username"] for a in r.json()["items"]] == ["sun"]
    r = await api.http.post(f"/api/v1/accounts/{account_id}/unlock", headers=headers)
    assert r.status_code == 200 and not r.json()["locked"]
    assert (await login(api, "sun", STRONG)).status_code == 200

    # reset the password: the policy applies, then every session ends
    session = (await login(api, "sun", STRONG)).json()
    r = await api.http.post(f"/api/v1/accounts/{account_id}/password", headers=headers,
                            json={"new_password": "sun12345"})
    assert_problem(r, 422, "weak-password")
    r = await api.http.post(f"/api/v1/accounts/{account_id}/password", headers=headers,
                            json={"new_password": "copper willow rain garden"})
    assert r.status_code == 200, r.text
    assert_problem(await api.http.get("/api/v1/me", headers=bearer(session["access_token"])),
                   401, "token-revoked")
    assert (await login(api, "sun", "copper willow rain garden")).status_code == 200

    audited = events(api, "ACCOUNT_CREATED", "ACCOUNT_ROLES_CHANGED", "ACCOUNT_DISABLED",
                     "ACCOUNT_ENABLED", "ACCOUNT_UNLOCKED", "ACCOUNT_PASSWORD_RESET")
    assert [e.event_type for e in audited] == [
        "ACCOUNT_CREATED", "ACCOUNT_ROLES_CHANGED", "ACCOUNT_DISABLED", "ACCOUNT_ENABLED",
        "ACCOUNT_UNLOCKED", "ACCOUNT_PASSWORD_RESET"]
    for event in audited:
        assert event.actor_id == admin
        assert (event.entity_type, event.entity_id) == ("user_account", str(account_id))
        assert event.after is not None
        everything = str((event.before, event.after, event.detail))
        assert "argon2" not in everything and "password_hash" not in everything
    created_event, roles_event, disabled_event = audited[:3]
    assert created_event.before is None
    assert roles_event.before is not None and roles_event.after is not None
    assert roles_event.before["roles"] == ["sales", "finance"]
    assert roles_event.after["roles"] == ["sales"]
    assert disabled_event.reason == "suspected misuse"
    assert disabled_event.after is not None and disabled_event.after["is_active"] is False


async def test_account_creation_refuses_conflicts_and_weak_passwords(api: Api,
                                                                     admin: int) -> None:
    headers = await api.auth(admin)
    employee_id = new_employee(api)
    body = {"employee_id": employee_id, "username": "e020", "roles": ["sales"],
            "password": STRONG}
    assert_problem(await api.http.post("/api/v1/accounts", headers=headers, json=body),
                   409, "username-taken")
    body |= {"username": "sun", "employee_id": api.org.sales_a1}
    assert_problem(await api.http.post("/api/v1/accounts", headers=headers, json=body),
                   409, "employee-has-account")
    body |= {"employee_id": 999_999}
    assert_problem(await api.http.post("/api/v1/accounts", headers=headers, json=body),
                   404, "no-employee")
    body |= {"employee_id": employee_id, "password": "E150-password"}
    problem = assert_problem(await api.http.post("/api/v1/accounts", headers=headers,
                                                 json=body), 422, "weak-password")
    assert {"contains-employee-no", "too-guessable"} <= {e["code"] for e in problem["errors"]}
    body |= {"password": STRONG, "roles": ["wizard"]}
    assert_problem(await api.http.post("/api/v1/accounts", headers=headers, json=body),
                   422, "validation-failed")
    assert events(api, "ACCOUNT_CREATED") == []


async def test_an_admin_cannot_lock_themselves_out(api: Api, admin: int) -> None:
    headers = await api.auth(admin)
    with api.sessions() as s:
        own = s.exec(select(UserAccount).where(UserAccount.employee_id == admin)).one()
    assert_problem(await api.http.post(f"/api/v1/accounts/{own.id}/disable", headers=headers),
                   409, "own-account")
    assert_problem(await api.http.put(f"/api/v1/accounts/{own.id}/roles", headers=headers,
                                      json={"roles": ["director"]}), 409, "own-admin-role")


@pytest.mark.parametrize("who", ["hr_head", "manager_a", "sales_a1", "legal_head"])
async def test_only_admins_manage_accounts(api: Api, who: str) -> None:
    headers = await api.auth(getattr(api.org, who))
    for method, path, body in (
            ("GET", "/api/v1/accounts", None),
            ("POST", "/api/v1/accounts", {"employee_id": api.org.sales_a1, "username": "x12",
                                          "roles": ["admin"], "password": STRONG}),
            ("PUT", "/api/v1/accounts/1/roles", {"roles": ["admin"]}),
            ("POST", "/api/v1/accounts/1/disable", None),
            ("POST", "/api/v1/accounts/1/unlock", None),
            ("POST", "/api/v1/accounts/1/password", {"new_password": STRONG})):
        r = await api.http.request(method, path, headers=headers, json=body)
        assert_problem(r, 403, "forbidden-role")


# --- offboarding -------------------------------------------------------------------------------


async def _submit(api: Api, body: dict[str, Any], key: str) -> Any:
    return await api.http.post("/api/v1/reassignments", json=body, headers={
        **await api.auth(api.org.manager_a), "Idempotency-Key": key})


async def test_offboarding_ends_access_but_keeps_the_records(api: Api) -> None:
    org = api.org
    r = await _submit(api, {"from_employee_id": org.sales_a1, "to_employee_id": org.sales_a2,
                            "customer_ids": org.customers_a1[:1],
                            "reason": "WORKLOAD_BALANCING"}, "before-leaving")
    assert r.status_code == 201, r.text
    request_id = r.json()["id"]
    with api.sessions() as s:
        s.add(Statement(employee_id=org.sales_a1, period="2026-01", total_fen=12_300))

    r = await api.http.post("/api/v1/auth/login", json={"username": "e100",
                                                        "password": PASSWORD})
    seller = r.json()
    hr = await api.auth(org.hr_head)
    r = await api.http.post(f"/api/v1/employees/{org.sales_a1}/offboard", headers=hr,
                            json={"leave_date": utcnow().isoformat(), "reason": "resigned"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "LEFT" and r.json()["left_now"]
    assert r.json()["refresh_tokens_revoked"] == 1

    # no token, no refresh, no login, each saying why
    problem = assert_problem(await api.http.get("/api/v1/me",
                                                headers=bearer(seller["access_token"])),
                             401, "account-inactive")
    assert "left the company" in problem["detail"]
    r = await api.http.post("/api/v1/auth/refresh",
                            json={"refresh_token": seller["refresh_token"]})
    assert_problem(r, 401, "refresh-token-revoked")
    problem = assert_problem(await login(api, "e100"), 401, "account-inactive")
    assert "left the company" in problem["detail"]

    # every record stays
    r = await api.http.get(f"/api/v1/reassignments/{request_id}", headers=hr)
    assert r.status_code == 200 and r.json()["from_employee_id"] == org.sales_a1
    with api.sessions() as s:
        assert s.exec(select(func.count()).select_from(Statement).where(
            Statement.employee_id == org.sales_a1)).one() == 1
        assert s.exec(select(func.count()).select_from(ReassignmentRequest)).one() == 1
        assert s.exec(select(UserAccount).where(
            UserAccount.employee_id == org.sales_a1)).one() is not None

    [event] = events(api, "EMPLOYEE_OFFBOARDED")
    assert event.actor_id == org.hr_head and event.reason == "resigned"
    assert (event.entity_type, event.entity_id) == ("employee", str(org.sales_a1))
    assert event.before == {"status": "EMPLOYED", "leave_date": None}
    assert event.after is not None and event.after["status"] == "LEFT"

    r = await api.http.post(f"/api/v1/employees/{org.sales_a1}/offboard", headers=hr,
                            json={"leave_date": utcnow().isoformat()})
    assert_problem(r, 409, "already-left")


async def test_a_future_leave_date_keeps_access_until_then(api: Api) -> None:
    org = api.org
    seller = await api.auth(org.sales_a1)
    hr = await api.auth(org.hr_staff)
    leave = utcnow() + timedelta(days=7)
    r = await api.http.post(f"/api/v1/employees/{org.sales_a1}/offboard", headers=hr,
                            json={"leave_date": leave.isoformat()})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "EMPLOYED" and not r.json()["left_now"]
    assert (await api.http.get("/api/v1/me", headers=seller)).status_code == 200

    # the departure handover can now be scheduled for that date (policy: NO_DEPARTURE gone)
    r = await _submit(api, {"from_employee_id": org.sales_a1, "to_employee_id": org.sales_a2,
                            "customer_ids": org.customers_a1[:1],
                            "reason": "EMPLOYEE_DEPARTURE"}, "handover")
    assert r.status_code == 201, r.text

    # the day comes: the same token and a login are refused, without anyone flipping a flag
    with api.sessions() as s:
        employee = s.get(Employee, org.sales_a1)
        assert employee is not None
        employee.leave_date = utcnow() - timedelta(minutes=1)
        s.add(employee)
        assert employee.status == EmploymentStatus.EMPLOYED
    assert_problem(await api.http.get("/api/v1/me", headers=seller), 401, "account-inactive")
    assert_problem(await login(api, "e100"), 401, "account-inactive")


@pytest.mark.parametrize("who", ["manager_a", "sales_a1", "legal_head"])
async def test_only_hr_offboards(api: Api, who: str) -> None:
    headers = await api.auth(getattr(api.org, who))
    r = await api.http.post(f"/api/v1/employees/{api.org.sales_a2}/offboard", headers=headers,
                            json={"leave_date": utcnow().isoformat()})
    assert_problem(r, 403, "forbidden-role")


async def test_offboarding_needs_an_explicit_leave_date(api: Api) -> None:
    hr = await api.auth(api.org.hr_head)
    r = await api.http.post(f"/api/v1/employees/{api.org.sales_a2}/offboard", headers=hr,
                            json={})
    assert_problem(r, 422, "validation-failed")
    r = await api.http.post(f"/api/v1/employees/{api.org.sales_a2}/offboard", headers=hr,
                            json={"leave_date": "2026-12-31T18:00:00"})  # no time zone
    assert_problem(r, 422, "validation-failed")
    r = await api.http.post("/api/v1/employees/999999/offboard", headers=hr,
                            json={"leave_date": utcnow().isoformat()})
    assert_problem(r, 404, "no-employee")
