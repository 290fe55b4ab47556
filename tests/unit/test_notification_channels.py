"""Group-robot payloads and signatures against a local HTTP server, and the e-mail's shape."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from notifications.channels import (
    Attachment,
    DeliveryFailed,
    EmailMessageSpec,
    RobotMessage,
    SmtpChannel,
    SmtpConfig,
    WebhookRobotChannel,
)

SECRET = "SEC-test-secret-0123456789"
NOW = 1_767_225_600.123  # 2026-01-01T00:00:00.123Z
MESSAGE = RobotMessage(title="Request #42 has an appeal to resolve",
                       link="https://baton.example.test/app/hr/cases/42",
                       action="Resolve the appeal")


class Robot:
    """A local stand-in for the provider: records each POST, answers what the test says."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, Any]]] = []
        self.answer: tuple[int, bytes] = (200, b'{"errcode": 0, "errmsg": "ok"}')
        robot = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's hook name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                url = urlsplit(self.path)
                robot.requests.append((url.path, parse_qs(url.query), json.loads(body)))
                status, payload = robot.answer
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def channel(self, provider: str, path: str, secret: str | None = SECRET) -> WebhookRobotChannel:
        return WebhookRobotChannel(robot_name="hr", provider=provider,  # type: ignore[arg-type]
                                   url=self.base + path, secret=secret, clock=lambda: NOW)


@pytest.fixture
def robot() -> Iterator[Robot]:
    r = Robot()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_wecom_markdown_with_the_key_in_the_url(robot: Robot):
    robot.channel("wecom", "/cgi-bin/webhook/send?key=abc", secret=None).send_robot(MESSAGE)
    [(path, query, body)] = robot.requests
    assert path == "/cgi-bin/webhook/send" and query == {"key": ["abc"]}
    assert body == {"msgtype": "markdown", "markdown": {"content": (
        "**Request #42 has an appeal to resolve**\n"
        "[Resolve the appeal](https://baton.example.test/app/hr/cases/42)")}}


def test_dingtalk_signs_the_url_with_a_millisecond_timestamp(robot: Robot):
    robot.channel("dingtalk", "/robot/send?access_token=tok").send_robot(MESSAGE)
    [(path, query, body)] = robot.requests
    assert path == "/robot/send" and query["access_token"] == ["tok"]
    assert query["timestamp"] == ["1767225600123"]
    # DingTalk: base64(HMAC-SHA256(key=secret, "<timestamp>\n<secret>")), URL-encoded
    expected = base64.b64encode(hmac.new(SECRET.encode(), f"1767225600123\n{SECRET}".encode(),
                                         hashlib.sha256).digest()).decode()
    assert query["sign"] == [expected]  # parse_qs undid the URL encoding of + / =
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == MESSAGE.title
    assert MESSAGE.link in body["markdown"]["text"]


def test_feishu_signs_the_body_with_a_second_timestamp(robot: Robot):
    robot.answer = (200, b'{"code": 0, "msg": "success", "data": {}}')
    robot.channel("feishu", "/open-apis/bot/v2/hook/xyz").send_robot(MESSAGE)
    [(path, _, body)] = robot.requests
    assert path == "/open-apis/bot/v2/hook/xyz"
    # Feishu: base64(HMAC-SHA256(key="<timestamp>\n<secret>", message=empty))
    expected = base64.b64encode(hmac.new(f"1767225600\n{SECRET}".encode(), b"",
                                         hashlib.sha256).digest()).decode()
    assert body == {"timestamp": "1767225600", "sign": expected, "msg_type": "text",
                    "content": {"text": f"{MESSAGE.title}\n{MESSAGE.action}: {MESSAGE.link}"}}


def test_feishu_without_a_secret_sends_no_signature(robot: Robot):
    robot.answer = (200, b'{"StatusCode": 0}')
    robot.channel("feishu", "/hook", secret=None).send_robot(MESSAGE)
    [(_, _, body)] = robot.requests
    assert "sign" not in body and "timestamp" not in body


@pytest.mark.parametrize(("answer", "reason"), [
    ((200, b'{"errcode": 310000, "errmsg": "sign not match"}'),
     "dingtalk refused the message: code 310000"),
    ((500, b"{}"), "dingtalk answered HTTP 500"),
    ((200, b"<html>"), "dingtalk answered no JSON"),
])
def test_a_refusal_is_a_failure_with_a_safe_reason(robot: Robot, answer, reason):
    robot.answer = answer
    with pytest.raises(DeliveryFailed) as err:
        robot.channel("dingtalk", "/robot/send?access_token=tok").send_robot(MESSAGE)
    assert err.value.reason == reason
    assert "tok" not in err.value.reason and SECRET not in err.value.reason


def test_feishu_refusal_code(robot: Robot):
    robot.answer = (200, b'{"code": 19021, "msg": "sign match fail"}')
    with pytest.raises(DeliveryFailed, match="code 19021"):
        robot.channel("feishu", "/hook").send_robot(MESSAGE)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_robot_and_smtp_fail_without_personal_data():
    with pytest.raises(DeliveryFailed) as err:
        WebhookRobotChannel(robot_name="x", provider="wecom",
                            url=f"http://127.0.0.1:{_closed_port()}/send?key=k",
                            timeout_seconds=2).send_robot(MESSAGE)
    assert err.value.reason == "wecom unreachable: ConnectError"
    smtp = SmtpChannel(SmtpConfig(host="127.0.0.1", port=_closed_port(), tls="none",
                                  timeout_seconds=2))
    with pytest.raises(DeliveryFailed) as err:
        smtp.send_email(_spec())
    assert err.value.reason == "SMTP unreachable: ConnectionRefusedError"


def _spec(**overrides: Any) -> EmailMessageSpec:
    values: dict[str, Any] = dict(
        to="li@example.test", subject="客户调整申请 #42 已生效", text="纯文本\n",
        html="<p>HTML</p>", language="zh-CN", message_id="<baton-notification-1-2@baton>")
    values.update(overrides)
    return EmailMessageSpec(**values)


def test_email_is_text_and_html_alternatives_with_headers():
    channel = SmtpChannel(SmtpConfig(host="unused", sender="Baton <baton@example.test>"))
    raw = channel.build(_spec(attachments=(Attachment("report-42-v1.pdf", b"%PDF-1.7"),)))
    parsed = message_from_bytes(raw.as_bytes(), policy=default_policy)
    assert parsed["Subject"] == "客户调整申请 #42 已生效"
    assert parsed["From"] == "Baton <baton@example.test>" and parsed["To"] == "li@example.test"
    assert parsed["Content-Language"] == "zh-CN"
    assert parsed["Message-ID"] == "<baton-notification-1-2@baton>"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_content_type() == "multipart/mixed"
    assert parsed.get_body(("plain",)).get_content() == "纯文本\n"
    assert parsed.get_body(("html",)).get_content().strip() == "<p>HTML</p>"
    [pdf] = list(parsed.iter_attachments())
    assert pdf.get_filename() == "report-42-v1.pdf" and pdf.get_content() == b"%PDF-1.7"
