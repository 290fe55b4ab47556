"""domain.stages and the small pure parts of domain.workflow_dto."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from domain.stages import PRE_EFFECTIVE_STAGES, TERMINAL_STAGES, Reason, Role, Stage
from domain.workflow_dto import (
    HTTP_STATUS_FOR_REJECTION,
    ActionRejection,
    LevelState,
    ReasonedActionInput,
    workflow_id_for,
)


def test_terminal_and_pre_effective_stages_do_not_overlap() -> None:
    assert not TERMINAL_STAGES & PRE_EFFECTIVE_STAGES


def test_only_effective_and_protection_are_neither_terminal_nor_pre_effective() -> None:
    assert set(Stage) - TERMINAL_STAGES - PRE_EFFECTIVE_STAGES == {Stage.EFFECTIVE,
                                                                   Stage.PROTECTION}


@pytest.mark.parametrize("stage", list(Stage))
def test_stage_properties_match_the_sets(stage: Stage) -> None:
    assert stage.is_terminal == (stage in TERMINAL_STAGES)
    assert stage.before_effective == (stage in PRE_EFFECTIVE_STAGES)


def test_lifecycle_end_states() -> None:
    # DESIGN.md: every way a request can end
    assert {s for s in Stage if s.is_terminal} == {
        Stage.COMPLETED, Stage.REJECTED, Stage.WITHDRAWN, Stage.CANCELLED, Stage.DECLINED,
        Stage.EXPIRED_NO_CONSENT,
    }


def test_withdraw_and_cancel_only_before_ownership_moves() -> None:
    for stage in (Stage.SUBMITTED, Stage.PENDING_APPROVAL, Stage.SCHEDULED, Stage.COMMUNICATION,
                  Stage.APPEAL_REVIEW, Stage.AWAITING_SIGNATURE):
        assert stage.before_effective
    for stage in (Stage.EFFECTIVE, Stage.PROTECTION, Stage.COMPLETED, Stage.REJECTED):
        assert not stage.before_effective


def test_stage_values_fit_the_database_column() -> None:
    # reassignment_request.stage and audit_event.{from,to}_stage are VARCHAR(30)
    assert max(len(s.value) for s in Stage) <= 30


def test_enums_are_plain_strings() -> None:
    assert f"{Stage.PENDING_APPROVAL}" == "PENDING_APPROVAL"
    assert Reason("EMPLOYEE_DEPARTURE") is Reason.EMPLOYEE_DEPARTURE
    assert Role("hr") is Role.HR and Role.HR == "hr"


def test_workflow_id() -> None:
    assert workflow_id_for(42) == "reassignment-42"


def test_every_action_rejection_has_an_http_status() -> None:
    assert set(HTTP_STATUS_FOR_REJECTION) == set(ActionRejection)
    assert HTTP_STATUS_FOR_REJECTION[ActionRejection.WRONG_ACTOR] == 403
    assert {HTTP_STATUS_FOR_REJECTION[r] for r in ActionRejection} <= {403, 409, 422}


def test_reasoned_action_needs_a_real_reason() -> None:
    assert ReasonedActionInput(actor_id=1, reason="  too many customers  ").reason == (
        "too many customers")
    for blank in ("", "   ", "\n\t"):
        with pytest.raises(ValidationError):
            ReasonedActionInput(actor_id=1, reason=blank)


def test_level_state_eligible_is_the_approver_then_the_escalations() -> None:
    level = LevelState(level=1, role=Role.MANAGER, approver_id=5, escalated_to=[9, 12])
    assert level.eligible == [5, 9, 12]
