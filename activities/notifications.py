"""The `deliver_notifications` activity: one notice out by e-mail and to group robots.

The `notify` activity (activities/reassignment.py) has already written the in-app records of
the notice (workflow id, key), one per recipient. This activity adds one NotificationDelivery
row per record and channel, then sends what is not sent yet.

Exactly-once is impossible across an SMTP server and a database, so the choice is
**at-least-once, with the duplicate window made small**: a row is claimed first (status
`sending`, committed), then sent, then marked `sent` (committed). A row that is `sent` is
never sent again, whatever retries follow. Only a crash between the server's acceptance and
that last commit leaves a `sending` row behind; once its claim is older than the activity's
timeout, a retry sends it again (the same Message-ID, so mail clients can fold the copy).
A lost approval request costs more than a rare duplicate e-mail.

Failures never reach the workflow's critical path: the workflow starts this activity without
waiting for it, with a bounded retry policy. An attempt raises (so Temporal retries) while any
row failed for a reason a retry may cure; the rows keep the attempts and the last error, which
HR sees on the dashboard and in GET /api/v1/notifications/deliveries?status=failed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.reassignment import _employees_with_role
from domain.stages import Role
from domain.workflow_dto import NotificationDeliveryInput, NotificationDeliveryResult
from models import Employee, NotificationRecord, ReassignmentRequest, RequestDocument
from models.db import SessionFactory
from models.notification_delivery import (
    EMAIL_CHANNEL,
    DeliveryStatus,
    NotificationDelivery,
)
from notifications.channels import (
    Attachment,
    DeliveryChannels,
    DeliveryFailed,
    EmailMessageSpec,
    RobotChannel,
    RobotMessage,
    valid_address,
)
from notifications.rendering import language_of, prepare, render_email, render_robot

log = logging.getLogger(__name__)

# the workflow's start-to-close timeout of one attempt; a `sending` claim older than this
# belongs to an attempt that Temporal has given up on
DELIVERY_ATTEMPT_TIMEOUT = timedelta(minutes=2)
DELIVERY_FAILED = "NOTIFICATION_DELIVERY_FAILED"
APPROVER_KINDS = frozenset({"APPROVAL_REQUESTED", "APPROVAL_REMINDER", "APPROVAL_ESCALATED"})
HR_KINDS = frozenset({"APPEAL_OPENED", "DECLINED", "EXPIRED_NO_CONSENT", "CANCELLED"})
SIGN_KINDS = frozenset({"SIGNATURE_REQUESTED", "SIGNATURE_REMINDER"})
NO_ADDRESS = "no valid e-mail address on record"


def page_for(kind: str, request: ReassignmentRequest, recipient_id: int | None,
             hr_ids: set[int]) -> str:
    """The page a recipient acts on (recipient None: a group robot, which reads ids only)."""
    rid = request.id
    if recipient_id is None:
        if kind in HR_KINDS or kind == "APPROVAL_ESCALATED":
            return f"/app/hr/cases/{rid}"
        return f"/app/requests/{rid}"
    if kind in APPROVER_KINDS:
        return f"/app/approvals/{rid}"
    if recipient_id == request.from_employee_id:
        if kind in SIGN_KINDS:
            return f"/app/me/requests/{rid}/sign"
        if kind == "REPORT_AVAILABLE":
            return f"/app/requests/{rid}/report"
        return f"/app/me/requests/{rid}"
    if kind in HR_KINDS and recipient_id in hr_ids and recipient_id not in (
            request.requester_id, request.to_employee_id):
        return f"/app/hr/cases/{rid}"
    return f"/app/requests/{rid}"


@dataclass(frozen=True)
class _Planned:
    delivery_id: int
    channel: str
    record: NotificationRecord
    recipient: Employee | None  # None for a robot


class NotificationActivities:
    def __init__(self, sessions: SessionFactory, channels: DeliveryChannels | None = None, *,
                 public_url: str = "http://localhost:8000", timezone: str = "Asia/Shanghai",
                 claim_lease: timedelta = DELIVERY_ATTEMPT_TIMEOUT) -> None:
        self._sessions = sessions
        self._channels = channels or DeliveryChannels()
        self._public_url = public_url.rstrip("/")
        self._timezone = timezone
        self._lease = claim_lease

    @activity.defn(name="deliver_notifications")
    def deliver_notifications(self, inp: NotificationDeliveryInput) -> NotificationDeliveryResult:
        if not self._channels.any:
            return NotificationDeliveryResult()  # the dev default: in-app records only
        planned, gave_up = self._plan(inp)
        sent = 0
        retry: list[str] = []
        with self._sessions() as session:
            request = session.get(ReassignmentRequest, inp.request_id)
            if request is None:
                raise ApplicationError(f"request {inp.request_id} does not exist",
                                       type="REQUEST_NOT_FOUND", non_retryable=True)
            names = _names(session, request)
            hr_ids = _employees_with_role(session, Role.HR)
            report = _report_pdf(session, request.id) if inp.kind == "REPORT_AVAILABLE" else None
        for item in planned:
            if not self._claim(item.delivery_id):
                retry.append("in flight in another attempt")
                continue
            try:
                self._send(inp, item, request, names, hr_ids, report)
            except DeliveryFailed as err:
                self._finish(item.delivery_id, DeliveryStatus.FAILED, err.reason)
                retry.append(err.reason)
            except Exception as err:  # a bug must not leave the row claimed until the lease
                self._finish(item.delivery_id, DeliveryStatus.FAILED, type(err).__name__)
                raise
            else:
                self._finish(item.delivery_id, DeliveryStatus.SENT, None)
                sent += 1
        if retry:
            # retryable: Temporal tries again on the workflow's bounded policy
            raise ApplicationError(f"{len(retry)} of {len(planned)} deliveries failed: "
                                   f"{'; '.join(sorted(set(retry)))}", type=DELIVERY_FAILED)
        return NotificationDeliveryResult(sent=sent, failed=gave_up)

    # --- steps ---------------------------------------------------------------------------------

    def _plan(self, inp: NotificationDeliveryInput) -> tuple[list[_Planned], int]:
        """Write the missing delivery rows; return the ones still to send, and how many can
        never be sent (no address)."""
        with self._sessions() as session:
            records = list(session.exec(select(NotificationRecord).where(
                NotificationRecord.workflow_id == inp.workflow_id,
                NotificationRecord.key == inp.key).order_by(col(NotificationRecord.id))).all())
            people = {e.id: e for e in session.exec(select(Employee).where(
                col(Employee.id).in_({r.recipient_id for r in records} or {-1}))).all()}
        wanted: list[tuple[NotificationRecord, str, str, str, Employee | None]] = []
        if self._channels.email is not None:
            for record in records:
                person = people.get(record.recipient_id)
                address = (person.email or "").strip() if person else ""
                wanted.append((record, EMAIL_CHANNEL, address,
                               language_of(person.locale if person else None), person))
        if records:
            for robot in self._robots_for(inp.kind):
                # a group hears each notice once: on the notice's first record
                wanted.append((records[0], robot.name, robot.name.removeprefix("webhook:"),
                               robot.language, None))
        planned, hopeless = [], 0
        for record, channel, address, language, person in wanted:
            row = self._row(record, channel, address, language)
            if row.last_error == NO_ADDRESS:
                hopeless += 1
            elif row.status != DeliveryStatus.SENT.value:
                assert row.id is not None
                planned.append(_Planned(row.id, channel, record, person))
        return planned, hopeless

    def _row(self, record: NotificationRecord, channel: str, address: str,
             language: str) -> NotificationDelivery:
        assert record.id is not None
        query = select(NotificationDelivery).where(
            NotificationDelivery.notification_id == record.id,
            NotificationDelivery.channel == channel)
        with self._sessions() as session:
            found = session.exec(query).first()
            if found is not None:
                return found
        no_address = channel == EMAIL_CHANNEL and not valid_address(address)
        try:
            with self._sessions() as session:
                row = NotificationDelivery(
                    notification_id=record.id, request_id=record.request_id, kind=record.kind,
                    channel=channel, address=address[:320], language=language,
                    # retrying cannot give a person an address; HR fixes the record
                    status=(DeliveryStatus.FAILED if no_address else DeliveryStatus.PENDING).value,
                    last_error=NO_ADDRESS if no_address else None)
                session.add(row)
                session.flush()
                return row
        except IntegrityError:  # a concurrent attempt wrote it first
            with self._sessions() as session:
                return session.exec(query).one()

    def _claim(self, delivery_id: int) -> bool:
        """Mark the row in flight, unless it is sent or another live attempt holds it."""
        now = datetime.now(UTC)
        d = NotificationDelivery
        with self._sessions() as session:
            result = session.execute(update(d).where(
                col(d.id) == delivery_id,
                or_(col(d.status).in_([DeliveryStatus.PENDING.value,
                                       DeliveryStatus.FAILED.value]),
                    and_(col(d.status) == DeliveryStatus.SENDING.value,
                         col(d.claimed_at) < now - self._lease)),
            ).values(status=DeliveryStatus.SENDING.value, attempts=col(d.attempts) + 1,
                     claimed_at=now))
            return bool(getattr(result, "rowcount", 0) == 1)

    def _finish(self, delivery_id: int, status: DeliveryStatus, error: str | None) -> None:
        with self._sessions() as session:
            row = session.get(NotificationDelivery, delivery_id)
            assert row is not None
            row.status = status.value
            row.last_error = error
            if status == DeliveryStatus.SENT:
                row.sent_at = datetime.now(UTC)
            session.add(row)

    def _send(self, inp: NotificationDeliveryInput, item: _Planned,
              request: ReassignmentRequest, names: dict[str, Any], hr_ids: set[int],
              report: tuple[str, bytes] | None) -> None:
        record = item.record
        if item.recipient is None:
            robot = next(r for r in self._channels.robots if r.name == item.channel)
            context = {**prepare(inp.params, robot.language, self._timezone),
                       "request_id": request.id,
                       "link": self._public_url + page_for(inp.kind, request, None, hr_ids)}
            text = render_robot(inp.kind, robot.language, context)
            robot.send_robot(RobotMessage(title=text.title, link=text.link, action=text.action))
            return
        email = self._channels.email
        assert email is not None
        person = item.recipient
        language = language_of(person.locale)
        context = {**prepare(inp.params, language, self._timezone), **names,
                   "request_id": request.id, "recipient_name": person.name,
                   "link": self._public_url + page_for(inp.kind, request, person.id, hr_ids)}
        message = render_email(inp.kind, language, context)
        attachments: tuple[Attachment, ...] = ()
        if report is not None and person.id == request.from_employee_id:
            attachments = (Attachment(filename=report[0], content=report[1]),)
        email.send_email(EmailMessageSpec(
            to=(person.email or "").strip(), subject=message.subject, text=message.text,
            html=message.html, language=language,
            message_id=f"<baton-notification-{record.id}-{item.delivery_id}@baton>",
            attachments=attachments))

    def _robots_for(self, kind: str) -> list[RobotChannel]:
        return [r for r in self._channels.robots if kind in r.kinds]


def _names(session: Session, request: ReassignmentRequest) -> dict[str, Any]:
    ids = {request.requester_id, request.from_employee_id, request.to_employee_id}
    people = {e.id: e.name for e in session.exec(
        select(Employee).where(col(Employee.id).in_(ids))).all()}
    return {"requester_name": people.get(request.requester_id, ""),
            "from_name": people.get(request.from_employee_id, ""),
            "to_name": people.get(request.to_employee_id, ""),
            "customer_count": len(request.customer_ids)}


def _report_pdf(session: Session, request_id: int | None) -> tuple[str, bytes] | None:
    """The newest personal report, attached to the salesperson's own e-mail only."""
    document = session.exec(select(RequestDocument).where(
        RequestDocument.request_id == request_id, RequestDocument.kind == "REPORT")
        .order_by(col(RequestDocument.version).desc())).first()
    if document is None or not document.pdf:
        return None
    return f"report-{request_id}-v{document.version}.pdf", bytes(document.pdf)
