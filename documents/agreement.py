"""The reassignment agreement that the salesperson signs, and the evidence page of its seal.

`render_agreement(data, language)` turns an `AgreementData` into HTML (Jinja2, autoescaped) and
PDF (WeasyPrint), with the SHA-256 of the PDF bytes. It reuses the report's machinery
(documents.report: the Jinja2 environment, the stylesheet, the Noto CJK fonts, the glyph
check and the render lock) and is just as pure: the same data gives the same bytes, so a
signature can name one exact version by its hash, and a retried activity finds the version
it already stored.

The agreement never states its own version number or hash (they are assigned after
rendering); the signature names the hash, and the evidence page appended when sealing
(`render_evidence_page`, used by documents.seal) states both.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from functools import partial
from typing import Any

from pydantic import BaseModel, Field, field_validator

from documents import formatting as fmt
from documents.messages import LANGUAGES, MESSAGES, translate
from documents.report import (
    Language,
    Person,
    PolicyRef,
    RenderedDocument,
    _environment,
    html_to_pdf,
)
from domain.impact import CompensationKind
from domain.policy import Terms

REPORT_PDF_PATH = "/api/v1/reassignments/{id}/report.pdf?version={version}"
VERIFY_PATH = "/api/v1/reassignments/{id}/agreement/verify"


class AgreementCustomer(BaseModel):
    id: int
    code: str
    name: str


class ReportRef(BaseModel):
    """The personal report version that the agreement refers to."""

    version: int = Field(ge=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class AgreementData(BaseModel):
    """Everything the agreement states, already loaded. Times are UTC-aware."""

    request_id: int
    submitted_at: datetime
    company: str  # the employer: the name of the top org unit
    salesperson: Person  # A: hands the customers over, and signs
    receiver: Person  # B: receives them; informed, does not sign
    customers: list[AgreementCustomer] = Field(min_length=1)
    reason: str
    window_end: datetime | None = None  # None: not known (the window has not opened)
    signature_deadline_at: datetime | None = None
    effective_at: datetime | None = None  # set once the transfer has taken effect
    terms: Terms
    # which of the policy formula's options the terms are (None: individually agreed terms)
    option: CompensationKind | None = None
    option_suggested: bool = False
    policy: PolicyRef
    report: ReportRef
    timezone: str = "Asia/Shanghai"

    @field_validator("submitted_at", "window_end", "signature_deadline_at", "effective_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("times must be timezone-aware (UTC)")
        return value

    @property
    def report_path(self) -> str:
        return REPORT_PDF_PATH.format(id=self.request_id, version=self.report.version)


class SealEvidence(BaseModel):
    """What the evidence page of a sealed agreement records (and the PDF embeds as JSON)."""

    request_id: int
    agreement_version: int
    agreement_sha256: str  # of the agreement's PDF bytes: the first agreement_size bytes
    agreement_size: int
    language: str
    signer_id: int
    signer_name: str
    signer_employee_no: str = ""
    typed_name: str | None = None
    signed_at: datetime
    method: str | None = None
    credential_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    signed_document_hash: str | None = None  # the hash the signer's action named
    certificate_subject: str
    certificate_sha256: str
    development_certificate: bool = False
    timezone: str = "Asia/Shanghai"


def _check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}")


def _helpers(language: str, timezone: str) -> dict[str, Any]:
    return dict(
        lang=language, t=partial(translate, language), money=fmt.money, pct=fmt.percent_bp,
        duration=partial(fmt.duration, language=language),
        moment=partial(fmt.moment, language=language, timezone=timezone),
        day=partial(fmt.day, language=language, timezone=timezone),
    )


def render_agreement_html(data: AgreementData, language: Language = "zh-CN") -> str:
    """The agreement as a standalone HTML page (inline CSS; readable on a phone)."""
    _check_language(language)
    template = _environment().get_template("agreement.html")
    return template.render(d=data, **_helpers(language, data.timezone))


def render_agreement(data: AgreementData, language: Language = "zh-CN") -> RenderedDocument:
    """HTML and PDF of the agreement, with the SHA-256 of the PDF bytes."""
    html = render_agreement_html(data, language)
    pdf = html_to_pdf(html)
    return RenderedDocument(html=html, pdf=pdf, sha256=hashlib.sha256(pdf).hexdigest())


def render_evidence_page(evidence: SealEvidence) -> tuple[str, bytes]:
    """HTML and one-page PDF of the evidence page, in the agreement's language."""
    language = evidence.language
    _check_language(language)
    helpers = _helpers(language, evidence.timezone)
    t = helpers["t"]
    method = evidence.method or ""
    method_label = (t(f"ev_method_{method}") if f"ev_method_{method}" in MESSAGES
                    else method or t("ev_none"))
    template = _environment().get_template("agreement_evidence.html")
    html = template.render(e=evidence, method_label=method_label,
                           verify_path=VERIFY_PATH.format(id=evidence.request_id), **helpers)
    return html, html_to_pdf(html)
