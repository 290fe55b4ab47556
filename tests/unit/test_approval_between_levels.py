"""An approval sent while the previous level's approval is still being written (the next level
not open yet) is "not yet" (WRONG_STAGE, try again), not "already done": found by
bench/lifecycle.py, where the next approver acted as soon as the previous approve returned."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from domain.stages import Role, Stage
from domain.workflow_dto import (
    ActionInput,
    LevelState,
    LevelStatus,
    ReassignmentInput,
    RequestContext,
)
from workflows.reassignment import ReassignmentWorkflow

REQUESTER, DIRECTOR, CEO, HR = 20, 10, 1, 200


def workflow_after_level_1_approved(levels: int = 2) -> ReassignmentWorkflow:
    wf = ReassignmentWorkflow(ReassignmentInput(request_id=7))
    wf._ctx = RequestContext.model_construct(requester_id=REQUESTER)
    people = [(Role.DIRECTOR, DIRECTOR), (Role.DIRECTOR, CEO), (Role.HR, HR)][:levels]
    wf._state.levels = [LevelState(level=n, role=role, approver_id=who)
                        for n, (role, who) in enumerate(people, start=1)]
    wf._state.stage, wf._state.current_level = Stage.PENDING_APPROVAL, 1
    first = wf._state.levels[0]
    first.status, first.decided_by = LevelStatus.APPROVED, DIRECTOR
    return wf


def refusal(wf: ReassignmentWorkflow, actor_id: int) -> ApplicationError:
    with pytest.raises(ApplicationError) as refused:
        wf._check_decision(ActionInput(actor_id=actor_id))
    return refused.value


def test_the_next_approver_hears_not_yet_while_the_next_level_opens() -> None:
    err = refusal(workflow_after_level_1_approved(), CEO)
    assert err.type == "WRONG_STAGE"
    assert "level 2 is opening" in err.message


def test_the_same_approver_again_is_already_done() -> None:
    err = refusal(workflow_after_level_1_approved(), DIRECTOR)
    assert err.type == "ALREADY_DONE" and "you already decided level 1" in err.message


def test_a_decided_last_level_is_already_done() -> None:
    wf = workflow_after_level_1_approved(levels=1)
    assert refusal(wf, CEO).type == "ALREADY_DONE"
