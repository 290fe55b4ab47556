"""Delivery of notifications beyond the in-app record: one row per (notification, channel).

The in-app `NotificationRecord` stays the source; a delivery row says whether that notice also
went out by e-mail (channel "email") or to a group robot (channel "webhook:<robot name>", on the
first record of the notice, since a group hears each notice once). The unique key makes a
retried activity find the row it wrote before, so a notice that is `sent` is never sent again.

`last_error` holds the error's kind and code only (an SMTP reply code, an HTTP status, a
robot's errcode), never a message body or an address, so the list can be shown to HR.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow

EMAIL_CHANNEL = "email"
WEBHOOK_CHANNEL_PREFIX = "webhook:"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # not tried yet
    SENDING = "sending"  # claimed by an attempt that has not reported back (see claimed_at)
    SENT = "sent"
    FAILED = "failed"  # the last attempt failed; a retry of the activity may still send it


class NotificationDelivery(SQLModel, table=True):
    __tablename__ = "notification_delivery"
    __table_args__ = (UniqueConstraint("notification_id", "channel"),)

    id: int | None = Field(default=None, primary_key=True)
    notification_id: int = Field(foreign_key="notification.id", index=True)
    request_id: int = Field(foreign_key="reassignment_request.id", index=True)
    kind: str = Field(max_length=40)
    channel: str = Field(max_length=60, description='"email" or "webhook:<robot name>"')
    address: str = Field(max_length=320, description="e-mail address or robot name")
    language: str = Field(max_length=10)
    # a plain string (a DeliveryStatus value): no database enum type to migrate per backend
    status: str = Field(default=DeliveryStatus.PENDING.value, max_length=10, index=True)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
