"""Notifications: the bell in the header (its unread count, loaded by htmx), the list of the
caller's notifications, and marking them read.

A notification (models.reassignment.NotificationRecord) is addressed to one employee; nobody
sees another's. Its stored message is the workflow's (in English); the page leads with a
translated title per kind, and a one-time signing code is shown large, with a link to the
signing page.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, update
from sqlmodel import Session, col, select

from api.deps import SessionDep
from api.problems import Problem
from api.security import Actor
from domain.permissions import Action
from models.reassignment import NotificationRecord, ReassignmentRequest
from web.deps import page_permit
from web.errors import is_htmx
from web.me_labels import MeLabels
from web.render import _datetime, current_locale, render

router = APIRouter()

INBOX_PATH = "/app/notifications"
PAGE_SIZE = 30
SIGNING_CODE = "SIGNING_CODE"
_CODE = re.compile(r"\b(\d{6})\b")
_MINUTES = re.compile(r"valid for (\d+) minutes")


def _moment(request: Request) -> Any:
    """A time as the pages show it (the reader's language, the office's time zone)."""
    settings = request.app.state.settings
    return partial(_datetime, locale=current_locale(request), tz=settings.org_timezone)


def unread_count(session: Session, employee_id: int) -> int:
    return int(session.exec(select(func.count()).select_from(NotificationRecord).where(
        NotificationRecord.recipient_id == employee_id,
        col(NotificationRecord.read_at).is_(None))).one())


def _mine(session: Session, actor: Actor, notification_id: int) -> NotificationRecord:
    """The caller's notification, or 404 (someone else's is answered like a missing one)."""
    row = session.get(NotificationRecord, notification_id)
    if row is None or row.recipient_id != actor.employee_id:
        raise Problem(404, "not-found", "Notification not found",
                      f"You have no notification {notification_id}.")
    return row


def _items(session: Session, actor: Actor, rows: list[NotificationRecord],
           labels: MeLabels, moment: Any) -> list[dict[str, Any]]:
    """Each notification with its title, where it leads, and a signing code pulled out."""
    request_ids = {r.request_id for r in rows}
    affected = set()
    if request_ids:
        affected = {rid for rid, owner in session.exec(
            select(ReassignmentRequest.id, ReassignmentRequest.from_employee_id).where(
                col(ReassignmentRequest.id).in_(request_ids))).all()
            if owner == actor.employee_id}
    items = []
    for row in rows:
        mine = row.request_id in affected
        href = f"/app/me/requests/{row.request_id}" if mine else f"/app/requests/{row.request_id}"
        code = minutes = None
        if row.kind == SIGNING_CODE:
            found = _CODE.search(row.message)
            code = found.group(1) if found else None
            valid = _MINUTES.search(row.message)
            minutes = int(valid.group(1)) if valid else None
            if mine:
                href += "/sign"
        items.append({"n": row, "title": labels.notification(row.kind), "href": href,
                      "code": code, "minutes": minutes, "unread": row.read_at is None,
                      "text": labels.notification_text(row.message, moment)})
    return items


@router.get(INBOX_PATH)
def notifications(
    request: Request, actor: Annotated[Actor, page_permit(Action.OWN_PROFILE)],
    session: SessionDep,
    show: Annotated[str | None, Query(pattern="^(all|unread)$")] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    notice: Annotated[str | None, Query(max_length=30)] = None,
) -> Response:
    show = show or "all"
    query = select(NotificationRecord).where(NotificationRecord.recipient_id == actor.employee_id)
    if show == "unread":
        query = query.where(col(NotificationRecord.read_at).is_(None))
    total = int(session.exec(select(func.count()).select_from(query.subquery())).one())
    rows = list(session.exec(query.order_by(col(NotificationRecord.id).desc())
                             .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all())
    labels = MeLabels(current_locale(request))
    return render(request, "me/notifications.html", {
        "items": _items(session, actor, rows, labels, _moment(request)), "total": total,
        "show": show,
        "page": page, "pages": max(1, -(-total // PAGE_SIZE)),
        "unread": (unread := unread_count(session, actor.employee_id)), "bell_unread": unread,
        "notice": notice if notice in ("all-read",) else None,
    })


@router.get(INBOX_PATH + "/badge")
def badge(request: Request, actor: Annotated[Actor, page_permit(Action.OWN_PROFILE)],
          session: SessionDep) -> Response:
    """The bell with its unread count (htmx swaps it into the header of every page)."""
    return render(request, "me/_bell.html",
                  {"bell_unread": unread_count(session, actor.employee_id)})


@router.post(INBOX_PATH + "/{notification_id}/read")
def mark_read(request: Request, notification_id: int,
              actor: Annotated[Actor, page_permit(Action.OWN_PROFILE)],
              session: SessionDep) -> Response:
    row = _mine(session, actor, notification_id)
    if row.read_at is None:
        row.read_at = datetime.now(UTC)
        session.add(row)
        session.flush()
    if is_htmx(request):
        labels = MeLabels(current_locale(request))
        [item] = _items(session, actor, [row], labels, _moment(request))
        return render(request, "me/_notification.html", {
            "item": item, "bell_unread": unread_count(session, actor.employee_id), "oob": True})
    return RedirectResponse(INBOX_PATH, 303)


@router.post(INBOX_PATH + "/read-all")
def mark_all_read(request: Request, actor: Annotated[Actor, page_permit(Action.OWN_PROFILE)],
                  session: SessionDep) -> Response:
    session.execute(update(NotificationRecord).where(
        col(NotificationRecord.recipient_id) == actor.employee_id,
        col(NotificationRecord.read_at).is_(None)).values(read_at=datetime.now(UTC)))
    return RedirectResponse(f"{INBOX_PATH}?notice=all-read", 303)
