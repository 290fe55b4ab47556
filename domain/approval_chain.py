"""Resolve who approves a request, level by level, from the policy and the org tree."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.policy import ApprovalLevelRule, PolicyRules
from domain.stages import Role
from domain.workflow_dto import ApprovalLevel


@dataclass(frozen=True)
class OrgPerson:
    id: int
    manager_id: int | None
    org_unit_id: int
    roles: frozenset[Role]
    active: bool = True


@dataclass(frozen=True)
class OrgUnitNode:
    id: int
    parent_id: int | None
    function: str  # company, sales, team, hr, legal
    head_id: int | None


@dataclass
class OrgSnapshot:
    people: dict[int, OrgPerson]
    units: dict[int, OrgUnitNode] = field(default_factory=dict)

    def manager_of(self, person_id: int) -> int | None:
        person = self.people.get(person_id)
        return person.manager_id if person else None

    def function_head(self, function: str) -> int | None:
        for unit in sorted(self.units.values(), key=lambda u: u.id):
            if unit.function == function and unit.head_id is not None:
                head = self.people.get(unit.head_id)
                if head is not None and head.active:
                    return head.id
        return None


class NoApproverError(ValueError):
    """The org tree has nobody eligible for a level; the policy or org data needs fixing."""


def _move_up(org: OrgSnapshot, candidate: int | None, excluded: set[int]) -> int | None:
    seen: set[int] = set()
    while candidate is not None and (
        candidate in excluded or not org.people.get(candidate, _INACTIVE).active
    ):
        if candidate in seen:  # a cycle in the manager data
            return None
        seen.add(candidate)
        candidate = org.manager_of(candidate)
    return candidate


_INACTIVE = OrgPerson(id=-1, manager_id=None, org_unit_id=-1, roles=frozenset(), active=False)


def _first_with_role_above(org: OrgSnapshot, start: int, role: Role) -> int | None:
    current = org.manager_of(start)
    seen: set[int] = set()
    while current is not None and current not in seen:
        seen.add(current)
        person = org.people.get(current)
        if person is not None and role in person.roles:
            return current
        current = org.manager_of(current)
    return None


def _initial_candidate(org: OrgSnapshot, rule: ApprovalLevelRule, from_id: int) -> int | None:
    match rule.role:
        case Role.MANAGER:
            return org.manager_of(from_id)
        case Role.DIRECTOR:
            return _first_with_role_above(org, from_id, Role.DIRECTOR)
        case Role.HR:
            return org.function_head("hr")
        case Role.LEGAL:
            return org.function_head("legal")
        case _:
            return _first_with_role_above(org, from_id, rule.role)


_FUNCTIONS = {Role.HR: "hr", Role.LEGAL: "legal"}


def _function_colleague(org: OrgSnapshot, role: Role, excluded: set[int]) -> int | None:
    """For HR and legal levels: the function's head, else a colleague holding the role."""
    head = org.function_head(_FUNCTIONS[role])
    colleagues = sorted(p.id for p in org.people.values() if p.active and role in p.roles)
    for candidate in ([head] if head is not None else []) + colleagues:
        if candidate not in excluded:
            return candidate
    return None


def resolve_chain(
    *,
    rules: PolicyRules,
    org: OrgSnapshot,
    from_employee_id: int,
    requester_id: int,
    value_fen: int,
    needs_legal: bool | None = None,
) -> list[ApprovalLevel]:
    """The ordered approval levels. Skips the requester and anyone already in the chain.

    `needs_legal` comes from domain.impact.legal_review_needed (value, tier or loss); when not
    given, the value threshold alone decides.
    """
    level_rules = list(rules.approval_levels)
    if needs_legal is None:
        needs_legal = value_fen >= rules.legal_threshold_fen
    if rules.legal_level is not None and needs_legal:
        level_rules.append(rules.legal_level)
    excluded = {requester_id, from_employee_id}
    chain: list[ApprovalLevel] = []
    for number, rule in enumerate(level_rules, start=1):
        approver = _function_colleague(org, rule.role, excluded) if rule.role in _FUNCTIONS \
            else None
        if approver is None:
            approver = _move_up(org, _initial_candidate(org, rule, from_employee_id), excluded)
        if approver is None:
            raise NoApproverError(f"nobody eligible to approve level {number} ({rule.role})")
        excluded.add(approver)
        chain.append(
            ApprovalLevel(
                level=number,
                role=rule.role,
                approver_id=approver,
                sla=rule.sla,
                reminder_after=rule.reminder_after,
            )
        )
    return chain


def escalation_approver(
    org: OrgSnapshot, pending_approver_id: int, excluded: set[int]
) -> int | None:
    """At SLA breach: the pending approver's manager, moving up past anyone excluded; else HR.

    HR means the head of HR first, then any other active HR employee, so that an HR head who
    already sits in the chain does not leave the breach without anyone to escalate to.
    """
    candidate = _move_up(org, org.manager_of(pending_approver_id),
                         excluded | {pending_approver_id})
    if candidate is not None:
        return candidate
    head = org.function_head("hr")
    others = sorted(p.id for p in org.people.values() if p.active and Role.HR in p.roles)
    for hr in ([head] if head is not None else []) + others:
        if hr not in excluded and hr != pending_approver_id:
            return hr
    return None
