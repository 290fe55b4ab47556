"""domain.bulk: reading the file, splitting by rule, validating rows, grouping, totals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.bulk import (
    FileError,
    Ref,
    ResolvedRow,
    SplitRule,
    group_moves,
    parse_csv,
    split_rule,
    validate_rows,
)
from domain.policy import CustomerFacts, EmployeeFacts
from domain.stages import Reason, Role
from tests.factories import fast_policy_rules

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_parse_reads_ids_or_codes_and_reports_bad_rows_by_line() -> None:
    text = ("\ufeffCustomer_ID,customer_code,new_owner_employee_no,expected_owner_id,note\n"
            "12,,E100,7,first\n"
            ",C-9,E101,,\n"
            "\n"
            "12,C-1,E100,,\n"  # both id and code
            "x,,E100,,\n"  # not an id
            ",C-3,,,\n"  # no new owner
            "1,,E1,,,extra\n")  # too many cells
    rows, errors = parse_csv(text)
    assert [(r.row_number, r.customer, r.new_owner, r.expected_owner, r.note) for r in rows] == [
        (2, Ref(id=12), Ref(code="E100"), Ref(id=7), "first"),
        (3, Ref(code="C-9"), Ref(code="E101"), None, None)]
    assert [(e.row_number, e.code) for e in errors] == [
        (5, "BOTH_ID_AND_CODE"), (6, "NOT_AN_ID"), (7, "MISSING_VALUE"), (8, "TOO_MANY_CELLS")]


@pytest.mark.parametrize("text, says", [
    ("", "empty"),
    ("customer_code,owner\n", r"unknown column\(s\) owner"),
    ("customer_code,note\nC1,x\n", "new_owner_id or new_owner_employee_no"),
])
def test_parse_refuses_an_unusable_file(text: str, says: str) -> None:
    with pytest.raises(FileError, match=says):
        parse_csv(text)


def test_round_robin_deals_customers_in_id_order() -> None:
    moves = split_rule([(30, 5), (10, 900), (20, 1)], [7, 8], SplitRule.ROUND_ROBIN)
    assert moves == {10: 7, 20: 8, 30: 7}


def test_balanced_value_gives_each_customer_to_the_poorest_target_so_far() -> None:
    customers = [(1, 100), (2, 60), (3, 50), (4, 40), (5, 10)]
    moves = split_rule(customers, [7, 8], SplitRule.BALANCED_VALUE)
    # 100 -> 7; 60 -> 8; 50 -> 8 (60 < 100); 40 -> 7 (100 < 110); 10 -> 8 (110 < 140)
    totals = {7: 0, 8: 0}
    for cid, value in customers:
        totals[moves[cid]] += value
    assert moves == {1: 7, 2: 8, 3: 8, 4: 7, 5: 8}
    assert totals == {7: 140, 8: 120}
    # deterministic: the input order does not matter
    assert split_rule(list(reversed(customers)), [7, 8], SplitRule.BALANCED_VALUE) == moves


def test_split_needs_distinct_targets() -> None:
    with pytest.raises(ValueError, match="twice"):
        split_rule([(1, 1)], [7, 7], SplitRule.ROUND_ROBIN)


SALES = frozenset({Role.SALES})


def _row(n: int, customer: int | None, to: int | None, expected: int | None = None
         ) -> ResolvedRow:
    return ResolvedRow(row_number=n, customer_ref=f"C{customer}", new_owner_ref=f"E{to}",
                       customer_id=customer, to_employee_id=to,
                       expected_owner_ref=None if expected is None else f"E{expected}",
                       expected_owner_id=expected)


def test_validate_reports_every_problem_of_every_row() -> None:
    employees = {1: EmployeeFacts(1, True, SALES), 2: EmployeeFacts(2, True, SALES),
                 3: EmployeeFacts(3, True, frozenset({Role.HR})),
                 4: EmployeeFacts(4, False, SALES)}
    recent = (NOW - timedelta(days=10), NOW - timedelta(days=20))
    customers = {
        10: CustomerFacts(10, 1), 11: CustomerFacts(11, 1), 12: CustomerFacts(12, None),
        13: CustomerFacts(13, 1, open_request_ids=(99,)),
        14: CustomerFacts(14, 1, recent_reassignments=recent),
        15: CustomerFacts(15, 1, protection_ends_at=NOW + timedelta(days=1)),
        16: CustomerFacts(16, 2), 17: CustomerFacts(17, 1),
    }
    rows = [_row(2, 10, 2), _row(3, 10, 2), _row(4, 11, 3), _row(5, 12, 2), _row(6, 13, 2),
            _row(7, 14, 2), _row(8, 15, 2), _row(9, 16, 2), _row(10, 17, 4, expected=2),
            _row(11, 99, 2), _row(12, 10, None)]
    outcomes = validate_rows(rows, rules=fast_policy_rules(), reason=Reason.PERFORMANCE,
                             customers=customers, employees=employees, now=NOW)
    codes = {o.row_number: [e.code for e in o.errors] for o in outcomes}
    assert codes == {
        2: [], 3: ["DUPLICATE_ROW"], 4: ["RECEIVER_NOT_SALES"], 5: ["CUSTOMER_INACTIVE"],
        6: ["OPEN_REQUEST"], 7: ["COOLING_OFF"], 8: ["IN_PROTECTION"], 9: ["SAME_EMPLOYEE"],
        10: ["EXPECTED_OWNER_MISMATCH", "RECEIVER_NOT_ACTIVE"], 11: ["UNKNOWN_CUSTOMER"],
        12: ["UNKNOWN_EMPLOYEE", "DUPLICATE_ROW"]}
    assert outcomes[0].from_employee_id == 1


def test_groups_by_pair_in_order_and_split_at_the_request_limit() -> None:
    employees = {e: EmployeeFacts(e, True, SALES) for e in (1, 2, 3)}
    customers = {c: CustomerFacts(c, 2 if c >= 100 else 1) for c in [*range(1, 6), 100, 101]}
    rows = [_row(n, c, 3) for n, c in enumerate([5, 100, 1, 2, 101, 3, 4], start=2)]
    outcomes = validate_rows(rows, rules=fast_policy_rules(), reason=Reason.PERFORMANCE,
                             customers=customers, employees=employees, now=NOW)
    groups = group_moves(outcomes, max_per_request=3)
    assert [(g.group_no, g.from_employee_id, g.to_employee_id, g.customer_ids, g.row_numbers)
            for g in groups] == [(1, 1, 3, (5, 1, 2), (2, 4, 5)), (2, 1, 3, (3, 4), (7, 8)),
                                 (3, 2, 3, (100, 101), (3, 6))]
