"""The documents of a request: the personal analysis report and the agreement.

Report: its versions, the PDF and the HTML. Agreement: its versions, each version's PDF (what
the salesperson signs, by its SHA-256), the sealed PDF once signed, and the verification of
the seal (documents.seal) against the hash on record.

Who may read them: the affected salesperson (the request's from_employee_id), the requester,
HR and legal. Anyone else gets 404, exactly as for a request that does not exist, so the
existence of a document reveals nothing. Every read is recorded in the audit chain as
REPORT_READ or AGREEMENT_READ, with ids only (who, which request, which version and format).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import func
from sqlmodel import Session, col, select

from api.deps import SessionDep, SettingsDep, permit
from api.problems import Problem, problem_responses
from api.security import Actor
from api.services.scope import Scope
from documents.seal import SealConfig, SealError, VerificationReport, verify_sealed_pdf
from domain.permissions import Action
from models.audit import audit
from models.reassignment import ReassignmentRequest, RequestDocument

router = APIRouter(prefix="/reassignments", tags=["documents"])

REPORT = "REPORT"
EVENT_READ = "REPORT_READ"
DocumentReader = Annotated[Actor, permit(Action.DOCUMENT_READ)]
# The HTML report is self-contained (inline CSS and SVG): it needs nothing from anywhere.
HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"

Version = Annotated[int | None, Query(ge=1, description="a stored version; default the latest")]


class ReportVersionOut(BaseModel):
    version: int
    language: str
    sha256: str
    size_bytes: int
    created_at: datetime
    pdf_url: str
    html_url: str


class ReportVersionsOut(BaseModel):
    request_id: int
    latest: int | None
    versions: list[ReportVersionOut]


def _not_found(request_id: int) -> Problem:
    return Problem(404, "report-not-found", "Report not found",
                   f"There is no personal analysis report of request {request_id} that you may "
                   "read: the request does not exist, its report has not been rendered yet, or "
                   "it is outside your data scope.")


def _readable_request(session: Session, actor: Actor, request_id: int,
                      not_found: Callable[[int], Problem] = _not_found) -> ReassignmentRequest:
    """The request, if its documents are in the caller's scope (api/services/scope.py)."""
    try:
        return Scope(session, actor).request(request_id, documents=True)
    except Problem as exc:
        raise not_found(request_id) from exc


def _read_event(session: Session, actor: Actor, event_type: str, request_id: int,
                detail: dict[str, Any]) -> None:
    """A read of a personal document: who read whose, of which request (PIPL art. 51)."""
    request = session.get(ReassignmentRequest, request_id)
    subject = request.from_employee_id if request is not None else None
    audit(session, event_type, actor_id=actor.employee_id, request_id=request_id,
          entity=("reassignment_request", request_id),
          detail={**detail, "subject_employee_id": subject})
    session.flush()


def _audit(session: Session, actor: Actor, request_id: int, detail: dict[str, Any]) -> None:
    _read_event(session, actor, EVENT_READ, request_id, detail)


def _document(session: Session, request_id: int, version: int | None) -> RequestDocument:
    query = select(RequestDocument).where(RequestDocument.request_id == request_id,
                                          RequestDocument.kind == REPORT)
    if version is not None:
        query = query.where(RequestDocument.version == version)
    document = session.exec(query.order_by(col(RequestDocument.version).desc())).first()
    if document is None:
        raise _not_found(request_id)
    return document


def _read(session: Session, actor: Actor, request_id: int, version: int | None,
          fmt: Literal["pdf", "html"]) -> RequestDocument:
    _readable_request(session, actor, request_id)
    document = _document(session, request_id, version)
    _audit(session, actor, request_id, {"document_id": document.id,
                                        "version": document.version, "format": fmt})
    return document


def read_report(session: Session, actor: Actor, request_id: int, version: int | None,
                fmt: Literal["pdf", "html"]) -> RequestDocument:
    """A report version the caller may read (404 otherwise), recorded as REPORT_READ: the
    API's downloads and the report page read through here."""
    return _read(session, actor, request_id, version, fmt)


def _headers(document: RequestDocument, extension: str, **extra: str) -> dict[str, str]:
    filename = f"baton-report-{document.request_id}-v{document.version}.{extension}"
    return {"Content-Disposition": f'inline; filename="{filename}"',
            "Cache-Control": "private, no-store", "ETag": f'"{document.sha256}"',
            "X-Content-SHA256": document.sha256, "Content-Language": document.language,
            **extra}


@router.get("/{request_id}/report", response_model=ReportVersionsOut,
            responses=problem_responses(401, 404))
def report_versions(request_id: int, actor: DocumentReader, session: SessionDep
                    ) -> ReportVersionsOut:
    """The stored versions of the request's personal analysis report, newest first.

    `sha256` is the SHA-256 of the PDF bytes that the .pdf link returns."""
    _readable_request(session, actor, request_id)
    rows = session.exec(
        select(RequestDocument.version, RequestDocument.language,  # type: ignore[call-overload]
               RequestDocument.sha256, RequestDocument.created_at,
               func.length(col(RequestDocument.pdf)))
        .where(RequestDocument.request_id == request_id, RequestDocument.kind == REPORT)
        .order_by(col(RequestDocument.version).desc())).all()
    base = f"/api/v1/reassignments/{request_id}/report"
    versions = [ReportVersionOut(version=v, language=lang, sha256=sha, size_bytes=int(size),
                                 created_at=at, pdf_url=f"{base}.pdf?version={v}",
                                 html_url=f"{base}.html?version={v}")
                for v, lang, sha, at, size in rows]
    _audit(session, actor, request_id, {"format": "versions",
                                        "versions": [v.version for v in versions]})
    return ReportVersionsOut(request_id=request_id,
                             latest=versions[0].version if versions else None,
                             versions=versions)


@router.get("/{request_id}/report.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}},
                             "description": "The report as PDF"},
                       **problem_responses(401, 404, 422)})
def report_pdf(request_id: int, actor: DocumentReader, session: SessionDep,
               version: Version = None) -> Response:
    """The report's PDF: the latest version, or `?version=`."""
    document = _read(session, actor, request_id, version, "pdf")
    return Response(document.pdf, media_type="application/pdf",
                    headers=_headers(document, "pdf"))


@router.get("/{request_id}/report.html", response_class=Response,
            responses={200: {"content": {"text/html": {}},
                             "description": "The report as a standalone HTML page"},
                       **problem_responses(401, 404, 422)})
def report_html(request_id: int, actor: DocumentReader, session: SessionDep,
                version: Version = None) -> Response:
    """The report as a standalone HTML page (readable on a phone): latest, or `?version=`."""
    document = _read(session, actor, request_id, version, "html")
    return Response(document.html, media_type="text/html; charset=utf-8",
                    headers=_headers(document, "html", **{"Content-Security-Policy": HTML_CSP}))


# --- the agreement -------------------------------------------------------------------------

AGREEMENT = "AGREEMENT"
SEALED_AGREEMENT = "SEALED_AGREEMENT"
EVENT_AGREEMENT_READ = "AGREEMENT_READ"


class SealedVersionOut(BaseModel):
    sha256: str
    size_bytes: int
    created_at: datetime
    pdf_url: str
    verify_url: str


class AgreementVersionOut(BaseModel):
    version: int
    language: str
    sha256: str  # what a signature must name
    size_bytes: int
    created_at: datetime
    pdf_url: str
    sealed: SealedVersionOut | None = None  # set once this version was signed and sealed


class AgreementVersionsOut(BaseModel):
    request_id: int
    latest: int | None  # the newest version: the only one that can be signed
    versions: list[AgreementVersionOut]


class AgreementVerificationOut(VerificationReport):
    """The seal of a stored sealed agreement, checked against the agreement's stored hash."""

    request_id: int
    version: int
    sealed_sha256: str


def _agreement_not_found(request_id: int) -> Problem:
    return Problem(404, "agreement-not-found", "Agreement not found",
                   f"There is no agreement of request {request_id} that you may read: the "
                   "request does not exist, its agreement has not been rendered (or signed and "
                   "sealed) yet, or you are not the affected salesperson, the requester, HR "
                   "or legal.")


def _agreement_audit(session: Session, actor: Actor, request_id: int,
                     detail: dict[str, Any]) -> None:
    _read_event(session, actor, EVENT_AGREEMENT_READ, request_id, detail)


def _agreement_document(session: Session, request_id: int, kind: str,
                        version: int | None) -> RequestDocument:
    query = select(RequestDocument).where(RequestDocument.request_id == request_id,
                                          RequestDocument.kind == kind)
    if version is not None:
        query = query.where(RequestDocument.version == version)
    document = session.exec(query.order_by(col(RequestDocument.version).desc())).first()
    if document is None:
        raise _agreement_not_found(request_id)
    return document


def _pdf_response(document: RequestDocument, name: str) -> Response:
    filename = f"baton-{name}-{document.request_id}-v{document.version}.pdf"
    return Response(document.pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{filename}"',
        "Cache-Control": "private, no-store", "ETag": f'"{document.sha256}"',
        "X-Content-SHA256": document.sha256, "Content-Language": document.language})


@dataclass(frozen=True)
class AgreementRef:
    """The newest agreement version, without its bytes."""

    document_id: int
    version: int
    sha256: str
    language: str
    created_at: datetime


def read_latest_agreement(session: Session, actor: Actor, request_id: int,
                          fmt: str) -> AgreementRef | None:
    """The newest agreement version of a request the caller may read (404 otherwise), or None
    before one is rendered; a found one is recorded as AGREEMENT_READ with `fmt` (the signing
    page shows its terms and hash)."""
    _readable_request(session, actor, request_id, _agreement_not_found)
    row = session.exec(
        select(RequestDocument.id, RequestDocument.version,  # type: ignore[call-overload]
               RequestDocument.sha256, RequestDocument.language, RequestDocument.created_at)
        .where(RequestDocument.request_id == request_id, RequestDocument.kind == AGREEMENT)
        .order_by(col(RequestDocument.version).desc())).first()
    if row is None:
        return None
    ref = AgreementRef(document_id=int(row[0]), version=int(row[1]), sha256=row[2],
                       language=row[3], created_at=row[4])
    _agreement_audit(session, actor, request_id, {"document_id": ref.document_id,
                                                  "version": ref.version, "format": fmt})
    return ref


@router.get("/{request_id}/agreement", response_model=AgreementVersionsOut,
            responses=problem_responses(401, 404))
def agreement_versions(request_id: int, actor: DocumentReader, session: SessionDep
                       ) -> AgreementVersionsOut:
    """The agreement's versions, newest first, each with its SHA-256 (what a signature must
    name) and, once signed, its sealed PDF. Only the newest version can be signed."""
    _readable_request(session, actor, request_id, _agreement_not_found)
    rows = session.exec(
        select(RequestDocument.kind, RequestDocument.version,  # type: ignore[call-overload]
               RequestDocument.language, RequestDocument.sha256,
               RequestDocument.created_at, func.length(col(RequestDocument.pdf)))
        .where(RequestDocument.request_id == request_id,
               col(RequestDocument.kind).in_((AGREEMENT, SEALED_AGREEMENT)))
        .order_by(col(RequestDocument.version).desc())).all()
    base = f"/api/v1/reassignments/{request_id}/agreement"
    sealed = {v: SealedVersionOut(sha256=sha, size_bytes=int(size), created_at=at,
                                  pdf_url=f"{base}/sealed.pdf?version={v}",
                                  verify_url=f"{base}/verify?version={v}")
              for kind, v, _, sha, at, size in rows if kind == SEALED_AGREEMENT}
    versions = [AgreementVersionOut(version=v, language=lang, sha256=sha, size_bytes=int(size),
                                    created_at=at, pdf_url=f"{base}.pdf?version={v}",
                                    sealed=sealed.get(v))
                for kind, v, lang, sha, at, size in rows if kind == AGREEMENT]
    _agreement_audit(session, actor, request_id, {"format": "versions",
                                                  "versions": [v.version for v in versions]})
    return AgreementVersionsOut(request_id=request_id,
                                latest=versions[0].version if versions else None,
                                versions=versions)


@router.get("/{request_id}/agreement.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}},
                             "description": "The agreement as rendered (unsealed)"},
                       **problem_responses(401, 404, 422)})
def agreement_pdf(request_id: int, actor: DocumentReader, session: SessionDep,
                  version: Version = None) -> Response:
    """The agreement's PDF as the salesperson reads and signs it: the latest version, or
    `?version=`. Its SHA-256 is in the X-Content-SHA256 header."""
    _readable_request(session, actor, request_id, _agreement_not_found)
    document = _agreement_document(session, request_id, AGREEMENT, version)
    _agreement_audit(session, actor, request_id, {"document_id": document.id,
                                                  "version": document.version,
                                                  "format": "pdf"})
    return _pdf_response(document, "agreement")


@router.get("/{request_id}/agreement/sealed.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}},
                             "description": "The signed agreement with its evidence page, "
                                            "sealed (PAdES)"},
                       **problem_responses(401, 404, 422)})
def sealed_agreement_pdf(request_id: int, actor: DocumentReader, session: SessionDep,
                         version: Version = None) -> Response:
    """The signed agreement, its evidence page appended and sealed with the organisation's
    certificate (PAdES): the latest sealed version, or `?version=`."""
    _readable_request(session, actor, request_id, _agreement_not_found)
    document = _agreement_document(session, request_id, SEALED_AGREEMENT, version)
    _agreement_audit(session, actor, request_id, {"document_id": document.id,
                                                  "version": document.version,
                                                  "format": "sealed_pdf"})
    return _pdf_response(document, "agreement-sealed")


@router.get("/{request_id}/agreement/verify", response_model=AgreementVerificationOut,
            responses=problem_responses(401, 404, 422, 503))
def verify_agreement(request_id: int, actor: DocumentReader, session: SessionDep,
                     settings: SettingsDep, version: Version = None
                     ) -> AgreementVerificationOut:
    """Verify the stored sealed agreement (latest, or `?version=`): whether the seal is intact
    and trusted, who signed, when and how, and whether the agreement's hash matches the one on
    record. `ok` is the one answer; `problems` says what is wrong."""
    _readable_request(session, actor, request_id, _agreement_not_found)
    sealed = _agreement_document(session, request_id, SEALED_AGREEMENT, version)
    agreement = _agreement_document(session, request_id, AGREEMENT, sealed.version)
    try:
        trust = SealConfig.from_settings(settings).trust_roots()
    except SealError as exc:
        raise Problem(503, "seal-unavailable", "Seal certificate unavailable",
                      f"The organisation's seal certificate cannot be loaded: {exc}") from exc
    report = verify_sealed_pdf(sealed.pdf, agreement.sha256, trust)
    _agreement_audit(session, actor, request_id, {"document_id": sealed.id,
                                                  "version": sealed.version,
                                                  "format": "verify", "ok": report.ok})
    return AgreementVerificationOut(**report.model_dump(exclude={"ok"}), request_id=request_id,
                                    version=sealed.version, sealed_sha256=sealed.sha256)
