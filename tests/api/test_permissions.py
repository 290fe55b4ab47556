"""The permission table, enforced: every endpoint as every role, and the data scopes.

The table is domain/permissions.py (and docs/PERMISSIONS.md, generated from it). Each route
declares exactly one action through `permit()`/`public()` (pages: `page_permit()`/
`page_public()`, subclasses of the same dependencies); this file finds that declaration on
every route, API and page alike, calls the route once per role, and checks that it is refused
with 403 `forbidden-role` exactly when the table says no (a page answers its HTML 403 page
with the header `X-Problem-Type: .../forbidden-role`). Without a login an API route answers
401 and a page 303 to /login. Then the scope: records outside the caller's org-unit subtree
or involvement answer 404 and are missing from lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from sqlmodel import select

from api.deps import Permit, Public
from domain.permissions import (
    PERMISSIONS,
    PUBLIC_ACTIONS,
    Action,
    permission_table_markdown,
    permitted,
)
from domain.stages import Role
from models.customer import Customer
from models.org import Employee, OrgUnit, UserAccount
from models.passwords import hash_password
from tests.api.conftest import Api, assert_problem
from tests.factories import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = "https://baton.dev/problems/forbidden-role"


@dataclass(frozen=True)
class Endpoint:
    path: str
    methods: frozenset[str]
    dependant: Any


def declared_actions(route: Endpoint) -> list[Action]:
    found: list[Action] = []
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        if isinstance(dependant.call, (Permit, Public)):
            found.append(dependant.call.action)
        stack.extend(dependant.dependencies)
    return found


def is_page(route: Endpoint) -> bool:
    """A web page (web/routes/), not an API or codec endpoint."""
    return not route.path.startswith(("/api/", "/codec"))


def api_routes(app: Any) -> list[Endpoint]:
    """Every endpoint with its full path (FastAPI >= 0.16x keeps included routers nested)."""
    found: list[Endpoint] = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            found.append(Endpoint(route.path, frozenset(route.methods), route.dependant))
        elif hasattr(route, "effective_route_contexts"):
            found.extend(Endpoint(ctx.path, frozenset(ctx.methods), ctx.dependant)
                         for ctx in route.effective_route_contexts())
    return found


# --- the declaration -------------------------------------------------------------------------


async def test_every_endpoint_declares_exactly_one_action(api: Api) -> None:
    routes = api_routes(api.app)
    assert len(routes) > 40  # the whole API, not an empty list that passes vacuously
    assert len([r for r in routes if is_page(r)]) >= 10  # and the pages
    undeclared = {f"{sorted(r.methods)} {r.path}": declared_actions(r) for r in routes
                  if len(declared_actions(r)) != 1}
    assert undeclared == {}, "each route needs exactly one permit()/public() dependency"


async def test_every_action_is_used_and_in_the_table(api: Api) -> None:
    used = {declared_actions(r)[0] for r in api_routes(api.app)}
    assert set(PERMISSIONS) == set(Action)
    assert used == set(Action), f"actions without an endpoint: {set(Action) - used}"


def test_the_docs_show_the_table_as_enforced() -> None:
    docs = (ROOT / "docs" / "PERMISSIONS.md").read_text(encoding="utf-8")
    assert permission_table_markdown() in docs, (
        "docs/PERMISSIONS.md is out of date: regenerate with `python -m domain.permissions`")


def test_admin_reads_no_statements_unless_also_finance() -> None:
    assert not permitted({Role.ADMIN}, Action.STATEMENTS_READ)
    assert permitted({Role.ADMIN, Role.FINANCE}, Action.STATEMENTS_READ)
    assert permitted({Role.ADMIN}, Action.ACCOUNTS_MANAGE)


# --- every endpoint x every role --------------------------------------------------------------


@dataclass
class World:
    users: dict[Role, int]  # one single-role employee per role
    request_id: int
    path_values: dict[str, str]


def _single_role_users(api: Api) -> dict[Role, int]:
    """One employee per role, whose account holds only that role."""
    org = api.org
    with api.sessions() as session:
        finance_unit = OrgUnit(name="Finance", function="finance", parent_id=None)
        session.add(finance_unit)
        session.flush()
        assert finance_unit.id is not None
        extra = {}
        for role, no in ((Role.FINANCE, "E400"), (Role.ADMIN, "E500")):
            employee = Employee(employee_no=no, name=f"{role.value} probe", role=role.value,
                                org_unit_id=finance_unit.id)
            session.add(employee)
            session.flush()
            assert employee.id is not None
            session.add(UserAccount(username=no.lower(), password_hash=hash_password(PASSWORD),
                                    employee_id=employee.id, roles=[role.value]))
            api.org.usernames[employee.id] = no.lower()
            extra[role] = employee.id
        # managers also hold the sales role in the sample org; the probe holds one role only
        account = session.exec(select(UserAccount).where(
            UserAccount.employee_id == org.manager_a)).one()
        account.roles = [Role.MANAGER.value]
        session.add(account)
    return {Role.SALES: org.sales_a1, Role.MANAGER: org.manager_a, Role.DIRECTOR: org.director,
            Role.HR: org.hr_staff, Role.LEGAL: org.legal_head, **extra}


async def _submit(api: Api, requester: int, from_id: int, to_id: int, customers: list[int],
                  key: str) -> int:
    r = await api.http.post("/api/v1/reassignments", headers={
        **await api.auth(requester), "Idempotency-Key": key}, json={
        "from_employee_id": from_id, "to_employee_id": to_id, "customer_ids": customers,
        "reason": "WORKLOAD_BALANCING"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


@pytest.fixture
async def world(api: Api) -> World:
    users = _single_role_users(api)
    org = api.org
    # within team A: manager_b, sales_b1 and the others outside are out of scope
    request_id = await _submit(api, org.manager_a, org.sales_a1, org.sales_a2,
                               org.customers_a1[:1], "matrix-1")
    values = {"request_id": str(request_id), "employee_id": str(org.sales_a1),
              "period": "2026-03", "policy_id": str(org.policy_version_id),
              "passkey_id": "999999", "delegation_id": "999999"}
    return World(users=users, request_id=request_id, path_values=values)


def _url(route: Endpoint, values: dict[str, str]) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        return values.get(name, "1")
    return re.sub(r"\{([^}]+)\}", fill, route.path)


async def _call(api: Api, route: Endpoint, url: str, headers: dict[str, str]) -> Any:
    method = sorted(route.methods - {"HEAD"})[0]
    if method in ("POST", "PUT", "PATCH"):
        return await api.http.request(method, url, headers=headers, json={})
    return await api.http.request(method, url, headers=headers)


def _is_role_refusal(response: Any) -> bool:
    if response.status_code != 403:
        return False
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        return bool(response.json().get("type") == FORBIDDEN)
    # a page: the HTML 403 page names the problem type in a header
    return (response.headers.get("content-type", "").startswith("text/html")
            and response.headers.get("x-problem-type") == FORBIDDEN)


async def test_every_endpoint_as_every_role(api: Api, world: World) -> None:
    tokens = {role: await api.auth(emp) for role, emp in world.users.items()}
    checked = 0
    mismatches = []
    for route in api_routes(api.app):
        [action] = declared_actions(route)
        if action in PUBLIC_ACTIONS or "/codec/t/" in route.path:
            continue  # no login at all (tested below), or the codec's own token in the path
        url = _url(route, world.path_values)
        for role, headers in tokens.items():
            response = await _call(api, route, url, headers)
            refused = _is_role_refusal(response)
            expected_refused = not permitted({role}, action)
            if refused != expected_refused:
                mismatches.append(f"{role.value:8} {sorted(route.methods)} {route.path} -> "
                                  f"{response.status_code} (table: "
                                  f"{'deny' if expected_refused else 'allow'})")
            if response.status_code >= 500:
                mismatches.append(f"{role.value:8} {route.path} -> {response.status_code}")
            checked += 1
    assert mismatches == []
    assert checked >= 40 * len(Role)


async def test_every_endpoint_without_login_is_401_except_the_public_ones(
        api: Api, world: World) -> None:
    for route in api_routes(api.app):
        [action] = declared_actions(route)
        response = await _call(api, route, _url(route, world.path_values), {})
        if action in PUBLIC_ACTIONS:
            assert response.status_code != 401 or route.path.endswith("/refresh"), route.path
        elif is_page(route):  # to the login form, and back here afterwards
            assert response.status_code == 303, (route.path, response.status_code)
            assert response.headers["location"].startswith("/login?next="), route.path
        else:
            assert response.status_code == 401, (route.path, response.status_code)


# --- data scope ------------------------------------------------------------------------------

REQUEST_DETAIL_GETS = ("", "/audit")
REQUEST_ACTIONS = {"approve": {"comment": "ok"}, "reject": {"reason": "no"},
                   "withdraw": {"reason": "no"}, "cancel": {"reason": "no"},
                   "appeal": {"reason": "no"}, "decline": {"reason": "no"},
                   "resolve-appeal": {"outcome": "UPHOLD"},
                   "reassign-approval": {"new_approver_id": 1, "reason": "away"}}


@pytest.mark.parametrize("who", ["manager_b", "sales_b1", "sales_a2_left_out"])
async def test_out_of_scope_requests_are_404_everywhere_and_missing_from_lists(
        api: Api, world: World, who: str) -> None:
    org = api.org
    outsider = {"manager_b": org.manager_b, "sales_b1": org.sales_b1,
                # sales_a2 receives in `world`; a second request they have no part in
                "sales_a2_left_out": org.sales_a2}[who]
    request_id = world.request_id
    if who == "sales_a2_left_out":
        request_id = await _submit(api, org.manager_a, org.sales_a1, org.sales_b1,
                                   org.customers_a1[1:2], "matrix-2")
    auth = await api.auth(outsider)
    for suffix in REQUEST_DETAIL_GETS:
        r = await api.http.get(f"/api/v1/reassignments/{request_id}{suffix}", headers=auth)
        assert_problem(r, 404, "request-not-found")
    for action, body in REQUEST_ACTIONS.items():
        r = await api.http.post(f"/api/v1/reassignments/{request_id}/{action}", headers=auth,
                                json=body)
        assert r.status_code in (403, 404), (action, r.text)
        if r.status_code == 403:  # the role cannot do this at all: the table said no first
            assert r.json()["type"] == FORBIDDEN
    r = await api.http.get("/api/v1/reassignments", headers=auth)
    assert r.status_code == 200
    assert request_id not in [item["id"] for item in r.json()["items"]]


@pytest.mark.parametrize("who", ["manager_a", "director", "ceo", "hr_staff", "legal_head",
                                 "sales_a1", "sales_a2"])
async def test_in_scope_requests_are_visible(api: Api, world: World, who: str) -> None:
    auth = await api.auth(getattr(api.org, who))
    r = await api.http.get(f"/api/v1/reassignments/{world.request_id}", headers=auth)
    assert r.status_code == 200, r.text
    r = await api.http.get("/api/v1/reassignments", headers=auth)
    assert world.request_id in [item["id"] for item in r.json()["items"]]


async def test_finance_reads_every_request_and_admin_none(api: Api, world: World) -> None:
    r = await api.http.get(f"/api/v1/reassignments/{world.request_id}",
                           headers=await api.auth(world.users[Role.FINANCE]))
    assert r.status_code == 200
    r = await api.http.get(f"/api/v1/reassignments/{world.request_id}",
                           headers=await api.auth(world.users[Role.ADMIN]))
    assert_problem(r, 403, "forbidden-role")


async def test_customer_list_is_scoped_and_contacts_masked_for_hr(api: Api, world: World
                                                                   ) -> None:
    org = api.org
    with api.sessions() as session:
        customer = session.get(Customer, org.customers_a1[0])
        assert customer is not None
        customer.contact_name, customer.contact_phone = "王小明", "13812345678"
        customer.contact_email = "xiaoming@buyer.example"
        session.add(customer)

    async def customers(employee_id: int) -> dict[int, dict[str, Any]]:
        r = await api.http.get("/api/v1/customers?limit=500",
                               headers=await api.auth(employee_id))
        assert r.status_code == 200, r.text
        return {c["id"]: c for c in r.json()["items"]}

    own = await customers(org.sales_a1)
    assert set(own) == set(org.customers_a1)
    assert own[org.customers_a1[0]]["contact_phone"] == "13812345678"
    assert set(await customers(org.sales_b1)) == set(org.customers_b1)
    team_a = await customers(org.manager_a)
    assert set(team_a) == set(org.customers_a1) | set(org.customers_a2)
    everyone = await customers(org.hr_staff)
    assert set(org.customers_b1) <= set(everyone)
    masked = everyone[org.customers_a1[0]]
    assert masked["contacts_masked"] is True
    assert masked["contact_phone"] == "138****5678"
    assert masked["contact_email"] == "x***@buyer.example"
    assert masked["contact_name"] == "王**"


async def test_employee_list_is_scoped_and_contacts_masked_unless_hr(api: Api, world: World
                                                                      ) -> None:
    org = api.org

    async def employees(employee_id: int) -> dict[int, dict[str, Any]]:
        r = await api.http.get("/api/v1/employees?limit=500",
                               headers=await api.auth(employee_id))
        assert r.status_code == 200, r.text
        return {e["id"]: e for e in r.json()["items"]}

    team = await employees(org.manager_b)
    assert set(team) == {org.manager_b, org.sales_b1, org.sales_left}
    assert team[org.sales_b1]["email"] == "e***@example.test"
    hr_view = await employees(org.hr_staff)
    assert hr_view[org.sales_b1]["email"] == "e102@example.test"
    assert hr_view[org.sales_b1]["contacts_masked"] is False
    assert org.legal_head in await employees(world.users[Role.FINANCE])
