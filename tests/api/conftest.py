"""Fixtures for the HTTP API tests: an app on the test database, a client, logins."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import func
from sqlmodel import select
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import get_temporal_client
from api.main import create_app
from models import AuditEvent, ReassignmentRequest
from models.db import SessionFactory
from settings import Settings
from tests.factories import PASSWORD, SmallOrg
from tests.payload_keys import TEST_PAYLOAD_KEYS

CLOSED_PORT = "127.0.0.1:1"  # nothing listens: "Temporal is down"
TEST_SECRET = "test-secret-for-api-tests-0123456789abcdef"


def api_settings(db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(database_url=db_url, temporal_address=CLOSED_PORT,
                                  jwt_secret=TEST_SECRET, jwt_ttl_minutes=30,
                                  payload_keys=TEST_PAYLOAD_KEYS)
    # tests log in often from one address; the rate-limit test sets its own, low limit
    values["login_rate_limit"] = "10000/minute"
    values.update(overrides)
    return Settings(**values)


class FakeHandle:
    """A workflow handle whose workflow does not exist (enough for pre-Temporal tests)."""

    def __init__(self, client: FakeTemporal, workflow_id: str) -> None:
        self.client, self.workflow_id = client, workflow_id

    async def query(self, *args: Any, **kwargs: Any) -> Any:
        raise RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")

    async def describe(self) -> Any:
        started = self.client.preexisting.get(self.workflow_id)
        if started is None:
            raise RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")
        return SimpleNamespace(start_time=started)

    async def execute_update(self, update: str, arg: Any, **kwargs: Any) -> Any:
        self.client.updates.append((self.workflow_id, update, arg))
        if self.client.update_error is not None:
            raise self.client.update_error
        raise RPCError("workflow execution already completed", RPCStatusCode.NOT_FOUND, b"")


@dataclass
class FakeTemporal:
    """Records start_workflow calls and, like the server, starts one workflow per id."""

    attempts: list[dict[str, Any]] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    updates: list[tuple[str, str, Any]] = field(default_factory=list)
    update_error: BaseException | None = None
    # workflows that exist before the test (id -> start time), e.g. from a reset database
    preexisting: dict[str, datetime] = field(default_factory=dict)

    async def start_workflow(self, workflow: str, arg: Any, *, id: str, **kwargs: Any) -> None:
        self.attempts.append({"workflow": workflow, "arg": arg, "id": id, **kwargs})
        if id in self.started or id in self.preexisting:
            raise WorkflowAlreadyStartedError(id, workflow)
        self.started.append(id)

    def get_workflow_handle(self, workflow_id: str) -> FakeHandle:
        return FakeHandle(self, workflow_id)

    def list_workflows(self, query: str | None = None, **kwargs: Any) -> AsyncIterator[Any]:
        """An empty visibility store (tests/api/test_monitor.py fills one)."""
        async def nothing() -> AsyncIterator[Any]:
            return
            yield
        return nothing()


@dataclass
class Api:
    """An httpx client on the app plus helpers that log in as the org's people."""

    http: httpx.AsyncClient
    org: SmallOrg
    sessions: SessionFactory
    app: Any

    async def token(self, employee_id: int) -> str:
        r = await self.http.post("/api/v1/auth/login", json={
            "username": self.org.usernames[employee_id], "password": PASSWORD})
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    async def auth(self, employee_id: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(employee_id)}"}

    def counts(self) -> tuple[int, int]:
        """(requests, audit events): what must not change when a submit is refused."""
        with self.sessions() as s:
            requests = s.exec(select(func.count()).select_from(ReassignmentRequest)).one()
            events = s.exec(select(func.count()).select_from(AuditEvent)).one()
            return int(requests), int(events)


@pytest.fixture
def fake_temporal() -> FakeTemporal:
    return FakeTemporal()


@pytest.fixture
async def api(db_url: str, org: SmallOrg, sessions: SessionFactory,
              fake_temporal: FakeTemporal) -> AsyncIterator[Api]:
    app = create_app(api_settings(db_url))
    app.dependency_overrides[get_temporal_client] = lambda: fake_temporal
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://baton.test") as http:
        yield Api(http=http, org=org, sessions=sessions, app=app)


def expired_token(employee_id: int, roles: list[str]) -> str:
    """A correctly signed token whose exp has passed."""
    past = datetime.now(UTC) - timedelta(hours=2)
    return jwt.encode({"sub": "1", "emp": employee_id, "roles": roles, "iat": past,
                       "exp": past + timedelta(minutes=30)}, TEST_SECRET, algorithm="HS256")


def assert_problem(
    response: httpx.Response, status: int, slug: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://baton.dev/problems/")
    assert body["title"] and body["detail"]
    assert body["instance"] == response.request.url.path
    if slug is not None:
        assert body["type"] == f"https://baton.dev/problems/{slug}", body
    return body
