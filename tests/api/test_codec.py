"""The codec server (/codec): who may decode, the pasted codec URL, the protocol, CORS, audit."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlmodel import select
from temporalio.api.common.v1 import Payload

from api.routes.codec import CODEC_AUDIENCE, _redact, ui_origins
from models import AuditEvent
from models.org import Employee, EmploymentStatus, UserAccount
from payload_codec import ENCODING, KEY_ID_KEY, new_key_line, parse_keys
from tests.api.conftest import TEST_SECRET, Api, assert_problem
from tests.factories import PASSWORD
from tests.payload_keys import TEST_CODEC, TEST_KEY_ID

UI_ORIGIN = "http://localhost:8233"  # the default BATON_TEMPORAL_UI_URL
SECRET_TEXT = "Customer A1-0 belongs to Li Sales"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def as_json(payloads: list[Payload]) -> dict[str, Any]:
    """What the Temporal UI sends: Payloads as protobuf JSON (bytes base64)."""
    return {"payloads": [{"metadata": {k: b64(v) for k, v in p.metadata.items()},
                          "data": b64(p.data)} for p in payloads]}


def from_json(body: dict[str, Any]) -> list[Payload]:
    return [Payload(metadata={k: base64.b64decode(v) for k, v in p["metadata"].items()},
                    data=base64.b64decode(p.get("data", ""))) for p in body["payloads"]]


async def encrypted_body() -> tuple[Payload, dict[str, Any]]:
    original = Payload(metadata={"encoding": b"json/plain"}, data=f'"{SECRET_TEXT}"'.encode())
    return original, as_json(await TEST_CODEC.encode([original]))


def decode_events(api: Api) -> list[AuditEvent]:
    with api.sessions() as s:
        return list(s.exec(select(AuditEvent).where(
            AuditEvent.event_type == "PAYLOAD_DECODED").order_by(AuditEvent.chain_index)))


async def test_hr_decodes_payloads_and_the_read_is_audited(api: Api) -> None:
    original, body = await encrypted_body()
    untouched = Payload(metadata={"encoding": b"json/plain"}, data=b'"recorded before"')
    body["payloads"].append(as_json([untouched])["payloads"][0])
    r = await api.http.post("/codec/decode", json=body, headers={
        **await api.auth(api.org.hr_head), "X-Namespace": "default"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["cache-control"] == "no-store"
    assert from_json(r.json()) == [original, untouched]
    [event] = decode_events(api)
    assert event.actor_id == api.org.hr_head
    assert event.detail == {"namespace": "default", "payloads": 2, "encrypted": 1,
                            "via": "bearer"}
    assert (event.entity_type, event.entity_id) == ("temporal_namespace", "default")


async def test_salesperson_gets_403_and_no_credentials_401(api: Api) -> None:
    _, body = await encrypted_body()
    r = await api.http.post("/codec/decode", json=body, headers=await api.auth(api.org.sales_a1))
    problem = assert_problem(r, 403, "forbidden-role")
    assert "hr" in problem["detail"]
    r = await api.http.post("/codec/decode", json=body)
    assert_problem(r, 401, "not-authenticated")
    r = await api.http.post("/codec/decode", json=body,
                            headers={"Authorization": "Bearer not-a-token"})
    assert_problem(r, 401, "invalid-token")
    r = await api.http.post("/codec/encode", json=body, headers=await api.auth(api.org.manager_a))
    assert_problem(r, 403, "forbidden-role")
    assert decode_events(api) == []


async def test_encode_uses_the_active_key(api: Api) -> None:
    original = Payload(metadata={"encoding": b"json/plain"}, data=b'{"typed_name": "Li"}')
    r = await api.http.post("/codec/encode", json=as_json([original]),
                            headers=await api.auth(api.org.hr_head))
    assert r.status_code == 200, r.text
    [encoded] = from_json(r.json())
    assert encoded.metadata["encoding"] == ENCODING
    assert encoded.metadata[KEY_ID_KEY] == TEST_KEY_ID.encode()
    assert await TEST_CODEC.decode([encoded]) == [original]
    assert decode_events(api) == []  # encoding reveals nothing: not a read


async def test_bad_bodies_and_undecodable_payloads_are_400_problems(api: Api) -> None:
    hr = await api.auth(api.org.hr_head)
    r = await api.http.post("/codec/decode", content=b"not json", headers=hr)
    assert_problem(r, 400, "codec-body-invalid")
    r = await api.http.post("/codec/decode", json={"payloads": [{"metadata": "x"}]}, headers=hr)
    assert_problem(r, 400, "codec-body-invalid")
    # encrypted under a key this server does not have: the error names the key id
    foreign = parse_keys(new_key_line("retired-2024"))
    from payload_codec import EncryptionCodec, KeyRing

    other = EncryptionCodec(KeyRing(foreign, "retired-2024", "test"))
    payloads = await other.encode([Payload(data=b"x")])
    r = await api.http.post("/codec/decode", json=as_json(payloads), headers=hr)
    problem = assert_problem(r, 400, "payload-not-decodable")
    assert "'retired-2024'" in problem["detail"] and "BATON_PAYLOAD_KEYS" in problem["detail"]
    assert decode_events(api) == []


async def test_empty_batch_answers_an_empty_list(api: Api) -> None:
    r = await api.http.post("/codec/decode", json={"payloads": []},
                            headers=await api.auth(api.org.hr_head))
    assert r.status_code == 200 and r.json() == {"payloads": []}
    assert decode_events(api) == []  # nothing shown, nothing to record


# --- the codec URL to paste into the Temporal UI -------------------------------------------


async def codec_url(api: Api, employee_id: int) -> str:
    r = await api.http.post("/api/v1/me/codec-token", headers=await api.auth(employee_id))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["codec_url"] == f"http://baton.test/codec/t/{body['codec_token']}"
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(hours=8) <= expires - datetime.now(UTC) <= timedelta(hours=12)
    return str(body["codec_url"])


async def test_pasted_codec_url_decodes_for_hr_without_headers(api: Api) -> None:
    original, body = await encrypted_body()
    url = await codec_url(api, api.org.hr_head)
    # exactly what the UI does: <endpoint>/decode, no Authorization header
    r = await api.http.post(f"{url}/decode", json=body, headers={"X-Namespace": "default"})
    assert r.status_code == 200, r.text
    assert from_json(r.json()) == [original]
    r = await api.http.post(f"{url}/encode", json=as_json([original]))
    assert r.status_code == 200, r.text
    [event] = decode_events(api)
    assert event.actor_id == api.org.hr_head and event.detail["via"] == "codec-token"


async def test_only_hr_or_admin_get_a_codec_url(api: Api) -> None:
    r = await api.http.post("/api/v1/me/codec-token", headers=await api.auth(api.org.sales_a1))
    assert_problem(r, 403, "forbidden-role")
    r = await api.http.post("/api/v1/me/codec-token")
    assert_problem(r, 401)


async def test_codec_token_is_no_access_token_and_vice_versa(api: Api) -> None:
    _, body = await encrypted_body()
    url = await codec_url(api, api.org.hr_head)
    codec_token = url.rsplit("/", 1)[1]
    r = await api.http.get("/api/v1/me", headers={"Authorization": f"Bearer {codec_token}"})
    assert_problem(r, 401)
    r = await api.http.post("/codec/decode", json=body,
                            headers={"Authorization": f"Bearer {codec_token}"})
    assert_problem(r, 401)
    access_token = await api.token(api.org.hr_head)
    r = await api.http.post(f"/codec/t/{access_token}/decode", json=body)
    problem = assert_problem(r, 401, "invalid-codec-token")
    assert "POST /api/v1/me/codec-token" in problem["detail"]
    assert decode_events(api) == []


async def test_expired_codec_token_is_401(api: Api) -> None:
    _, body = await encrypted_body()
    past = datetime.now(UTC) - timedelta(days=2)
    with api.sessions() as s:
        account = s.exec(select(UserAccount).where(
            UserAccount.employee_id == api.org.hr_head)).one()
        user_id = account.id
    stale = jwt.encode({"sub": str(user_id), "emp": api.org.hr_head, "aud": CODEC_AUDIENCE,
                        "ver": 0, "iat": past, "exp": past + timedelta(hours=10)},
                       TEST_SECRET, algorithm="HS256")
    r = await api.http.post(f"/codec/t/{stale}/decode", json=body)
    assert_problem(r, 401, "codec-token-expired")


async def test_codec_url_stops_working_when_hr_leaves_or_loses_the_role(api: Api) -> None:
    _, body = await encrypted_body()
    head_url = await codec_url(api, api.org.hr_head)
    staff_url = await codec_url(api, api.org.hr_staff)
    with api.sessions() as s:
        head = s.get(Employee, api.org.hr_head)
        assert head is not None
        head.status = EmploymentStatus.LEFT
        head.leave_date = datetime.now(UTC)
        s.add(head)
        staff = s.get(Employee, api.org.hr_staff)
        account = s.exec(select(UserAccount).where(
            UserAccount.employee_id == api.org.hr_staff)).one()
        assert staff is not None
        staff.role, account.roles = "sales", ["sales"]
        s.add_all([staff, account])
    r = await api.http.post(f"{head_url}/decode", json=body)
    assert_problem(r, 401)
    r = await api.http.post(f"{staff_url}/decode", json=body)
    assert_problem(r, 403, "forbidden-role")
    assert decode_events(api) == []


async def test_password_change_and_logout_end_the_codec_url(api: Api) -> None:
    _, body = await encrypted_body()
    login = await api.http.post("/api/v1/auth/login", json={
        "username": api.org.usernames[api.org.hr_head], "password": PASSWORD})
    assert login.status_code == 200, login.text
    tokens = login.json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    r = await api.http.post("/api/v1/me/codec-token", headers=bearer)
    assert r.status_code == 200, r.text
    from_this_session = r.json()["codec_url"]
    from_another_session = await codec_url(api, api.org.hr_head)
    r = await api.http.post("/api/v1/auth/logout", headers=bearer,
                            json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 204, r.text
    r = await api.http.post(f"{from_this_session}/decode", json=body)
    assert_problem(r, 401, "token-revoked")
    r = await api.http.post(f"{from_another_session}/decode", json=body)
    assert r.status_code == 200, r.text  # a logout ends its own session only

    with api.sessions() as s:  # what a password change or an administrator's reset does
        account = s.exec(select(UserAccount).where(
            UserAccount.employee_id == api.org.hr_head)).one()
        account.token_version += 1
        s.add(account)
    r = await api.http.post(f"{from_another_session}/decode", json=body)
    assert_problem(r, 401, "token-revoked")


# --- CORS: the Temporal UI's origin, on /codec only -----------------------------------------


def preflight_headers(origin: str) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-namespace"}


async def test_cors_preflight_allows_the_ui_origin_only(api: Api) -> None:
    for origin in (UI_ORIGIN, "http://127.0.0.1:8233"):
        r = await api.http.options("/codec/t/some-token/decode", headers=preflight_headers(origin))
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == origin
        assert r.headers["access-control-allow-credentials"] == "true"
        allowed = r.headers["access-control-allow-headers"].lower()
        assert {"authorization", "content-type", "x-namespace"} <= {
            h.strip() for h in allowed.split(",")}
    for origin in ("http://evil.example", "http://localhost:9999"):
        r = await api.http.options("/codec/decode", headers=preflight_headers(origin))
        assert r.status_code == 400
        assert "access-control-allow-origin" not in r.headers


async def test_actual_request_gets_cors_headers_for_the_ui_only(api: Api) -> None:
    _, body = await encrypted_body()
    hr = await api.auth(api.org.hr_head)
    r = await api.http.post("/codec/decode", json=body, headers={**hr, "Origin": UI_ORIGIN})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == UI_ORIGIN
    r = await api.http.post("/codec/decode", json=body,
                            headers={**hr, "Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    # a 401 carries the CORS header too, so the UI can tell the user why
    r = await api.http.post("/codec/decode", json=body, headers={"Origin": UI_ORIGIN})
    assert r.status_code == 401 and r.headers["access-control-allow-origin"] == UI_ORIGIN


async def test_the_rest_of_the_api_answers_no_cross_origin_request(api: Api) -> None:
    r = await api.http.options("/api/v1/auth/login", headers=preflight_headers(UI_ORIGIN))
    assert "access-control-allow-origin" not in r.headers
    r = await api.http.get("/api/v1/me", headers={
        **await api.auth(api.org.hr_head), "Origin": UI_ORIGIN})
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers
    r = await api.http.options("/codecs", headers=preflight_headers(UI_ORIGIN))
    assert "access-control-allow-origin" not in r.headers


def test_ui_origin_from_settings() -> None:
    assert ui_origins("http://localhost:8233/namespaces/default") == [
        "http://localhost:8233", "http://127.0.0.1:8233"]
    assert ui_origins("https://temporal.example.com") == ["https://temporal.example.com"]


def test_access_log_hides_the_pasted_token() -> None:
    assert _redact("/codec/t/eyJabc.def.ghi/decode") == "/codec/t/***/decode"
    assert _redact("/codec/decode") == "/codec/decode"
