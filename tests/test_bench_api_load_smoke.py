"""bench/api_load.py at toy scale: the seed gives every approver an inbox and every employee an
account, the tokens authenticate, and a few seconds of load run end to end with 0 errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bench.api_load import GROUPS, JWT_SECRET, SETTLED, main, make_plan, seed_org
from bench.settlement import Scale, generate

TINY = Scale(orders=3_000, customers=300, salespeople=20, reassigned=15, seed=7)


def test_seed_gives_approvers_work_and_everyone_an_account(engine: Engine, tmp_path: Path
                                                           ) -> None:
    import json

    from api.security import decode_token
    from settings import Settings

    generate(engine, TINY)
    org = seed_org(engine, requests=60, seed=7)
    assert org.pending > 0 and org.director and org.managers
    with engine.connect() as conn:
        employees = conn.execute(text("SELECT count(*) FROM employee")).scalar_one()
        accounts = conn.execute(text("SELECT count(*) FROM user_account")).scalar_one()
        # every request waiting for approval has exactly one open level
        open_levels = dict(conn.execute(text(
            "SELECT r.id, count(s.id) FROM reassignment_request r LEFT JOIN approval_step s "
            "ON s.request_id = r.id AND s.status = 'PENDING' "
            "WHERE r.stage = 'PENDING_APPROVAL' GROUP BY r.id")).all())
        settled = {p for (p,) in conn.execute(text("SELECT DISTINCT period FROM statement"))}
    assert employees == accounts == len(org.accounts)
    assert len(open_levels) == org.pending and set(open_levels.values()) == {1}
    assert settled == set(SETTLED) and org.statements

    make_plan(org, tmp_path / "plan.json")
    plan = json.loads((tmp_path / "plan.json").read_text())
    settings = Settings(jwt_secret=JWT_SECRET)
    director = decode_token(plan["personas"]["approver"][-2]["token"], settings)
    assert director.employee_id == org.director
    assert all(p["team"] for p in plan["personas"]["manager"])


def _group_requests(out: str, label: str) -> dict[str, int]:
    """Requests per group in the rows labelled `label`; asserts each has some and no errors."""
    counts = {}
    for group in GROUPS:
        row = re.search(rf"^{re.escape(label)}\s+{group}\s+(\d+)\s+\d+\s+(\d+)\s", out,
                        re.MULTILINE)
        assert row, f"no {label} {group} row in:\n{out}"
        requests, errors = int(row.group(1)), int(row.group(2))
        assert requests > 0 and errors == 0, row.group(0)
        counts[group] = requests
    return counts


@pytest.mark.timeout(600)
def test_a_short_load_run_has_every_group_and_no_errors(capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    # both load models against the same seeded database: saturation, then 4 clients that
    # wait 0.5-1 s between requests
    assert main(["--backend", "sqlite", "--customers", "300", "--orders", "3000",
                 "--salespeople", "20", "--requests", "40", "--users", "4", "--duration", "6",
                 "--workers", "1", "--think-time", "0.5", "1", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    saturation = _group_requests(out, "sqlite")
    thinking = _group_requests(out, "sqlite/think")
    assert "no think time (saturation)" in out and "think time 0.5-1 s" in out
    assert out.count("API CPU") >= 2
    # 4 clients waiting 0.5-1 s each can offer at most 4 / 0.5 * 6 = 48 requests in 6 s
    assert sum(thinking.values()) <= 48 < sum(saturation.values())


def test_think_time_arguments_are_checked() -> None:
    with pytest.raises(SystemExit):
        main(["--think-only"])
    with pytest.raises(SystemExit):
        main(["--think-time", "2", "1"])
