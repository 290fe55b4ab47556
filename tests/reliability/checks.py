"""After a fault run: the database holds each lifecycle's writes exactly once.

Read straight from the tables (not through the API), per request: its stage, the sequence of
its stage-transition audit events (0, 1, 2, ... with no repeat), the once-only events, its
approval steps, its signature, its customer's assignments; across all: no two audit events
written by activities with the same content, every order once with the commission lines its
booking time calls for; and `cli.py audit verify` on the whole chain.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from models import Assignment, AssignmentSource, AuditEvent, Order
from models.commission import CommissionLine
from models.db import make_engine
from models.reassignment import ApprovalStep, ReassignmentRequest, SignatureRecord
from tests.factories import SmallOrg
from tests.prod.processes import PYTHON, ROOT, Processes
from tests.reliability.lifecycles import REJECT_AT_LEVEL, Lifecycle, expected_stage

LEVELS = 3  # seconds_policy(): manager, director, HR
PATHS = {
    "COMPLETED": ["SUBMITTED", "PENDING_APPROVAL", "COMMUNICATION", "AWAITING_SIGNATURE",
                  "EFFECTIVE", "PROTECTION", "COMPLETED"],
    "REJECTED": ["SUBMITTED", "PENDING_APPROVAL", "REJECTED"],
}
ONCE_COMPLETED = ("REQUEST_SUBMITTED", "COMMUNICATION_STARTED", "SIGNED",
                  "OWNERSHIP_TRANSFERRED", "PROTECTION_STARTED", "PROTECTION_ENDED")


@dataclass
class Checked:
    """What was counted, for the report."""

    requests: int = 0
    transitions: int = 0
    audit_events: int = 0
    activity_events: int = 0  # of which written by activities (checked for repeats)
    approval_steps: int = 0
    signatures: int = 0
    assignments: int = 0
    orders: int = 0
    commission_lines: int = 0

    def line(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.__dict__.items())


def _content(e: AuditEvent) -> tuple[Any, ...]:
    return (e.event_type, e.request_id, e.workflow_id, e.transition_seq, e.actor_id,
            e.on_behalf_of, e.from_stage, e.to_stage, e.entity_type, e.entity_id,
            json.dumps(e.detail, sort_keys=True), e.reason)


def check_database(database_url: str, org: SmallOrg, lifecycles: list[Lifecycle],
                   order_ids: set[str]) -> Checked:
    checked = Checked()
    engine = make_engine(database_url)
    try:
        with Session(engine) as s:
            events = s.exec(select(AuditEvent).order_by(col(AuditEvent.chain_index))).all()
            checked.audit_events = len(events)
            # the writes a retry could repeat are the activities' (they name the workflow);
            # the API's are one per HTTP call, and two alike may be two calls (two failed
            # code entries), so those are counted per kind below instead
            by_activity = [e for e in events if e.workflow_id is not None]
            twice = [k for k, n in Counter(_content(e) for e in by_activity).items() if n > 1]
            assert not twice, f"audit events written twice: {twice[:5]}"
            checked.activity_events = len(by_activity)
            keys = Counter((e.workflow_id, e.transition_seq) for e in events
                           if e.transition_seq is not None)
            assert max(keys.values(), default=1) == 1, \
                [k for k, n in keys.items() if n > 1][:5]
            for lc in lifecycles:
                _check_request(s, org, lc, [e for e in events if e.request_id == lc.request_id],
                               checked)
            _check_orders(s, lifecycles, order_ids, checked)
    finally:
        engine.dispose()
    return checked


def _check_request(s: Session, org: SmallOrg, lc: Lifecycle, events: list[AuditEvent],
                   checked: Checked) -> None:
    want = expected_stage(lc.index)
    request = s.get(ReassignmentRequest, lc.request_id)
    assert request is not None and request.stage == want, (lc, request)
    checked.requests += 1
    # the lifecycle's steps, in chain order: seq 0, 1, 2, ... each once; the stages they
    # lead to (an approval stays in PENDING_APPROVAL) follow the expected path
    steps = [e for e in events if e.transition_seq is not None]
    assert [e.transition_seq for e in steps] == list(range(len(steps))), \
        (lc.request_id, [e.transition_seq for e in steps])
    stages = [e.to_stage for e in steps]
    path = [stage for i, stage in enumerate(stages) if i == 0 or stage != stages[i - 1]]
    assert path == PATHS[want], (lc.request_id, stages)
    checked.transitions += len(steps)
    kinds = Counter(e.event_type for e in events)
    approvals = s.exec(select(ApprovalStep).where(
        ApprovalStep.request_id == lc.request_id).order_by(col(ApprovalStep.level))).all()
    assert [a.level for a in approvals] == list(range(1, LEVELS + 1)), approvals
    checked.approval_steps += len(approvals)
    signatures = s.exec(select(SignatureRecord).where(
        SignatureRecord.request_id == lc.request_id)).all()
    assignments = s.exec(select(Assignment).where(
        Assignment.customer_id == lc.customer).order_by(col(Assignment.start_at))).all()
    checked.assignments += len(assignments)
    if want == "COMPLETED":
        for once in ONCE_COMPLETED:
            assert kinds[once] == 1, (lc.request_id, once, kinds)
        assert kinds["APPROVED"] == LEVELS, (lc.request_id, kinds)
        assert [a.status for a in approvals] == ["APPROVED"] * LEVELS
        assert [(x.signer_id, x.decision) for x in signatures] == [(org.sales_a1, "SIGNED")]
        checked.signatures += 1
        assert request.effective_at is not None
        assert [(a.employee_id, a.source, a.end_at, a.request_id) for a in assignments] == [
            (org.sales_a1, AssignmentSource.FOUND, request.effective_at, None),
            (org.sales_a2, AssignmentSource.REASSIGNMENT, None, lc.request_id)], assignments
    else:
        assert kinds["REQUEST_SUBMITTED"] == 1 and kinds["REJECTED"] == 1, kinds
        assert kinds["APPROVED"] == REJECT_AT_LEVEL - 1, kinds
        assert approvals[REJECT_AT_LEVEL - 1].status == "REJECTED", approvals
        assert not signatures, signatures
        assert [(a.employee_id, a.end_at) for a in assignments] == [(org.sales_a1, None)]


def _check_orders(s: Session, lifecycles: list[Lifecycle], order_ids: set[str],
                  checked: Checked) -> None:
    """Every order posted is stored once, with one commission line, or two (the protection
    split) when booked inside its customer's protection period."""
    rows = s.exec(select(Order).where(col(Order.external_id).startswith("REL-"))).all()
    assert sorted(o.external_id for o in rows) == sorted(order_ids)
    checked.orders = len(rows)
    window: dict[int, tuple[datetime, datetime]] = {}
    for lc in lifecycles:
        request = s.get(ReassignmentRequest, lc.request_id)
        assert request is not None
        if request.effective_at is not None and request.protection_end is not None:
            window[lc.customer] = (request.effective_at, request.protection_end)
    lines = Counter(line.order_id for line in s.exec(select(CommissionLine).where(
        col(CommissionLine.order_id).in_([o.id for o in rows]))).all())
    for order in rows:
        start, end = window.get(order.customer_id, (None, None))
        split = start is not None and end is not None and start <= order.booked_at < end
        assert lines[order.id] == (2 if split else 1), (order.external_id, lines[order.id],
                                                        order.booked_at, start, end)
    checked.commission_lines = sum(lines.values())


def audit_verify(processes: Processes) -> str:
    out = processes.run("audit-verify", [PYTHON, str(ROOT / "cli.py"), "audit", "verify"])
    assert "audit chain intact" in out, out
    return out.strip()
