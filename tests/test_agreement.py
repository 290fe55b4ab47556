"""The agreement (both languages, what it states), the seal (PAdES with the evidence page) and
its verification: intact, a one-byte tamper, anything appended, another certificate; the two
activities that store them idempotently; the CLI's verify-agreement."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from pypdf import PdfReader
from sqlmodel import func, select

import cli
from activities.documents import (
    AGREEMENT_GENERATED,
    AGREEMENT_SEALED,
    DocumentActivities,
)
from api.deps import get_temporal_client
from api.main import create_app
from documents.agreement import (
    SealEvidence,
    render_agreement,
    render_agreement_html,
)
from documents.formatting import moment, money
from documents.seal import (
    DEV_PKCS12,
    SealConfig,
    seal_agreement_pdf,
    verify_sealed_pdf,
)
from domain.policy import Terms
from models import AuditEvent, Customer, ReassignmentRequest, RequestDocument, SignatureRecord
from models.audit import verify_chain
from settings import get_settings
from tests.api.conftest import Api, FakeTemporal, api_settings, assert_problem
from tests.report_fixtures import (
    DB_CUSTOMER_NAMES,
    REPORT_SHA,
    TZ,
    WINDOW_END,
    agreement_data,
    make_report_request,
)
from tests.test_report import pdf_text, squash


@pytest.fixture(scope="module")
def rendered() -> dict[str, bytes]:
    data = agreement_data()
    return {lang: render_agreement(data, lang).pdf for lang in ("zh-CN", "en")}


@pytest.fixture(scope="module")
def seal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("seal")


@pytest.fixture(scope="module")
def config(seal_dir: Path) -> SealConfig:
    return SealConfig(pkcs12_path=None, pkcs12_password=None, dev_cert_dir=seal_dir)


def evidence_for(pdf: bytes, config: SealConfig, **overrides: object) -> SealEvidence:
    sealer = config.sealer()
    sha = hashlib.sha256(pdf).hexdigest()
    values: dict[str, object] = dict(
        request_id=42, agreement_version=1, agreement_sha256=sha, agreement_size=len(pdf),
        language="en", signer_id=100, signer_name="李明", signer_employee_no="E100",
        typed_name="Li Ming", signed_at=datetime(2026, 3, 10, 6, 30, tzinfo=UTC),
        method="passkey", credential_id="cred-AbC_123", ip="203.0.113.7",
        user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)",
        signed_document_hash=sha, certificate_subject=sealer.subject,
        certificate_sha256=sealer.certificate_sha256, development_certificate=True,
        timezone=TZ)
    values.update(overrides)
    return SealEvidence.model_validate(values)


@pytest.fixture(scope="module")
def sealed(rendered: dict[str, bytes], config: SealConfig) -> bytes:
    pdf = rendered["en"]
    return seal_agreement_pdf(pdf, evidence_for(pdf, config), config.sealer()).pdf


# --- the agreement ----------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_agreement_states_parties_customers_terms_policy_and_report(rendered, language):
    text = pdf_text(rendered[language])
    data = agreement_data()
    for name in ("示范贸易有限公司", "李明", "赵强", "E100", "E102", "上海明华贸易有限公司",
                 "SH-0001", "EX-0317", "华东销售客户调整政策"):
        assert name in text, name
    assert "NorthwindTraders" in text
    assert money(1_234_567) in text and "50%" in text
    assert squash(moment(WINDOW_END, language, TZ)) in text  # the effective date
    assert REPORT_SHA in text and data.report_path in text  # the report, by link and hash
    if language == "zh-CN":
        for phrase in ("客户调整协议", "180天", "第2版", "一次性补偿", "建议方案", "电子签名法"):
            assert phrase in text, phrase
    else:
        for phrase in ("Customerreassignmentagreement", "180days", "version2",
                       "One-offpayment", "thesuggestedone", "ElectronicSignatureLaw"):
            assert phrase in text, phrase


def test_agreement_rendering_is_deterministic(rendered):
    again = render_agreement(agreement_data(), "zh-CN")
    assert again.pdf == rendered["zh-CN"]
    assert again.sha256 == hashlib.sha256(rendered["zh-CN"]).hexdigest()


def test_individually_agreed_terms_and_no_protection_are_said_so():
    html = render_agreement_html(agreement_data(
        option=None, terms=Terms(protection_period=timedelta(0), protection_share_bp=0,
                                 inherited_rate_bp=200, compensation_fen=0)), "en")
    assert "individually agreed terms" in html
    assert "There is no protection period" in html and "no one-off payment" in html


def test_agreement_text_is_escaped():
    html = render_agreement_html(agreement_data(company="<script>x</script>"), "en")
    assert "<script>x" not in html and "&lt;script&gt;" in html


# --- the seal and its verification --------------------------------------------------------


def test_sealed_agreement_verifies_intact_with_the_evidence(rendered, sealed, config):
    pdf = rendered["en"]
    sha = hashlib.sha256(pdf).hexdigest()
    assert sealed.startswith(pdf)  # the agreement's bytes are untouched
    report = verify_sealed_pdf(sealed, sha, config.trust_roots())
    assert report.ok, report.problems
    assert report.intact and report.trusted and report.bottom_line
    assert report.coverage == "ENTIRE_FILE" and report.hash_matches is True
    assert report.agreement_sha256 == sha and report.agreement_bytes_match is True
    assert "DEVELOPMENT" in (report.signer or "") and report.signed_at is not None
    e = report.evidence
    assert e is not None and (e.typed_name, e.method, e.ip) == ("Li Ming", "passkey",
                                                                "203.0.113.7")
    reader = PdfReader(io.BytesIO(sealed))
    assert len(reader.pages) == len(PdfReader(io.BytesIO(pdf)).pages) + 1
    page = squash(reader.pages[-1].extract_text())
    for value in ("Signatureevidence", "LiMing", "李明", sha, "cred-AbC_123", "203.0.113.7",
                  "Passkey(WebAuthn)", "iPhone", "DEVELOPMENT"):
        assert value in page, value


def test_another_hash_on_record_does_not_match(sealed, config):
    report = verify_sealed_pdf(sealed, "00" * 32, config.trust_roots())
    assert report.intact and report.hash_matches is False and not report.ok
    assert any("on record" in p for p in report.problems)


def test_one_changed_byte_inside_the_signed_range_fails(rendered, sealed, config):
    from pyhanko.pdf_utils.reader import PdfFileReader

    start, length, *_ = PdfFileReader(io.BytesIO(sealed)).embedded_signatures[0].byte_range
    assert start == 0 and length > len(rendered["en"])
    tampered = bytearray(sealed)
    position = len(rendered["en"]) // 2  # in the agreement, well inside the first range
    tampered[position] ^= 0x01
    report = verify_sealed_pdf(bytes(tampered), hashlib.sha256(rendered["en"]).hexdigest(),
                               config.trust_roots())
    assert not report.intact and not report.bottom_line and not report.ok
    assert report.hash_matches is not True and report.problems


def test_an_appended_update_leaves_the_seal_not_covering_the_file(sealed, config):
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(sealed))
    writer.root["/Lang"] = writer.root.get("/Lang", "en")
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    report = verify_sealed_pdf(out.getvalue(), None, config.trust_roots())
    assert not report.intact and not report.ok
    assert report.coverage != "ENTIRE_FILE"


def test_a_seal_by_another_certificate_is_untrusted(rendered, config, tmp_path):
    other = SealConfig(pkcs12_path=None, pkcs12_password=None, dev_cert_dir=tmp_path)
    pdf = rendered["en"]
    forged = seal_agreement_pdf(pdf, evidence_for(pdf, other), other.sealer()).pdf
    report = verify_sealed_pdf(forged, hashlib.sha256(pdf).hexdigest(), config.trust_roots())
    assert report.intact and not report.trusted and not report.bottom_line and not report.ok
    assert any("not the organisation's trusted certificate" in p for p in report.problems)


def test_no_trust_configured_is_never_ok(sealed):
    report = verify_sealed_pdf(sealed, None, [])
    assert report.intact and not report.trusted and not report.ok


def test_an_unsealed_pdf_or_garbage_is_reported(rendered, config):
    assert "no seal" in verify_sealed_pdf(rendered["en"], None,
                                          config.trust_roots()).problems[-1]
    report = verify_sealed_pdf(b"not a pdf", None, config.trust_roots())
    assert not report.intact and "cannot be read" in report.problems[-1]


def test_the_development_certificate_is_made_once(config, seal_dir):
    first = config.sealer()
    assert (seal_dir / DEV_PKCS12).exists()
    assert oct((seal_dir / DEV_PKCS12).stat().st_mode)[-3:] == "600"
    assert config.sealer().certificate_sha256 == first.certificate_sha256
    assert first.development and "DEVELOPMENT" in first.subject


def test_a_configured_pkcs12_is_used_and_trusted(tmp_path, rendered):
    from cryptography.hazmat.primitives.serialization import (
        BestAvailableEncryption,
        pkcs12,
    )

    made = SealConfig(None, None, tmp_path / "made").sealer()  # any key pair will do
    key, cert, _ = pkcs12.load_key_and_certificates(made.source.read_bytes(), None)
    path = tmp_path / "org.p12"
    path.write_bytes(pkcs12.serialize_key_and_certificates(
        b"org", key, cert, None, BestAvailableEncryption(b"s3cret")))
    config = SealConfig(pkcs12_path=path, pkcs12_password=b"s3cret",
                        dev_cert_dir=tmp_path / "unused")
    sealer = config.sealer()
    assert not sealer.development and not (tmp_path / "unused").exists()
    pdf = rendered["zh-CN"]
    evidence = evidence_for(pdf, config, development_certificate=False, language="zh-CN")
    report = verify_sealed_pdf(seal_agreement_pdf(pdf, evidence, sealer).pdf,
                               evidence.agreement_sha256, config.trust_roots())
    assert report.ok, report.problems
    wrong = SealConfig(pkcs12_path=path, pkcs12_password=b"nope", dev_cert_dir=tmp_path)
    with pytest.raises(Exception, match="wrong password"):
        wrong.sealer()


def test_the_loaded_seal_is_reused_until_the_file_is_replaced(tmp_path):
    """Loaded once per file version; a rotated certificate takes effect at the next seal."""
    first_made = SealConfig(None, None, tmp_path / "first").sealer()
    second_made = SealConfig(None, None, tmp_path / "second").sealer()
    path = tmp_path / "org.p12"
    path.write_bytes(first_made.source.read_bytes())
    config = SealConfig(pkcs12_path=path, pkcs12_password=None, dev_cert_dir=tmp_path / "x")
    loaded = config.sealer()
    assert config.sealer() is loaded  # not parsed again
    assert loaded.certificate_sha256 == first_made.certificate_sha256

    path.write_bytes(second_made.source.read_bytes())  # the rotation
    stat = path.stat()  # a later mtime, even on a file system with coarse timestamps
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    rotated = config.sealer()
    assert rotated is not loaded
    assert rotated.certificate_sha256 == second_made.certificate_sha256
    assert config.sealer() is rotated


# --- the CLI --------------------------------------------------------------------------------


@pytest.fixture
def cli_seal_dir(seal_dir, monkeypatch):
    monkeypatch.setenv("BATON_SEAL_DEV_CERT_DIR", str(seal_dir))
    get_settings.cache_clear()
    yield seal_dir
    get_settings.cache_clear()


def test_cli_verify_agreement_exits_zero_when_intact_and_one_when_tampered(
        sealed, cli_seal_dir, tmp_path, capsys):
    good = tmp_path / "sealed.pdf"
    good.write_bytes(sealed)
    assert cli.main(["verify-agreement", str(good)]) == 0
    out = capsys.readouterr().out
    assert "VERIFIED" in out and "NOT VERIFIED" not in out and "Li Ming" in out
    tampered = bytearray(sealed)
    tampered[len(sealed) // 4] ^= 0x01
    bad = tmp_path / "tampered.pdf"
    bad.write_bytes(bytes(tampered))
    assert cli.main(["verify-agreement", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "NOT VERIFIED" in out and "seal intact         NO" in out
    assert cli.main(["verify-agreement", str(tmp_path / "missing.pdf")]) == 2


def test_cli_seal_dev_cert_reports_the_certificate(cli_seal_dir, capsys):
    assert cli.main(["seal-dev-cert"]) == 0
    out = capsys.readouterr().out
    assert "DEVELOPMENT" in out and str(cli_seal_dir / DEV_PKCS12) in out


# --- the activities -------------------------------------------------------------------------


def count(sessions, model, *where) -> int:
    with sessions() as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


def sign(sessions, request_id: int, signer_id: int, document_hash: str) -> None:
    """The SignatureRecord that the workflow's SIGNED transition writes."""
    with sessions() as s:
        s.add(SignatureRecord(
            request_id=request_id, signer_id=signer_id, decision="SIGNED",
            at=datetime(2026, 3, 10, 6, 30, tzinfo=UTC), typed_name="李明", method="otp",
            ip="198.51.100.4", user_agent="Mozilla/5.0 (Android 14)",
            document_hash=document_hash))


@pytest.fixture
def acts(sessions, config) -> DocumentActivities:
    return DocumentActivities(sessions, TZ, seal=config)


def test_render_agreement_stores_one_version_per_hash_with_an_audit_event(sessions, org, acts):
    request_id = make_report_request(sessions, org)
    report_sha = acts.render_personal_report(request_id, WINDOW_END)
    ref = acts.render_agreement(request_id)
    assert acts.render_agreement(request_id) == ref  # the retry stores nothing
    assert ref.version == 1
    with sessions() as s:
        [doc] = s.exec(select(RequestDocument).where(RequestDocument.request_id == request_id,
                                                     RequestDocument.kind == "AGREEMENT"))
        request = s.get(ReassignmentRequest, request_id)
        codes = [s.get(Customer, c).code for c in request.customer_ids]
        assert verify_chain(s)[0]
    assert (doc.sha256, doc.language) == (ref.sha256, "zh-CN")
    assert hashlib.sha256(doc.pdf).hexdigest() == ref.sha256
    assert count(sessions, AuditEvent, AuditEvent.event_type == AGREEMENT_GENERATED) == 1
    text = pdf_text(doc.pdf)
    for value in (*DB_CUSTOMER_NAMES, *codes, report_sha, "report.pdf?version=1",
                  money(request.terms["compensation_fen"])):
        assert value in text, value

    with sessions() as s:  # HR amends the terms: a new version
        s.get(ReassignmentRequest, request_id).terms = {**request.terms,
                                                        "compensation_fen": 999_999}
    second = acts.render_agreement(request_id)
    assert (second.version, second.sha256 != ref.sha256) == (2, True)
    assert "¥9,999.99" in pdf_text(doc_bytes(sessions, request_id, "AGREEMENT", 2))
    assert "单独约定的条款" in pdf_text(doc_bytes(sessions, request_id, "AGREEMENT", 2))


def doc_bytes(sessions, request_id: int, kind: str, version: int) -> bytes:
    with sessions() as s:
        return s.exec(select(RequestDocument.pdf).where(
            RequestDocument.request_id == request_id, RequestDocument.kind == kind,
            RequestDocument.version == version)).one()


def test_render_agreement_without_a_report_is_refused(sessions, org, acts):
    from temporalio.exceptions import ApplicationError

    request_id = make_report_request(sessions, org)
    with pytest.raises(ApplicationError) as err:
        acts.render_agreement(request_id)
    assert err.value.non_retryable and err.value.type == "REPORT_MISSING"


def test_seal_agreement_seals_once_and_verifies(sessions, org, acts, config):
    from temporalio.testing import ActivityEnvironment

    request_id = make_report_request(sessions, org, locale="en-GB")
    acts.render_personal_report(request_id, WINDOW_END)
    ref = acts.render_agreement(request_id)
    sign(sessions, request_id, org.sales_a1, ref.sha256)
    sha = ActivityEnvironment().run(acts.seal_agreement, request_id, ref.version)
    assert acts.seal_agreement(request_id, ref.version) == sha  # the retry signs nothing
    assert count(sessions, RequestDocument, RequestDocument.request_id == request_id,
                 RequestDocument.kind == "SEALED_AGREEMENT") == 1
    assert count(sessions, AuditEvent, AuditEvent.event_type == AGREEMENT_SEALED) == 1
    pdf = doc_bytes(sessions, request_id, "SEALED_AGREEMENT", ref.version)
    assert hashlib.sha256(pdf).hexdigest() == sha
    report = verify_sealed_pdf(pdf, ref.sha256, config.trust_roots())
    assert report.ok, report.problems
    assert report.evidence.method == "otp" and report.evidence.language == "en"
    assert "One-timecode" in squash(PdfReader(io.BytesIO(pdf)).pages[-1].extract_text())


def test_seal_agreement_without_a_signature_is_refused(sessions, org, acts):
    from temporalio.exceptions import ApplicationError

    request_id = make_report_request(sessions, org)
    acts.render_personal_report(request_id, WINDOW_END)
    ref = acts.render_agreement(request_id)
    with pytest.raises(ApplicationError) as err:
        acts.seal_agreement(request_id, ref.version)
    assert err.value.non_retryable and err.value.type == "SIGNATURE_MISSING"
    with pytest.raises(ApplicationError) as err:
        acts.seal_agreement(request_id, ref.version + 5)
    assert err.value.type == "AGREEMENT_MISSING"


# --- the API --------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def api(db_url, org, sessions, config) -> AsyncIterator[Api]:
    """The API on the test database (as tests/api), trusting the test's seal certificate."""
    app = create_app(api_settings(db_url, seal_dev_cert_dir=config.dev_cert_dir))
    app.dependency_overrides[get_temporal_client] = FakeTemporal
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://baton.test") as http:
        yield Api(http=http, org=org, sessions=sessions, app=app)


@pytest.fixture
def sealed_case(api, config):
    """A request with a report, an agreement (version 1), a signature and the seal."""
    acts = DocumentActivities(api.sessions, TZ, seal=config)
    request_id = make_report_request(api.sessions, api.org)
    acts.render_personal_report(request_id, WINDOW_END)
    ref = acts.render_agreement(request_id)
    sign(api.sessions, request_id, api.org.sales_a1, ref.sha256)
    return request_id, ref, acts.seal_agreement(request_id, ref.version)


async def test_api_lists_serves_and_verifies_the_agreement(api, sealed_case):
    request_id, ref, sealed_sha = sealed_case
    auth = await api.auth(api.org.sales_a1)
    base = f"/api/v1/reassignments/{request_id}/agreement"
    r = await api.http.get(base, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["latest"] == 1
    [version] = body["versions"]
    assert (version["version"], version["sha256"]) == (1, ref.sha256)
    assert version["sealed"]["sha256"] == sealed_sha

    r = await api.http.get(version["pdf_url"], headers=auth)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert hashlib.sha256(r.content).hexdigest() == ref.sha256 == r.headers["x-content-sha256"]
    r = await api.http.get(f"{base}.pdf", headers=auth)  # the latest by default
    assert hashlib.sha256(r.content).hexdigest() == ref.sha256
    r = await api.http.get(version["sealed"]["pdf_url"], headers=auth)
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == sealed_sha

    r = await api.http.get(version["sealed"]["verify_url"], headers=auth)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["ok"] is True and report["intact"] is True and report["trusted"] is True
    assert report["hash_matches"] is True and report["expected_sha256"] == ref.sha256
    assert (report["request_id"], report["version"], report["sealed_sha256"]) == (
        request_id, 1, sealed_sha)
    assert report["evidence"]["typed_name"] == "李明" and report["evidence"]["method"] == "otp"
    with api.sessions() as s:
        reads = s.exec(select(AuditEvent.detail).where(
            AuditEvent.event_type == "AGREEMENT_READ",
            AuditEvent.request_id == request_id)).all()
    assert [d["format"] for d in reads] == ["versions", "pdf", "pdf", "sealed_pdf", "verify"]


async def test_api_verify_reports_a_tampered_seal(api, sealed_case):
    request_id, ref, _ = sealed_case
    with api.sessions() as s:
        doc = s.exec(select(RequestDocument).where(
            RequestDocument.request_id == request_id,
            RequestDocument.kind == "SEALED_AGREEMENT")).one()
        tampered = bytearray(doc.pdf)
        tampered[len(tampered) // 3] ^= 0x01
        doc.pdf = bytes(tampered)
    r = await api.http.get(f"/api/v1/reassignments/{request_id}/agreement/verify",
                           headers=await api.auth(api.org.hr_staff))
    assert r.status_code == 200, r.text
    assert r.json()["intact"] is False and r.json()["ok"] is False and r.json()["problems"]


async def test_api_agreement_is_hidden_from_others(api, sealed_case):
    request_id, _, _ = sealed_case
    auth = await api.auth(api.org.sales_b1)
    for suffix in ("agreement", "agreement.pdf", "agreement/sealed.pdf", "agreement/verify"):
        r = await api.http.get(f"/api/v1/reassignments/{request_id}/{suffix}", headers=auth)
        assert_problem(r, 404, "agreement-not-found")
    r = await api.http.get(f"/api/v1/reassignments/{request_id}/agreement.pdf?version=9",
                           headers=await api.auth(api.org.sales_a1))
    assert_problem(r, 404, "agreement-not-found")
