"""Where a rendered notice goes: personal e-mail over SMTP, or a group robot's webhook.

A channel sends one message and raises `DeliveryFailed` with a short, PII-free reason (an SMTP
reply code, an HTTP status, a robot's errcode) when it could not. Retrying is the caller's job
(the `deliver_notifications` activity and its retry policy).

Group robots (WeCom, DingTalk, Feishu) follow their documented "custom robot" formats:
- WeCom: POST {"msgtype": "markdown", "markdown": {"content": ...}}; the key is in the URL;
  answer {"errcode": 0}.
- DingTalk: POST {"msgtype": "markdown", "markdown": {"title", "text"}}; with a secret, the URL
  gets `timestamp` (ms) and `sign` = base64(HMAC-SHA256(key=secret, msg="<timestamp>\\n<secret>"));
  answer {"errcode": 0}.
- Feishu: POST {"msg_type": "text", "content": {"text": ...}}; with a secret, the body gets
  `timestamp` (s) and `sign` = base64(HMAC-SHA256(key="<timestamp>\\n<secret>", msg=b""));
  answer {"code": 0} (older deployments: {"StatusCode": 0}).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any, Literal, Protocol
from urllib.parse import quote_plus

import httpx

TlsMode = Literal["none", "starttls", "ssl"]
RobotProvider = Literal["wecom", "dingtalk", "feishu"]


class DeliveryFailed(Exception):
    """A message did not go out. `reason` is safe to store and show: no address, no body."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason[:500]


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    maintype: str = "application"
    subtype: str = "pdf"


@dataclass(frozen=True)
class EmailMessageSpec:
    to: str
    subject: str
    text: str
    html: str
    language: str  # Content-Language, e.g. "zh-CN"
    message_id: str  # stable per delivery row: a resend after a crash is recognisably the same
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class RobotMessage:
    """What a group hears: ids and a link only, never a name or a reason."""

    title: str
    link: str
    action: str  # the link's label


class Channel(Protocol):
    """A way out for one notice. `name` is what the delivery row records as its channel."""

    @property
    def name(self) -> str: ...


class EmailChannel(Channel, Protocol):
    def send_email(self, message: EmailMessageSpec) -> None: ...


class RobotChannel(Channel, Protocol):
    kinds: frozenset[str]
    language: str

    def send_robot(self, message: RobotMessage) -> None: ...


# --- e-mail -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 587
    tls: TlsMode = "starttls"
    username: str | None = None
    password: str | None = None
    sender: str = "Baton <baton@localhost>"
    timeout_seconds: float = 10.0


class SmtpChannel:
    """Plain text plus HTML (multipart/alternative), over smtplib, one connection per message."""

    name = "email"

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def build(self, message: EmailMessageSpec) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.config.sender
        mail["To"] = message.to
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = message.message_id
        mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies
        mail.set_content(message.text)
        mail.add_alternative(message.html, subtype="html")
        for item in message.attachments:
            mail.add_attachment(item.content, maintype=item.maintype, subtype=item.subtype,
                                filename=item.filename)
        # after the parts: making a multipart moves the Content-* headers into its first part
        mail["Content-Language"] = message.language
        return mail

    def send_email(self, message: EmailMessageSpec) -> None:
        mail = self.build(message)
        cfg = self.config
        try:
            smtp: smtplib.SMTP
            if cfg.tls == "ssl":
                smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout_seconds,
                                        context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_seconds)
            with smtp:
                if cfg.tls == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if cfg.username:
                    smtp.login(cfg.username, cfg.password or "")
                refused = smtp.send_message(mail)
            if refused:
                codes = sorted({code for code, _ in refused.values()})
                raise DeliveryFailed(f"SMTP refused the recipient ({codes})")
        except smtplib.SMTPResponseException as err:
            raise DeliveryFailed(f"SMTP error {err.smtp_code}") from err
        except smtplib.SMTPRecipientsRefused as err:
            codes = sorted({code for code, _ in err.recipients.values()})
            raise DeliveryFailed(f"SMTP refused the recipient ({codes})") from err
        except (smtplib.SMTPException, OSError) as err:
            raise DeliveryFailed(f"SMTP unreachable: {type(err).__name__}") from err


def valid_address(address: str | None) -> bool:
    if not address:
        return False
    _, parsed = parseaddr(address)
    return "@" in parsed and parsed == address.strip()


# --- group robots ---------------------------------------------------------------------------------


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(),
                      hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def feishu_sign(secret: str, timestamp_s: int) -> str:
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass
class WebhookRobotChannel:
    """One group robot. `clock` returns epoch seconds (a test may pin it)."""

    robot_name: str
    provider: RobotProvider
    url: str
    secret: str | None = None
    kinds: frozenset[str] = frozenset()
    language: str = "zh-CN"
    timeout_seconds: float = 10.0
    clock: Callable[[], float] = field(default=time.time)

    @property
    def name(self) -> str:
        return f"webhook:{self.robot_name}"

    def request(self, message: RobotMessage) -> tuple[str, dict[str, Any]]:
        """The URL and JSON body this robot's provider expects."""
        now = self.clock()
        markdown = f"[{message.action}]({message.link})"
        if self.provider == "wecom":
            return self.url, {"msgtype": "markdown",
                              "markdown": {"content": f"**{message.title}**\n{markdown}"}}
        if self.provider == "dingtalk":
            url = self.url
            if self.secret:
                stamp = int(now * 1000)
                joiner = "&" if "?" in url else "?"
                url += (f"{joiner}timestamp={stamp}"
                        f"&sign={quote_plus(dingtalk_sign(self.secret, stamp))}")
            return url, {"msgtype": "markdown",
                         "markdown": {"title": message.title,
                                      "text": f"#### {message.title}\n\n{markdown}"}}
        text = f"{message.title}\n{message.action}: {message.link}"
        body: dict[str, Any] = {"msg_type": "text", "content": {"text": text}}
        if self.secret:
            stamp = int(now)
            body = {"timestamp": str(stamp), "sign": feishu_sign(self.secret, stamp), **body}
        return self.url, body

    def send_robot(self, message: RobotMessage) -> None:
        url, body = self.request(message)
        try:
            answer = httpx.post(url, json=body, timeout=self.timeout_seconds)
        except httpx.HTTPError as err:
            raise DeliveryFailed(f"{self.provider} unreachable: {type(err).__name__}") from err
        if answer.status_code >= 300:
            raise DeliveryFailed(f"{self.provider} answered HTTP {answer.status_code}")
        try:
            data = answer.json()
        except ValueError as err:
            raise DeliveryFailed(f"{self.provider} answered no JSON") from err
        code = data.get("errcode", data.get("code", data.get("StatusCode", 0)))
        if code not in (0, "0"):
            raise DeliveryFailed(f"{self.provider} refused the message: code {code}")


@dataclass(frozen=True)
class DeliveryChannels:
    """The configured ways out. Empty (the dev default): only in-app records are made."""

    email: EmailChannel | None = None
    robots: tuple[RobotChannel, ...] = ()

    @property
    def any(self) -> bool:
        return self.email is not None or bool(self.robots)
