"""Render CPU of the PDF documents: the personal report, the agreement and the evidence page.

    .venv/bin/python -m bench.render                 # 20 of each per language
    .venv/bin/python -m bench.render --count 5

Turns the HTML of the personal report, the agreement and the seal's evidence page, in zh-CN
and en, from the report tests' data (tests/report_fixtures.py), into PDF `--count` times each
and prints CPU seconds (time.process_time) and wall seconds per document: "before" is
html_to_pdf as it was (a new FontConfiguration per render, no font subset cache), "after" is
`documents.report.html_to_pdf`; both must give the same bytes. The floor, measured in the
same run, is the "before" path on a one-line CJK HTML page; ratios are CPU per document over
the floor's. The HTML (Jinja, under 1% of a render) is made once, outside the timing; the
first render of each document is a warm-up and not counted. The same document again and again
is the best case for the subset cache; the last row, a zh-CN report with other customer names
each time (glyph sets that do not repeat), is its worst case and closer to production.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from documents import font_subset_cache
from documents.agreement import (
    SealEvidence,
    render_agreement,
    render_agreement_html,
    render_evidence_page,
)
from documents.report import (
    Language,
    _no_fetching,
    html_to_pdf,
    render_html,
)
from tests.report_fixtures import CUSTOMERS, agreement_data, report_data

LANGUAGES: tuple[Language, ...] = ("zh-CN", "en")
FLOOR_HTML = ('<html><head><style>html { font-family: "Noto Sans CJK SC"; }</style></head>'
              '<body><p>客户调整 Baton</p></body></html>')


def evidence(language: str, agreement_pdf: bytes) -> SealEvidence:
    sha = hashlib.sha256(agreement_pdf).hexdigest()
    return SealEvidence(
        request_id=42, agreement_version=1, agreement_sha256=sha,
        agreement_size=len(agreement_pdf), language=language, signer_id=100,
        signer_name="李明", signer_employee_no="E100", typed_name="Li Ming",
        signed_at=datetime(2026, 3, 10, 6, 30, tzinfo=UTC), method="passkey",
        credential_id="cred-AbC_123", ip="203.0.113.7",
        user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)",
        signed_document_hash=sha, certificate_subject="CN=Baton development seal",
        certificate_sha256="ab" * 32, development_certificate=True)


@dataclass
class Row:
    name: str
    count: int
    cpu_s: float
    wall_s: float

    @property
    def cpu_per_doc(self) -> float:
        return self.cpu_s / self.count

    @property
    def wall_per_doc(self) -> float:
        return self.wall_s / self.count


def measure(name: str, count: int, render: Callable[[], bytes]) -> tuple[Row, bytes]:
    first = render()  # warm-up, not counted
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        pdf = render()
        if pdf != first:
            raise SystemExit(f"{name}: the PDF bytes changed between renders")
    return Row(name, count, time.process_time() - cpu, time.perf_counter() - wall), first


def before_html_to_pdf(html: str) -> bytes:
    """html_to_pdf as it was before the render CPU work: a new FontConfiguration per render
    and no font subset cache (call it with the cache disabled)."""
    from weasyprint import HTML

    pdf = HTML(string=html, url_fetcher=_no_fetching()).write_pdf()
    assert pdf is not None
    return pdf


def document_html() -> dict[str, str]:
    """The HTML of each document in each language, as the renders produce it."""
    report, agreement = report_data(), agreement_data()
    html = {}
    for language in LANGUAGES:
        html[f"report {language}"] = render_html(report, language)
        html[f"agreement {language}"] = render_agreement_html(agreement, language)
        agreement_pdf = render_agreement(agreement, language).pdf
        html[f"evidence {language}"] = render_evidence_page(evidence(language, agreement_pdf))[0]
    return html


NAME_CHARACTERS = ("华东明强伟芳娜秀英敏静丽勇军杰涛超红霞平刚桂兰金"
                   "贸易科技电子五金制品有限公司宁波苏州杭州")


def varied_reports(count: int) -> list[str]:
    """zh-CN reports whose customers have other names each time (as in production, where
    every report names other people and customers): glyph sets that do not repeat."""
    rng = random.Random(10)
    pages = []
    for i in range(count + 1):
        customers = [c.model_copy(update={"name": "".join(rng.sample(NAME_CHARACTERS, 8))})
                     for c in CUSTOMERS]
        pages.append(render_html(report_data(customers=customers, request_id=1000 + i), "zh-CN"))
    return pages


def measure_varied(count: int, to_pdf: Callable[[str], bytes]) -> Row:
    pages = varied_reports(count)
    to_pdf(pages[0])  # warm-up, not counted
    cpu, wall = time.process_time(), time.perf_counter()
    for page in pages[1:]:
        to_pdf(page)
    return Row("report zh, new names", count, time.process_time() - cpu,
               time.perf_counter() - wall)


def documents(count: int, html: dict[str, str],
              to_pdf: Callable[[str], bytes]) -> tuple[list[Row], dict[str, bytes]]:
    rows, pdfs = [], {}
    for name, page in html.items():
        row, pdfs[name] = measure(name, count, partial(to_pdf, page))
        rows.append(row)
    return rows, pdfs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20, help="renders per document and language")
    args = parser.parse_args()
    if not font_subset_cache.install():
        raise SystemExit("the font subset cache could not be installed (see debug log)")

    html = document_html()
    with font_subset_cache.disabled():
        floor, _ = measure("floor: 1 CJK line", args.count,
                           lambda: before_html_to_pdf(FLOOR_HTML))
        before, before_pdfs = documents(args.count, html, before_html_to_pdf)
        before_varied = measure_varied(args.count, before_html_to_pdf)
    font_subset_cache.CACHE.clear()
    after, after_pdfs = documents(args.count, html, html_to_pdf)
    stats = font_subset_cache.CACHE.stats()
    after_varied = measure_varied(args.count, html_to_pdf)
    if after_pdfs != before_pdfs:
        raise SystemExit("the PDFs differ before and after")

    print(f"{args.count} renders each after one warm-up; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'document':<20} {'cpu ms/doc':>10} {'wall ms/doc':>11} {'x floor':>8}   "
          f"{'after cpu':>10} {'wall':>7} {'x floor':>8} {'cpu saved':>9}")
    print("-" * 92)
    print(f"{floor.name:<20} {floor.cpu_per_doc * 1000:>10.1f} {floor.wall_per_doc * 1000:>11.1f}"
          f" {1:>8.2f}")
    for old, new in zip([*before, before_varied], [*after, after_varied], strict=True):
        print(f"{old.name:<20} {old.cpu_per_doc * 1000:>10.1f} "
              f"{old.wall_per_doc * 1000:>11.1f} {old.cpu_per_doc / floor.cpu_per_doc:>8.2f}"
              f"   {new.cpu_per_doc * 1000:>10.1f} {new.wall_per_doc * 1000:>7.1f} "
              f"{new.cpu_per_doc / floor.cpu_per_doc:>8.2f} "
              f"{1 - new.cpu_per_doc / old.cpu_per_doc:>8.0%}")
    total_before = sum(r.cpu_s for r in before)
    total_after = sum(r.cpu_s for r in after)
    print(f"all documents: {total_before:.2f} -> {total_after:.2f} CPU s "
          f"({1 - total_after / total_before:.0%} less); PDFs byte-identical before and after; "
          f"subset cache {stats.entries} entries, {stats.bytes / 1e6:.1f} MB, "
          f"{stats.hits} hits, {stats.misses} misses, {stats.stream_hits} compressed streams "
          f"reused; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
