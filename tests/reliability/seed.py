"""Seed the reliability tests' database: `python -m tests.reliability.seed N`.

The small test org (tests/factories.py) with logins and the production-like test's
seconds-long policy (tests/prod/seed.py), plus N customers of salesperson A1 (one per
lifecycle, so that concurrent requests never name the same customer). Prints the org's ids
and the N customers' ids as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import timedelta

from models import Assignment, AssignmentSource, Customer
from models.db import make_engine, session_factory
from settings import get_settings
from tests.factories import T0, build_small_org
from tests.prod.seed import seconds_policy


def main(count: int) -> None:
    engine = make_engine(get_settings().database_url)
    try:
        with session_factory(engine)() as session:
            org = build_small_org(session, rules=seconds_policy())
            customers = []
            for i in range(count):
                customer = Customer(code=f"REL-{i:04d}", name=f"Reliability customer {i}",
                                    found_by_employee_id=org.sales_a1)
                session.add(customer)
                session.flush()
                assert customer.id is not None
                session.add(Assignment(customer_id=customer.id, employee_id=org.sales_a1,
                                       start_at=T0 - timedelta(days=400),
                                       source=AssignmentSource.FOUND))
                customers.append(customer.id)
    finally:
        engine.dispose()
    print(json.dumps({"org": dataclasses.asdict(org), "customers": customers}))


if __name__ == "__main__":
    main(int(sys.argv[1]))
