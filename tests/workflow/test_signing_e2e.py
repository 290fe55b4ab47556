"""Issue 5, acceptance 1: the agreement, its signature and the seal, on the time-skipping server
with the real worker and activities.

- signed with the current agreement's hash: EFFECTIVE, and the sealed PDF verifies intact;
- declined with a reason: DECLINED, ownership unchanged, nothing sealed;
- appeal, HR amends the terms: a second agreement version; the old hash is refused as stale,
  the new one signs.

The re-authentication before signing (one-time code, passkey) happens in the API; the workflow
receives its outcome (method, credential id, IP, user agent) in the sign input, as here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from documents.seal import SealConfig, verify_sealed_pdf
from domain.policy import Terms
from domain.stages import Role, Stage
from domain.workflow_dto import (
    ActionInput,
    AppealOutcome,
    ReasonedActionInput,
    ReassignmentState,
    ResolveAppealInput,
    SignInput,
)
from models import Assignment, AuditEvent, RequestDocument, SignatureRecord
from settings import get_settings
from tests.workflow.conftest import Harness, wait_stage, wait_until

USER_AGENT = "Mozilla/5.0 (Linux; Android 14; Pixel 8) Mobile Safari/537.36"


async def current_agreement(handle: WorkflowHandle) -> ReassignmentState:
    """The state once the agreement for the current terms is rendered (its hash is known)."""
    return await wait_until(handle, lambda s: s.agreement_sha256 is not None)


def signed_input(actor_id: int, state: ReassignmentState, **overrides: object) -> SignInput:
    values: dict[str, object] = dict(
        actor_id=actor_id, typed_name="Li Sales", document_hash=state.agreement_sha256,
        method="otp", ip="198.51.100.23", user_agent=USER_AGENT)
    values.update(overrides)
    return SignInput.model_validate(values)


@pytest.fixture
def seal_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The worker seals with a development certificate made in this test's directory."""
    monkeypatch.setenv("BATON_SEAL_DEV_CERT_DIR", str(tmp_path / "seal"))
    get_settings.cache_clear()
    yield tmp_path / "seal"
    get_settings.cache_clear()


def trust(seal_dir: Path) -> list:
    return SealConfig(pkcs12_path=None, pkcs12_password=None, dev_cert_dir=seal_dir).trust_roots()


async def approve_all(h: Harness, handle: WorkflowHandle) -> ReassignmentState:
    state = await wait_stage(handle, Stage.PENDING_APPROVAL, level=1)
    for level in state.levels:
        await wait_stage(handle, Stage.PENDING_APPROVAL, level=level.level)
        await handle.execute_update("approve", ActionInput(actor_id=level.approver_id))
    return await wait_stage(handle, Stage.COMMUNICATION)


def open_owners(h: Harness, customers: list[int]) -> set[int]:
    with h.sessions() as s:
        return set(s.exec(select(Assignment.employee_id).where(
            Assignment.customer_id.in_(customers), Assignment.end_at.is_(None))).all())


def documents(h: Harness, request_id: int, kind: str) -> list[RequestDocument]:
    with h.sessions() as s:
        return list(s.exec(select(RequestDocument).where(
            RequestDocument.request_id == request_id, RequestDocument.kind == kind)
            .order_by(RequestDocument.version)).all())


async def approved_request(h: Harness, customers: list[int]) -> WorkflowHandle:
    """A request of sales_a1's customers to sales_a2, through every approval level."""
    org = h.org
    handle = await h.submit_and_start(requester=org.manager_a, from_id=org.sales_a1,
                                      to_id=org.sales_a2, customers=customers)
    await approve_all(h, handle)
    return handle


def audit_events_in_order(h: Harness, request_id: int) -> list[str]:
    with h.sessions() as s:
        return [a.event_type for a in s.exec(select(AuditEvent).where(
            AuditEvent.request_id == request_id).order_by(AuditEvent.chain_index)).all()]


async def test_sign_with_the_current_hash_takes_effect_and_the_seal_verifies(harness, seal_dir):
    h, org = harness, harness.org
    moved = org.customers_a1[:2]
    handle = await approved_request(h, moved)
    state = await current_agreement(handle)
    [agreement] = documents(h, state.request_id, "AGREEMENT")
    assert (agreement.version, agreement.sha256) == (state.agreement_version,
                                                      state.agreement_sha256)

    answer = await handle.execute_update("sign", signed_input(org.sales_a1, state),
                                         result_type=ReassignmentState)
    # the answer does not wait for the seal (a render); the workflow seals right after
    assert answer.signed_at is not None and answer.sealed_sha256 is None
    state = await wait_until(handle, lambda s: s.sealed_sha256 is not None)
    assert state.stage == Stage.COMMUNICATION  # sealed during the window, not at its end
    await h.env.sleep(timedelta(minutes=11))  # the rest of the communication window
    state = await wait_stage(handle, Stage.PROTECTION)
    assert "OWNERSHIP_TRANSFERRED" in [e.event for e in state.history]
    assert open_owners(h, moved) == {org.sales_a2}

    [sealed] = documents(h, state.request_id, "SEALED_AGREEMENT")
    assert (sealed.version, sealed.sha256) == (agreement.version, state.sealed_sha256)
    report = verify_sealed_pdf(sealed.pdf, agreement.sha256, trust(seal_dir))
    assert report.ok, report.problems
    assert report.intact and report.hash_matches and report.coverage == "ENTIRE_FILE"
    e = report.evidence
    assert (e.signer_id, e.typed_name, e.method, e.ip, e.user_agent) == (
        org.sales_a1, "Li Sales", "otp", "198.51.100.23", USER_AGENT)
    assert e.signed_document_hash == agreement.sha256 == e.agreement_sha256
    with h.sessions() as s:
        record = s.exec(select(SignatureRecord).where(
            SignatureRecord.request_id == state.request_id)).one()
    assert record.document_hash == agreement.sha256 and record.at == e.signed_at
    assert (await handle.result()).stage == Stage.COMPLETED
    events = audit_events_in_order(h, state.request_id)  # seal before the move
    assert events.index("AGREEMENT_SEALED") < events.index("OWNERSHIP_TRANSFERRED")


async def test_signing_after_the_window_seals_before_ownership_moves(harness, seal_dir):
    """Signed in AWAITING_SIGNATURE: the main path waits for the seal, then takes effect."""
    h, org = harness, harness.org
    moved = org.customers_a1[:2]
    handle = await approved_request(h, moved)
    state = await current_agreement(handle)
    await h.env.sleep(timedelta(minutes=11))  # the window ends unsigned
    state = await wait_stage(handle, Stage.AWAITING_SIGNATURE)
    answer = await handle.execute_update("sign", signed_input(org.sales_a1, state),
                                         result_type=ReassignmentState)
    assert answer.sealed_sha256 is None and answer.stage == Stage.AWAITING_SIGNATURE
    state = await wait_stage(handle, Stage.PROTECTION)
    [sealed] = documents(h, state.request_id, "SEALED_AGREEMENT")
    assert state.sealed_sha256 == sealed.sha256
    assert verify_sealed_pdf(sealed.pdf, state.agreement_sha256, trust(seal_dir)).ok
    events = audit_events_in_order(h, state.request_id)
    assert events.index("SIGNED") < events.index("AGREEMENT_SEALED") < events.index(
        "OWNERSHIP_TRANSFERRED")


async def test_decline_with_a_reason_leaves_ownership_and_seals_nothing(harness, seal_dir):
    h, org = harness, harness.org
    moved = org.customers_a1[:2]
    handle = await approved_request(h, moved)
    await current_agreement(handle)
    await handle.execute_update("decline", ReasonedActionInput(
        actor_id=org.sales_a1, reason="I do not accept the compensation"))
    final = await handle.result()
    assert final.stage == Stage.DECLINED and final.sealed_sha256 is None
    assert open_owners(h, moved) == {org.sales_a1}
    assert documents(h, final.request_id, "SEALED_AGREEMENT") == []
    with h.sessions() as s:
        record = s.exec(select(SignatureRecord).where(
            SignatureRecord.request_id == final.request_id)).one()
    assert (record.decision, record.reason) == ("DECLINED", "I do not accept the compensation")


async def test_amended_terms_make_the_old_version_stale_and_the_new_one_signs(harness,
                                                                             seal_dir):
    h, org = harness, harness.org
    moved = org.customers_a1[:2]
    handle = await approved_request(h, moved)
    first = await current_agreement(handle)
    assert first.agreement_version == 1
    await handle.execute_update("appeal", ReasonedActionInput(
        actor_id=org.sales_a1, reason="I built these accounts over three years"))
    await wait_stage(handle, Stage.APPEAL_REVIEW)
    amended = Terms(protection_period=timedelta(minutes=60), protection_share_bp=7_000,
                    inherited_rate_bp=200, compensation_fen=500_000)
    state = await handle.execute_update("resolve_appeal", ResolveAppealInput(
        actor_id=org.hr_head, actor_roles=[Role.HR], outcome=AppealOutcome.AMEND,
        amended_terms=amended, comment="longer protection, higher share"),
        result_type=ReassignmentState)
    assert state.agreement_version == 2 and state.agreement_sha256 != first.agreement_sha256
    versions = documents(h, state.request_id, "AGREEMENT")
    assert [(d.version, d.sha256) for d in versions] == [
        (1, first.agreement_sha256), (2, state.agreement_sha256)]

    with pytest.raises(WorkflowUpdateFailedError) as info:  # the version read before
        await handle.execute_update("sign", signed_input(org.sales_a1, first))
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "STALE_DOCUMENT"
    assert "version 2" in cause.message and state.agreement_sha256 in cause.message
    with h.sessions() as s:  # the refusal wrote nothing
        assert s.exec(select(SignatureRecord).where(
            SignatureRecord.request_id == state.request_id)).first() is None

    await handle.execute_update("sign", signed_input(org.sales_a1, state))
    signed = await wait_until(handle, lambda s: s.sealed_sha256 is not None)
    [sealed] = documents(h, state.request_id, "SEALED_AGREEMENT")
    assert (sealed.version, sealed.sha256) == (2, signed.sealed_sha256)
    report = verify_sealed_pdf(sealed.pdf, state.agreement_sha256, trust(seal_dir))
    assert report.ok, report.problems
    await h.env.sleep(timedelta(minutes=15))
    final = await handle.result()
    assert final.stage == Stage.COMPLETED
    assert final.protection_end - final.effective_at == timedelta(minutes=60)
    assert open_owners(h, moved) == {org.sales_a2}
