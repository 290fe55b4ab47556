"""deliver_notifications: sends each notice once per channel, whatever retries follow."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select
from temporalio.exceptions import ApplicationError

from activities.notifications import NO_ADDRESS, NotificationActivities
from activities.reassignment import ReassignmentActivities
from domain.policy import default_terms
from domain.stages import Reason, Role
from domain.workflow_dto import Notification, NotificationDeliveryInput
from models import Employee, NotificationDelivery, PolicyVersion, ReassignmentRequest
from notifications.channels import (
    DeliveryChannels,
    DeliveryFailed,
    EmailMessageSpec,
    RobotMessage,
)
from tests.factories import fast_policy_rules

WORKFLOW = "reassignment-delivery-test"


@dataclass
class Mailbox:
    """An e-mail channel that records, or fails as told (a test double of SmtpChannel)."""

    sent: list[EmailMessageSpec] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)
    name: str = "email"

    def send_email(self, message: EmailMessageSpec) -> None:
        if message.to in self.failing:
            raise DeliveryFailed("SMTP error 451")
        self.sent.append(message)


@dataclass
class Group:
    kinds: frozenset[str]
    language: str = "en"
    heard: list[RobotMessage] = field(default_factory=list)
    name: str = "webhook:hr-group"

    def send_robot(self, message: RobotMessage) -> None:
        self.heard.append(message)


@pytest.fixture
def request_id(sessions, org):
    with sessions() as s:
        policy = s.get(PolicyVersion, org.policy_version_id)
        req = ReassignmentRequest(
            idempotency_key=str(uuid.uuid4()), payload_hash="0" * 64, requester_id=org.manager_a,
            from_employee_id=org.sales_a1, to_employee_id=org.sales_a2,
            customer_ids=org.customers_a1[:2], reason=Reason.TERRITORY_REALIGNMENT.value,
            policy_version_id=policy.id,
            terms=default_terms(fast_policy_rules()).model_dump(mode="json"), workflow_id=WORKFLOW)
        s.add(req)
        s.flush()
        return req.id


def _notice(sessions, request_id: int, kind: str, recipients: list[int],
            role: Role | None = None, key: str = "1") -> NotificationDeliveryInput:
    ReassignmentActivities(sessions).notify(Notification(
        workflow_id=WORKFLOW, key=f"{key}-{kind}", request_id=request_id, kind=kind,
        message="stored English text", recipient_ids=recipients, recipient_role=role))
    return NotificationDeliveryInput(workflow_id=WORKFLOW, key=f"{key}-{kind}",
                                     request_id=request_id, kind=kind,
                                     params={"reason": "too many customers"})


def _rows(sessions) -> list[NotificationDelivery]:
    with sessions() as s:
        return list(s.exec(select(NotificationDelivery).order_by(NotificationDelivery.id)).all())


def test_without_channels_only_in_app_records(sessions, org, request_id):
    acts = NotificationActivities(sessions)
    result = acts.deliver_notifications(_notice(sessions, request_id, "DECLINED", [org.manager_a]))
    assert (result.sent, result.failed) == (0, 0) and _rows(sessions) == []


def test_a_retry_sends_nothing_twice(sessions, org, request_id):
    mailbox = Mailbox()
    acts = NotificationActivities(sessions, DeliveryChannels(email=mailbox),
                                  public_url="https://b.example")
    inp = _notice(sessions, request_id, "DECLINED", [org.manager_a, org.sales_a2])
    assert acts.deliver_notifications(inp).sent == 2
    assert acts.deliver_notifications(inp).sent == 0  # the activity retried after a crash
    assert sorted(m.to for m in mailbox.sent) == ["e020@example.test", "e101@example.test"]
    rows = _rows(sessions)
    assert [(r.status, r.attempts, r.channel) for r in rows] == [("sent", 1, "email")] * 2
    assert "Reason: too many customers" not in mailbox.sent[0].text  # zh-CN readers
    assert "理由：too many customers" in mailbox.sent[0].text
    assert mailbox.sent[0].language == "zh-CN"


def test_a_failed_recipient_is_retried_alone_and_recorded(sessions, org, request_id):
    mailbox = Mailbox(failing={"e101@example.test"})
    acts = NotificationActivities(sessions, DeliveryChannels(email=mailbox))
    inp = _notice(sessions, request_id, "DECLINED", [org.manager_a, org.sales_a2])
    with pytest.raises(ApplicationError) as err:
        acts.deliver_notifications(inp)
    assert not err.value.non_retryable and "1 of 2 deliveries failed" in str(err.value)
    failed = [r for r in _rows(sessions) if r.status == "failed"]
    assert [(r.address, r.attempts, r.last_error) for r in failed] == [
        ("e101@example.test", 1, "SMTP error 451")]
    mailbox.failing.clear()
    assert acts.deliver_notifications(inp).sent == 1  # only the one that failed
    assert [m.to for m in mailbox.sent] == ["e020@example.test", "e101@example.test"]
    assert {(r.status, r.attempts) for r in _rows(sessions)} == {("sent", 1), ("sent", 2)}


def test_an_attempt_in_flight_is_not_sent_again_until_its_claim_expires(sessions, org,
                                                                       request_id):
    mailbox = Mailbox()
    acts = NotificationActivities(sessions, DeliveryChannels(email=mailbox),
                                  claim_lease=timedelta(minutes=2))
    inp = _notice(sessions, request_id, "DECLINED", [org.manager_a])
    acts.deliver_notifications(inp)
    with sessions() as s:  # as if an attempt crashed after claiming, before sending
        row = s.exec(select(NotificationDelivery)).one()
        row.status, row.sent_at, row.claimed_at = "sending", None, datetime.now(UTC)
        s.add(row)
    with pytest.raises(ApplicationError, match="in flight in another attempt"):
        acts.deliver_notifications(inp)
    assert len(mailbox.sent) == 1
    with sessions() as s:  # the claim outlived the attempt's timeout: at-least-once resends
        row = s.exec(select(NotificationDelivery)).one()
        row.claimed_at = datetime.now(UTC) - timedelta(minutes=3)
        s.add(row)
    assert acts.deliver_notifications(inp).sent == 1
    assert len(mailbox.sent) == 2
    assert mailbox.sent[0].message_id == mailbox.sent[1].message_id  # a recognisable copy


def test_no_address_fails_at_once_and_is_not_retried(sessions, org, request_id):
    with sessions() as s:
        person = s.get(Employee, org.manager_a)
        person.email = None
        s.add(person)
    mailbox = Mailbox()
    acts = NotificationActivities(sessions, DeliveryChannels(email=mailbox))
    inp = _notice(sessions, request_id, "DECLINED", [org.manager_a, org.sales_a2])
    result = acts.deliver_notifications(inp)  # raises nothing: retrying cannot help
    assert (result.sent, result.failed) == (1, 1)
    assert [(r.status, r.last_error, r.attempts) for r in _rows(sessions)
            if r.last_error] == [("failed", NO_ADDRESS, 0)]


def test_a_group_robot_hears_each_notice_once_with_ids_only(sessions, org, request_id):
    group = Group(kinds=frozenset({"DECLINED"}))
    acts = NotificationActivities(sessions, DeliveryChannels(robots=(group,)),
                                  public_url="https://b.example/")
    inp = _notice(sessions, request_id, "DECLINED", [org.manager_a, org.sales_a2],
                  role=Role.HR)
    acts.deliver_notifications(inp)
    acts.deliver_notifications(inp)
    [heard] = group.heard
    assert heard.title == f"Reassignment request #{request_id}: the agreement was declined"
    assert heard.link == f"https://b.example/app/hr/cases/{request_id}"
    assert "too many" not in heard.title + heard.action  # the reason stays out of the group
    [row] = _rows(sessions)
    assert (row.channel, row.address, row.status) == ("webhook:hr-group", "hr-group", "sent")
    # a kind the robot did not subscribe to never reaches it
    acts.deliver_notifications(_notice(sessions, request_id, "WITHDRAWN", [org.manager_a],
                                       key="2"))
    assert len(group.heard) == 1


def test_the_salesperson_reads_english_with_her_own_links(sessions, org, request_id):
    with sessions() as s:
        person = s.get(Employee, org.sales_a1)
        person.locale = "en-US"
        s.add(person)
    mailbox = Mailbox()
    acts = NotificationActivities(sessions, DeliveryChannels(email=mailbox),
                                  public_url="https://b.example")
    deadline = {"deadline": "2026-06-01T08:00:00+00:00"}
    inp = _notice(sessions, request_id, "SIGNATURE_REQUESTED", [org.sales_a1])
    acts.deliver_notifications(inp.model_copy(update={"params": deadline}))
    [mail] = mailbox.sent
    assert mail.language == "en" and mail.subject.startswith("Please sign or decline")
    assert f"https://b.example/app/me/requests/{request_id}/sign" in mail.text
    assert "June 1, 2026, 16:00 (China Standard Time)" in mail.text
