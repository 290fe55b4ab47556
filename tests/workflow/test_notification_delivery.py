"""Issue 9, acceptance 3: a real local SMTP server (aiosmtpd) receives the e-mails of one whole
lifecycle, driven by the workflow on the time-skipping server with the real worker and
activities: submission, approvals (with a reminder and an escalation), the communication window
with the report, the signature request and a reminder, signing, the transfer and the end of
protection. The salesperson reads English, everyone else Simplified Chinese.

And an SMTP server that refuses connections changes nothing in the lifecycle: every delivery
ends `failed` after the bounded retries."""

from __future__ import annotations

import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from sqlmodel import select

from domain.stages import Stage
from domain.workflow_dto import ActionInput, ReassignmentState, SignInput
from models import Employee, NotificationDelivery, NotificationRecord
from models.db import SessionFactory
from notifications.channels import DeliveryChannels, SmtpChannel, SmtpConfig
from tests.factories import SmallOrg
from tests.workflow.conftest import Harness, approve_all_levels, wait_stage, wait_until
from worker import build_worker

PUBLIC_URL = "https://baton.example.test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Inbox:
    """What the SMTP server accepted: (envelope recipients, the parsed message)."""

    received: list[tuple[list[str], EmailMessage]]

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802 (aiosmtpd's hook name)
        message = message_from_bytes(envelope.content, policy=default_policy)  # type: ignore[attr-defined]
        assert isinstance(message, EmailMessage)
        self.received.append((list(envelope.rcpt_tos), message))  # type: ignore[attr-defined]
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox([])
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


async def _harness(time_env, sessions: SessionFactory, org: SmallOrg,
                   smtp_port: int) -> AsyncIterator[Harness]:
    task_queue = f"tq-mail-{uuid.uuid4().hex[:8]}"
    channels = DeliveryChannels(email=SmtpChannel(SmtpConfig(
        host="127.0.0.1", port=smtp_port, tls="none", sender="Baton <baton@example.test>",
        timeout_seconds=5)))
    async with build_worker(time_env.client, sessions, task_queue, channels=channels,
                            public_url=PUBLIC_URL + "/"):
        harness = Harness(time_env, time_env.client, sessions, org, task_queue)
        try:
            yield harness
        finally:
            await harness.terminate_leftovers()


@pytest_asyncio.fixture
async def mail_harness(time_env, sessions, org, smtp_server) -> AsyncIterator[Harness]:
    with sessions() as s:  # the salesperson who signs reads English; the others keep zh-CN
        person = s.get(Employee, org.sales_a1)
        person.locale = "en"
        s.add(person)
    async for harness in _harness(time_env, sessions, org, smtp_server[0]):
        yield harness


@pytest_asyncio.fixture
async def refusing_harness(time_env, sessions, org) -> AsyncIterator[Harness]:
    async for harness in _harness(time_env, sessions, org, _free_port()):  # nobody listens
        yield harness


def _body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None, f"no text/{subtype} part"
    return part.get_content()


def _is_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


async def test_one_lifecycle_of_real_emails(mail_harness: Harness, smtp_server, sessions):
    _, inbox = smtp_server
    org = mail_harness.org
    handle = await mail_harness.submit_and_start(
        requester=org.manager_a, from_id=org.sales_a1, to_id=org.sales_a2,
        customers=org.customers_a1[:2])
    state = await wait_stage(handle, Stage.PENDING_APPROVAL, level=1)
    rid = state.request_id
    await mail_harness.env.sleep(timedelta(minutes=5))  # level 1: reminder, then escalation
    state = await wait_until(handle, lambda s: bool(s.levels[0].escalated_to))
    escalated_to = state.levels[0].escalated_to[0]
    for level in state.levels:
        await wait_stage(handle, Stage.PENDING_APPROVAL, level=level.level)
        await handle.execute_update("approve", ActionInput(actor_id=level.approver_id),
                                    result_type=ReassignmentState)
    await wait_stage(handle, Stage.COMMUNICATION)
    await mail_harness.env.sleep(timedelta(minutes=11))  # the window ends unsigned
    await wait_stage(handle, Stage.AWAITING_SIGNATURE)
    await mail_harness.env.sleep(timedelta(minutes=6))  # the 5-minutes-before reminder
    state = await wait_until(handle, lambda s: s.agreement_sha256 is not None)
    await handle.execute_update("sign", SignInput(
        actor_id=org.sales_a1, typed_name="Li Sales", document_hash=state.agreement_sha256))
    final = await handle.result()  # protection runs out; the workflow waits for its e-mails
    assert final.stage == Stage.COMPLETED

    with sessions() as s:
        people = {e.id: e for e in s.exec(select(Employee)).all()}
        records = {r.id: r for r in s.exec(select(NotificationRecord).where(
            NotificationRecord.request_id == rid)).all()}
        deliveries = list(s.exec(select(NotificationDelivery).where(
            NotificationDelivery.request_id == rid)).all())
    # every in-app notice went out once by e-mail, and was recorded as sent
    assert len(deliveries) == len(records)
    assert {d.status for d in deliveries} == {"sent"}
    assert all(d.attempts == 1 and d.sent_at is not None for d in deliveries)
    assert len(inbox.received) == len(deliveries)

    by_record: dict[int, tuple[list[str], EmailMessage]] = {}
    for rcpt, message in inbox.received:
        record_id = int(message["Message-ID"].split("-")[2])  # <baton-notification-R-D@baton>
        assert record_id not in by_record, "a notice was e-mailed twice"
        by_record[record_id] = (rcpt, message)
    assert set(by_record) == set(records)

    got = Counter()
    for record_id, (rcpt, message) in by_record.items():
        record = records[record_id]
        person = people[record.recipient_id]
        got[(record.kind, record.recipient_id)] += 1
        assert rcpt == [person.email] and message["To"] == person.email
        text, html = _body(message, "plain"), _body(message, "html")
        english = record.recipient_id == org.sales_a1
        assert message["Content-Language"] == ("en" if english else "zh-CN")
        assert _is_chinese(message["Subject"] + text) is not english, (record.kind, text)
        assert f"#{rid}" in message["Subject"]
        assert person.name in text  # the greeting
        link = _expected_link(record.kind, record.recipient_id, rid, org)
        assert link in text and f'href="{link}"' in html, (record.kind, link, text)

    # who heard what, over the whole lifecycle
    a1, a2, manager = org.sales_a1, org.sales_a2, org.manager_a
    assert got == Counter({
        ("APPROVAL_REQUESTED", org.director): 1, ("APPROVAL_REQUESTED", org.ceo): 1,
        ("APPROVAL_REQUESTED", org.hr_head): 1,
        ("APPROVAL_REMINDER", org.director): 1,
        ("APPROVAL_ESCALATED", escalated_to): 1,
        ("APPROVED", manager): 1,
        ("REPORT_AVAILABLE", a1): 1,
        ("STAGE_CHANGED", a2): 4,  # approval started, approved, awaiting signature, protection
        ("SIGNATURE_REQUESTED", a1): 1,
        ("SIGNATURE_REMINDER", a1): 1,
        ("OWNERSHIP_TRANSFERRED", a1): 1, ("OWNERSHIP_TRANSFERRED", a2): 1,
        ("OWNERSHIP_TRANSFERRED", manager): 1,
        ("COMPLETED", a1): 1, ("COMPLETED", a2): 1,
    })

    # the salesperson's report e-mail, in English, carries the report's PDF
    [report_mail] = [m for _, m in by_record.values()
                     if m["Subject"].strip().startswith("Your personal analysis report")]
    [pdf] = list(report_mail.iter_attachments())
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_content().startswith(b"%PDF")
    # the approver's request names the request, the people and the deadline, in Chinese
    director_mail = next(m for record_id, (_, m) in by_record.items()
                         if records[record_id].kind == "APPROVAL_REQUESTED"
                         and records[record_id].recipient_id == org.director)
    body = _body(director_mail, "plain")
    assert "请在" in body and "中国标准时间" in body and "Li Sales" in body


def _expected_link(kind: str, recipient: int, rid: int, org: SmallOrg) -> str:
    if kind.startswith("APPROVAL_"):
        return f"{PUBLIC_URL}/app/approvals/{rid}"
    if recipient == org.sales_a1:
        if kind.startswith("SIGNATURE_"):
            return f"{PUBLIC_URL}/app/me/requests/{rid}/sign"
        if kind == "REPORT_AVAILABLE":
            return f"{PUBLIC_URL}/app/requests/{rid}/report"
        return f"{PUBLIC_URL}/app/me/requests/{rid}"
    return f"{PUBLIC_URL}/app/requests/{rid}"


async def test_refused_smtp_changes_nothing_and_is_recorded_failed(refusing_harness: Harness,
                                                                   sessions):
    org = refusing_harness.org
    handle = await refusing_harness.submit_and_start(
        requester=org.manager_a, from_id=org.sales_a1, to_id=org.sales_a2,
        customers=org.customers_a1[:1])
    await approve_all_levels(handle)
    state = await wait_until(handle, lambda s: s.stage == Stage.COMMUNICATION
                             and s.agreement_sha256 is not None)
    await handle.execute_update("sign", SignInput(
        actor_id=org.sales_a1, typed_name="Li Sales", document_hash=state.agreement_sha256))
    final = await handle.result()
    assert final.stage == Stage.COMPLETED
    with sessions() as s:
        records = s.exec(select(NotificationRecord).where(
            NotificationRecord.request_id == final.request_id)).all()
        deliveries = s.exec(select(NotificationDelivery).where(
            NotificationDelivery.request_id == final.request_id)).all()
    assert records and len(deliveries) == len(records)
    assert {d.status for d in deliveries} == {"failed"}
    assert {d.attempts for d in deliveries} == {5}  # the workflow's bounded retry policy
    assert {d.last_error for d in deliveries} == {"SMTP unreachable: ConnectionRefusedError"}
    assert all(d.sent_at is None for d in deliveries)
