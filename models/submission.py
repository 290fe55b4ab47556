"""Recording a reassignment request: the one write that every submit path shares.

The API's submit (api.services.reassignments) and the bulk reorganisation's activities
(activities.bulk) both record requests through here, so a request looks the same however it
was made: the row, its customers and the REQUEST_SUBMITTED audit event, in the caller's
transaction. Idempotency is the table's unique (requester_id, idempotency_key).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from domain.impact import Assessment
from domain.policy import Terms
from domain.stages import Reason, Stage
from domain.workflow_dto import workflow_id_for
from models.audit import AuditEvent, append_audit_event
from models.facts import trailing_revenue_fen
from models.reassignment import ReassignmentRequest, RequestCustomer

VALUE_WINDOW = timedelta(days=365)


def canonical_hash(payload: Mapping[str, Any]) -> str:
    """SHA-256 of the payload's canonical JSON: the same request always hashes the same."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def find_by_key(session: Session, requester_id: int, key: str) -> ReassignmentRequest | None:
    return session.exec(
        select(ReassignmentRequest).where(
            ReassignmentRequest.requester_id == requester_id,
            ReassignmentRequest.idempotency_key == key,
        )
    ).first()


def insert_request(
    session: Session, *, requester_id: int, from_employee_id: int, to_employee_id: int,
    customer_ids: list[int], reason: Reason, note: str | None, key: str, digest: str,
    policy_version_id: int, terms: Terms, assessment: Assessment, now: datetime,
) -> ReassignmentRequest:
    """Write a validated request as SUBMITTED, with its audit event; flushes for the id."""
    customer_ids = list(dict.fromkeys(customer_ids))
    request = ReassignmentRequest(
        idempotency_key=key,
        payload_hash=digest,
        requester_id=requester_id,
        from_employee_id=from_employee_id,
        to_employee_id=to_employee_id,
        customer_ids=customer_ids,
        reason=reason.value,
        note=note,
        stage=Stage.SUBMITTED,
        policy_version_id=policy_version_id,
        terms=terms.model_dump(mode="json"),
        assessment=assessment.model_dump(mode="json"),
        value_fen=trailing_revenue_fen(session, customer_ids, now - VALUE_WINDOW),
        created_at=now,
        updated_at=now,
    )
    session.add(request)
    session.flush()  # assigns the id the workflow id is made of
    assert request.id is not None
    request.workflow_id = workflow_id_for(request.id)
    session.add(request)
    session.add_all(RequestCustomer(request_id=request.id, customer_id=c) for c in customer_ids)
    append_audit_event(session, AuditEvent(
        occurred_at=now, event_type="REQUEST_SUBMITTED", request_id=request.id,
        workflow_id=request.workflow_id, transition_seq=0, actor_id=requester_id,
        to_stage=Stage.SUBMITTED.value,
        # ids only: the audit detail must not carry names or free text
        detail={"from_employee_id": from_employee_id, "to_employee_id": to_employee_id,
                "customer_ids": customer_ids, "policy_version_id": policy_version_id,
                "reason": reason.value, "value_fen": request.value_fen},
        entity_type="reassignment_request", entity_id=str(request.id), before=None,
        after={"stage": Stage.SUBMITTED.value, "from_employee_id": from_employee_id,
               "to_employee_id": to_employee_id, "customer_ids": customer_ids,
               "policy_version_id": policy_version_id, "terms": request.terms,
               "value_fen": request.value_fen},
        reason=reason.value,  # the reason code; the free-text note stays on the request
        chain_index=0, prev_hash="", hash="",
    ))
    return request
