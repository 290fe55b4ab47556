"""Typed search attributes. Ids only: search attributes are not encrypted, so no names."""

from __future__ import annotations

from datetime import datetime

from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)

STAGE = SearchAttributeKey.for_keyword("BatonStage")
PENDING_APPROVERS = SearchAttributeKey.for_keyword_list("BatonPendingApprovers")
STAGE_DEADLINE = SearchAttributeKey.for_datetime("BatonStageDeadline")
REQUEST_ID = SearchAttributeKey.for_keyword("BatonRequestId")
CUSTOMER_IDS = SearchAttributeKey.for_keyword_list("BatonCustomerIds")
FROM_EMPLOYEE = SearchAttributeKey.for_keyword("BatonFromEmployee")
TO_EMPLOYEE = SearchAttributeKey.for_keyword("BatonToEmployee")

ALL_KEYS = [STAGE, PENDING_APPROVERS, STAGE_DEADLINE, REQUEST_ID, CUSTOMER_IDS, FROM_EMPLOYEE,
            TO_EMPLOYEE]

# name -> type as `temporal server start-dev --search-attribute NAME=TYPE` expects it
CLI_TYPES: dict[str, str] = {
    "BatonStage": "Keyword",
    "BatonPendingApprovers": "KeywordList",
    "BatonStageDeadline": "Datetime",
    "BatonRequestId": "Keyword",
    "BatonCustomerIds": "KeywordList",
    "BatonFromEmployee": "Keyword",
    "BatonToEmployee": "Keyword",
}


def initial(
    *, request_id: int, customer_ids: list[int], from_employee_id: int, to_employee_id: int
) -> TypedSearchAttributes:
    """Set when the workflow starts, so a request is findable before its first task runs."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(STAGE, "SUBMITTED"),
            SearchAttributePair(REQUEST_ID, str(request_id)),
            SearchAttributePair(CUSTOMER_IDS, [str(c) for c in customer_ids]),
            SearchAttributePair(FROM_EMPLOYEE, str(from_employee_id)),
            SearchAttributePair(TO_EMPLOYEE, str(to_employee_id)),
        ]
    )


def stage_updates(
    stage: str, pending_approvers: list[int], deadline: datetime | None
) -> list[SearchAttributeUpdate]:
    updates: list[SearchAttributeUpdate] = [
        STAGE.value_set(stage),
        PENDING_APPROVERS.value_set([str(p) for p in pending_approvers]),
    ]
    updates.append(STAGE_DEADLINE.value_set(deadline) if deadline else STAGE_DEADLINE.value_unset())
    return updates
