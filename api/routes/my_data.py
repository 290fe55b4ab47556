"""An employee downloads their own data (PIPL art. 45)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import Response

from api.deps import SessionDep, permit
from api.problems import Problem, problem_responses
from api.security import Actor
from domain.permissions import Action
from models.audit import AuditEvent, append_audit_event
from models.personal_data import export_personal_data
from models.types import utcnow

router = APIRouter(tags=["me"])


@router.get("/me/export", response_class=Response,
            responses={200: {"content": {"application/json": {}}},
                       **problem_responses(401, 404)})
def export_my_data(actor: Annotated[Actor, permit(Action.OWN_DATA_EXPORT)],
                   session: SessionDep) -> Response:
    """Everything Baton holds about you, as one JSON file: profile, customers you owned,
    plans, statements and commission lines, requests you were part of, decisions, appeals,
    signatures, notifications, acknowledgements, passkeys, delegations, and your audit trail."""
    try:
        data = export_personal_data(session, actor.employee_id)
    except LookupError as exc:
        raise Problem(404, "employee-not-found", "No employee record",
                      "Your account has no employee record to export.") from exc
    append_audit_event(session, AuditEvent(
        occurred_at=utcnow(), event_type="OWN_DATA_EXPORTED", actor_id=actor.employee_id,
        detail={"sections": sorted(k for k, v in data.items() if isinstance(v, list))},
        chain_index=0, prev_hash="", hash=""))
    body = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True)
    return Response(body, media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="baton-my-data-{actor.employee_id}.json"',
        "Cache-Control": "no-store"})
