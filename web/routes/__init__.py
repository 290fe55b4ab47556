"""The page routes: one module per journey, all in `router` (mounted at the root).

A journey module has its own APIRouter; add it to the list below. Page routes are left out of
the OpenAPI schema (they answer HTML).
"""

from __future__ import annotations

from fastapi import APIRouter

from web.routes import (
    approvals,
    auth,
    customers,
    delegations,
    documents,
    home,
    hr,
    hr_monitor,
    hr_policies,
    inbox,
    me,
    outcomes,
    policies_ack,
    reorganisations,
    requests,
    settlements,
    signing,
    statements,
)

router = APIRouter(include_in_schema=False)
for journey in (auth, home, customers, requests, approvals, delegations, hr, hr_monitor,
                hr_policies, settlements, inbox, me, signing, documents, statements,
                policies_ack, outcomes, reorganisations):
    router.include_router(journey.router)
