"""domain.approval_chain: who approves each level, and who a late approval escalates to."""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.approval_chain import (
    NoApproverError,
    OrgPerson,
    OrgSnapshot,
    OrgUnitNode,
    escalation_approver,
    resolve_chain,
)
from domain.policy import ApprovalLevelRule, PolicyRules
from domain.stages import Role
from tests.factories import fast_policy_rules

# The same shape as tests.factories.SmallOrg, without a database.
CEO, DIRECTOR, MANAGER_A, MANAGER_B = 1, 10, 20, 21
SALES_A1, SALES_A2, SALES_B1 = 100, 101, 102
HR_HEAD, LEGAL_HEAD = 200, 300
OUTSIDER = 900  # a requester who appears nowhere in the chain (e.g. an admin)
THRESHOLD = fast_policy_rules().legal_threshold_fen


def person(id_: int, manager: int | None, unit: int, *roles: Role,
           active: bool = True) -> OrgPerson:
    return OrgPerson(id=id_, manager_id=manager, org_unit_id=unit, roles=frozenset(roles),
                     active=active)


def small_org(*changed: OrgPerson, drop: tuple[int, ...] = (),
              units: dict[int, OrgUnitNode] | None = None) -> OrgSnapshot:
    people = [
        person(CEO, None, 1, Role.DIRECTOR),
        person(DIRECTOR, CEO, 2, Role.DIRECTOR),
        person(MANAGER_A, DIRECTOR, 3, Role.MANAGER, Role.SALES),
        person(MANAGER_B, DIRECTOR, 4, Role.MANAGER, Role.SALES),
        person(SALES_A1, MANAGER_A, 3, Role.SALES),
        person(SALES_A2, MANAGER_A, 3, Role.SALES),
        person(SALES_B1, MANAGER_B, 4, Role.SALES),
        person(HR_HEAD, CEO, 5, Role.HR),
        person(LEGAL_HEAD, CEO, 6, Role.LEGAL),
        person(OUTSIDER, None, 1, Role.ADMIN),
    ]
    by_id = {p.id: p for p in people}
    by_id.update({p.id: p for p in changed})
    for gone in drop:
        by_id.pop(gone)
    if units is None:
        units = {
            1: OrgUnitNode(1, None, "company", CEO),
            2: OrgUnitNode(2, 1, "sales", DIRECTOR),
            3: OrgUnitNode(3, 2, "team", MANAGER_A),
            4: OrgUnitNode(4, 2, "team", MANAGER_B),
            5: OrgUnitNode(5, 1, "hr", HR_HEAD),
            6: OrgUnitNode(6, 1, "legal", LEGAL_HEAD),
        }
    return OrgSnapshot(people=by_id, units=units)


def changed(org: OrgSnapshot, id_: int, **fields: object) -> OrgPerson:
    return dataclasses.replace(org.people[id_], **fields)  # type: ignore[arg-type]


BASE = small_org()


def chain(org: OrgSnapshot = BASE, *, from_id: int = SALES_A1, requester: int = OUTSIDER,
          value: int = 0, rules: PolicyRules | None = None) -> list[int]:
    levels = resolve_chain(rules=rules or fast_policy_rules(), org=org,
                           from_employee_id=from_id, requester_id=requester, value_fen=value)
    assert [lv.level for lv in levels] == list(range(1, len(levels) + 1))
    return [lv.approver_id for lv in levels]


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail instead of hanging (the code under test walks possibly cyclic manager data)."""

    def _timeout(*_: object) -> None:
        raise TimeoutError(f"did not finish within {seconds}s")

    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- the default chain ------------------------------------------------------------------------


def test_default_chain_is_manager_director_hr() -> None:
    levels = resolve_chain(rules=fast_policy_rules(), org=BASE, from_employee_id=SALES_A1,
                           requester_id=OUTSIDER, value_fen=0)
    assert [(lv.level, lv.role, lv.approver_id) for lv in levels] == [
        (1, Role.MANAGER, MANAGER_A),
        (2, Role.DIRECTOR, DIRECTOR),
        (3, Role.HR, HR_HEAD),
    ]


def test_levels_carry_the_sla_and_reminder_of_their_rule() -> None:
    rules = fast_policy_rules(
        approval_levels=[
            ApprovalLevelRule(role=Role.MANAGER, sla=timedelta(hours=8),
                              reminder_after=timedelta(hours=4)),
            ApprovalLevelRule(role=Role.HR, sla=timedelta(days=2),
                              reminder_after=timedelta(days=1)),
        ],
        legal_level=ApprovalLevelRule(role=Role.LEGAL, sla=timedelta(days=5),
                                      reminder_after=timedelta(days=3)),
    )
    levels = resolve_chain(rules=rules, org=BASE, from_employee_id=SALES_A1,
                           requester_id=OUTSIDER, value_fen=rules.legal_threshold_fen)
    assert [(lv.role, lv.sla, lv.reminder_after) for lv in levels] == [
        (Role.MANAGER, timedelta(hours=8), timedelta(hours=4)),
        (Role.HR, timedelta(days=2), timedelta(days=1)),
        (Role.LEGAL, timedelta(days=5), timedelta(days=3)),
    ]


def test_chain_for_the_other_team_uses_its_own_manager() -> None:
    assert chain(from_id=SALES_B1) == [MANAGER_B, DIRECTOR, HR_HEAD]


# --- legal ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [THRESHOLD, THRESHOLD + 1, 10 * THRESHOLD])
def test_legal_is_added_at_or_above_the_threshold(value: int) -> None:
    levels = resolve_chain(rules=fast_policy_rules(), org=BASE, from_employee_id=SALES_A1,
                           requester_id=OUTSIDER, value_fen=value)
    assert [(lv.level, lv.role, lv.approver_id) for lv in levels][-1] == (
        4, Role.LEGAL, LEGAL_HEAD)


@pytest.mark.parametrize("value", [0, THRESHOLD - 1])
def test_legal_is_not_added_below_the_threshold(value: int) -> None:
    assert chain(value=value) == [MANAGER_A, DIRECTOR, HR_HEAD]


def test_no_legal_level_when_the_policy_has_none() -> None:
    rules = fast_policy_rules(legal_level=None)
    assert chain(rules=rules, value=10 * THRESHOLD) == [MANAGER_A, DIRECTOR, HR_HEAD]


def test_zero_threshold_always_adds_legal() -> None:
    rules = fast_policy_rules(legal_threshold_fen=0)
    assert chain(rules=rules, value=0) == [MANAGER_A, DIRECTOR, HR_HEAD, LEGAL_HEAD]


# --- four eyes: skip the requester and anyone already in the chain ----------------------------


def test_requester_who_is_the_manager_is_skipped_by_moving_up() -> None:
    # the manager's level goes to the director; the director's level then moves up to the CEO
    assert chain(requester=MANAGER_A) == [DIRECTOR, CEO, HR_HEAD]


def test_requester_who_is_the_director() -> None:
    assert chain(requester=DIRECTOR) == [MANAGER_A, CEO, HR_HEAD]


def test_requester_who_is_the_hr_head_is_replaced_by_their_manager() -> None:
    assert chain(requester=HR_HEAD) == [MANAGER_A, DIRECTOR, CEO]


def test_requester_who_is_the_legal_head() -> None:
    assert chain(requester=LEGAL_HEAD, value=THRESHOLD) == [MANAGER_A, DIRECTOR, HR_HEAD, CEO]


def test_manager_who_is_also_the_first_director_approves_only_once() -> None:
    org = small_org(changed(BASE, MANAGER_A, roles=frozenset({Role.MANAGER, Role.DIRECTOR})))
    assert chain(org) == [MANAGER_A, DIRECTOR, HR_HEAD]


def test_salesperson_reporting_to_the_director_directly() -> None:
    org = small_org(changed(BASE, SALES_A1, manager_id=DIRECTOR))
    assert chain(org) == [DIRECTOR, CEO, HR_HEAD]


def test_from_employee_never_approves_their_own_transfer() -> None:
    # a manager handing over customers they own themselves
    assert chain(from_id=MANAGER_A) == [DIRECTOR, CEO, HR_HEAD]


def test_hr_head_who_is_also_the_director_approves_only_once() -> None:
    # the HR level then goes to another HR employee, not up the tree to a non-HR person
    units = {**small_org().units, 5: OrgUnitNode(5, 1, "hr", DIRECTOR)}
    assert chain(small_org(units=units)) == [MANAGER_A, DIRECTOR, HR_HEAD]


def test_two_levels_with_the_same_role_go_to_two_people() -> None:
    rule = ApprovalLevelRule(role=Role.MANAGER, sla=timedelta(hours=2),
                             reminder_after=timedelta(hours=1))
    rules = fast_policy_rules(approval_levels=[rule, rule])
    assert chain(rules=rules) == [MANAGER_A, DIRECTOR]


def test_a_level_for_another_role_goes_to_the_first_holder_above() -> None:
    rule = ApprovalLevelRule(role=Role.ADMIN, sla=timedelta(hours=2),
                             reminder_after=timedelta(hours=1))
    org = small_org(changed(BASE, CEO, roles=frozenset({Role.DIRECTOR, Role.ADMIN})))
    assert chain(org, rules=fast_policy_rules(approval_levels=[rule])) == [CEO]


# --- inactive and missing people --------------------------------------------------------------


def test_inactive_manager_is_skipped() -> None:
    org = small_org(changed(BASE, MANAGER_A, active=False))
    assert chain(org) == [DIRECTOR, CEO, HR_HEAD]


def test_inactive_director_is_skipped() -> None:
    org = small_org(changed(BASE, DIRECTOR, active=False))
    assert chain(org) == [MANAGER_A, CEO, HR_HEAD]


def test_manager_missing_from_the_snapshot_is_skipped() -> None:
    org = small_org(drop=(MANAGER_A,))
    # nobody to move up from: the manager's own manager is unknown too
    with pytest.raises(NoApproverError, match="level 1"):
        chain(org)


def test_inactive_hr_head_falls_back_to_another_hr_unit() -> None:
    hr2 = person(201, CEO, 7, Role.HR)
    units = {**small_org().units, 7: OrgUnitNode(7, 5, "hr", hr2.id)}
    org = small_org(changed(BASE, HR_HEAD, active=False), hr2, units=units)
    assert chain(org) == [MANAGER_A, DIRECTOR, 201]


# --- nobody eligible --------------------------------------------------------------------------


def test_no_manager_at_all() -> None:
    org = small_org(changed(BASE, SALES_A1, manager_id=None))
    with pytest.raises(NoApproverError, match=r"level 1 \(manager\)"):
        chain(org)


def test_no_director_above() -> None:
    org = small_org(changed(BASE, CEO, roles=frozenset()), changed(BASE, DIRECTOR,
                                                                   roles=frozenset()))
    with pytest.raises(NoApproverError, match=r"level 2 \(director\)"):
        chain(org)


def test_no_hr_unit_falls_back_to_an_hr_employee() -> None:
    units = {k: u for k, u in small_org().units.items() if u.function != "hr"}
    assert chain(small_org(units=units)) == [MANAGER_A, DIRECTOR, HR_HEAD]


def test_nobody_in_hr_at_all() -> None:
    units = {k: u for k, u in small_org().units.items() if u.function != "hr"}
    org = small_org(changed(BASE, HR_HEAD, active=False), units=units)
    with pytest.raises(NoApproverError, match=r"level 3 \(hr\)"):
        chain(org)


def test_no_legal_unit_only_matters_above_the_threshold() -> None:
    units = {k: u for k, u in small_org().units.items() if u.function != "legal"}
    org = small_org(changed(BASE, LEGAL_HEAD, active=False), units=units)
    assert chain(org, value=THRESHOLD - 1) == [MANAGER_A, DIRECTOR, HR_HEAD]
    with pytest.raises(NoApproverError, match=r"level 4 \(legal\)"):
        chain(org, value=THRESHOLD)


def test_everyone_above_already_used_up() -> None:
    # requester = director and the CEO has left: the director level has nobody left
    org = small_org(changed(BASE, CEO, active=False))
    with pytest.raises(NoApproverError, match="level 2"):
        chain(org, requester=DIRECTOR)


def test_no_approver_error_is_a_value_error() -> None:
    assert issubclass(NoApproverError, ValueError)


# --- cycles in the manager data ---------------------------------------------------------------


def test_manager_cycle_with_everyone_excluded_does_not_hang() -> None:
    # SALES_A1 -> MANAGER_A -> SALES_A1; both are excluded (from and requester)
    org = small_org(changed(BASE, MANAGER_A, manager_id=SALES_A1))
    with time_limit(2), pytest.raises(NoApproverError):
        chain(org, requester=MANAGER_A)


def test_manager_cycle_of_inactive_people_does_not_hang() -> None:
    org = small_org(changed(BASE, MANAGER_A, manager_id=DIRECTOR, active=False),
                    changed(BASE, DIRECTOR, manager_id=MANAGER_A, active=False))
    with time_limit(2), pytest.raises(NoApproverError):
        chain(org)


def test_self_managed_person_does_not_hang() -> None:
    org = small_org(changed(BASE, MANAGER_A, manager_id=MANAGER_A, active=False))
    with time_limit(2), pytest.raises(NoApproverError):
        chain(org)


def test_cycle_without_a_director_does_not_hang() -> None:
    org = small_org(changed(BASE, MANAGER_A, manager_id=SALES_A2),
                    changed(BASE, SALES_A2, manager_id=MANAGER_A))
    with time_limit(2), pytest.raises(NoApproverError, match="level 2"):
        chain(org)


# --- escalation -------------------------------------------------------------------------------


def test_escalation_goes_to_the_pending_approvers_manager() -> None:
    assert escalation_approver(BASE, MANAGER_A, set()) == DIRECTOR
    assert escalation_approver(BASE, DIRECTOR, set()) == CEO
    assert escalation_approver(BASE, HR_HEAD, set()) == CEO


def test_escalation_skips_excluded_people() -> None:
    # the requester and everyone in the chain are excluded
    excluded = {OUTSIDER, SALES_A1, MANAGER_A, DIRECTOR, HR_HEAD}
    assert escalation_approver(BASE, MANAGER_A, excluded) == CEO


def test_escalation_skips_inactive_managers() -> None:
    org = small_org(changed(BASE, DIRECTOR, active=False))
    assert escalation_approver(org, MANAGER_A, {MANAGER_A}) == CEO


def test_escalation_goes_to_hr_when_there_is_no_manager() -> None:
    assert escalation_approver(BASE, CEO, {CEO}) == HR_HEAD


def test_escalation_goes_to_hr_when_every_manager_above_is_excluded() -> None:
    assert escalation_approver(BASE, MANAGER_A, {MANAGER_A, DIRECTOR, CEO}) == HR_HEAD


def test_escalation_has_nobody_when_hr_is_excluded_too() -> None:
    assert escalation_approver(BASE, CEO, {CEO, HR_HEAD}) is None


def test_escalation_falls_back_to_another_hr_employee() -> None:
    # the HR head already approved a level (excluded): another active HR employee takes it
    org = small_org(person(201, HR_HEAD, 5, Role.HR), person(202, HR_HEAD, 5, Role.HR),
                    person(203, HR_HEAD, 5, Role.HR, active=False))
    assert escalation_approver(org, CEO, {CEO, HR_HEAD}) == 201
    assert escalation_approver(org, CEO, {CEO, HR_HEAD, 201}) == 202
    assert escalation_approver(org, CEO, {CEO, HR_HEAD, 201, 202}) is None


def test_escalation_prefers_the_hr_head_over_other_hr_employees() -> None:
    org = small_org(person(150, HR_HEAD, 5, Role.HR))  # a lower id than the head
    assert escalation_approver(org, CEO, {CEO}) == HR_HEAD


def test_hr_head_late_with_nobody_above_goes_to_another_hr_employee() -> None:
    org = small_org(person(201, HR_HEAD, 5, Role.HR))
    assert escalation_approver(org, HR_HEAD, {HR_HEAD, CEO}) == 201


def test_hr_head_with_nobody_above_does_not_escalate_to_themselves() -> None:
    assert escalation_approver(BASE, HR_HEAD, {CEO}) is None


def test_escalation_in_a_manager_cycle_does_not_hang() -> None:
    org = small_org(changed(BASE, DIRECTOR, manager_id=MANAGER_A))
    with time_limit(2):
        assert escalation_approver(org, MANAGER_A, {MANAGER_A, DIRECTOR}) == HR_HEAD


def test_escalation_never_returns_the_pending_approver() -> None:
    org = small_org(changed(BASE, DIRECTOR, manager_id=MANAGER_A))
    with time_limit(2):
        assert escalation_approver(org, MANAGER_A, {DIRECTOR}) != MANAGER_A


# --- properties over random org data ----------------------------------------------------------

LEVEL_ROLES = [Role.MANAGER, Role.DIRECTOR, Role.HR, Role.SALES]
SOME_ROLES = st.frozensets(st.sampled_from(list(Role)), max_size=3)


@st.composite
def org_data(draw: st.DrawFn, *, acyclic: bool) -> OrgSnapshot:
    n = draw(st.integers(min_value=2, max_value=12))
    people: dict[int, OrgPerson] = {}
    for pid in range(1, n + 1):
        if acyclic:  # a forest: managers have smaller ids
            manager = draw(st.none() | st.integers(min_value=1, max_value=pid - 1)) \
                if pid > 1 else None
        else:  # anything goes: cycles, self-management, dangling ids
            manager = draw(st.none() | st.integers(min_value=1, max_value=n + 2))
        people[pid] = OrgPerson(id=pid, manager_id=manager, org_unit_id=1,
                                roles=draw(SOME_ROLES), active=draw(st.booleans()))
    units: dict[int, OrgUnitNode] = {}
    for uid, function in enumerate(draw(st.lists(st.sampled_from(["hr", "legal", "sales"]),
                                                 max_size=4)), start=1):
        head = draw(st.none() | st.integers(min_value=1, max_value=n + 1))
        units[uid] = OrgUnitNode(uid, None, function, head)
    return OrgSnapshot(people=people, units=units)


@st.composite
def rules_data(draw: st.DrawFn) -> PolicyRules:
    roles = draw(st.lists(st.sampled_from(LEVEL_ROLES), min_size=1, max_size=4))
    rule = {"sla": timedelta(hours=2), "reminder_after": timedelta(hours=1)}
    return fast_policy_rules(
        approval_levels=[ApprovalLevelRule(role=r, **rule) for r in roles],
        legal_level=draw(st.none() | st.just(ApprovalLevelRule(role=Role.LEGAL, **rule))),
        legal_threshold_fen=draw(st.integers(min_value=0, max_value=100)),
    )


def ancestors(org: OrgSnapshot, pid: int | None) -> list[int]:
    """pid's managers, nearest first, stopping at a repeat."""
    seen: list[int] = []
    current = org.manager_of(pid) if pid is not None else None
    while current is not None and current not in seen:
        seen.append(current)
        current = org.manager_of(current)
    return seen


def hr_head(org: OrgSnapshot, function: str) -> int | None:
    return org.function_head(function)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), acyclic=st.booleans())
def test_resolved_chain_is_four_eyes_clean(data: st.DataObject, acyclic: bool) -> None:
    org = data.draw(org_data(acyclic=acyclic))
    rules = data.draw(rules_data())
    ids = sorted(org.people)
    from_id = data.draw(st.sampled_from(ids))
    requester = data.draw(st.sampled_from(ids))
    value = data.draw(st.integers(min_value=0, max_value=200))
    try:
        with time_limit(2):
            levels = resolve_chain(rules=rules, org=org, from_employee_id=from_id,
                                   requester_id=requester, value_fen=value)
    except NoApproverError:
        return
    approvers = [lv.approver_id for lv in levels]
    expected_roles = [r.role for r in rules.approval_levels]
    if rules.legal_level is not None and value >= rules.legal_threshold_fen:
        expected_roles.append(Role.LEGAL)
    assert [lv.role for lv in levels] == expected_roles
    assert [lv.level for lv in levels] == list(range(1, len(levels) + 1))
    assert len(set(approvers)) == len(approvers), "one person approves at most one level"
    assert requester not in approvers and from_id not in approvers
    assert all(a in org.people and org.people[a].active for a in approvers)
    above_owner = ancestors(org, from_id)
    for lv in levels:
        if lv.role in (Role.HR, Role.LEGAL):
            head = hr_head(org, lv.role.value)
            assert (lv.role in org.people[lv.approver_id].roles or lv.approver_id == head
                    or lv.approver_id in ancestors(org, head))
        else:  # found by walking up from the salesperson
            assert lv.approver_id in above_owner


@settings(max_examples=300)
@given(data=st.data(), acyclic=st.booleans())
def test_escalation_target_is_eligible(data: st.DataObject, acyclic: bool) -> None:
    org = data.draw(org_data(acyclic=acyclic))
    ids = sorted(org.people)
    pending = data.draw(st.sampled_from(ids))
    excluded = data.draw(st.sets(st.sampled_from(ids)))
    with time_limit(2):
        target = escalation_approver(org, pending, excluded | {pending})
    if target is None:
        return
    assert target != pending and target not in excluded
    assert target in org.people and org.people[target].active
    is_hr = target == org.function_head("hr") or Role.HR in org.people[target].roles
    assert target in ancestors(org, pending) or is_hr
