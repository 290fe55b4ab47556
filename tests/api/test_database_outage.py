"""The database is down: the API answers 503 problem+json with Retry-After, never a 500.

The app's sessions are pointed at a PostgreSQL port where nothing listens (connection
refused, as while the server is stopped); the real outage, with PostgreSQL stopped under a
running stack, is tests/reliability/test_database_outage.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from models import Order
from models.db import make_engine, session_factory
from tests.api.conftest import Api, assert_problem
from tests.factories import PASSWORD
from tests.prod.processes import free_ports


@pytest.fixture
def unreachable_engine() -> Iterator[Engine]:
    (port,) = free_ports(1)  # closed again when returned: nothing listens there
    engine = make_engine(f"postgresql+psycopg://baton@127.0.0.1:{port}/baton",
                         connect_args={"connect_timeout": 2})
    yield engine
    engine.dispose()


def assert_database_down(response: object) -> None:
    body = assert_problem(response, 503, "database-unavailable")  # type: ignore[arg-type]
    assert int(response.headers["Retry-After"]) > 0  # type: ignore[attr-defined]
    assert "Traceback" not in response.text  # type: ignore[attr-defined]
    assert "try again" in body["detail"].lower()


async def test_reads_writes_and_login_answer_503_while_the_database_is_down(
        api: Api, unreachable_engine: Engine) -> None:
    org = api.org
    hr = await api.auth(org.hr_head)
    working = api.app.state.sessions
    api.app.state.sessions = session_factory(unreachable_engine)

    assert_database_down(await api.http.get("/api/v1/reassignments", headers=hr))
    assert_database_down(await api.http.get(f"/api/v1/statements?employee_id={org.sales_a1}",
                                            headers=hr))
    assert_database_down(await api.http.post("/api/v1/orders", headers=hr, json={"orders": [
        {"external_id": "DOWN-1", "customer_id": org.customers_a1[0], "amount_fen": 100,
         "currency": "CNY", "booked_at": "2025-06-01T00:00:00+00:00"}]}))
    assert_database_down(await api.http.post("/api/v1/auth/login", json={
        "username": org.usernames[org.hr_head], "password": PASSWORD}))
    ready = await api.http.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["database"] == "unavailable"

    # back: the same app answers again, and nothing was written while it was down
    api.app.state.sessions = working
    with api.sessions() as s:
        assert s.exec(select(Order).where(Order.external_id == "DOWN-1")).first() is None
    r = await api.http.get("/api/v1/reassignments", headers=hr)
    assert r.status_code == 200, r.text
