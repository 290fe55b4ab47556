"""The lines the Temporal UI shows for Baton's workflows: the static summary and details given
at start, and the current details a running workflow keeps up to date (issue 9).

Ids, stages, codes and times only, never names or free text: HR reads these in the Temporal UI,
and although payloads are encrypted, the lines must stay harmless if a codec-less view or a
log shows them. Pure functions, shared by the API, the worker's schedules and the workflows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

SEP = " · "


def utc_minute(moment: datetime) -> str:
    """2026-12-01T10:00Z: short, unambiguous, the same in every office."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def _ids(ids: Sequence[int]) -> str:
    return ", ".join(str(i) for i in ids)


def reassignment_summary(request_id: int, customer_count: int, from_employee_id: int,
                         to_employee_id: int) -> str:
    noun = "customer" if customer_count == 1 else "customers"
    return (f"Reassignment request {request_id}{SEP}{customer_count} {noun}{SEP}"
            f"employee {from_employee_id} → employee {to_employee_id}")


def reassignment_details(*, request_id: int, requester_id: int, from_employee_id: int,
                         to_employee_id: int, customer_ids: Sequence[int], reason: str,
                         policy_version_id: int) -> str:
    """Markdown, as the Temporal UI renders static details."""
    return "\n".join([
        f"**Request** {request_id} (reason `{reason}`, policy version {policy_version_id})",
        f"**Requested by** employee {requester_id}",
        f"**From** employee {from_employee_id} **to** employee {to_employee_id}",
        f"**Customers** {_ids(customer_ids)}",
        "Names and terms are in Baton (ids only here).",
    ])


def reassignment_current(*, request_id: int, stage: str, level: int | None = None,
                         levels: int | None = None, deadline: datetime | None = None,
                         pending: Sequence[int] = ()) -> str:
    """e.g. `request 12 · PENDING_APPROVAL level 2/3 · due 2026-12-01T10:00Z · awaiting 5, 9`"""
    parts = [f"request {request_id}",
             f"{stage} level {level}/{levels}" if level is not None and levels else stage]
    if deadline is not None:
        parts.append(f"due {utc_minute(deadline)}")
    if pending:
        parts.append(f"awaiting employee {_ids(pending)}" if len(pending) == 1
                     else f"awaiting employees {_ids(pending)}")
    return SEP.join(parts)


def settlement_summary(trigger: str, requested_by: int | None) -> str:
    by = f" by employee {requested_by}" if requested_by is not None else ""
    return f"Commission settlement{SEP}{trigger}{by}"


def settlement_current(open_period: str | None, finalized: Sequence[str],
                       waiting_for: str | None = None,
                       not_before: datetime | None = None) -> str:
    parts = [f"open month {open_period}" if open_period else "planning"]
    if finalized:
        parts.append(f"finalised {', '.join(finalized)}")
    if waiting_for is not None:
        when = f" at {utc_minute(not_before)}" if not_before is not None else ""
        parts.append(f"finalising {waiting_for}{when}")
    return SEP.join(parts)


def valuation_summary(trigger: str, horizon_months: int) -> str:
    # the run's label is free text and stays in Baton
    return f"Valuation refresh{SEP}{trigger}{SEP}horizon {horizon_months} months"
