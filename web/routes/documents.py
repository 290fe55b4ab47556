"""A request's documents as pages: the personal analysis report read in the page, its PDF, and
the agreement's PDF.

Who may read them and what is recorded are the API's (api/routes/documents.py): the affected
salesperson, the requester, HR and legal; anyone else gets 404; every read of a document is a
REPORT_READ or AGREEMENT_READ audit event, written by the same functions.

The stored report is a standalone HTML page with its own inline stylesheet, which the pages'
strict CSP would refuse, and which would restyle the layout around it. So the report page
frames it (`/report/view`, served with the report's own narrow CSP, framable by this site
only), and static/js/me.js sizes the frame to its content, so that it reads as part of the
page, on a phone too. Without JavaScript the frame scrolls on its own.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlmodel import Session

from api.deps import SessionDep
from api.problems import Problem
from api.routes.documents import agreement_pdf, read_report, report_pdf
from api.security import Actor
from api.services.scope import Scope
from domain.permissions import Action
from models.reassignment import ReassignmentRequest
from web.deps import page_permit
from web.render import render

router = APIRouter()

REQUESTS_PATH = "/app/requests"
# the stored report's own policy (inline CSS and SVG only), framable by our pages alone
FRAME_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
             "frame-ancestors 'self'")

Version = Annotated[int | None, Query(ge=1)]


def _documents_request(session: Session, actor: Actor, request_id: int) -> ReassignmentRequest:
    """The request if its documents are in the caller's scope; 404 otherwise."""
    return Scope(session, actor).request(request_id, documents=True)


@router.get(REQUESTS_PATH + "/{request_id}/report")
def report_page(request: Request, request_id: int,
                actor: Annotated[Actor, page_permit(Action.DOCUMENT_READ)],
                session: SessionDep, version: Version = None) -> Response:
    """The report in the page (framed) and its PDF. The frame's read is the audited one."""
    r = _documents_request(session, actor, request_id)
    mine = r.from_employee_id == actor.employee_id
    return render(request, "me/report.html", {
        "r": r, "mine": mine, "version": version,
        "back": f"/app/me/requests/{request_id}" if mine else f"{REQUESTS_PATH}/{request_id}"})


@router.get(REQUESTS_PATH + "/{request_id}/report/view")
def report_view(request: Request, request_id: int,
                actor: Annotated[Actor, page_permit(Action.DOCUMENT_READ)],
                session: SessionDep, version: Version = None) -> Response:
    """The stored HTML report (REPORT_READ, format html), for the report page's frame."""
    try:
        document = read_report(session, actor, request_id, version, "html")
    except Problem as problem:
        if problem.status != 404:
            raise
        return render(request, "me/_report_missing.html", {}, status=404,
                      headers={"Content-Security-Policy": FRAME_CSP.replace(
                          "default-src 'none'", "default-src 'self'"),
                          "X-Frame-Options": "SAMEORIGIN"})
    return Response(document.html, media_type="text/html; charset=utf-8", headers={
        "Content-Security-Policy": FRAME_CSP, "X-Frame-Options": "SAMEORIGIN",
        "Cache-Control": "private, no-store", "Content-Language": document.language,
        "X-Content-SHA256": document.sha256})


@router.get(REQUESTS_PATH + "/{request_id}/report.pdf")
def report_download(request_id: int,
                    actor: Annotated[Actor, page_permit(Action.DOCUMENT_READ)],
                    session: SessionDep, version: Version = None) -> Response:
    """The report's PDF: GET /api/v1/reassignments/{id}/report.pdf itself."""
    return report_pdf(request_id, actor, session, version)


@router.get(REQUESTS_PATH + "/{request_id}/agreement.pdf")
def agreement_download(request_id: int,
                       actor: Annotated[Actor, page_permit(Action.DOCUMENT_READ)],
                       session: SessionDep, version: Version = None) -> Response:
    """The agreement's PDF as signed: GET /api/v1/reassignments/{id}/agreement.pdf itself."""
    return agreement_pdf(request_id, actor, session, version)
