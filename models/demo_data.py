"""Deterministic demo data for `make run` and `cli.py seed`.

One company: a sales department with two teams of four salespeople, HR, legal and an admin,
about 60 customers with a year of orders, and a published "demo" policy whose timers are
minutes, so that a whole reassignment lifecycle takes about a quarter of an hour.

Every demo user logs in with their employee number in lower case (e.g. ``e020``) and the
password ``baton-demo-relay``. Names are PII but never leave the database: search attributes
carry ids only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, func, select

from domain.policy import ApprovalLevelRule, PolicyRules
from domain.stages import Reason, Role
from models.audit import audit
from models.commission import CommissionPlan
from models.customer import Assignment, AssignmentSource, Customer, Order
from models.org import Employee, OrgUnit, UserAccount
from models.passwords import hash_password
from models.policy import PolicyStatus, PolicyVersion

DEMO_PASSWORD = "baton-demo-relay"  # meets the password policy (issue 6)
DEMO_POLICY_NAME = "demo"
# A bundle's trailing-12-month revenue at or above this needs legal approval: 4M yuan.
# The biggest single demo customer (about 2.4M yuan) stays below it; moving the whole book of
# E103 or E106 (about 5M yuan each) crosses it.
DEMO_LEGAL_THRESHOLD_FEN = 400_000_000
# every salesperson's commission plan: 3 % on customers they found, 2 % on inherited ones
# (the policy's inherited rate), so a preview shows a real income impact
DEMO_BASE_RATE_BP = 300
DEMO_INHERITED_RATE_BP = 200
CUSTOMER_COUNT = 60
SEED = 42


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str
    name: str
    note: str


# (employee_no, name, role, unit key, manager employee_no)
_PEOPLE: list[tuple[str, str, Role, str, str | None]] = [
    ("E001", "陈建国", Role.DIRECTOR, "company", None),  # general manager
    ("E010", "杜海涛", Role.DIRECTOR, "sales", "E001"),  # sales director
    ("E020", "马晓东", Role.MANAGER, "team_east", "E010"),
    ("E021", "孟丽华", Role.MANAGER, "team_south", "E010"),
    ("E100", "李娜", Role.SALES, "team_east", "E020"),
    ("E101", "王强", Role.SALES, "team_east", "E020"),
    ("E102", "张伟", Role.SALES, "team_east", "E020"),
    ("E103", "刘洋", Role.SALES, "team_east", "E020"),
    ("E104", "赵敏", Role.SALES, "team_south", "E021"),
    ("E105", "周杰", Role.SALES, "team_south", "E021"),
    ("E106", "吴芳", Role.SALES, "team_south", "E021"),
    ("E107", "郑凯", Role.SALES, "team_south", "E021"),
    ("E200", "胡静", Role.HR, "hr", "E001"),
    ("E201", "何雪", Role.HR, "hr", "E200"),
    ("E300", "卢志明", Role.LEGAL, "legal", "E001"),
    ("E900", "系统管理员", Role.ADMIN, "company", "E001"),
]

# unit key -> (name, function, parent key, head employee_no)
_UNITS: dict[str, tuple[str, str, str | None, str | None]] = {
    "company": ("示范贸易有限公司", "company", None, "E001"),
    "sales": ("销售部", "sales", "company", "E010"),
    "team_east": ("华东销售组", "team", "sales", "E020"),
    "team_south": ("华南销售组", "team", "sales", "E021"),
    "hr": ("人力资源部", "hr", "company", "E200"),
    "legal": ("法务部", "legal", "company", "E300"),
}

DEMO_LOGINS: list[DemoLogin] = [
    DemoLogin("e020", "manager", "马晓东", "sales manager, East team (E100-E103)"),
    DemoLogin("e021", "manager", "孟丽华", "sales manager, South team (E104-E107)"),
    DemoLogin("e010", "director", "杜海涛", "head of the sales department"),
    DemoLogin("e001", "director", "陈建国", "general manager"),
    DemoLogin("e100", "sales", "李娜", "salesperson, East team"),
    DemoLogin("e104", "sales", "赵敏", "salesperson, South team"),
    DemoLogin("e200", "hr", "胡静", "head of HR"),
    DemoLogin("e201", "hr", "何雪", "HR staff"),
    DemoLogin("e300", "legal", "卢志明", "head of legal"),
    DemoLogin("e900", "admin", "系统管理员", "administrator"),
]

_CITIES = ["上海", "杭州", "苏州", "南京", "宁波", "广州", "深圳", "厦门", "佛山", "东莞",
           "无锡", "合肥"]
_WORDS = ["华兴", "宏达", "恒信", "瑞丰", "金诚", "远航", "天成", "嘉禾", "鼎盛", "万通",
          "博远", "新锐", "永安", "联创", "启明"]
_TRADES = ["贸易", "科技", "电子", "机械", "食品", "物流", "建材", "医疗器械"]
_PRODUCT_LINES = ["industrial", "consumables", "services", "spare-parts"]


def demo_policy_rules() -> PolicyRules:
    """Minute-scale timers: approvals, window, signature and protection take ~15 minutes."""
    level = {"sla": timedelta(minutes=3), "reminder_after": timedelta(seconds=90)}
    return PolicyRules(
        allowed_reasons=list(Reason),
        communication_window=timedelta(minutes=3),
        signature_deadline=timedelta(minutes=3),
        signature_reminders_before=[timedelta(minutes=2), timedelta(minutes=1)],
        approval_levels=[
            ApprovalLevelRule(role=Role.MANAGER, **level),
            ApprovalLevelRule(role=Role.DIRECTOR, **level),
            ApprovalLevelRule(role=Role.HR, **level),
        ],
        legal_level=ApprovalLevelRule(role=Role.LEGAL, **level),
        legal_threshold_fen=DEMO_LEGAL_THRESHOLD_FEN,
        protection_period=timedelta(minutes=5),
        protection_share_bp=5_000,
        inherited_rate_bp=DEMO_INHERITED_RATE_BP,
        compensation_pct_of_loss_bp=5_000,
        cooling_off_max=2,
        cooling_off_window=timedelta(days=90),
    )


def is_empty(session: Session) -> bool:
    """True when no employee exists yet (the demo data is loaded only then)."""
    return session.exec(select(func.count()).select_from(Employee)).one() == 0


def load_demo_data(session: Session, now: datetime) -> dict[str, int]:
    """Add the demo organisation, customers, orders, policy and accounts; return the counts.

    The same `now` gives the same rows every time. The caller commits.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    rng = random.Random(SEED)
    counts = dict.fromkeys(
        ["org_units", "employees", "user_accounts", "commission_plans", "customers",
         "assignments", "orders", "policy_versions"], 0)

    units: dict[str, OrgUnit] = {}
    for key, (name, function, parent, _head) in _UNITS.items():
        unit = OrgUnit(code=key.upper().replace("_", "-"), name=name, function=function,
                       parent_id=units[parent].id if parent else None)
        session.add(unit)
        session.flush()
        units[key] = unit
        counts["org_units"] += 1

    employees: dict[str, Employee] = {}
    for no, name, role, unit_key, manager_no in _PEOPLE:
        employee = Employee(
            employee_no=no, name=name, email=f"{no.lower()}@baton-demo.example",
            role=role.value, org_unit_id=units[unit_key].id,
            manager_id=employees[manager_no].id if manager_no else None,
            hired_at=now - timedelta(days=400 + rng.randrange(1500)), locale="zh-CN",
        )
        session.add(employee)
        session.flush()
        employees[no] = employee
        counts["employees"] += 1

    for key, (_name, _function, _parent, head_no) in _UNITS.items():
        if head_no:
            units[key].head_employee_id = employees[head_no].id
            session.add(units[key])

    password_hash = hash_password(DEMO_PASSWORD)  # argon2 is slow on purpose: hash once
    for no, _name, role, _unit, _manager in _PEOPLE:
        roles = [role.value] + ([Role.SALES.value] if role == Role.MANAGER else [])
        session.add(UserAccount(username=no.lower(), password_hash=password_hash,
                                employee_id=employees[no].id, roles=roles))
        counts["user_accounts"] += 1

    sellers = [employees[no] for no, _n, role, _u, _m in _PEOPLE if role == Role.SALES]
    for no, _name, role, _unit, _manager in _PEOPLE:
        if role in (Role.SALES, Role.MANAGER):  # managers hold the sales role too
            session.add(CommissionPlan(employee_id=employees[no].id,
                                       effective_from=now - timedelta(days=3 * 365),
                                       base_rate_bp=DEMO_BASE_RATE_BP,
                                       inherited_rate_bp=DEMO_INHERITED_RATE_BP))
            counts["commission_plans"] += 1
    used_names: set[str] = set()
    for i in range(CUSTOMER_COUNT):
        owner = sellers[i % len(sellers)]
        name = _customer_name(rng, used_names)
        start = now - timedelta(days=365 + rng.randrange(730), hours=rng.randrange(24))
        customer = Customer(code=f"C{i + 1:04d}", name=name, found_by_employee_id=owner.id,
                            created_at=start)
        session.add(customer)
        session.flush()
        assert customer.id is not None
        session.add(Assignment(customer_id=customer.id, employee_id=owner.id, start_at=start,
                               source=AssignmentSource.FOUND))
        counts["customers"] += 1
        counts["assignments"] += 1
        for n, (booked_at, amount_fen) in enumerate(_orders(rng, now)):
            session.add(Order(external_id=f"DEMO-{customer.code}-{n + 1:04d}",
                              customer_id=customer.id, amount_fen=amount_fen,
                              booked_at=booked_at, product_line=rng.choice(_PRODUCT_LINES)))
            counts["orders"] += 1

    session.add(PolicyVersion(name=DEMO_POLICY_NAME, version=1, status=PolicyStatus.PUBLISHED,
                              rules=demo_policy_rules().model_dump(mode="json"),
                              created_at=now, published_at=now))
    counts["policy_versions"] += 1
    session.flush()
    audit(session, "DEMO_DATA_LOADED", entity=("demo_data", SEED), before=None,
          after=dict(counts), reason="seed: demo data for an empty database")
    return counts


def _customer_name(rng: random.Random, used: set[str]) -> str:
    while True:
        name = f"{rng.choice(_CITIES)}{rng.choice(_WORDS)}{rng.choice(_TRADES)}有限公司"
        if name not in used:
            used.add(name)
            return name


def _orders(rng: random.Random, now: datetime) -> list[tuple[datetime, int]]:
    """About a year of orders. A few big customers order often and much; most order little."""
    tier = rng.random()
    if tier < 0.12:  # big: weekly-ish, 20k-60k yuan
        per_month, low, high = rng.uniform(3.0, 5.0), 2_000_000, 6_000_000
    elif tier < 0.45:  # medium: a few a month, 5k-25k yuan
        per_month, low, high = rng.uniform(1.0, 3.0), 500_000, 2_500_000
    else:  # small: now and then, 1k-10k yuan
        per_month, low, high = rng.uniform(0.2, 1.0), 100_000, 1_000_000
    count = max(1, round(per_month * 12))
    orders = []
    for _ in range(count):
        booked_at = now - timedelta(minutes=rng.randrange(10, 365 * 24 * 60))
        orders.append((booked_at.replace(second=0, microsecond=0), rng.randrange(low, high, 100)))
    orders.sort()
    return orders
