"""A realistic ReportData for the report tests (and for looking at the output by hand)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import select

from documents import MonthFigures, Person, PolicyRef, ReportCustomer, ReportData
from documents.agreement import AgreementCustomer, AgreementData, ReportRef
from domain.impact import CustomerValue, assess
from domain.policy import ApprovalLevelRule, PolicyRules, Terms, default_terms
from domain.stages import Reason, Role

PERIODS = [f"2025-{m:02d}" for m in range(3, 13)] + ["2026-01", "2026-02"]
SUBMITTED = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
WINDOW_END = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)  # 18:00 in Shanghai
TZ = "Asia/Shanghai"
REPORT_SHA = "5f" * 32


def report_rules() -> PolicyRules:
    level = ApprovalLevelRule(role=Role.MANAGER, sla=timedelta(days=2),
                              reminder_after=timedelta(days=1))
    return PolicyRules(
        allowed_reasons=list(Reason), communication_window=timedelta(days=14),
        signature_deadline=timedelta(days=7), approval_levels=[level],
        protection_period=timedelta(days=180), protection_share_bp=5_000,
        inherited_rate_bp=200, compensation_pct_of_loss_bp=3_000,
        valuation_horizon_months=12)


def _history(orders: list[int], revenue_yuan: list[int]) -> list[MonthFigures]:
    return [MonthFigures(period=p, orders=o, revenue_fen=r * 100 + (7 if r else 0))
            for p, o, r in zip(PERIODS, orders, revenue_yuan, strict=True)]


CUSTOMERS = [
    ReportCustomer(id=11, code="SH-0001", name="上海明华贸易有限公司", history=_history(
        [3, 4, 2, 5, 3, 4, 6, 2, 3, 5, 4, 3],
        [42_000, 51_500, 23_000, 66_200, 38_900, 47_300, 80_100, 21_000, 35_500, 61_000,
         49_800, 40_200])),
    ReportCustomer(id=12, code="HZ-0042", name="杭州青禾食品有限公司", history=_history(
        [1, 0, 2, 1, 0, 1, 1, 0, 2, 1, 0, 1],
        [8_800, 0, 17_250, 9_100, 0, 7_900, 8_400, 0, 16_000, -1_200, 0, 9_300])),
    ReportCustomer(id=13, code="EX-0317", name="Northwind Traders", history=_history(
        [0] * 12, [0] * 12)),
]

VALUES = [
    CustomerValue(customer_id=11, customer_code="SH-0001", customer_name="上海明华贸易有限公司",
                  t12m_revenue_fen=55_650_084, lifetime_revenue_fen=131_402_500, order_count=118,
                  expected_revenue_fen=57_300_000, tier="A", method="BG_NBD_GG", rate_bp=300,
                  snapshot_as_of="2026-03-01"),
    CustomerValue(customer_id=12, customer_code="HZ-0042", customer_name="杭州青禾食品有限公司",
                  t12m_revenue_fen=7_555_056, lifetime_revenue_fen=20_110_000, order_count=21,
                  expected_revenue_fen=6_912_345, tier="B", method="BG_NBD_GG", rate_bp=300,
                  snapshot_as_of="2026-03-01"),
    CustomerValue(customer_id=13, customer_code="EX-0317", customer_name="Northwind Traders",
                  t12m_revenue_fen=0, lifetime_revenue_fen=1_250_000, order_count=1,
                  expected_revenue_fen=104_167, tier="C", method="RUN_RATE", rate_bp=250,
                  snapshot_as_of="2026-03-01"),
]


def report_data(*, with_assessment: bool = True, **overrides: object) -> ReportData:
    rules = report_rules()
    terms = default_terms(rules)
    assessment = assess(VALUES, rules, terms) if with_assessment else None
    if assessment is not None:
        terms = terms.model_copy(update={"compensation_fen":
                                         assessment.suggested.terms.compensation_fen})
    values: dict[str, object] = dict(
        request_id=42, submitted_at=SUBMITTED, reason="TERRITORY_REALIGNMENT",
        note="华东区重新划分：杭州、上海客户统一由华东二组负责。",
        salesperson=Person(id=100, name="李明", employee_no="E100"),
        requester=Person(id=20, name="马经理", employee_no="E020"),
        receiver=Person(id=102, name="赵强", employee_no="E102"),
        customers=CUSTOMERS, window_end=WINDOW_END,
        signature_deadline_at=WINDOW_END + rules.signature_deadline,
        effective_at=None, terms=terms, assessment=assessment,
        policy=PolicyRef(id=3, name="华东销售客户调整政策", version=2,
                         published_at=datetime(2026, 1, 5, 2, 0, tzinfo=UTC)),
        timezone="Asia/Shanghai")
    values.update(overrides)
    return ReportData.model_validate(values)


# --- a stored request with order history, for the activity and API tests -------------------

DB_CUSTOMER_NAMES = ["宁波海曙五金制品厂", "苏州工业园区晨星电子"]


def make_report_request(sessions: Any, org: Any, *, locale: str = "zh-CN",
                        with_assessment: bool = True) -> int:
    """A request moving two of sales_a1's customers (Chinese names, a year of orders)."""
    from models import Customer, Employee, Order, OrderKind, PolicyVersion, ReassignmentRequest

    customer_ids = org.customers_a1[:2]
    with sessions() as s:
        policy = s.get(PolicyVersion, org.policy_version_id)
        rules = policy.parsed_rules()
        s.get(Employee, org.sales_a1).locale = locale
        for number, (cid, name) in enumerate(zip(customer_ids, DB_CUSTOMER_NAMES,
                                                 strict=True)):
            s.get(Customer, cid).name = name
            for month in range(12):  # 2025-03 .. 2026-02, in Shanghai
                booked = datetime(2025, 3, 10, 2, 0, tzinfo=UTC) + timedelta(days=30.5 * month)
                if (month + number) % 4 == 3:
                    continue
                s.add(Order(external_id=f"R-{cid}-{month}", customer_id=cid,
                            amount_fen=1_234_567 * (number + 1) + month * 10_001,
                            booked_at=booked))
        s.flush()
        refund_of = s.exec(select(Order).where(Order.external_id == f"R-{customer_ids[0]}-5")
                           ).one()
        s.add(Order(external_id=f"R-{customer_ids[0]}-5-refund", kind=OrderKind.REFUND,
                    original_order_id=refund_of.id, customer_id=customer_ids[0],
                    amount_fen=-100_000, booked_at=refund_of.booked_at + timedelta(days=3)))
        terms = default_terms(rules)
        assessment = {}
        if with_assessment:
            values = [CustomerValue(customer_id=cid, customer_code=s.get(Customer, cid).code,
                                    customer_name=name, t12m_revenue_fen=15_000_000,
                                    expected_revenue_fen=18_000_000 + 1_000_001 * i,
                                    tier="A" if i == 0 else "B", method="BG_NBD_GG",
                                    rate_bp=300)
                      for i, (cid, name) in enumerate(zip(customer_ids, DB_CUSTOMER_NAMES,
                                                          strict=True))]
            result = assess(values, rules, terms)
            terms = result.suggested.terms
            assessment = result.model_dump(mode="json")
        request = ReassignmentRequest(
            idempotency_key=f"report-{locale}-{with_assessment}", payload_hash="0" * 64,
            requester_id=org.manager_a, from_employee_id=org.sales_a1,
            to_employee_id=org.sales_a2, customer_ids=customer_ids,
            reason=Reason.WORKLOAD_BALANCING.value, note="平衡工作量",
            policy_version_id=org.policy_version_id, terms=terms.model_dump(mode="json"),
            assessment=assessment, created_at=SUBMITTED, workflow_id=f"reassignment-r-{locale}")
        s.add(request)
        s.flush()
        assert request.id is not None
        return request.id


def agreement_data(**overrides: object) -> AgreementData:
    """An agreement in both scripts' names (the tests and bench/render.py render it)."""
    values: dict[str, object] = dict(
        request_id=42, submitted_at=datetime(2026, 3, 2, 1, 30, tzinfo=UTC),
        company="示范贸易有限公司",
        salesperson=Person(id=100, name="李明", employee_no="E100"),
        receiver=Person(id=102, name="赵强", employee_no="E102"),
        customers=[AgreementCustomer(id=11, code="SH-0001", name="上海明华贸易有限公司"),
                   AgreementCustomer(id=13, code="EX-0317", name="Northwind Traders")],
        reason="TERRITORY_REALIGNMENT", window_end=WINDOW_END,
        signature_deadline_at=WINDOW_END + timedelta(days=7),
        terms=Terms(protection_period=timedelta(days=180), protection_share_bp=5_000,
                    inherited_rate_bp=200, compensation_fen=1_234_567),
        option="LUMP_SUM", option_suggested=True,
        policy=PolicyRef(id=3, name="华东销售客户调整政策", version=2,
                         published_at=datetime(2026, 1, 5, 2, 0, tzinfo=UTC)),
        report=ReportRef(version=2, sha256=REPORT_SHA), timezone=TZ)
    values.update(overrides)
    return AgreementData.model_validate(values)
