"""Activities that render and store a request's documents (DESIGN.md, "Processes").

`render_personal_report` renders the personal analysis report for the salesperson who loses
the customers, in their language, and stores it as a RequestDocument of kind REPORT. It is
idempotent: the rendering is deterministic, so a retry produces the same SHA-256 and finds the
document already stored; a changed input (for example terms amended after an appeal) stores
the next version.

`render_agreement` renders the agreement from the request's current terms and its latest
report, and stores it as kind AGREEMENT in the same way (a version per distinct SHA-256).
`seal_agreement` appends the signature's evidence to a signed agreement version, PAdES-seals it
with the organisation's certificate (documents.seal) and stores it as kind SEALED_AGREEMENT
with the agreement's version number; a retry returns the stored seal and never signs again.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import case, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from documents import MonthFigures, Person, PolicyRef, ReportCustomer, ReportData, render_report
from documents.agreement import (
    AgreementCustomer,
    AgreementData,
    ReportRef,
    SealEvidence,
    render_agreement,
)
from documents.report import Language
from documents.seal import SealConfig, SealError, seal_agreement_pdf
from domain.impact import Assessment
from domain.periods import period_of, previous_period
from domain.policy import Terms
from domain.stages import Stage
from domain.workflow_dto import AgreementRef
from models import (
    AuditEvent,
    Customer,
    Employee,
    Order,
    OrderKind,
    OrgUnit,
    PolicyVersion,
    ReassignmentRequest,
    RequestDocument,
    SignatureRecord,
)
from models.audit import append_audit_event
from models.db import SessionFactory
from models.types import utcnow

REQUEST_NOT_FOUND = "REQUEST_NOT_FOUND"
ASSESSMENT_INVALID = "ASSESSMENT_INVALID"
REPORT = "REPORT"
REPORT_GENERATED = "REPORT_GENERATED"
AGREEMENT = "AGREEMENT"
SEALED_AGREEMENT = "SEALED_AGREEMENT"
AGREEMENT_GENERATED = "AGREEMENT_GENERATED"
AGREEMENT_SEALED = "AGREEMENT_SEALED"
REPORT_MISSING = "REPORT_MISSING"
AGREEMENT_MISSING = "AGREEMENT_MISSING"
SIGNATURE_MISSING = "SIGNATURE_MISSING"
SEAL_UNAVAILABLE = "SEAL_UNAVAILABLE"
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


def _store_document(session: Session, request_id: int, *, kind: str, event_type: str,
                    language: str, sha256: str, pdf: bytes, html: str,
                    ) -> tuple[RequestDocument, bool]:
    """Store a rendered document unless this request already has one of this kind with the
    same bytes. Returns (document, created); the next version is the highest one plus one."""
    existing = session.exec(
        select(RequestDocument).where(RequestDocument.request_id == request_id,
                                      RequestDocument.kind == kind,
                                      RequestDocument.sha256 == sha256)).first()
    if existing is not None:
        return existing, False
    latest = session.exec(select(func.max(RequestDocument.version)).where(
        RequestDocument.request_id == request_id, RequestDocument.kind == kind)).one()
    document = RequestDocument(request_id=request_id, kind=kind, version=(latest or 0) + 1,
                               language=language, sha256=sha256, pdf=pdf, html=html)
    session.add(document)
    session.flush()
    append_audit_event(session, AuditEvent(
        occurred_at=utcnow(), event_type=event_type, request_id=request_id,
        detail={"document_id": document.id, "version": document.version, "sha256": sha256,
                "language": language},
        entity_type="request_document", entity_id=str(document.id), before=None,
        after={"kind": kind, "version": document.version, "sha256": sha256,
               "language": language},
        chain_index=0, prev_hash="", hash=""))
    return document, True


def store_report(session: Session, request_id: int, *, language: str, sha256: str, pdf: bytes,
                 html: str) -> tuple[RequestDocument, bool]:
    return _store_document(session, request_id, kind=REPORT, event_type=REPORT_GENERATED,
                           language=language, sha256=sha256, pdf=pdf, html=html)


# --- the agreement ---------------------------------------------------------------------------


def _company_name(session: Session, org_unit_id: int) -> str:
    """The employer's name: the unit of function "company" above the employee, else the top."""
    unit = session.get(OrgUnit, org_unit_id)
    top = unit
    seen: set[int | None] = set()
    while unit is not None and unit.id not in seen:
        seen.add(unit.id)
        if unit.function == "company":
            return unit.name
        top = unit
        unit = session.get(OrgUnit, unit.parent_id) if unit.parent_id is not None else None
    return top.name if top is not None else ""


def communication_window_end(session: Session, request: ReassignmentRequest) -> datetime | None:
    """When the communication window ends, as the workflow last wrote it.

    Every transition into (or within) COMMUNICATION records the window's end as the stage
    deadline; the latest one counts (an appeal extends the window). Read from the audit trail,
    so that a retried rendering states the same date even if the stage has moved on since.
    """
    event = session.exec(
        select(AuditEvent).where(AuditEvent.request_id == request.id,
                                 AuditEvent.to_stage == Stage.COMMUNICATION.value,
                                 col(AuditEvent.transition_seq).is_not(None))
        .order_by(col(AuditEvent.transition_seq).desc())).first()
    if event is not None:
        # events before migration 0005 carried before/after inside the detail
        after = event.after if event.after is not None else event.detail.get("after")
        deadline = (after or {}).get("stage_deadline")
        if deadline:
            return datetime.fromisoformat(deadline)
    if request.stage == Stage.COMMUNICATION:
        return request.stage_deadline
    return None


def latest_document(session: Session, request_id: int, kind: str,
                    version: int | None = None) -> RequestDocument | None:
    """The request's document of `kind`: that version, or the latest."""
    query = select(RequestDocument).where(RequestDocument.request_id == request_id,
                                          RequestDocument.kind == kind)
    if version is not None:
        query = query.where(RequestDocument.version == version)
    return session.exec(query.order_by(col(RequestDocument.version).desc())).first()


def load_agreement_data(session: Session, request_id: int,
                        timezone: str) -> tuple[AgreementData, Language]:
    """What the agreement of `request_id` states (current terms, latest report), and the
    salesperson's language."""
    request = session.get(ReassignmentRequest, request_id)
    if request is None or request.id is None:
        raise ApplicationError(f"request {request_id} does not exist", type=REQUEST_NOT_FOUND,
                               non_retryable=True)
    report = latest_document(session, request_id, REPORT)
    if report is None:
        raise ApplicationError(f"request {request_id} has no personal report to refer to",
                               type=REPORT_MISSING, non_retryable=True)
    policy = session.get(PolicyVersion, request.policy_version_id)
    assert policy is not None and policy.id is not None  # foreign key
    rules = policy.parsed_rules()
    salesperson, affected = _person(session, request.from_employee_id)
    receiver, _ = _person(session, request.to_employee_id)
    ids = list(request.customer_ids)
    by_id = {c.id: c for c in session.exec(select(Customer).where(col(Customer.id).in_(ids)))}
    customers = [AgreementCustomer(id=cid, code=by_id[cid].code, name=by_id[cid].name)
                 for cid in ids if cid in by_id]
    terms = Terms.model_validate(request.terms)
    option, suggested = None, False
    if request.assessment:
        try:
            assessment = Assessment.model_validate(request.assessment)
        except ValueError as exc:
            raise ApplicationError(
                f"the assessment stored on request {request_id} does not parse: {exc}",
                type=ASSESSMENT_INVALID, non_retryable=True) from exc
        for candidate in assessment.alternatives:  # which option the terms are, if any
            if candidate.terms == terms:
                option, suggested = candidate.kind, candidate == assessment.suggested
                break
    window_end = communication_window_end(session, request)
    data = AgreementData(
        request_id=request.id, submitted_at=request.created_at,
        company=_company_name(session, affected.org_unit_id), salesperson=salesperson,
        receiver=receiver, customers=customers, reason=request.reason, window_end=window_end,
        signature_deadline_at=window_end + rules.signature_deadline if window_end else None,
        effective_at=request.effective_at, terms=terms, option=option,
        option_suggested=suggested,
        policy=PolicyRef(id=policy.id, name=policy.name, version=policy.version,
                         published_at=policy.published_at),
        report=ReportRef(version=report.version, sha256=report.sha256), timezone=timezone)
    return data, report_language(affected.locale)


def store_agreement(session: Session, request_id: int, *, language: str, sha256: str,
                    pdf: bytes, html: str) -> tuple[RequestDocument, bool]:
    return _store_document(session, request_id, kind=AGREEMENT,
                           event_type=AGREEMENT_GENERATED, language=language, sha256=sha256,
                           pdf=pdf, html=html)


def load_seal_evidence(session: Session, request_id: int, agreement_version: int, *,
                       certificate_subject: str, certificate_sha256: str, development: bool,
                       timezone: str) -> tuple[RequestDocument, SealEvidence]:
    """The agreement version to seal, and the evidence of its signature."""
    agreement = latest_document(session, request_id, AGREEMENT, agreement_version)
    if agreement is None:
        raise ApplicationError(f"request {request_id} has no agreement version "
                               f"{agreement_version}", type=AGREEMENT_MISSING,
                               non_retryable=True)
    signature = session.exec(select(SignatureRecord).where(
        SignatureRecord.request_id == request_id,
        SignatureRecord.decision == "SIGNED")).first()
    if signature is None:
        raise ApplicationError(f"request {request_id} has no signature to seal",
                               type=SIGNATURE_MISSING, non_retryable=True)
    signer, _ = _person(session, signature.signer_id)
    evidence = SealEvidence(
        request_id=request_id, agreement_version=agreement.version,
        agreement_sha256=agreement.sha256, agreement_size=len(agreement.pdf),
        language=agreement.language, signer_id=signer.id, signer_name=signer.name,
        signer_employee_no=signer.employee_no, typed_name=signature.typed_name,
        signed_at=signature.at, method=signature.method,
        credential_id=signature.credential_id, ip=signature.ip,
        user_agent=signature.user_agent, signed_document_hash=signature.document_hash,
        certificate_subject=certificate_subject, certificate_sha256=certificate_sha256,
        development_certificate=development, timezone=timezone)
    session.expunge(agreement)  # its bytes are read after the session closes
    return agreement, evidence


HEARTBEAT_EVERY_S = 5.0


@contextlib.contextmanager
def _heartbeating() -> Iterator[None]:
    """Heartbeat from a side thread while a long render or seal blocks this one.

    The workflow gives these activities a short heartbeat timeout, so when a worker dies
    mid-render Temporal retries elsewhere within seconds instead of after the 5-minute
    start-to-close timeout (seen in the worker-kill runs: a request stalled in COMMUNICATION).
    Outside an activity (direct calls in tests) it does nothing.
    """
    if not activity.in_activity():
        yield
        return
    context = contextvars.copy_context()  # the activity's context, for the side thread
    done = threading.Event()

    def beat() -> None:
        while not done.wait(HEARTBEAT_EVERY_S):
            with contextlib.suppress(Exception):  # a late beat after completion is harmless
                context.run(activity.heartbeat)

    thread = threading.Thread(target=beat, name="render-heartbeat", daemon=True)
    activity.heartbeat()
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


class DocumentActivities:
    def __init__(self, sessions: SessionFactory, timezone: str = "Asia/Shanghai",
                 seal: SealConfig | None = None) -> None:
        self._sessions = sessions
        self._timezone = timezone
        # None: from the settings when sealing (the PKCS#12 file, else the development one)
        self._seal = seal

    @activity.defn(name="render_personal_report")
    def render_personal_report(self, request_id: int, window_end: datetime) -> str:
        """Render the affected salesperson's report and store it; return its SHA-256.

        `window_end` is the end of the communication window: the appeal deadline, and the
        estimated effective date while the transfer has not taken effect.
        """
        with self._sessions() as session:  # read, then render outside any transaction
            data, language = load_report_data(session, request_id, window_end, self._timezone)
        with _heartbeating():
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

    @activity.defn(name="render_agreement")
    def render_agreement(self, request_id: int) -> AgreementRef:
        """Render the agreement from the current terms and the latest report, and store it.

        Returns the version to sign: a new one (the highest plus one), or the stored one with
        the same SHA-256 (a retry, or terms that came back to an earlier version's).
        """
        with self._sessions() as session:  # read, then render outside any transaction
            data, language = load_agreement_data(session, request_id, self._timezone)
        with _heartbeating():
            document = render_agreement(data, language)
        for attempt in (1, 2):
            try:
                with self._sessions() as session:
                    stored, created = store_agreement(
                        session, request_id, language=language, sha256=document.sha256,
                        pdf=document.pdf, html=document.html)
                    ref = AgreementRef(version=stored.version, sha256=stored.sha256)
                log.info("agreement of request %s: version %s %s", request_id, ref.version,
                         "stored" if created else "already stored")
                return ref
            except IntegrityError:  # a concurrent attempt took the version number: look again
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    @activity.defn(name="seal_agreement")
    def seal_agreement(self, request_id: int, agreement_version: int) -> str:
        """Append the signature's evidence to the signed agreement version, PAdES-seal it with
        the organisation's certificate and store it; return the sealed PDF's SHA-256.

        Idempotent: once the sealed version is stored, a retry returns its hash and signs
        nothing again.
        """
        with self._sessions() as session:
            done = latest_document(session, request_id, SEALED_AGREEMENT, agreement_version)
            if done is not None:
                return done.sha256
        try:
            sealer = (self._seal or _seal_config_from_settings()).sealer()
        except SealError as exc:  # a missing or unreadable certificate: the settings need a fix
            raise ApplicationError(f"cannot seal: {exc}", type=SEAL_UNAVAILABLE) from exc
        with self._sessions() as session:
            agreement, evidence = load_seal_evidence(
                session, request_id, agreement_version,
                certificate_subject=sealer.subject,
                certificate_sha256=sealer.certificate_sha256, development=sealer.development,
                timezone=self._timezone)
        with _heartbeating():
            sealed = seal_agreement_pdf(agreement.pdf, evidence, sealer)  # outside a transaction
        try:
            with self._sessions() as session:
                document = RequestDocument(
                    request_id=request_id, kind=SEALED_AGREEMENT, version=agreement_version,
                    language=agreement.language, sha256=sealed.sha256, pdf=sealed.pdf,
                    html=sealed.evidence_html)
                session.add(document)
                session.flush()
                append_audit_event(session, AuditEvent(
                    occurred_at=utcnow(), event_type=AGREEMENT_SEALED, request_id=request_id,
                    detail={"document_id": document.id, "version": agreement_version,
                            "sha256": sealed.sha256, "agreement_sha256": agreement.sha256,
                            "signer_id": evidence.signer_id,
                            "certificate_sha256": sealer.certificate_sha256,
                            "development_certificate": sealer.development},
                    entity_type="request_document", entity_id=str(document.id),
                    after={"kind": SEALED_AGREEMENT, "version": agreement_version,
                           "sha256": sealed.sha256},
                    chain_index=0, prev_hash="", hash=""))
        except IntegrityError:  # a concurrent attempt stored its seal first: that one counts
            with self._sessions() as session:
                done = latest_document(session, request_id, SEALED_AGREEMENT,
                                       agreement_version)
                if done is None:
                    raise
                return done.sha256
        log.info("agreement of request %s, version %s: sealed, SHA-256 %s", request_id,
                 agreement_version, sealed.sha256)
        return sealed.sha256


def _seal_config_from_settings() -> SealConfig:
    from settings import get_settings

    return SealConfig.from_settings(get_settings())
