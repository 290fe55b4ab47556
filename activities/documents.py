"""Activities that render and store a request's documents (DESIGN.md, "Processes").

`render_personal_report` renders the personal analysis report for the salesperson who loses
the customers, in their language, and stores it as a RequestDocument of kind REPORT. It is
idempotent: the rendering is deterministic, so a retry produces the same SHA-256 and finds the
document already stored; a changed input (for example terms amended after an appeal) stores
the next version.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import case, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from documents import MonthFigures, Person, PolicyRef, ReportCustomer, ReportData, render_report
from documents.report import Language
from domain.impact import Assessment
from domain.periods import period_of, previous_period
from domain.policy import Terms
from models import (
    AuditEvent,
    Customer,
    Employee,
    Order,
    OrderKind,
    PolicyVersion,
    ReassignmentRequest,
    RequestDocument,
)
from models.audit import append_audit_event
from models.db import SessionFactory
from models.types import utcnow

REQUEST_NOT_FOUND = "REQUEST_NOT_FOUND"
ASSESSMENT_INVALID = "ASSESSMENT_INVALID"
REPORT = "REPORT"
REPORT_GENERATED = "REPORT_GENERATED"
HISTORY_MONTHS = 12

log = logging.getLogger(__name__)


def report_language(locale: str | None) -> Language:
    """The report's language for an employee's locale: English for en*, else Chinese."""
    return "en" if (locale or "").lower().replace("_", "-").startswith("en") else "zh-CN"


def history_periods(submitted_at: datetime, timezone: str,
                    months: int = HISTORY_MONTHS) -> list[str]:
    """The `months` full calendar months before the month of submission, oldest first."""
    period = period_of(submitted_at, timezone)
    periods = []
    for _ in range(months):
        period = previous_period(period)
        periods.append(period)
    return periods[::-1]


def monthly_history(session: Session, customer_ids: list[int],
                    periods: list[str]) -> dict[int, list[MonthFigures]]:
    """Orders and net revenue per customer per month (one GROUP BY), zero-filled."""
    rows = session.exec(
        select(Order.customer_id, Order.period,
               func.sum(case((col(Order.kind) == OrderKind.ORDER, 1), else_=0)),
               func.sum(Order.amount_fen))
        .where(col(Order.customer_id).in_(customer_ids),
               col(Order.period) >= periods[0], col(Order.period) <= periods[-1])
        .group_by(col(Order.customer_id), col(Order.period))).all()
    found = {(cid, period): (int(n or 0), int(total or 0)) for cid, period, n, total in rows}
    return {cid: [MonthFigures(period=p, orders=found.get((cid, p), (0, 0))[0],
                               revenue_fen=found.get((cid, p), (0, 0))[1]) for p in periods]
            for cid in customer_ids}


def _person(session: Session, employee_id: int) -> tuple[Person, Employee]:
    employee = session.get(Employee, employee_id)
    if employee is None or employee.id is None:
        raise ApplicationError(f"employee {employee_id} does not exist", non_retryable=True)
    return Person(id=employee.id, name=employee.name, employee_no=employee.employee_no), employee


def load_report_data(session: Session, request_id: int, window_end: datetime,
                     timezone: str) -> tuple[ReportData, Language]:
    """Everything the personal report of `request_id` shows, and the reader's language."""
    request = session.get(ReassignmentRequest, request_id)
    if request is None or request.id is None:
        raise ApplicationError(f"request {request_id} does not exist", type=REQUEST_NOT_FOUND,
                               non_retryable=True)
    policy = session.get(PolicyVersion, request.policy_version_id)
    assert policy is not None and policy.id is not None  # foreign key
    rules = policy.parsed_rules()
    salesperson, affected = _person(session, request.from_employee_id)
    requester, _ = _person(session, request.requester_id)
    receiver, _ = _person(session, request.to_employee_id)

    ids = list(request.customer_ids)
    by_id = {c.id: c for c in session.exec(select(Customer).where(col(Customer.id).in_(ids)))}
    periods = history_periods(request.created_at, timezone)
    history = monthly_history(session, ids, periods)
    customers = [ReportCustomer(id=cid, code=by_id[cid].code, name=by_id[cid].name,
                                history=history[cid]) for cid in ids if cid in by_id]

    assessment = None
    if request.assessment:
        try:
            assessment = Assessment.model_validate(request.assessment)
        except ValueError as exc:
            raise ApplicationError(
                f"the assessment stored on request {request_id} does not parse: {exc}",
                type=ASSESSMENT_INVALID, non_retryable=True) from exc

    data = ReportData(
        request_id=request.id, submitted_at=request.created_at, reason=request.reason,
        note=request.note, salesperson=salesperson, requester=requester, receiver=receiver,
        customers=customers, window_end=window_end,
        signature_deadline_at=window_end + rules.signature_deadline,
        effective_at=request.effective_at, terms=Terms.model_validate(request.terms),
        assessment=assessment,
        policy=PolicyRef(id=policy.id, name=policy.name, version=policy.version,
                         published_at=policy.published_at),
        timezone=timezone)
    return data, report_language(affected.locale)


def store_report(session: Session, request_id: int, *, language: str, sha256: str, pdf: bytes,
                 html: str) -> tuple[RequestDocument, bool]:
    """Store the report unless this request already has one with the same bytes.

    Returns (document, created). The next version is the highest one plus one.
    """
    existing = session.exec(
        select(RequestDocument).where(RequestDocument.request_id == request_id,
                                      RequestDocument.kind == REPORT,
                                      RequestDocument.sha256 == sha256)).first()
    if existing is not None:
        return existing, False
    latest = session.exec(select(func.max(RequestDocument.version)).where(
        RequestDocument.request_id == request_id, RequestDocument.kind == REPORT)).one()
    document = RequestDocument(request_id=request_id, kind=REPORT, version=(latest or 0) + 1,
                               language=language, sha256=sha256, pdf=pdf, html=html)
    session.add(document)
    session.flush()
    detail: dict[str, Any] = {"document_id": document.id, "version": document.version,
                              "sha256": sha256, "language": language}
    append_audit_event(session, AuditEvent(
        occurred_at=utcnow(), event_type=REPORT_GENERATED, request_id=request_id,
        detail=detail, chain_index=0, prev_hash="", hash=""))
    return document, True


class DocumentActivities:
    def __init__(self, sessions: SessionFactory, timezone: str = "Asia/Shanghai") -> None:
        self._sessions = sessions
        self._timezone = timezone

    @activity.defn(name="render_personal_report")
    def render_personal_report(self, request_id: int, window_end: datetime) -> str:
        """Render the affected salesperson's report and store it; return its SHA-256.

        `window_end` is the end of the communication window: the appeal deadline, and the
        estimated effective date while the transfer has not taken effect.
        """
        with self._sessions() as session:  # read, then render outside any transaction
            data, language = load_report_data(session, request_id, window_end, self._timezone)
        document = render_report(data, language)
        for attempt in (1, 2):
            try:
                with self._sessions() as session:
                    stored, created = store_report(
                        session, request_id, language=language, sha256=document.sha256,
                        pdf=document.pdf, html=document.html)
                    log.info("report of request %s: version %s %s", request_id,
                             stored.version, "stored" if created else "already stored")
                return document.sha256
            except IntegrityError:  # a concurrent attempt took the version number: look again
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")
