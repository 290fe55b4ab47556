"""The audit log: hash compatibility, the append-only triggers, tamper detection by
`verify_chain` and `cli.py audit verify`, and what the write paths record. Both backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select

import cli
from activities.reassignment import ReassignmentActivities
from activities.settlement import SettlementActivities
from domain.policy import default_terms
from domain.stages import Reason, Stage
from domain.workflow_dto import OwnershipTransfer, SignatureWrite, TransitionRecord
from models import AuditEvent, PolicyVersion, ReassignmentRequest
from models.audit import (
    GENESIS_HASH,
    BreakKind,
    append_audit_event,
    audit,
    canonical_body,
    hash_body,
    verify_chain,
)
from models.commission_engine import finalize_period
from models.db import alembic_config
from models.plans import create_plan
from models.policies import create_draft, update_draft
from models.valuation_queries import write_run
from settings import ROOT, Settings
from tests.audit_tamper import tamper
from tests.factories import fast_policy_rules

AT = datetime(2026, 3, 1, 8, 0, 0, 123456, tzinfo=UTC)
# SHA-256 of this event's canonical JSON as the code before migration 0005 computed it
# (git show 2b8fdcb:models/audit.py, AuditEvent.compute_hash)
LEGACY_HASH = "5cbdb53067d742bdae1d1c89b32e79fb6ed551dd253f0c48602dc9d764ea4d5a"


def legacy_event(**extra: Any) -> AuditEvent:
    return AuditEvent(
        id=5, chain_index=1, occurred_at=AT, event_type="REQUEST_SUBMITTED", request_id=7,
        workflow_id="reassignment-7", transition_seq=0, actor_id=3, on_behalf_of=None,
        from_stage=None, to_stage="SUBMITTED",
        detail={"customer_ids": [1, 2], "reason": "TERRITORY_CHANGE", "note": "客户"},
        prev_hash=GENESIS_HASH, hash="", **extra)


def append(sessions, n: int, **fields: Any) -> list[AuditEvent]:
    with sessions() as s:
        return [audit(s, f"T{i}", actor_id=1, **fields) for i in range(1, n + 1)]


def row_id(sessions, index: int) -> int:
    with sessions() as s:
        return s.exec(select(AuditEvent.id).where(AuditEvent.chain_index == index)).one()


def verify(sessions, **kw):
    with sessions() as s:
        return verify_chain(s, **kw)


# --- the hash --------------------------------------------------------------------------------


def test_an_event_without_the_new_fields_hashes_as_before_0005():
    event = legacy_event()
    assert event.compute_hash() == LEGACY_HASH
    assert set(event.canonical_body()) == {
        "chain_index", "occurred_at", "event_type", "request_id", "workflow_id",
        "transition_seq", "actor_id", "on_behalf_of", "from_stage", "to_stage", "detail",
        "prev_hash"}


@pytest.mark.parametrize("field,value", [
    ("entity_type", "policy_version"), ("entity_id", "12"), ("before", {}),
    ("after", {"stage": "SUBMITTED"}), ("reason", ""),
])
def test_any_value_of_a_new_field_changes_the_hash(field, value):
    event = legacy_event(**{field: value})
    assert event.canonical_body()[field] == value
    assert event.compute_hash() != LEGACY_HASH


def test_a_stored_event_hashes_from_its_row_like_from_the_object(sessions):
    with sessions() as s:
        event = audit(s, "POLICY_UPDATED", actor_id=2, entity=("policy_version", 4),
                      before={"rules": {"a": 1}}, after={"rules": {"a": 2}, "at": AT},
                      reason="typo", detail={"k": (1, 2)})
    with sessions() as s:
        row = s.connection().execute(
            select(AuditEvent.__table__).where(text(f"id = {event.id}"))).mappings().one()
        assert hash_body(canonical_body(row)) == row["hash"] == event.hash
        assert row["after"] == {"rules": {"a": 2}, "at": AT.isoformat()}  # stored as hashed
        assert row["entity_id"] == "4" and row["before"] == {"rules": {"a": 1}}


# --- the database refuses changes ------------------------------------------------------------


@pytest.mark.parametrize("sql,verb", [
    ("UPDATE audit_event SET reason = 'rewritten'", "UPDATE"),
    ("DELETE FROM audit_event WHERE chain_index = 1", "DELETE"),
    ("DELETE FROM audit_event", "DELETE"),
])
def test_update_and_delete_are_refused_with_the_triggers_message(engine, sessions, sql, verb):
    append(sessions, 2)
    with pytest.raises(DBAPIError) as raised, engine.begin() as conn:
        conn.execute(text(sql))
    assert f"audit_event is append-only: {verb} is refused" in str(raised.value)
    assert verify(sessions).ok and verify(sessions).events_checked == 2


def test_truncate_is_refused_on_postgresql(engine, sessions):
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no TRUNCATE; DELETE without WHERE is refused instead")
    append(sessions, 2)
    with pytest.raises(DBAPIError) as raised, engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_event"))
    assert "audit_event is append-only: TRUNCATE is refused" in str(raised.value)
    assert verify(sessions).events_checked == 2


def test_nothing_but_a_trigger_bypass_changes_a_row_and_it_is_restored(engine, sessions):
    append(sessions, 1)
    assert tamper(engine, "UPDATE audit_event SET reason = 'x'") == 1
    with pytest.raises(DBAPIError), engine.begin() as conn:  # the trigger is back
        conn.execute(text("UPDATE audit_event SET reason = 'y'"))


# --- verification names the broken link -------------------------------------------------------


def test_an_intact_chain_verifies_in_small_batches(sessions):
    assert verify(sessions).ok and verify(sessions).message == "no audit events yet"
    append(sessions, 7, entity=("thing", 1), after={"n": 1}, reason="why")
    result = verify(sessions, batch_size=2)
    assert result.ok and result.events_checked == 7 and result.head_index == 7
    assert result.first_broken is None and tuple(result) == (True, None, result.message)


def test_an_edited_row_is_named_by_index_and_row_id(engine, sessions):
    append(sessions, 5)
    tamper(engine, """UPDATE audit_event SET detail = '{"amount_fen": 1}'
                      WHERE chain_index = 3""")
    result = verify(sessions, batch_size=2)
    link = result.first_broken
    assert not result.ok and link is not None
    assert (link.kind, link.chain_index, link.row_id) == (
        BreakKind.CONTENT_CHANGED, 3, row_id(sessions, 3))
    assert f"event 3 (row id {link.row_id}, T3) was changed" in link.message
    assert result.events_checked == 3
    ok, broken, _ = result  # the tuple form older callers use
    assert (ok, broken) == (False, 3)


def test_a_new_field_set_on_an_old_row_breaks_its_hash(engine, sessions):
    append(sessions, 2)  # no reason on either
    tamper(engine, "UPDATE audit_event SET reason = 'approved by phone' WHERE chain_index = 1")
    assert verify(sessions).first_broken.kind == BreakKind.CONTENT_CHANGED


def test_a_rehashed_row_breaks_the_link_to_the_next(engine, sessions):
    append(sessions, 4)
    with sessions() as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.chain_index == 2)).one()
        event.detail = {"forged": True}
        forged_hash = event.compute_hash()
        s.expunge(event)
    tamper(engine, """UPDATE audit_event SET detail = '{"forged": true}', hash = :h
                      WHERE chain_index = 2""", h=forged_hash)
    link = verify(sessions).first_broken
    assert (link.kind, link.chain_index, link.row_id) == (
        BreakKind.PREV_HASH_MISMATCH, 3, row_id(sessions, 3))
    assert "event 2 was replaced or rehashed" in link.message


def test_a_deleted_row_is_named_as_a_gap(engine, sessions):
    append(sessions, 5)
    assert tamper(engine, "DELETE FROM audit_event WHERE chain_index = 3") == 1
    result = verify(sessions, batch_size=2)
    link = result.first_broken
    assert (link.kind, link.chain_index, link.row_id, link.missing_through) == (
        BreakKind.MISSING, 3, row_id(sessions, 4), 3)
    assert link.message == "event 3 is missing (between 2 and 4)"


def test_several_deleted_rows_and_the_first_one(engine, sessions):
    append(sessions, 6)
    tamper(engine, "DELETE FROM audit_event WHERE chain_index IN (3, 4)")
    assert verify(sessions).message == "events 3-4 are missing (between 2 and 5)"
    tamper(engine, "DELETE FROM audit_event WHERE chain_index = 1")
    assert verify(sessions).message == "event 1 is missing (before 2, the first event found)"


def test_a_cut_off_tail_is_detected_through_the_head_row(engine, sessions):
    append(sessions, 5)
    tamper(engine, "DELETE FROM audit_event WHERE chain_index >= 4")
    result = verify(sessions)
    link = result.first_broken
    assert (link.kind, link.chain_index, link.row_id, link.missing_through) == (
        BreakKind.TAIL_TRUNCATED, 4, None, 5)
    assert link.message.startswith("events 4-5 are missing at the end: the head row says")
    assert result.events_checked == 3 and result.head_index == 5
    tamper(engine, "DELETE FROM audit_event")  # all of it
    assert verify(sessions).first_broken.kind == BreakKind.TAIL_TRUNCATED


def test_a_replaced_last_event_differs_from_the_head(engine, sessions):
    append(sessions, 3)
    with sessions() as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.chain_index == 3)).one()
        event.reason = "forged"
        forged_hash = event.compute_hash()
        s.expunge(event)
    tamper(engine, "UPDATE audit_event SET reason = 'forged', hash = :h WHERE chain_index = 3",
           h=forged_hash)
    link = verify(sessions).first_broken
    assert (link.kind, link.chain_index) == (BreakKind.HEAD_MISMATCH, 3)


def test_rows_inserted_past_the_head_are_unlinked(engine, sessions):
    append(sessions, 2)
    with engine.begin() as conn:  # INSERT is allowed; only append_audit_event moves the head
        conn.execute(text(
            "INSERT INTO audit_event (chain_index, occurred_at, event_type, detail, prev_hash, "
            "hash) VALUES (3, :at, 'FORGED', '{}', :p, :p)"), {"at": AT, "p": "f" * 64})
    link = verify(sessions).first_broken
    assert (link.kind, link.chain_index) == (BreakKind.UNLINKED, 3)


def test_a_missing_head_row_is_reported(engine, sessions):
    append(sessions, 2)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_chain_head"))
    assert verify(sessions).first_broken.kind == BreakKind.HEAD_MISSING


# --- the CLI --------------------------------------------------------------------------------


@pytest.fixture
def run_cli(db_url, monkeypatch):
    monkeypatch.setattr(cli, "get_settings", lambda: Settings(database_url=db_url))
    return cli.main


@pytest.mark.parametrize("argv", [["audit", "verify"], ["audit-verify"]])
def test_cli_audit_verify_names_the_edited_event(engine, sessions, run_cli, capsys, argv):
    append(sessions, 4)
    assert run_cli(argv) == 0
    assert "audit chain intact: 4 events verified" in capsys.readouterr().out
    tamper(engine, "UPDATE audit_event SET actor_id = 99 WHERE chain_index = 2")
    assert run_cli(argv) == 1
    err = capsys.readouterr().err
    assert (f"audit chain BROKEN at event 2 (content_changed, row id {row_id(sessions, 2)})"
            in err), err


def test_cli_audit_verify_names_the_gap_as_json(engine, sessions, run_cli, capsys):
    append(sessions, 4)
    tamper(engine, "DELETE FROM audit_event WHERE chain_index = 2")
    assert run_cli(["audit", "verify", "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is False
    assert result["first_broken"]["kind"] == "missing"
    assert result["first_broken"]["message"] == "event 2 is missing (between 1 and 3)"


def test_cli_process_exits_1_on_a_cut_tail(engine, sessions, db_url):
    append(sessions, 3)
    tamper(engine, "DELETE FROM audit_event WHERE chain_index = 3")
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "audit", "verify"],
                          env={**os.environ, "BATON_DATABASE_URL": db_url},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "BROKEN at event 3 (tail_truncated)" in done.stderr
    assert "event 3 is missing at the end" in done.stderr


# --- the migration ---------------------------------------------------------------------------


def test_downgrade_below_0005_refuses_to_drop_hashed_columns(db_url, engine, sessions):
    from alembic import command

    append(sessions, 1, reason="kept")
    engine.dispose()
    with pytest.raises(RuntimeError, match="would break the audit chain"):
        command.downgrade(alembic_config(db_url), "0004")


# --- what the write paths record ---------------------------------------------------------------


def events(sessions, *where) -> list[AuditEvent]:
    with sessions() as s:
        return list(s.exec(select(AuditEvent).where(*where)
                           .order_by(col(AuditEvent.chain_index))).all())


@pytest.fixture
def request_id(sessions, org):
    with sessions() as s:
        policy = s.get(PolicyVersion, org.policy_version_id)
        req = ReassignmentRequest(
            idempotency_key=str(uuid.uuid4()), payload_hash="0" * 64, requester_id=org.manager_a,
            from_employee_id=org.sales_a1, to_employee_id=org.sales_a2,
            customer_ids=org.customers_a1[:1], reason=Reason.TERRITORY_REALIGNMENT.value,
            policy_version_id=policy.id,
            terms=default_terms(fast_policy_rules()).model_dump(mode="json"),
            workflow_id="reassignment-audit")
        s.add(req)
        s.flush()
        return req.id


def test_a_transition_records_stage_before_after_and_the_actors_reason(sessions, org,
                                                                        request_id):
    acts = ReassignmentActivities(sessions)
    acts.record_transition(TransitionRecord(
        workflow_id="reassignment-audit", seq=1, request_id=request_id, at=AT,
        event="DECLINED", from_stage=Stage.SUBMITTED, to_stage=Stage.DECLINED,
        actor_id=org.sales_a1, detail={"reason": "I was not consulted"},
        signature=SignatureWrite(signer_id=org.sales_a1, decision="DECLINED",
                                 reason="I was not consulted")))
    (event,) = events(sessions, AuditEvent.request_id == request_id)
    assert (event.entity_type, event.entity_id) == ("reassignment_request", str(request_id))
    assert event.before["stage"] == "SUBMITTED" and event.after["stage"] == "DECLINED"
    assert event.reason == "I was not consulted" and event.actor_id == org.sales_a1
    assert "before" not in event.detail and "after" not in event.detail
    assert verify(sessions).ok


def test_an_ownership_transfer_is_in_the_after_view(sessions, org, request_id):
    acts = ReassignmentActivities(sessions)
    acts.record_transition(TransitionRecord(
        workflow_id="reassignment-audit", seq=1, request_id=request_id, at=AT,
        event="EFFECTIVE", from_stage=Stage.AWAITING_SIGNATURE, to_stage=Stage.PROTECTION,
        effective_at=AT, ownership_transfer=OwnershipTransfer(
            workflow_id="reassignment-audit", request_id=request_id,
            customer_ids=org.customers_a1[:1],
            from_employee_id=org.sales_a1, to_employee_id=org.sales_a2, effective_at=AT)))
    (event,) = events(sessions, AuditEvent.request_id == request_id)
    assert event.after["ownership"]["customer_ids"] == org.customers_a1[:1]
    assert event.reason is None


def test_policy_and_plan_changes_record_before_and_after(sessions, org):
    with sessions() as s:
        draft = create_draft(s, name="audit-test", rules=fast_policy_rules(),
                             actor_id=org.hr_head)
        update_draft(s, draft.id, rules={**draft.rules, "cooling_off_max": 3},
                     actor_id=org.hr_head)
        create_plan(s, employee_id=org.sales_a1, effective_from=AT, base_rate_bp=300,
                    inherited_rate_bp=200, created_by=org.hr_head)
    drafted, updated = events(sessions, col(AuditEvent.event_type).like("POLICY_%"))
    assert drafted.before is None and drafted.after["status"] == "DRAFT"
    assert (updated.entity_type, updated.entity_id) == ("policy_version", str(draft.id))
    assert updated.before["rules"] != updated.after["rules"]
    (plan,) = events(sessions, AuditEvent.event_type == "PLAN_CREATED")
    assert plan.entity_type == "commission_plan" and plan.after["base_rate_bp"] == 300


def test_derived_recomputations_write_one_summary_event_per_run(sessions, org):
    SettlementActivities(sessions, "Asia/Shanghai").recompute_open_period("2026-02")
    with sessions() as s:
        finalize_period(s, "2026-01", run_key="audit-test:2026-01", trigger="manual",
                        requested_by=org.hr_head)
        write_run(s, run_key="audit-test", as_of=AT, horizon_months=12, valuations=[],
                  model_params={"tiers": {}})
    recomputed, finalized, valued = events(sessions, col(AuditEvent.event_type).in_(
        ["COMMISSION_RECOMPUTED", "SETTLEMENT_FINALIZED", "VALUATION_RUN_WRITTEN"]))
    assert recomputed.entity_id == "2026-02" and recomputed.after == {"period": "2026-02",
                                                                      "lines": 0}
    assert finalized.actor_id == org.hr_head and finalized.after["status"] == "FINAL"
    assert finalized.before["status"] == "OPEN"
    assert valued.entity_type == "valuation_run" and valued.after["customers"] == 0
    assert verify(sessions).ok


def test_append_keeps_the_caller_transaction(sessions):
    with pytest.raises(RuntimeError), sessions() as s:
        append_audit_event(s, AuditEvent(occurred_at=AT, event_type="X", chain_index=0,
                                         prev_hash="", hash=""))
        raise RuntimeError("rolled back")
    assert verify(sessions).events_checked == 0
