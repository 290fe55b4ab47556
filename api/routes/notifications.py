"""Notification delivery status (issue 9): which e-mails and robot messages went out, and
which failed, for HR and admin to fix an address or the mail setup.

GET /api/v1/notifications/deliveries?status=failed lists rows of notification_delivery
(models/notification_delivery.py), newest first, in the caller's scope. A row holds ids, the
channel, the address and a PII-free error, never the message itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlmodel import col, func, select

from api.deps import SessionDep, permit
from api.problems import problem_responses
from api.security import Actor
from api.services.scope import Scope
from domain.permissions import Action
from models.notification_delivery import DeliveryStatus, NotificationDelivery
from models.reassignment import NotificationRecord, ReassignmentRequest

router = APIRouter(prefix="/notifications", tags=["notifications"])

DeliveryReader = Annotated[Actor, permit(Action.NOTIFICATION_DELIVERIES_READ)]


class DeliveryOut(BaseModel):
    id: int
    notification_id: int
    request_id: int
    recipient_id: int | None  # None for a group robot's row
    kind: str
    channel: str
    address: str
    language: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    claimed_at: datetime | None
    sent_at: datetime | None


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    total: int
    limit: int
    offset: int


@router.get("/deliveries", response_model=DeliveryPage,
            responses=problem_responses(401, 403, 422))
def list_deliveries(
    actor: DeliveryReader, session: SessionDep,
    status: Annotated[DeliveryStatus | None, Query(
        description="pending, sending, sent or failed; omit for all")] = None,
    request_id: Annotated[int | None, Query(ge=1)] = None,
    channel: Annotated[str | None, Query(
        max_length=60, description='"email" or "webhook:<robot name>"')] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DeliveryPage:
    """Delivery rows, newest first. `?status=failed` is what needs attention: the attempts
    and the last error (an SMTP code, an HTTP status, a robot's code, or a missing address)."""
    D = NotificationDelivery  # noqa: N806
    query = select(D, NotificationRecord.recipient_id).join(
        NotificationRecord, col(NotificationRecord.id) == D.notification_id).join(
        ReassignmentRequest, col(ReassignmentRequest.id) == D.request_id)
    clause = Scope(session, actor).notification_deliveries()
    if clause is not None:
        query = query.where(clause)
    if status is not None:
        query = query.where(D.status == status.value)
    if request_id is not None:
        query = query.where(D.request_id == request_id)
    if channel is not None:
        query = query.where(D.channel == channel)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(col(D.id).desc()).offset(offset).limit(limit)).all()
    items = [DeliveryOut.model_validate({
        **row.model_dump(),
        "recipient_id": None if row.channel.startswith("webhook:") else recipient_id})
        for row, recipient_id in rows]
    return DeliveryPage(items=items, total=total, limit=limit, offset=offset)
