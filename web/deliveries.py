"""The HR dashboard's panel of notifications that were not delivered (issue 9).

E-mails and group-robot messages whose last attempt failed (models/notification_delivery.py),
newest first, in HR's scope; the in-app notification exists regardless. The full list is the
API's GET /api/v1/notifications/deliveries?status=failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func
from sqlmodel import Session, col, select

from api.services.directory import employees_by_id
from api.services.scope import Scope
from models.notification_delivery import (
    WEBHOOK_CHANNEL_PREFIX,
    DeliveryStatus,
    NotificationDelivery,
)
from models.org import Employee
from models.reassignment import NotificationRecord, ReassignmentRequest

PANEL_LIMIT = 20


@dataclass(frozen=True)
class FailedDelivery:
    delivery: NotificationDelivery
    recipient_id: int | None  # None: a group robot

    @property
    def robot(self) -> str | None:
        channel = self.delivery.channel
        return channel.removeprefix(WEBHOOK_CHANNEL_PREFIX) if channel.startswith(
            WEBHOOK_CHANNEL_PREFIX) else None


@dataclass(frozen=True)
class FailedDeliveries:
    rows: list[FailedDelivery] = field(default_factory=list)
    total: int = 0
    names: dict[int, Employee] = field(default_factory=dict)


def failed_deliveries(session: Session, scope: Scope,
                      limit: int = PANEL_LIMIT) -> FailedDeliveries:
    D = NotificationDelivery  # noqa: N806
    query = (select(D, NotificationRecord.recipient_id)
             .join(NotificationRecord, col(NotificationRecord.id) == D.notification_id)
             .join(ReassignmentRequest, col(ReassignmentRequest.id) == D.request_id)
             .where(D.status == DeliveryStatus.FAILED.value))
    clause = scope.notification_deliveries()
    if clause is not None:
        query = query.where(clause)
    total = int(session.exec(select(func.count()).select_from(query.subquery())).one())
    found = session.exec(query.order_by(col(D.id).desc()).limit(limit)).all()
    rows = [FailedDelivery(d, None if d.channel.startswith(WEBHOOK_CHANNEL_PREFIX) else r)
            for d, r in found]
    names = employees_by_id(session, {r.recipient_id for r in rows if r.recipient_id})
    return FailedDeliveries(rows=rows, total=total, names=names)
