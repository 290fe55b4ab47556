"""Login hardening: lock-out, the per-IP rate limit, refresh tokens, revocation, the password
policy, security headers and CSRF for the browser session (issue 6)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlmodel import col, select

from api.main import create_app
from api.sessions import ACCESS_COOKIE, CSRF_COOKIE, REFRESH_COOKIE, SESSION_REFRESH_PATH
from models import AuditEvent, UserAccount
from models.login import LoginFailure, RefreshToken
from models.types import utcnow
from settings import Settings
from tests.api.conftest import TEST_SECRET, Api, api_settings, assert_problem
from tests.factories import PASSWORD

LOGIN = "/api/v1/auth/login"
NEW_PASSWORD = "quiet lantern over seven hills"


async def login(api: Api, username: str, password: str = PASSWORD) -> httpx.Response:
    return await api.http.post(LOGIN, json={"username": username, "password": password})


async def tokens(api: Api, username: str, password: str = PASSWORD) -> dict[str, Any]:
    r = await login(api, username, password)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def events(api: Api, event_type: str) -> list[AuditEvent]:
    with api.sessions() as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.event_type == event_type)
                           .order_by(col(AuditEvent.chain_index))).all())


def account(api: Api, username: str) -> UserAccount:
    with api.sessions() as s:
        return s.exec(select(UserAccount).where(UserAccount.username == username)).one()


# --- lock-out --------------------------------------------------------------------------------


async def test_brute_force_hits_the_lockout_and_the_lock_expires(api: Api) -> None:
    statuses = [(await login(api, "e100", f"guess-{i}")).status_code for i in range(5)]
    assert statuses == [401, 401, 401, 401, 429]  # the 5th failure locks (login_max_failures)

    r = await login(api, "e100")  # the right password is refused while locked
    body = assert_problem(r, 429, "account-locked")
    assert 14 * 60 < int(r.headers["Retry-After"]) <= 15 * 60
    assert "try again in 15 minutes" in body["detail"].lower()
    assert "UTC" in body["detail"] and body["retry_at"]
    locked = account(api, "e100")
    assert locked.locked_until is not None and locked.failed_login_count == 5

    [event] = events(api, "LOGIN_LOCKED_OUT")
    assert (event.entity_type, event.entity_id) == ("user_account", str(locked.id))
    assert event.detail["failures"] == 5
    assert event.detail["client_ip"] == "127.0.0.1"

    # the lock lapses (time moved on, as if 15 minutes had passed): the right password works
    with api.sessions() as s:
        row = s.get(UserAccount, locked.id)
        assert row is not None
        row.locked_until = utcnow() - timedelta(seconds=1)
        s.add(row)
    assert (await login(api, "e100")).status_code == 200
    after = account(api, "e100")
    assert after.failed_login_count == 0 and after.locked_until is None
    assert after.last_login_at is not None


async def test_a_success_resets_the_failure_streak(api: Api) -> None:
    for _ in range(4):
        assert (await login(api, "e101", "wrong")).status_code == 401
    assert (await login(api, "e101")).status_code == 200
    for _ in range(4):
        assert (await login(api, "e101", "wrong")).status_code == 401
    assert account(api, "e101").failed_login_count == 4


async def test_an_unknown_username_locks_out_exactly_like_a_real_one(api: Api) -> None:
    def shape(r: httpx.Response) -> tuple[Any, ...]:
        body = r.json()
        # the two runs are a second or so apart and may straddle a minute boundary:
        # compare the wording with the lock's end masked (its value is checked below)
        detail = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)? UTC", "<until> UTC", body["detail"])
        retry = r.headers.get("Retry-After")
        return (r.status_code, body["type"], body["title"], detail,
                retry is not None and int(retry) // 60, r.headers.get("WWW-Authenticate"),
                sorted(body))

    real_responses = [await login(api, "e102", "wrong") for _ in range(6)]
    ghost_responses = [await login(api, "nobody-here", "wrong") for _ in range(6)]
    real = [shape(r) for r in real_responses]
    ghost = [shape(r) for r in ghost_responses]
    assert real == ghost
    for r in (real_responses[-1], ghost_responses[-1]):
        until = datetime.fromisoformat(r.json()["retry_at"])
        assert timedelta(minutes=14) < until - datetime.now(UTC) <= timedelta(minutes=15)
        assert until.strftime("%Y-%m-%d %H:%M:%S UTC") in r.json()["detail"]
    assert [s[0] for s in ghost] == [401, 401, 401, 401, 429, 429]
    # durable, and keyed by an HMAC: a password typed as username is not stored in clear
    with api.sessions() as s:
        [row] = s.exec(select(LoginFailure)).all()
        assert row.locked_until is not None and "nobody" not in row.username_key
    ghost_event = events(api, "LOGIN_LOCKED_OUT")[-1]
    assert ghost_event.entity_type == "unknown_username"
    assert "nobody-here" not in str(ghost_event.detail)


async def test_the_ip_rate_limit_answers_429_with_retry_after(db_url: str, org: Any) -> None:
    app = create_app(api_settings(db_url, login_rate_limit="3/minute"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://baton.test") as http:
        ok = await http.post(LOGIN, json={"username": "e020", "password": PASSWORD})
        assert ok.status_code == 200
        assert (await http.post(LOGIN, json={"username": "e021", "password": "x"})
                ).status_code == 401
        # the OAuth2 form login shares the budget
        assert (await http.post("/api/v1/auth/token",
                                data={"username": "e200", "password": PASSWORD})
                ).status_code == 200
        r = await http.post(LOGIN, json={"username": "e020", "password": PASSWORD})
        body = assert_problem(r, 429, "rate-limited")
        assert 0 < int(r.headers["Retry-After"]) <= 60
        assert "127.0.0.1" in body["detail"] and "Retry-After" in body["detail"]


def test_the_defaults_are_short_lived_tokens_and_a_five_failure_lockout() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.jwt_ttl_minutes == 15
    assert (settings.login_max_failures, settings.login_lockout_minutes) == (5, 15)
    assert settings.password_min_length == 12


# --- refresh and logout ------------------------------------------------------------------------


async def test_login_returns_a_refresh_token_and_keeps_the_old_fields(api: Api) -> None:
    body = await tokens(api, "e020")
    assert body["token_type"] == "bearer" and body["expires_in"] == 30 * 60
    assert body["refresh_token"] and body["refresh_expires_in"] == 14 * 24 * 3600
    claims = jwt.decode(body["access_token"], TEST_SECRET, algorithms=["HS256"])
    assert claims["ver"] == 0 and claims["sid"]
    with api.sessions() as s:
        [row] = s.exec(select(RefreshToken)).all()
        assert row.family_id == claims["sid"]
        assert body["refresh_token"] not in row.token_hash  # only the hash is stored


async def test_refresh_rotates_and_a_reused_token_ends_the_whole_session(api: Api) -> None:
    first = await tokens(api, "e020")
    r = await api.http.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await api.http.get("/api/v1/me", headers=bearer(second["access_token"]))
            ).status_code == 200

    # the first token again: someone holds a copy, so the family (session) ends
    r = await api.http.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert_problem(r, 401, "refresh-token-reused")
    r = await api.http.post("/api/v1/auth/refresh",
                            json={"refresh_token": second["refresh_token"]})
    assert_problem(r, 401, "refresh-token-revoked")
    for access in (first["access_token"], second["access_token"]):
        r = await api.http.get("/api/v1/me", headers=bearer(access))
        assert_problem(r, 401, "token-revoked")
    [event] = events(api, "REFRESH_TOKEN_REUSED")
    assert event.entity_type == "user_account"
    assert event.detail["employee_id"] == api.org.manager_a
    assert event.detail["refresh_tokens_revoked"] == 1

    r = await api.http.post("/api/v1/auth/refresh", json={"refresh_token": "made-up"})
    assert_problem(r, 401, "invalid-refresh-token")


async def test_an_expired_refresh_token_is_refused(api: Api) -> None:
    body = await tokens(api, "e020")
    with api.sessions() as s:
        row = s.exec(select(RefreshToken)).one()
        row.expires_at = utcnow() - timedelta(seconds=1)
        s.add(row)
    r = await api.http.post("/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert_problem(r, 401, "refresh-token-expired")


async def test_logout_ends_that_session_only(api: Api) -> None:
    one = await tokens(api, "e020")
    other = await tokens(api, "e020")
    r = await api.http.post("/api/v1/auth/logout", headers=bearer(one["access_token"]),
                            json={"refresh_token": one["refresh_token"]})
    assert r.status_code == 204, r.text
    assert_problem(await api.http.get("/api/v1/me", headers=bearer(one["access_token"])),
                   401, "token-revoked")
    r = await api.http.post("/api/v1/auth/refresh", json={"refresh_token": one["refresh_token"]})
    assert_problem(r, 401, "refresh-token-revoked")
    assert (await api.http.get("/api/v1/me", headers=bearer(other["access_token"]))
            ).status_code == 200
    # nobody ends another person's session
    stranger = await tokens(api, "e021")
    r = await api.http.post("/api/v1/auth/logout", headers=bearer(stranger["access_token"]),
                            json={"refresh_token": other["refresh_token"]})
    assert_problem(r, 422, "invalid-refresh-token")


# --- revocation: password change -------------------------------------------------------------


async def test_a_password_change_revokes_every_token(api: Api) -> None:
    old = await tokens(api, "e100")
    r = await api.http.post("/api/v1/me/password", headers=bearer(old["access_token"]), json={
        "current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert r.status_code == 204, r.text

    assert_problem(await api.http.get("/api/v1/me", headers=bearer(old["access_token"])),
                   401, "token-revoked")
    r = await api.http.post("/api/v1/auth/refresh", json={"refresh_token": old["refresh_token"]})
    assert_problem(r, 401, "refresh-token-revoked")
    assert_problem(await login(api, "e100"), 401, "invalid-credentials")
    new = await tokens(api, "e100", NEW_PASSWORD)
    assert jwt.decode(new["access_token"], TEST_SECRET, algorithms=["HS256"])["ver"] == 1

    [event] = events(api, "PASSWORD_CHANGED")
    assert event.actor_id == api.org.sales_a1
    assert event.entity_type == "user_account"
    assert event.before is not None and event.before["token_version"] == 0
    assert event.after is not None and event.after["token_version"] == 1
    everything = str((event.before, event.after, event.detail))
    assert "password_hash" not in everything and "argon2" not in everything


async def test_a_wrong_current_password_is_refused_and_counts_towards_the_lockout(
        api: Api) -> None:
    headers = await api.auth(api.org.sales_a2)
    r = await api.http.post("/api/v1/me/password", headers=headers, json={
        "current_password": "not it", "new_password": NEW_PASSWORD})
    body = assert_problem(r, 403, "wrong-password")
    assert body["errors"][0]["field"] == "current_password"
    assert account(api, "e101").failed_login_count == 1


@pytest.mark.parametrize(("new_password", "codes"), [
    ("short words", {"too-short"}),
    ("e100 likes long walks", {"contains-username"}),
    ("password1234", {"too-guessable"}),
    ("qwertyuiopasdfgh", {"too-guessable"}),
    (PASSWORD, {"unchanged"}),
])
async def test_the_password_policy_refuses_weak_passwords_with_reasons(
        api: Api, new_password: str, codes: set[str]) -> None:
    headers = await api.auth(api.org.sales_a1)
    r = await api.http.post("/api/v1/me/password", headers=headers, json={
        "current_password": PASSWORD, "new_password": new_password})
    body = assert_problem(r, 422, "weak-password")
    assert codes <= {e["code"] for e in body["errors"]}, body
    assert all(e["field"] == "new_password" for e in body["errors"])
    assert body["detail"].startswith("Choose another password")
    # nothing changed: the token still works
    assert (await api.http.get("/api/v1/me", headers=headers)).status_code == 200


# --- security headers --------------------------------------------------------------------------


async def test_security_headers_on_every_response(api: Api) -> None:
    for r in (await api.http.get("/api/v1/health"), await login(api, "e020"),
              await api.http.get("/api/v1/me")):
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Referrer-Policy"] == "same-origin"
        assert r.headers["Cache-Control"] == "no-store"
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert "Strict-Transport-Security" not in r.headers  # plain HTTP


async def test_docs_may_load_swagger_from_its_cdn_and_https_gets_hsts(api: Api) -> None:
    r = await api.http.get("/docs")
    assert r.status_code == 200
    csp = r.headers["Content-Security-Policy"]
    assert "https://cdn.jsdelivr.net" in csp and "frame-ancestors 'none'" in csp
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app),
                                 base_url="https://baton.test") as https:
        r = await https.get("/api/v1/health")
    assert r.headers["Strict-Transport-Security"].startswith("max-age=")


# --- the browser session and CSRF ----------------------------------------------------------


@pytest.fixture
async def browser(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    """A second client with its own cookie jar, like a browser."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app),
                                 base_url="http://baton.test") as http:
        yield http


async def browser_login(http: httpx.AsyncClient, username: str = "e020") -> str:
    r = await http.post("/api/v1/auth/session", json={"username": username,
                                                       "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf_token"])


async def test_session_login_sets_httponly_cookies_and_a_readable_csrf_cookie(
        browser: httpx.AsyncClient) -> None:
    r = await browser.post("/api/v1/auth/session", json={"username": "e020",
                                                          "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert "access_token" not in r.json() and "refresh_token" not in r.json()
    cookies = {c.split("=", 1)[0]: c.lower() for c in r.headers.get_list("set-cookie")}
    assert "httponly" in cookies[ACCESS_COOKIE] and "samesite=lax" in cookies[ACCESS_COOKIE]
    assert "httponly" in cookies[REFRESH_COOKIE]
    assert f"path={SESSION_REFRESH_PATH}" in cookies[REFRESH_COOKIE]
    assert "httponly" not in cookies[CSRF_COOKIE]
    assert all("secure" not in c for c in cookies.values())  # plain HTTP here
    assert browser.cookies[CSRF_COOKIE] == r.json()["csrf_token"]
    # a safe method needs no CSRF header
    me = await browser.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["username"] == "e020"


async def test_session_cookies_are_secure_over_https(api: Api) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app),
                                 base_url="https://baton.test") as https:
        r = await https.post("/api/v1/auth/session", json={"username": "e020",
                                                            "password": PASSWORD})
    assert all("secure" in c.lower() for c in r.headers.get_list("set-cookie"))


async def test_unsafe_cookie_requests_need_the_csrf_header(
        api: Api, browser: httpx.AsyncClient) -> None:
    csrf = await browser_login(browser)
    body = {"current_password": PASSWORD, "new_password": "short"}

    r = await browser.post("/api/v1/me/password", json=body)
    problem = assert_problem(r, 403, "csrf-token-missing")
    assert "X-CSRF-Token" in problem["detail"]
    r = await browser.post("/api/v1/me/password", json=body, headers={"X-CSRF-Token": "forged"})
    assert_problem(r, 403, "csrf-token-invalid")
    # with the header the call goes through (and meets the password policy)
    r = await browser.post("/api/v1/me/password", json=body, headers={"X-CSRF-Token": csrf})
    assert_problem(r, 422, "weak-password")

    # a bearer call needs no CSRF token
    plain = await tokens(api, "e020")
    r = await api.http.post("/api/v1/auth/logout", headers=bearer(plain["access_token"]),
                            json={"refresh_token": plain["refresh_token"]})
    assert r.status_code == 204


async def test_a_planted_csrf_cookie_from_another_session_does_not_work(
        api: Api, browser: httpx.AsyncClient) -> None:
    await browser_login(browser)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app),
                                 base_url="http://baton.test") as attacker:
        attackers_csrf = await browser_login(attacker, "e021")
    # the attacker sets their own (valid) CSRF value as cookie and header in the victim's
    # browser: it is bound to the attacker's session, not the victim's
    browser.cookies.set(CSRF_COOKIE, attackers_csrf, domain="baton.test", path="/")
    r = await browser.delete("/api/v1/auth/session", headers={"X-CSRF-Token": attackers_csrf})
    assert_problem(r, 403, "csrf-token-invalid")


async def test_cookie_refresh_and_logout(api: Api, browser: httpx.AsyncClient) -> None:
    csrf = await browser_login(browser)
    old_refresh = browser.cookies[REFRESH_COOKIE]
    r = await browser.post("/api/v1/auth/session/refresh")
    assert_problem(r, 403, "csrf-token-missing")
    r = await browser.post("/api/v1/auth/session/refresh", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    assert r.json()["csrf_token"] == csrf  # bound to the session, which goes on
    assert browser.cookies[REFRESH_COOKIE] != old_refresh  # rotated

    # logging out needs the header too, then clears the cookies and ends the session
    assert_problem(await browser.delete("/api/v1/auth/session"), 403, "csrf-token-missing")
    access = browser.cookies[ACCESS_COOKIE]
    r = await browser.delete("/api/v1/auth/session", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204, r.text
    assert ACCESS_COOKIE not in browser.cookies
    assert_problem(await browser.get("/api/v1/me"), 401, "not-authenticated")
    assert_problem(await api.http.get("/api/v1/me", headers=bearer(access)), 401,
                   "token-revoked")
    # a bearer session is ended with POST /auth/logout, not here
    plain = await tokens(api, "e020")
    assert_problem(await api.http.delete("/api/v1/auth/session",
                                         headers=bearer(plain["access_token"])),
                   400, "not-a-browser-session")
