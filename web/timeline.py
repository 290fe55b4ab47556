"""A request's timeline for the page: each stage of its path, who acted, what is pending and
until when, and the events so far.

It is read from the workflow's own state (the `get_state` query, like the API's `live`) when
Temporal answers, and otherwise from the stored records (approval steps, appeals, the
signature and the request's dates), so the page still says where the request stands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from api.services.reassignments import DetailRecord
from domain.stages import Reason, Stage
from domain.workflow_dto import ReassignmentState
from models.org import Employee
from web.i18n import N_

# the path of a request that goes all the way, and where each stage sits on it
PATH = [Stage.SUBMITTED, Stage.PENDING_APPROVAL, Stage.COMMUNICATION,
        Stage.AWAITING_SIGNATURE, Stage.EFFECTIVE, Stage.PROTECTION, Stage.COMPLETED]
HANDOVER_PATH = [Stage.SUBMITTED, Stage.PENDING_APPROVAL, Stage.SCHEDULED, Stage.EFFECTIVE,
                 Stage.COMPLETED]
POSITION = {Stage.APPEAL_REVIEW: Stage.COMMUNICATION}

STEP_TITLES = {
    Stage.SUBMITTED: N_("Submitted"),
    Stage.PENDING_APPROVAL: N_("Approval"),
    Stage.SCHEDULED: N_("Waiting for the leave date"),
    Stage.COMMUNICATION: N_("Communication window"),
    Stage.AWAITING_SIGNATURE: N_("Signature"),
    Stage.EFFECTIVE: N_("Customers transferred"),
    Stage.PROTECTION: N_("Protection period"),
    Stage.COMPLETED: N_("Completed"),
}


@dataclass
class Step:
    key: str
    title: str  # marked with N_; the template translates
    state: str  # done, current, upcoming, skipped, failed
    at: datetime | None = None
    who: list[str] = field(default_factory=list)  # who acted (names)
    waiting_for: list[str] = field(default_factory=list)  # who is expected to act
    deadline: datetime | None = None
    note: str | None = None  # a comment or reason, as typed
    hint: str | None = None  # our own explanation, marked with N_
    role: str | None = None  # an approval level's role
    level: int | None = None
    status: str | None = None  # an approval level's status


@dataclass
class Event:
    at: datetime
    event: str
    who: str | None
    note: str | None


@dataclass
class Timeline:
    stage: Stage
    steps: list[Step]
    events: list[Event]
    deadline: datetime | None
    terminal: bool
    live: bool  # read from the workflow (else from the stored records)


def _name(names: dict[int, Employee], employee_id: int | None) -> str | None:
    if employee_id is None:
        return None
    person = names.get(employee_id)
    return person.name if person else f"#{employee_id}"


def _note(detail: dict[str, Any]) -> str | None:
    for key in ("reason", "comment"):
        value = detail.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def build_timeline(record: DetailRecord, live: ReassignmentState | None,
                   names: dict[int, Employee], *, now: datetime) -> Timeline:
    r = record.request
    stage = live.stage if live is not None else r.stage
    deadline = live.stage_deadline if live is not None else r.stage_deadline
    path = HANDOVER_PATH if r.reason == Reason.EMPLOYEE_DEPARTURE.value else PATH
    history = list(live.history) if live is not None else []

    # how far along the path the request got (a closed one: before it closed)
    reached = 0
    for s in [*(h.stage for h in history), stage]:
        s = POSITION.get(s, s)
        if s in path:
            reached = max(reached, path.index(s))
    levels = _levels(record, live, names)
    if reached == 0 and levels:
        reached = 1
    closed_off_path = stage.is_terminal and stage != Stage.COMPLETED

    first_at = {}
    for h in history:
        first_at.setdefault(POSITION.get(h.stage, h.stage), h.at)

    steps: list[Step] = []
    for index, s in enumerate(path):
        if s == Stage.PENDING_APPROVAL and levels:
            for level in levels:
                if closed_off_path and level.state in ("upcoming", "current"):
                    level.state = "skipped"
                    level.deadline = None
            steps.extend(levels)
            continue
        if index < reached or (s == Stage.COMPLETED and stage == Stage.COMPLETED):
            state = "done"
        elif index == reached and not closed_off_path:
            state = "current"
        elif closed_off_path:
            state = "skipped"
        else:
            state = "upcoming"
        step = Step(key=s.value.lower(), title=STEP_TITLES[s], state=state,
                    at=first_at.get(s))
        if s == Stage.SUBMITTED:
            step.at, step.who, step.state = r.created_at, [_name(names, r.requester_id) or ""], (
                "done" if reached > 0 or stage != Stage.SUBMITTED else "current")
        if state == "current":
            step.deadline = deadline
        if s == Stage.AWAITING_SIGNATURE:
            signer = _name(names, r.from_employee_id)
            signed_at = (live.signed_at if live else None) or (
                record.signature.at if record.signature
                and record.signature.decision == "SIGNED" else None)
            if signed_at is not None:
                step.state, step.at, step.who = "done", signed_at, [signer or ""]
            elif state in ("current", "upcoming") or stage == Stage.COMMUNICATION:
                step.waiting_for = [signer or ""]
        if s == Stage.EFFECTIVE:
            step.at = (live.effective_at if live else None) or r.effective_at
        if s == Stage.PROTECTION and step.state == "current":
            step.deadline = (live.protection_end if live else None) or r.protection_end
        if s == Stage.COMMUNICATION and step.state == "current":
            step.waiting_for = [_name(names, r.from_employee_id) or ""]
            if stage == Stage.APPEAL_REVIEW:
                step.hint = N_("An appeal is being reviewed by HR.")
        steps.append(step)

    if closed_off_path:
        closing = next((h for h in reversed(history) if h.stage == stage), None)
        steps.append(Step(
            key="closed", title=_stage_title(stage), state="failed",
            at=closing.at if closing else r.closed_at,
            who=[n for n in [_name(names, closing.actor_id if closing else None)] if n],
            note=_note(closing.detail) if closing else None))

    events = [Event(at=r.created_at, event="REQUEST_SUBMITTED",
                    who=_name(names, r.requester_id), note=r.note)]
    events += [Event(at=h.at, event=h.event, who=_name(names, h.actor_id), note=_note(h.detail))
               for h in history]
    if live is None:
        events += _stored_events(record, names)
    events.sort(key=lambda e: e.at, reverse=True)
    return Timeline(stage=stage, steps=steps, events=events,
                    deadline=deadline if not stage.is_terminal else None,
                    terminal=stage.is_terminal, live=live is not None)


def _stage_title(stage: Stage) -> str:
    from web.labels import STAGES

    return STAGES.get(stage.value, stage.value)


def _levels(record: DetailRecord, live: ReassignmentState | None,
            names: dict[int, Employee]) -> list[Step]:
    """One step per approval level, from the workflow's levels or the stored steps."""
    steps = []
    if live is not None and live.levels:
        for lv in live.levels:
            steps.append(_level_step(
                lv.level, lv.role.value, lv.status.value, lv.approver_id, lv.escalated_to,
                lv.decided_by, lv.decided_at, lv.due_at, lv.comment, names))
    else:
        for st in record.approval_steps:
            steps.append(_level_step(
                st.level, st.role, st.status, st.approver_id, st.escalated_to,
                st.decided_by_id, st.decided_at, st.due_at, st.comment, names))
    return steps


def _level_step(level: int, role: str, status: str, approver: int, escalated: list[int],
                decided_by: int | None, decided_at: datetime | None, due_at: datetime | None,
                comment: str | None, names: dict[int, Employee]) -> Step:
    state = {"APPROVED": "done", "REJECTED": "failed", "PENDING": "current"}.get(status,
                                                                              "upcoming")
    eligible = [n for n in (_name(names, e) for e in [approver, *escalated]) if n]
    step = Step(key=f"level-{level}", title=N_("Approval level %(level)s"), state=state,
                role=role, level=level, status=status, note=comment)
    if state in ("done", "failed"):
        step.at, step.who = decided_at, [n for n in [_name(names, decided_by)] if n]
    elif state == "current":
        step.waiting_for, step.deadline = eligible, due_at
    else:
        step.waiting_for = eligible[:1]
    return step


def _stored_events(record: DetailRecord, names: dict[int, Employee]) -> list[Event]:
    """Without the workflow's history: the decisions the database keeps."""
    events = []
    for st in record.approval_steps:
        if st.decided_at is not None and st.status in ("APPROVED", "REJECTED"):
            events.append(Event(st.decided_at, st.status, _name(names, st.decided_by_id),
                                st.comment))
    for appeal in record.appeals:
        events.append(Event(appeal.opened_at, "APPEAL_OPENED",
                            _name(names, appeal.appellant_id), appeal.reason))
        if appeal.resolved_at is not None:
            events.append(Event(appeal.resolved_at, "APPEAL_RESOLVED",
                                _name(names, appeal.resolved_by_id),
                                appeal.resolution_comment))
    if record.signature is not None:
        events.append(Event(record.signature.at, record.signature.decision,
                            _name(names, record.signature.signer_id),
                            record.signature.reason))
    r = record.request
    if r.closed_at is not None and r.stage.is_terminal and r.stage != Stage.COMPLETED:
        events.append(Event(r.closed_at, r.stage.value, None, None))
    return events
