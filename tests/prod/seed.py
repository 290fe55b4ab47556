"""Seed the production-like test's database: `python -m tests.prod.seed` (BATON_DATABASE_URL).

Loads the small test org (tests/factories.py) with logins and a published policy whose window
and protection last seconds, so the lifecycle runs in real time; prints the org's ids as JSON.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

from domain.policy import ApprovalLevelRule, PolicyRules
from domain.stages import Role
from models.db import make_engine, session_factory
from settings import get_settings
from tests.factories import build_small_org, fast_policy_rules

COMMUNICATION_WINDOW = timedelta(seconds=4)
# long enough to post a batch of orders while it lasts, on a loaded machine
PROTECTION_PERIOD = timedelta(seconds=15)
PROTECTION_SHARE_BP = 4_000


def seconds_policy() -> PolicyRules:
    # approvals are driven by the test: their SLA never fires during a run
    slow = ApprovalLevelRule(role=Role.MANAGER, sla=timedelta(hours=2),
                             reminder_after=timedelta(hours=1))
    return fast_policy_rules(
        communication_window=COMMUNICATION_WINDOW,
        signature_deadline=timedelta(minutes=10),
        signature_reminders_before=[],
        protection_period=PROTECTION_PERIOD,
        protection_share_bp=PROTECTION_SHARE_BP,
        approval_levels=[slow, slow.model_copy(update={"role": Role.DIRECTOR}),
                         slow.model_copy(update={"role": Role.HR})],
    )


def main() -> None:
    engine = make_engine(get_settings().database_url)
    try:
        with session_factory(engine)() as session:
            org = build_small_org(session, rules=seconds_policy())
    finally:
        engine.dispose()
    print(json.dumps(dataclasses.asdict(org)))


if __name__ == "__main__":
    main()
