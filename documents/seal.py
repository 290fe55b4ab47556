"""The organisation's seal on a signed agreement (PAdES, pyHanko), and its verification.

Sealing (`seal_agreement_pdf`) appends one incremental update to the agreement's PDF bytes:
an evidence page (who signed, typed name, time, IP, user agent, method, credential id and the
agreement's SHA-256; rendered with WeasyPrint and placed as a page of its own), the same
evidence as an embedded JSON file (`baton-evidence.json`), and a PAdES certification
signature made with the organisation's certificate that allows no further changes. The
agreement's own bytes stay untouched: they are the first `agreement_size` bytes of the sealed
file, so their SHA-256 can still be compared with the one on record.

Verification (`verify_sealed_pdf`) uses pyHanko's validation and reports a seal as intact
only when the signed digest matches (`intact`), the signature is valid (`valid`) and it covers
the whole file (coverage ENTIRE_FILE): a change anywhere, or anything appended, fails. Trust
(`trusted`, `bottom_line`) is judged against the configured certificate only.

The certificate comes from a PKCS#12 file (settings `seal_pkcs12_path` and
`seal_pkcs12_password`; in production one issued by a licensed CA). Without one, a self-signed
DEVELOPMENT certificate is created once under `seal_dev_cert_dir` and every use of it is
logged as such; it has no legal effect.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from asn1crypto import x509 as asn1_x509
from pydantic import BaseModel, computed_field

from documents.agreement import SealEvidence, render_evidence_page

log = logging.getLogger(__name__)

EVIDENCE_FILE = "baton-evidence.json"
SEAL_FIELD = "BatonSeal"
DEV_PKCS12 = "baton-seal-dev.p12"
DEV_CERT_PEM = "baton-seal-dev.pem"
DEV_COMMON_NAME = "Baton DEVELOPMENT seal (self-signed, not for production)"
DEV_ORGANISATION = "Baton development"
DEV_VALIDITY = timedelta(days=3650)

T = TypeVar("T")


class SealError(RuntimeError):
    """The seal cannot be made: no usable certificate, or inconsistent input."""


def _off_the_loop(fn: Callable[..., T], *args: Any) -> T:
    """pyHanko's sync API calls asyncio.run: run it in a thread when a loop is running here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn(*args)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args).result()


# --- certificates --------------------------------------------------------------------------


def _write_once(path: Path, data: bytes) -> bool:
    """Create `path` with `data` atomically unless it exists (0600). True if this call did."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)  # fails if another process created it first
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def ensure_dev_certificate(directory: Path) -> tuple[Path, bool]:
    """The development PKCS#12 under `directory`, created once; (path, created now)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    path = directory / DEV_PKCS12
    if path.exists():
        return path, False
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEV_ORGANISATION),
                      x509.NameAttribute(NameOID.COMMON_NAME, DEV_COMMON_NAME)])
    now = datetime.now(UTC).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + DEV_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=True, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256()))
    # a development key: kept unencrypted (0600) next to the other local state in .data/
    data = pkcs12.serialize_key_and_certificates(
        b"baton-dev-seal", key, cert, None, serialization.NoEncryption())
    created = _write_once(path, data)
    if created:
        (directory / DEV_CERT_PEM).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        log.warning("created a self-signed DEVELOPMENT seal certificate at %s: sealed "
                    "agreements are tamper-evident but have no legal effect; set "
                    "BATON_SEAL_PKCS12_PATH to a certificate from a licensed CA", path)
    return path, created


def _asn1(cert: Any) -> asn1_x509.Certificate:
    from cryptography.hazmat.primitives.serialization import Encoding

    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


def _load_pkcs12(path: Path, password: bytes | None) -> tuple[Any, list[asn1_x509.Certificate]]:
    from cryptography.hazmat.primitives.serialization import pkcs12

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SealError(f"cannot read the seal certificate {path}: {exc.strerror or exc}"
                        ) from exc
    try:
        key, cert, others = pkcs12.load_key_and_certificates(data, password)
    except ValueError as exc:
        raise SealError(f"cannot open the PKCS#12 file {path}: wrong password or not a "
                        f"PKCS#12 file ({exc})") from exc
    if key is None or cert is None:
        raise SealError(f"the PKCS#12 file {path} has no private key and certificate")
    return data, [_asn1(cert), *(_asn1(c) for c in others)]


def fingerprint(cert: asn1_x509.Certificate) -> str:
    return hashlib.sha256(cert.dump()).hexdigest()


@dataclass(frozen=True)
class Sealer:
    """The loaded signing key and certificate."""

    signer: Any  # pyhanko.sign.signers.SimpleSigner
    certificate: asn1_x509.Certificate
    development: bool
    source: Path

    @property
    def subject(self) -> str:
        return str(self.certificate.subject.human_friendly)

    @property
    def certificate_sha256(self) -> str:
        return fingerprint(self.certificate)


# loaded sealers by (path, mtime_ns, size, password, development); see SealConfig.sealer
_SEALERS: dict[tuple[Path, int, int, bytes | None, bool], Sealer] = {}
_SEALERS_LOCK = threading.Lock()


@dataclass(frozen=True)
class SealConfig:
    """Where the seal's certificate comes from (see settings.py)."""

    pkcs12_path: Path | None
    pkcs12_password: bytes | None
    dev_cert_dir: Path

    @classmethod
    def from_settings(cls, settings: Any) -> SealConfig:
        secret = settings.seal_pkcs12_password
        return cls(pkcs12_path=settings.seal_pkcs12_path,
                   pkcs12_password=secret.get_secret_value().encode() if secret else None,
                   dev_cert_dir=settings.seal_dev_cert_dir or settings.data_dir / "seal")

    @property
    def development(self) -> bool:
        return self.pkcs12_path is None

    def sealer(self) -> Sealer:
        """The signing key: the configured PKCS#12, else the development one (made once).

        Loaded once per file version (path, modification time, size) and password: parsing
        the PKCS#12 cost about 1% of a worker's time when it was done on every seal. A
        replaced file (a rotated certificate) has another modification time and is loaded
        again."""
        if self.pkcs12_path is not None:
            path, password = self.pkcs12_path, self.pkcs12_password
        else:
            path, _ = ensure_dev_certificate(self.dev_cert_dir)
            password = None
        try:
            stat = path.stat()
        except OSError:
            return self._load_sealer(path, password)  # raises SealError with the reason
        key = (path, stat.st_mtime_ns, stat.st_size, password, self.development)
        with _SEALERS_LOCK:
            sealer = _SEALERS.get(key)
        if sealer is None:
            sealer = self._load_sealer(path, password)
            with _SEALERS_LOCK:
                for old in [k for k in _SEALERS if k[0] == path]:  # rotated-out versions
                    del _SEALERS[old]
                _SEALERS[key] = sealer
        if self.development:
            log.warning("sealing with the self-signed DEVELOPMENT certificate %s (no legal "
                        "effect; set BATON_SEAL_PKCS12_PATH for production)", path)
        return sealer

    def _load_sealer(self, path: Path, password: bytes | None) -> Sealer:
        from pyhanko.sign.signers import SimpleSigner

        data, certs = _load_pkcs12(path, password)
        signer = SimpleSigner.load_pkcs12_data(data, other_certs=certs[1:],
                                               passphrase=password)
        return Sealer(signer=signer, certificate=certs[0], development=self.development,
                      source=path)

    def trust_roots(self) -> list[asn1_x509.Certificate]:
        """The certificates a seal must chain to: the configured certificate and the chain in
        its PKCS#12 file, or the development certificate if one was made (else none)."""
        if self.pkcs12_path is not None:
            return _load_pkcs12(self.pkcs12_path, self.pkcs12_password)[1]
        path = self.dev_cert_dir / DEV_PKCS12
        if not path.exists():
            return []
        return _load_pkcs12(path, None)[1]


# --- sealing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SealedDocument:
    pdf: bytes
    sha256: str
    evidence_html: str


def _append_page(writer: Any, page_pdf: bytes) -> None:
    """Append the first page of `page_pdf` as a new last page (imported as a form XObject)."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.generic import pdf_name
    from pyhanko.pdf_utils.reader import PdfFileReader

    source = PdfFileReader(io.BytesIO(page_pdf))
    page = source.root["/Pages"]["/Kids"][0].get_object()
    media_box = generic.ArrayObject(list(page["/MediaBox"]))
    xobject = writer.import_page_as_xobject(source, 0)
    content = writer.add_object(generic.StreamObject(stream_data=b"q /BatonEvidence Do Q"))
    writer.insert_page(generic.DictionaryObject({
        pdf_name("/Type"): pdf_name("/Page"),
        pdf_name("/MediaBox"): media_box,
        pdf_name("/Resources"): generic.DictionaryObject({
            pdf_name("/XObject"): generic.DictionaryObject({
                pdf_name("/BatonEvidence"): xobject})}),
        pdf_name("/Contents"): content,
    }))


def _embed_evidence(writer: Any, evidence: SealEvidence) -> None:
    from pyhanko.pdf_utils import embed

    data = json.dumps(evidence.model_dump(mode="json"), ensure_ascii=False, sort_keys=True,
                      indent=2).encode("utf-8")
    stream = embed.EmbeddedFileObject.from_file_data(writer, data, mime_type="application/json")
    embed.embed_file(writer, embed.FileSpec(
        file_spec_string=EVIDENCE_FILE, file_name=EVIDENCE_FILE, embedded_data=stream,
        description="Signature evidence (Baton)"))


def _sign(writer: Any, sealer: Sealer, reason: str) -> bytes:
    from pyhanko.sign import fields, signers

    meta = signers.PdfSignatureMetadata(
        field_name=SEAL_FIELD, md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES, reason=reason,
        certify=True, docmdp_permissions=fields.MDPPerm.NO_CHANGES)
    output = signers.sign_pdf(writer, meta, signer=sealer.signer)
    return bytes(output.getvalue())


def seal_agreement_pdf(agreement_pdf: bytes, evidence: SealEvidence,
                       sealer: Sealer) -> SealedDocument:
    """The agreement with its evidence page and embedded evidence, PAdES-sealed."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    if hashlib.sha256(agreement_pdf).hexdigest() != evidence.agreement_sha256:
        raise SealError("the evidence names another agreement than the bytes to seal")
    if len(agreement_pdf) != evidence.agreement_size:
        raise SealError("the evidence states another size than the agreement's")
    if (evidence.certificate_sha256 != sealer.certificate_sha256
            or evidence.development_certificate != sealer.development):
        raise SealError("the evidence names another certificate than the sealer's")
    html, page_pdf = render_evidence_page(evidence)
    writer = IncrementalPdfFileWriter(io.BytesIO(agreement_pdf), strict=False)
    _append_page(writer, page_pdf)
    _embed_evidence(writer, evidence)
    reason = (f"Baton: agreement of reassignment request {evidence.request_id}, version "
              f"{evidence.agreement_version}, signed by the salesperson; sealed with the "
              "evidence of the signature")
    pdf = _off_the_loop(_sign, writer, sealer, reason)
    if not pdf.startswith(agreement_pdf):  # the agreement's own bytes must stay as they were
        raise SealError("sealing changed the agreement's bytes")
    return SealedDocument(pdf=pdf, sha256=hashlib.sha256(pdf).hexdigest(), evidence_html=html)


# --- verification --------------------------------------------------------------------------


class VerificationReport(BaseModel):
    """What `verify_sealed_pdf` found. `ok` is the one answer: intact, trusted by pyHanko's
    bottom line, the agreement's bytes as the evidence states, and the hash as on record."""

    intact: bool  # digest matches, signature valid, and it covers the entire file
    trusted: bool  # the certificate chains to the configured (or development) certificate
    bottom_line: bool  # pyHanko's overall judgement (integrity, trust, modification policy)
    coverage: str | None = None  # pyHanko's SignatureCoverageLevel, e.g. ENTIRE_FILE
    signer: str | None = None  # the sealing certificate's subject
    certificate_sha256: str | None = None
    signed_at: datetime | None = None  # when the seal was made, as the sealer reports it
    evidence: SealEvidence | None = None  # the salesperson's signature: who, when, how
    agreement_sha256: str | None = None  # the agreement's hash as the sealed evidence states
    agreement_bytes_match: bool | None = None  # the file's first bytes have that hash
    expected_sha256: str | None = None  # the hash on record, if one was given
    hash_matches: bool | None = None  # None: no hash on record to compare with
    problems: list[str] = []

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return (self.intact and self.trusted and self.bottom_line
                and self.agreement_bytes_match is True and self.hash_matches is not False
                and not self.problems)


def _read_evidence(reader: Any) -> SealEvidence | None:
    try:
        names = reader.root["/Names"]["/EmbeddedFiles"]["/Names"]
    except KeyError:
        return None
    for i in range(0, len(names) - 1, 2):
        if str(names[i]) == EVIDENCE_FILE:
            spec = names[i + 1].get_object()
            data = spec["/EF"]["/F"].get_object().data
            return SealEvidence.model_validate(json.loads(data.decode("utf-8")))
    return None


def _validate(embedded: Any, trust: Sequence[asn1_x509.Certificate]) -> Any:
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    context = ValidationContext(trust_roots=list(trust), allow_fetching=False)
    return validate_pdf_signature(embedded, context)


def verify_sealed_pdf(pdf: bytes, expected_sha256_of_unsealed: str | None = None,
                      trust: Sequence[asn1_x509.Certificate] = ()) -> VerificationReport:
    """Check a sealed agreement: the seal, its coverage, its trust, and the agreement's hash.

    `expected_sha256_of_unsealed` is the agreement's SHA-256 on record (None: not compared);
    `trust` the certificates a seal must chain to (SealConfig.trust_roots()).
    """
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import SignatureCoverageLevel

    problems: list[str] = []
    report: dict[str, Any] = dict(intact=False, trusted=False, bottom_line=False,
                                  problems=problems)
    if not trust:
        problems.append("no trusted certificate is configured, so the seal cannot be trusted")
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        signatures = reader.embedded_signatures
    except Exception as exc:  # pyHanko raises many kinds on a damaged file
        problems.append(f"the file cannot be read as a PDF: {exc}")
        return compare_with_record(VerificationReport(**report), expected_sha256_of_unsealed)
    if not signatures:
        problems.append("the file carries no seal (no PDF signature)")
        return compare_with_record(VerificationReport(**report), expected_sha256_of_unsealed)
    if len(signatures) > 1:
        problems.append(f"the file carries {len(signatures)} signatures; a sealed agreement "
                        "has exactly one")
    try:
        status = _off_the_loop(_validate, signatures[-1], trust)
    except Exception as exc:
        problems.append(f"the seal cannot be validated, the file is damaged or was changed: "
                        f"{exc}")
        return compare_with_record(VerificationReport(**report), expected_sha256_of_unsealed)

    full = status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    report.update(
        intact=bool(status.intact and status.valid and full),
        trusted=bool(status.trusted), bottom_line=bool(status.bottom_line),
        coverage=status.coverage.name if status.coverage is not None else None,
        signer=str(status.signing_cert.subject.human_friendly),
        certificate_sha256=fingerprint(status.signing_cert),
        signed_at=status.signer_reported_dt)
    if not status.intact:
        problems.append("the seal does not match the content: the document was changed after "
                        "it was sealed")
    if not status.valid:
        problems.append("the seal's cryptographic signature is not valid")
    if not full:
        problems.append(f"the seal does not cover the whole file (coverage "
                        f"{report['coverage']}): something was added after sealing")
    if status.intact and status.valid and not status.trusted:
        problems.append(f"the sealing certificate ({report['signer']}) is not the "
                        "organisation's trusted certificate")
    if report["trusted"] and not status.bottom_line:
        problems.append("pyHanko's overall judgement of the seal is negative")

    try:
        evidence = _read_evidence(reader)
    except Exception as exc:
        evidence = None
        problems.append(f"the embedded evidence cannot be read: {exc}")
    else:
        if evidence is None:
            problems.append(f"the file embeds no evidence ({EVIDENCE_FILE})")
    if evidence is not None:
        report.update(evidence=evidence, agreement_sha256=evidence.agreement_sha256)
        prefix = pdf[:evidence.agreement_size]
        report["agreement_bytes_match"] = (
            len(prefix) == evidence.agreement_size
            and hashlib.sha256(prefix).hexdigest() == evidence.agreement_sha256)
        if not report["agreement_bytes_match"]:
            problems.append(f"the agreement's bytes (the first {evidence.agreement_size}) do "
                            "not have the SHA-256 the evidence states")
        if evidence.signed_document_hash != evidence.agreement_sha256:
            problems.append("the salesperson's signature names another document "
                            f"({evidence.signed_document_hash}) than the sealed agreement")
        if evidence.certificate_sha256 != report["certificate_sha256"]:
            problems.append("the evidence names another sealing certificate than the seal's")
    return compare_with_record(VerificationReport(**report), expected_sha256_of_unsealed)


def compare_with_record(report: VerificationReport,
                        expected_sha256: str | None) -> VerificationReport:
    """The report with the agreement's hash compared to the one on record (None: skip)."""
    if expected_sha256 is None:
        return report
    found = report.agreement_sha256
    problems = list(report.problems)
    if found != expected_sha256:
        problems.append(f"the sealed agreement's SHA-256 is {found}, the one on record is "
                        f"{expected_sha256}")
    return report.model_copy(update=dict(
        expected_sha256=expected_sha256, problems=problems,
        hash_matches=found == expected_sha256 and report.agreement_bytes_match is True))


def format_report(report: VerificationReport, name: str = "") -> list[str]:
    """The report as lines for a terminal."""
    e = report.evidence
    yes = {True: "yes", False: "NO", None: "not checked"}
    lines = [f"{name or 'sealed agreement'}: {'VERIFIED' if report.ok else 'NOT VERIFIED'}",
             f"  seal intact         {yes[report.intact]}"
             + (f" (coverage {report.coverage})" if report.coverage else ""),
             f"  trusted             {yes[report.trusted]}",
             f"  bottom line         {yes[report.bottom_line]}",
             f"  sealed by           {report.signer or '-'}",
             f"  certificate SHA-256 {report.certificate_sha256 or '-'}",
             f"  sealed at           {report.signed_at.isoformat() if report.signed_at else '-'}"]
    if e is not None:
        lines += [f"  request             #{e.request_id}, agreement version "
                  f"{e.agreement_version}",
                  f"  signed by           {e.signer_name} ({e.signer_employee_no}), typed name "
                  f"{e.typed_name!r}",
                  f"  signed at           {e.signed_at.isoformat()}",
                  f"  how                 {e.method or '-'}"
                  + (f", credential {e.credential_id}" if e.credential_id else ""),
                  f"  from                {e.ip or '-'}, {e.user_agent or '-'}"]
    lines += [f"  agreement SHA-256   {report.agreement_sha256 or '-'}"
              f" (bytes match: {yes[report.agreement_bytes_match]})",
              f"  hash on record      {report.expected_sha256 or '-'}"
              f" (matches: {yes[report.hash_matches]})"]
    if e is not None and e.development_certificate:
        lines.append("  note: sealed with a DEVELOPMENT certificate (no legal effect)")
    lines += [f"  problem: {p}" for p in report.problems]
    return lines
