"""Bodies of the order, order-import and commission-plan endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from models.order_ingest import MAX_BATCH, MAX_EXTERNAL_ID

# --- orders -----------------------------------------------------------------------------------


class OrderIn(BaseModel):
    """One order, refund or cancellation, as documented in OpenAPI.

    The endpoint checks rows itself (models.order_ingest), so that a batch answers with every
    bad row at once instead of the first parser error.
    """

    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(min_length=1, max_length=MAX_EXTERNAL_ID,
                             description="the idempotency key: one id names one order for good")
    kind: Literal["ORDER", "REFUND", "CANCELLATION"] = "ORDER"
    customer_code: str | None = Field(default=None, description="Customer.code; or customer_id")
    customer_id: int | None = Field(default=None, description="or customer_code, not both; a "
                                    "refund may leave both out (it keeps the original's)")
    amount_fen: int | None = Field(default=None, gt=0, description=(
        "positive; REFUND amounts are taken back (stored negative); a CANCELLATION without an "
        "amount takes back the whole remainder"))
    currency: Literal["CNY"]
    booked_at: AwareDatetime = Field(description="ISO 8601 with an offset")
    product_line: str | None = Field(default=None, max_length=100)
    original_external_id: str | None = Field(default=None, max_length=MAX_EXTERNAL_ID,
                                             description="required for REFUND/CANCELLATION")


def order_request_body_schema() -> dict[str, Any]:
    """One order object, or {"orders": [...]} (inline, for openapi_extra)."""
    one = OrderIn.model_json_schema()
    one.pop("title", None)
    batch = {"type": "object", "additionalProperties": False, "required": ["orders"],
             "properties": {"orders": {"type": "array", "items": one, "minItems": 1,
                                       "maxItems": MAX_BATCH}}}
    return {"required": True, "content": {"application/json": {"schema": {
        "oneOf": [one, batch]}}}}


def csv_request_body_schema() -> dict[str, Any]:
    return {"required": True, "content": {
        "text/csv": {"schema": {"type": "string"}},
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary"}}}},
    }}


class OrderRowOut(BaseModel):
    index: int = Field(description="0-based position in the batch (data row of a file)")
    line: int | None = Field(default=None, description="CSV only: 1-based, header is line 1")
    id: int | None = Field(description="the order's id; none for rows a dry run would create")
    external_id: str
    status: Literal["created", "duplicate", "would_create"]


class OrderRowErrorOut(BaseModel):
    index: int | None = Field(description="none for a problem with the input as a whole")
    line: int | None = None
    external_id: str | None
    field: str | None
    code: str
    message: str


class OrderBatchOut(BaseModel):
    created: int
    duplicates: int
    results: list[OrderRowOut]
    recomputed_lines: int = Field(description="commission lines recomputed for the new orders")


class ImportReportOut(BaseModel):
    dry_run: bool
    ok: bool = Field(description="true when every row is valid (a real import then ran)")
    rows: int
    created: int
    duplicates: int
    would_create: int
    conflicts: list[str]
    errors: list[OrderRowErrorOut]
    results: list[OrderRowOut]
    recomputed_lines: int


# --- commission plans ---------------------------------------------------------------------------


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    employee_id: int
    effective_from: AwareDatetime = Field(description="the plan applies from here (inclusive)")
    base_rate_bp: int = Field(ge=0, le=10_000, description="on customers the employee found")
    inherited_rate_bp: int = Field(ge=0, le=10_000,
                                   description="on customers received by reassignment")


class PlanOut(BaseModel):
    id: int
    employee_id: int
    effective_from: datetime
    effective_to: datetime | None
    base_rate_bp: int
    inherited_rate_bp: int
    created_by: int | None
    created_at: datetime


class PlanCreatedOut(BaseModel):
    plan: PlanOut
    closed_plan: PlanOut | None = Field(description="the plan this one ended, if any")
    recomputed_lines: int = Field(description="commission lines recomputed from effective_from")


class PlanPage(BaseModel):
    items: list[PlanOut]
    total: int
    limit: int
    offset: int
