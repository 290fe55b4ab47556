"""The evidence bundle of a case, for HR and legal."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import Response

from api.deps import SessionFactoryDep, permit
from api.problems import Problem, problem_responses
from api.security import Actor
from domain.permissions import Action
from models.audit import audit
from models.evidence import build_evidence_bundle
from models.reassignment import ReassignmentRequest

router = APIRouter(prefix="/reassignments", tags=["evidence"])


@router.get("/{request_id}/evidence", response_class=Response,
            responses={200: {"content": {"application/zip": {}}},
                       **problem_responses(401, 403, 404)})
def evidence_bundle(request_id: int, actor: Annotated[Actor, permit(Action.EVIDENCE_EXPORT)],
                    sessions: SessionFactoryDep) -> Response:
    """One ZIP with the policy and acknowledgement, assessment, approvals, communication log,
    appeals, report, sealed agreement and its evidence, the audit events with their hash-chain
    proof, the commission lines during protection, and a manifest of SHA-256 hashes."""
    with sessions() as session:
        try:
            data, manifest = build_evidence_bundle(session, request_id)
        except LookupError as exc:
            raise Problem(404, "not-found", "No such request",
                          f"Request {request_id} does not exist.") from exc
        # an export of personal data is itself recorded (PIPL Art. 51)
        request = session.get(ReassignmentRequest, request_id)
        audit(session, "EVIDENCE_EXPORTED", actor_id=actor.employee_id, request_id=request_id,
              entity=("reassignment_request", request_id),
              detail={"files": len(manifest),
                      "subject_employee_id": request.from_employee_id if request else None})
    return Response(data, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="baton-case-{request_id}-evidence.zip"',
        "Cache-Control": "no-store"})
