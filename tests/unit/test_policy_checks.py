"""domain.policy: the checks a request must pass before it may start, and policy validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.policy import (
    ApprovalLevelRule,
    CustomerFacts,
    EmployeeFacts,
    PolicyRules,
    Terms,
    Violation,
    check_request,
    default_terms,
)
from domain.stages import Reason, Role
from tests.factories import fast_policy_rules

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
A, B = 100, 200
SALES = frozenset({Role.SALES})


def emp(id_: int, *, active: bool = True, roles: frozenset[Role] = SALES,
        leave_date: datetime | None = None) -> EmployeeFacts:
    return EmployeeFacts(id=id_, active=active, roles=roles, leave_date=leave_date)


def owned(*ids: int, owner: int = A, **kwargs: object) -> dict[int, CustomerFacts]:
    return {cid: CustomerFacts(id=cid, current_owner_id=owner, **kwargs) for cid in ids}


def check(**overrides: object) -> list[Violation]:
    """check_request on a valid request (A→B, customers 1 and 2), with `overrides` applied."""
    args: dict[object, object] = dict(
        rules=fast_policy_rules(),
        reason=Reason.TERRITORY_REALIGNMENT,
        from_employee=emp(A),
        to_employee=emp(B),
        customer_ids=[1, 2],
        customers=owned(1, 2),
        now=NOW,
    )
    args.update(overrides)
    return check_request(**args)  # type: ignore[arg-type]


def codes(violations: list[Violation]) -> list[str]:
    return [v.code for v in violations]


# --- the happy path ---------------------------------------------------------------------------


def test_a_valid_request_has_no_violations() -> None:
    assert check() == []


@pytest.mark.parametrize("reason", list(Reason))
def test_every_allowed_reason_passes(reason: Reason) -> None:
    leave = NOW + timedelta(days=14) if reason == Reason.EMPLOYEE_DEPARTURE else None
    assert check(reason=reason, from_employee=emp(A, leave_date=leave)) == []


# --- reason -----------------------------------------------------------------------------------


def test_reason_not_allowed_by_the_policy() -> None:
    rules = fast_policy_rules(allowed_reasons=[Reason.TERRITORY_REALIGNMENT,
                                               Reason.WORKLOAD_BALANCING])
    [v] = check(rules=rules, reason=Reason.PERFORMANCE)
    assert v.code == "REASON_NOT_ALLOWED" and v.field == "reason"
    assert "PERFORMANCE" in v.message
    assert "TERRITORY_REALIGNMENT, WORKLOAD_BALANCING" in v.message  # tells what is allowed


# --- the two employees ------------------------------------------------------------------------


def test_unknown_from_employee() -> None:
    [v] = check(from_employee=None)
    assert (v.code, v.field) == ("UNKNOWN_EMPLOYEE", "from_employee_id")


def test_unknown_to_employee() -> None:
    [v] = check(to_employee=None)
    assert (v.code, v.field) == ("UNKNOWN_EMPLOYEE", "to_employee_id")


def test_both_employees_unknown_are_both_reported() -> None:
    violations = check(from_employee=None, to_employee=None)
    assert [(v.code, v.field) for v in violations] == [
        ("UNKNOWN_EMPLOYEE", "from_employee_id"),
        ("UNKNOWN_EMPLOYEE", "to_employee_id"),
    ]


def test_receiver_must_differ_from_owner() -> None:
    [v] = check(to_employee=emp(A))
    assert (v.code, v.field) == ("SAME_EMPLOYEE", "to_employee_id")


def test_receiver_must_be_active() -> None:
    [v] = check(to_employee=emp(B, active=False, leave_date=NOW - timedelta(days=3)))
    assert (v.code, v.field) == ("RECEIVER_NOT_ACTIVE", "to_employee_id")


@pytest.mark.parametrize("roles", [frozenset(), frozenset({Role.HR}),
                                   frozenset({Role.MANAGER}), frozenset({Role.LEGAL})])
def test_receiver_must_be_a_salesperson(roles: frozenset[Role]) -> None:
    [v] = check(to_employee=emp(B, roles=roles))
    assert (v.code, v.field) == ("RECEIVER_NOT_SALES", "to_employee_id")


def test_receiver_with_sales_among_other_roles_is_fine() -> None:
    assert check(to_employee=emp(B, roles=frozenset({Role.MANAGER, Role.SALES}))) == []


def test_inactive_non_sales_receiver_reports_only_that_they_left() -> None:
    assert codes(check(to_employee=emp(B, active=False, roles=frozenset({Role.HR})))) == [
        "RECEIVER_NOT_ACTIVE"
    ]


# --- departure handover -----------------------------------------------------------------------


def test_departure_needs_a_leave_date_while_the_owner_is_employed() -> None:
    [v] = check(reason=Reason.EMPLOYEE_DEPARTURE, from_employee=emp(A))
    assert (v.code, v.field) == ("NO_DEPARTURE", "reason")


@pytest.mark.parametrize("leave", [NOW + timedelta(days=30), NOW - timedelta(days=1)])
def test_departure_with_a_leave_date_passes(leave: datetime) -> None:
    assert check(reason=Reason.EMPLOYEE_DEPARTURE, from_employee=emp(A, leave_date=leave)) == []


def test_departure_of_an_owner_who_has_already_left_passes() -> None:
    gone = emp(A, active=False, leave_date=NOW - timedelta(days=2))
    assert check(reason=Reason.EMPLOYEE_DEPARTURE, from_employee=gone) == []


def test_other_reasons_do_not_need_a_leave_date() -> None:
    assert check(reason=Reason.CUSTOMER_REQUEST, from_employee=emp(A)) == []


# --- the customers ----------------------------------------------------------------------------


def test_no_customers() -> None:
    [v] = check(customer_ids=[], customers={})
    assert (v.code, v.field) == ("NO_CUSTOMERS", "customer_ids")


def test_duplicate_customer_is_reported_once_and_checked_once() -> None:
    violations = check(customer_ids=[1, 2, 1, 1], customers=owned(1, 2, owner=999))
    assert codes(violations) == ["DUPLICATE_CUSTOMER", "NOT_OWNER", "NOT_OWNER"]
    assert "customer 1 " in violations[1].message and "customer 2 " in violations[2].message


def test_unknown_customer() -> None:
    [v] = check(customer_ids=[1, 2, 3])
    assert (v.code, v.field) == ("UNKNOWN_CUSTOMER", "customer_ids")
    assert "3" in v.message


def test_owner_must_own_every_customer() -> None:
    customers = {**owned(1, 3), **owned(2, owner=B), **owned(4, owner=None)}
    violations = check(customer_ids=[1, 2, 3, 4], customers=customers)
    assert codes(violations) == ["NOT_OWNER", "NOT_OWNER"]
    assert "customer 2 " in violations[0].message and "customer 4 " in violations[1].message
    assert all(str(A) in v.message for v in violations)


def test_ownership_is_not_checked_against_an_unknown_owner() -> None:
    # the unknown employee is already reported; no NOT_OWNER noise on top of it
    assert codes(check(from_employee=None)) == ["UNKNOWN_EMPLOYEE"]


# --- protection -------------------------------------------------------------------------------


def test_customer_inside_protection_cannot_move() -> None:
    ends = NOW + timedelta(days=10)
    customers = {**owned(1), **owned(2, protection_ends_at=ends)}
    [v] = check(customers=customers)
    assert (v.code, v.field) == ("IN_PROTECTION", "customer_ids")
    assert "customer 2 " in v.message and ends.isoformat() in v.message


@pytest.mark.parametrize("ends", [NOW, NOW - timedelta(seconds=1), NOW - timedelta(days=400)])
def test_protection_that_has_ended_does_not_block(ends: datetime) -> None:
    # protection covers effective_at <= t < protection_end: at its end it is over
    assert check(customers=owned(1, 2, protection_ends_at=ends)) == []


def test_protection_one_microsecond_left_still_blocks() -> None:
    customers = owned(1, 2, protection_ends_at=NOW + timedelta(microseconds=1))
    assert codes(check(customers=customers)) == ["IN_PROTECTION", "IN_PROTECTION"]


# --- another open request ---------------------------------------------------------------------


def test_customer_in_another_open_request_cannot_be_requested_again() -> None:
    customers = {**owned(1), **owned(2, open_request_ids=(41, 42))}
    [v] = check(customers=customers)
    assert (v.code, v.field) == ("OPEN_REQUEST", "customer_ids")
    assert "customer 2 " in v.message and "41, 42" in v.message


# --- cooling-off ------------------------------------------------------------------------------


def test_one_earlier_reassignment_allows_the_second() -> None:
    customers = owned(1, 2, recent_reassignments=(NOW - timedelta(days=10),))
    assert check(customers=customers) == []


def test_two_earlier_reassignments_block_the_third() -> None:
    earlier = (NOW - timedelta(days=60), NOW - timedelta(days=5))
    customers = {**owned(1), **owned(2, recent_reassignments=earlier)}
    [v] = check(customers=customers)
    assert (v.code, v.field) == ("COOLING_OFF", "customer_ids")
    assert "customer 2 " in v.message and "2 time(s)" in v.message and "limit 2" in v.message


def test_reassignments_outside_the_window_do_not_count() -> None:
    earlier = (NOW - timedelta(days=200), NOW - timedelta(days=91), NOW - timedelta(days=3))
    assert check(customers=owned(1, 2, recent_reassignments=earlier)) == []


def test_window_boundary_exactly_90_days_ago_counts() -> None:
    earlier = (NOW - timedelta(days=90), NOW - timedelta(days=1))
    assert codes(check(customer_ids=[1], customers=owned(1, recent_reassignments=earlier))) == [
        "COOLING_OFF"
    ]
    just_out = (NOW - timedelta(days=90, microseconds=1), NOW - timedelta(days=1))
    assert check(customer_ids=[1], customers=owned(1, recent_reassignments=just_out)) == []


def test_cooling_off_limit_and_window_come_from_the_policy() -> None:
    rules = fast_policy_rules(cooling_off_max=1, cooling_off_window=timedelta(days=30))
    one_recent = owned(1, recent_reassignments=(NOW - timedelta(days=29),))
    one_old = owned(1, recent_reassignments=(NOW - timedelta(days=31),))
    assert codes(check(rules=rules, customer_ids=[1], customers=one_recent)) == ["COOLING_OFF"]
    assert check(rules=rules, customer_ids=[1], customers=one_old) == []


def test_cooling_off_message_states_a_sub_day_window_truthfully() -> None:
    rules = fast_policy_rules(cooling_off_max=1, cooling_off_window=timedelta(hours=1))
    [v] = check(rules=rules, customer_ids=[1],
                customers=owned(1, recent_reassignments=(NOW - timedelta(minutes=5),)))
    assert "in 0 days" not in v.message


@given(
    ages=st.lists(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=365)),
                  max_size=6),
    limit=st.integers(min_value=1, max_value=4),
    window_days=st.integers(min_value=1, max_value=200),
)
def test_cooling_off_rejects_exactly_when_the_window_already_holds_the_limit(
    ages: list[timedelta], limit: int, window_days: int
) -> None:
    window = timedelta(days=window_days)
    rules = fast_policy_rules(cooling_off_max=limit, cooling_off_window=window)
    customers = owned(1, recent_reassignments=tuple(NOW - age for age in ages))
    in_window = sum(1 for age in ages if age <= window)
    blocked = codes(check(rules=rules, customer_ids=[1], customers=customers)) == ["COOLING_OFF"]
    assert blocked == (in_window >= limit)


# --- several problems at once -----------------------------------------------------------------


def test_all_violations_are_reported_together() -> None:
    rules = fast_policy_rules(allowed_reasons=[Reason.TERRITORY_REALIGNMENT])
    customers = {
        **owned(1, owner=B),
        **owned(2, protection_ends_at=NOW + timedelta(days=1),
                recent_reassignments=(NOW - timedelta(days=1), NOW - timedelta(days=2))),
    }
    violations = check(
        rules=rules,
        reason=Reason.EMPLOYEE_DEPARTURE,
        to_employee=emp(B, roles=frozenset({Role.HR})),
        customer_ids=[1, 2, 2, 3],
        customers=customers,
    )
    assert codes(violations) == [
        "REASON_NOT_ALLOWED",
        "RECEIVER_NOT_SALES",
        "NO_DEPARTURE",
        "DUPLICATE_CUSTOMER",
        "NOT_OWNER",
        "IN_PROTECTION",
        "COOLING_OFF",
        "UNKNOWN_CUSTOMER",
    ]
    assert all(v.message for v in violations)


def test_check_request_is_pure() -> None:
    customers = owned(1, 2, recent_reassignments=(NOW - timedelta(days=1),))
    ids = [1, 2]
    before = (dict(customers), list(ids))
    assert check(customer_ids=ids, customers=customers) == check(customer_ids=ids,
                                                                 customers=customers)
    assert (customers, ids) == before


# --- policy rules validation ------------------------------------------------------------------


def level(role: Role = Role.MANAGER, sla: timedelta = timedelta(hours=48),
          reminder: timedelta = timedelta(hours=24)) -> ApprovalLevelRule:
    return ApprovalLevelRule(role=role, sla=sla, reminder_after=reminder)


def test_a_level_with_its_reminder_before_the_sla_is_valid() -> None:
    rule = level(sla=timedelta(minutes=4), reminder=timedelta(minutes=2))
    assert rule.reminder_after < rule.sla


@pytest.mark.parametrize(
    ("sla", "reminder"),
    [
        (timedelta(hours=24), timedelta(hours=24)),  # equal: no time left to act on it
        (timedelta(hours=24), timedelta(hours=25)),
        (timedelta(hours=24), timedelta(0)),
        (timedelta(hours=24), timedelta(hours=-1)),
        (timedelta(0), timedelta(0)),
    ],
)
def test_reminder_must_be_positive_and_before_the_sla(sla: timedelta, reminder: timedelta) -> None:
    with pytest.raises(ValidationError, match="reminder_after"):
        level(sla=sla, reminder=reminder)


def test_policy_needs_at_least_one_approval_level() -> None:
    with pytest.raises(ValidationError, match="at least one approval level"):
        fast_policy_rules(approval_levels=[])


def test_an_invalid_level_inside_a_policy_is_rejected() -> None:
    bad = {"role": "manager", "sla": "PT1H", "reminder_after": "PT2H"}
    with pytest.raises(ValidationError, match="reminder_after"):
        fast_policy_rules(approval_levels=[bad])
    with pytest.raises(ValidationError, match="reminder_after"):
        fast_policy_rules(legal_level=bad)


@pytest.mark.parametrize("field", ["protection_share_bp", "inherited_rate_bp",
                                   "compensation_pct_of_loss_bp"])
def test_basis_point_bounds(field: str) -> None:
    assert getattr(fast_policy_rules(**{field: 0}), field) == 0
    assert getattr(fast_policy_rules(**{field: 10_000}), field) == 10_000
    for bad in (-1, 10_001):
        with pytest.raises(ValidationError, match=field):
            fast_policy_rules(**{field: bad})


def test_cooling_off_max_is_at_least_one() -> None:
    assert fast_policy_rules(cooling_off_max=1).cooling_off_max == 1
    with pytest.raises(ValidationError, match="cooling_off_max"):
        fast_policy_rules(cooling_off_max=0)


def test_policy_defaults() -> None:
    rules = fast_policy_rules()
    minimal = PolicyRules(
        allowed_reasons=[Reason.TERRITORY_REALIGNMENT],
        communication_window=timedelta(days=7),
        signature_deadline=timedelta(days=7),
        approval_levels=[level()],
        protection_period=timedelta(days=90),
        protection_share_bp=5_000,
        inherited_rate_bp=200,
    )
    assert minimal.cooling_off_max == 2 and minimal.cooling_off_window == timedelta(days=90)
    assert minimal.legal_level is None and minimal.signature_reminders_before == []
    assert rules.legal_level is not None and rules.legal_level.role == Role.LEGAL


@pytest.mark.parametrize("field", ["communication_window", "signature_deadline",
                                   "protection_period", "cooling_off_window"])
def test_policy_durations_must_not_be_negative(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        fast_policy_rules(**{field: timedelta(days=-1)})


def test_unknown_reason_in_stored_policy_is_rejected() -> None:
    with pytest.raises(ValidationError):
        fast_policy_rules(allowed_reasons=["BECAUSE_I_SAID_SO"])


@given(
    st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=3650)),
    st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=3650)),
)
def test_durations_survive_the_json_round_trip_exactly(window: timedelta,
                                                       protection: timedelta) -> None:
    # policies are stored as JSON; a demo policy may use minutes or less (DESIGN.md)
    rules = fast_policy_rules(communication_window=window, protection_period=protection,
                              cooling_off_window=window)
    again = PolicyRules.model_validate_json(rules.model_dump_json())
    assert again == rules
    assert PolicyRules.model_validate(rules.model_dump(mode="json")) == rules


# --- terms ------------------------------------------------------------------------------------


def test_default_terms_copy_the_policy() -> None:
    rules = fast_policy_rules()
    terms = default_terms(rules, compensation_fen=12_345)
    assert terms == Terms(protection_period=rules.protection_period,
                          protection_share_bp=rules.protection_share_bp,
                          inherited_rate_bp=rules.inherited_rate_bp, compensation_fen=12_345)
    assert default_terms(rules).compensation_fen == 0


def test_terms_bounds() -> None:
    with pytest.raises(ValidationError):
        Terms(protection_period=timedelta(days=1), protection_share_bp=10_001,
              inherited_rate_bp=0)
    with pytest.raises(ValidationError):
        Terms(protection_period=timedelta(days=1), protection_share_bp=0, inherited_rate_bp=0,
              compensation_fen=-1)


def test_an_owner_who_left_needs_the_departure_reason() -> None:
    gone = emp(A, active=False, leave_date=NOW - timedelta(days=1))
    [v] = check(from_employee=gone)
    assert (v.code, v.field) == ("OWNER_LEFT", "reason")
    assert check(from_employee=gone, reason=Reason.EMPLOYEE_DEPARTURE) == []
