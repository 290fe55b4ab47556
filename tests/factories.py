"""A small, fully wired org for tests: two sales teams, a director, HR and legal."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from domain.policy import ApprovalLevelRule, PolicyRules
from domain.stages import Reason, Role
from models import (
    Assignment,
    AssignmentSource,
    Customer,
    Employee,
    EmploymentStatus,
    Order,
    OrgUnit,
    PolicyStatus,
    PolicyVersion,
    UserAccount,
)
from models.passwords import hash_password

PASSWORD = "correct horse battery staple"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def fast_policy_rules(**overrides: object) -> PolicyRules:
    """A policy whose timers are minutes, as in the demo, with a legal level above 1M yuan."""
    base = dict(
        allowed_reasons=list(Reason),
        communication_window=timedelta(minutes=10),
        signature_deadline=timedelta(minutes=10),
        signature_reminders_before=[timedelta(minutes=5), timedelta(minutes=1)],
        approval_levels=[
            ApprovalLevelRule(role=Role.MANAGER, sla=timedelta(minutes=4),
                              reminder_after=timedelta(minutes=2)),
            ApprovalLevelRule(role=Role.DIRECTOR, sla=timedelta(minutes=4),
                              reminder_after=timedelta(minutes=2)),
            ApprovalLevelRule(role=Role.HR, sla=timedelta(minutes=4),
                              reminder_after=timedelta(minutes=2)),
        ],
        legal_level=ApprovalLevelRule(role=Role.LEGAL, sla=timedelta(minutes=4),
                                      reminder_after=timedelta(minutes=2)),
        legal_threshold_fen=100_000_000,
        protection_period=timedelta(minutes=30),
        protection_share_bp=5_000,
        inherited_rate_bp=200,
        compensation_pct_of_loss_bp=5_000,
        cooling_off_max=2,
        cooling_off_window=timedelta(days=90),
    )
    base.update(overrides)
    return PolicyRules.model_validate(base)


@dataclass
class SmallOrg:
    ceo: int = 0
    director: int = 0
    manager_a: int = 0
    manager_b: int = 0
    sales_a1: int = 0
    sales_a2: int = 0
    sales_b1: int = 0
    sales_left: int = 0
    hr_head: int = 0
    hr_staff: int = 0
    legal_head: int = 0
    policy_version_id: int = 0
    customers_a1: list[int] = field(default_factory=list)
    customers_a2: list[int] = field(default_factory=list)
    customers_b1: list[int] = field(default_factory=list)
    usernames: dict[int, str] = field(default_factory=dict)


def build_small_org(
    session: Session, *, rules: PolicyRules | None = None, with_accounts: bool = True
) -> SmallOrg:
    org = SmallOrg()

    def unit(name: str, function: str, parent: int | None) -> OrgUnit:
        u = OrgUnit(name=name, function=function, parent_id=parent)
        session.add(u)
        session.flush()
        return u

    def person(no: str, name: str, role: Role, unit_: OrgUnit, manager: int | None,
               status: EmploymentStatus = EmploymentStatus.EMPLOYED) -> int:
        e = Employee(employee_no=no, name=name, email=f"{no.lower()}@example.test",
                     role=role.value, org_unit_id=unit_.id, manager_id=manager, status=status,
                     hired_at=T0 - timedelta(days=700),
                     leave_date=T0 - timedelta(days=1) if status == EmploymentStatus.LEFT else None)
        session.add(e)
        session.flush()
        assert e.id is not None
        if with_accounts:
            roles = [role.value] + ([Role.SALES.value] if role == Role.MANAGER else [])
            session.add(UserAccount(username=no.lower(), password_hash=_PW_HASH(),
                                    employee_id=e.id, roles=roles))
            org.usernames[e.id] = no.lower()
        return e.id

    company = unit("Acme", "company", None)
    sales = unit("Sales", "sales", company.id)
    team_a = unit("Team A", "team", sales.id)
    team_b = unit("Team B", "team", sales.id)
    hr = unit("HR", "hr", company.id)
    legal = unit("Legal", "legal", company.id)

    org.ceo = person("E001", "Chen CEO", Role.DIRECTOR, company, None)
    org.director = person("E010", "Du Director", Role.DIRECTOR, sales, org.ceo)
    org.manager_a = person("E020", "Ma Manager", Role.MANAGER, team_a, org.director)
    org.manager_b = person("E021", "Mo Manager", Role.MANAGER, team_b, org.director)
    org.sales_a1 = person("E100", "Li Sales", Role.SALES, team_a, org.manager_a)
    org.sales_a2 = person("E101", "Wang Sales", Role.SALES, team_a, org.manager_a)
    org.sales_b1 = person("E102", "Zhao Sales", Role.SALES, team_b, org.manager_b)
    org.sales_left = person("E103", "Qian Left", Role.SALES, team_b, org.manager_b,
                            EmploymentStatus.LEFT)
    org.hr_head = person("E200", "Hu HR", Role.HR, hr, org.ceo)
    org.hr_staff = person("E201", "He HR", Role.HR, hr, org.hr_head)
    org.legal_head = person("E300", "Lu Legal", Role.LEGAL, legal, org.ceo)
    company.head_employee_id, sales.head_employee_id = org.ceo, org.director
    team_a.head_employee_id, team_b.head_employee_id = org.manager_a, org.manager_b
    hr.head_employee_id, legal.head_employee_id = org.hr_head, org.legal_head
    session.add_all([company, sales, team_a, team_b, hr, legal])

    policy = PolicyVersion(name="default", version=1, status=PolicyStatus.PUBLISHED,
                           rules=(rules or fast_policy_rules()).model_dump(mode="json"),
                           published_at=T0)
    session.add(policy)
    session.flush()
    assert policy.id is not None
    org.policy_version_id = policy.id

    def customers(owner: int, count: int, prefix: str) -> list[int]:
        ids = []
        for i in range(count):
            c = Customer(code=f"{prefix}{i:03d}", name=f"Customer {prefix}{i}",
                         found_by_employee_id=owner)
            session.add(c)
            session.flush()
            assert c.id is not None
            session.add(Assignment(customer_id=c.id, employee_id=owner,
                                   start_at=T0 - timedelta(days=400),
                                   source=AssignmentSource.FOUND))
            session.add(Order(external_id=f"O-{prefix}{i}", customer_id=c.id,
                              amount_fen=1_000_000 * (i + 1), booked_at=T0 - timedelta(days=30)))
            ids.append(c.id)
        return ids

    org.customers_a1 = customers(org.sales_a1, 4, "A1-")
    org.customers_a2 = customers(org.sales_a2, 2, "A2-")
    org.customers_b1 = customers(org.sales_b1, 2, "B1-")
    session.flush()
    return org


_HASH_CACHE: list[str] = []


def _PW_HASH() -> str:  # noqa: N802  (argon2 is slow on purpose; hash the shared password once)
    if not _HASH_CACHE:
        _HASH_CACHE.append(hash_password(PASSWORD))
    return _HASH_CACHE[0]
