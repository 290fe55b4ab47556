"""The font subset cache (documents/font_subset_cache.py) and the shared FontConfiguration:
the PDFs are byte-identical with the cache cold, warm and off; a new glyph set gets a subset
of its own that draws the new characters; the LRU keeps its bounds; an unexpected WeasyPrint
is left alone."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from typing import Any

import pytest
from fontTools.pens.boundsPen import BoundsPen
from fontTools.ttLib import TTFont
from pypdf import PdfReader

from documents import ReportCustomer, font_subset_cache, render_report
from documents.agreement import render_agreement
from documents.font_subset_cache import CACHE, SubsetCache
from tests.report_fixtures import CUSTOMERS, agreement_data, report_data
from tests.test_report import pdf_text, squash

RARE = "鑫淼犇"  # in Noto Sans CJK SC, and in none of the fixtures' text


@pytest.fixture(autouse=True)
def cold_cache() -> Iterator[None]:
    assert font_subset_cache.install(), "WeasyPrint 70's Font should be patchable"
    CACHE.clear()
    yield
    CACHE.clear()


def embedded_fonts(pdf: bytes) -> dict[str, bytes]:
    """The font programs the PDF embeds, by /BaseFont name."""
    fonts: dict[str, bytes] = {}
    for page in PdfReader(io.BytesIO(pdf)).pages:
        resources: Any = page["/Resources"].get_object()
        for ref in resources.get("/Font", {}).values():
            font = ref.get_object()
            for descendant in font.get("/DescendantFonts", [font]):
                descriptor = descendant.get_object()["/FontDescriptor"].get_object()
                for key in ("/FontFile2", "/FontFile3"):
                    if key in descriptor:
                        fonts[str(font["/BaseFont"])] = descriptor[key].get_object().get_data()
    return fonts


def draws(font_program: bytes, char: str) -> bool:
    """Whether the font maps `char` to a glyph with an outline (not an empty box)."""
    font = TTFont(io.BytesIO(font_program))
    glyph = font.getBestCmap().get(ord(char))
    if glyph is None:
        return False
    pen = BoundsPen(font.getGlyphSet())
    font.getGlyphSet()[glyph].draw(pen)
    return pen.bounds is not None


def render_all() -> dict[str, bytes]:
    report, agreement = report_data(), agreement_data()
    return {
        **{f"report {lang}": render_report(report, lang).pdf for lang in ("zh-CN", "en")},
        **{f"agreement {lang}": render_agreement(agreement, lang).pdf
           for lang in ("zh-CN", "en")},
    }


def test_pdfs_are_byte_identical_with_the_cache_cold_warm_and_off():
    cold = render_all()
    after_cold = CACHE.stats()
    assert after_cold.misses > 0 and after_cold.entries > 0
    warm = render_all()
    after_warm = CACHE.stats()
    assert after_warm.hits - after_cold.hits >= len(warm), "the warm renders hit the cache"
    assert after_warm.misses == after_cold.misses and after_warm.entries == after_cold.entries
    assert after_warm.stream_hits >= len(warm), "and wrote the kept compressed font streams"
    with font_subset_cache.disabled():
        off = render_all()
    assert CACHE.stats().hits == after_warm.hits, "disabled means not consulted"
    assert CACHE.stats().stream_hits == after_warm.stream_hits
    for name in cold:
        digests = {hashlib.sha256(pdf).hexdigest() for pdf in (cold[name], warm[name], off[name])}
        assert len(digests) == 1, name
        assert cold[name] == warm[name] == off[name]


def test_a_new_glyph_set_gets_its_own_subset_that_draws_the_new_characters():
    plain = render_report(report_data(), "zh-CN").pdf
    entries = CACHE.stats().entries
    rare_customer = ReportCustomer(id=97, code="X-3", name=f"{RARE}贸易",
                                   history=CUSTOMERS[0].history)
    rare_data = report_data(customers=[rare_customer])
    rare = render_report(rare_data, "zh-CN").pdf  # the cache is warm with the plain glyph sets
    assert CACHE.stats().entries > entries, "new glyph sets are new keys"
    assert squash(RARE) in pdf_text(rare) and RARE not in pdf_text(plain)
    plain_fonts, rare_fonts = embedded_fonts(plain), embedded_fonts(rare)
    assert plain_fonts.keys() == rare_fonts.keys()
    for name, program in rare_fonts.items():
        assert program != plain_fonts[name], name
        assert all(draws(program, char) for char in RARE), name
        assert not any(draws(plain_fonts[name], char) for char in RARE), name
    with font_subset_cache.disabled():
        assert render_report(rare_data, "zh-CN").pdf == rare


def test_chinese_and_english_documents_are_both_right_from_one_warm_cache():
    texts = {}
    for _ in range(2):  # the second round is all hits
        pdfs = render_all()
        texts = {name: pdf_text(pdf) for name, pdf in pdfs.items()}
    assert "申诉截止" in texts["report zh-CN"] and "Appealdeadline" in texts["report en"]
    for name, text in texts.items():  # Chinese names in both languages
        assert "李明" in text and "赵强" in text, name
    zh_fonts, en_fonts = embedded_fonts(pdfs["report zh-CN"]), embedded_fonts(pdfs["report en"])
    assert any(draws(program, "诉") for program in zh_fonts.values())
    assert not any(draws(program, "诉") for program in en_fonts.values())  # not in its text
    assert any(draws(program, "D") for program in en_fonts.values())


def test_the_lru_keeps_its_entry_and_byte_bounds():
    cache = SubsetCache(max_entries=3, max_bytes=10)
    for key in "abc":
        cache.put(key, b"x")
    assert cache.get("a") == b"x"  # now the most recently used
    cache.put("d", b"x")
    assert cache.get("b") is None and cache.get("a") == b"x"
    cache.put("e", b"123456789")  # 9 bytes: the oldest go until the total fits in 10
    stats = cache.stats()
    assert stats.entries == 2 and stats.bytes == 10
    assert cache.get("c") is None and cache.get("d") is None  # "a" was read after them
    assert cache.get("a") == b"x" and cache.get("e") == b"123456789"
    cache.put("huge", b"x" * 11)  # larger than the whole cache: not kept
    assert cache.get("huge") is None and cache.get("e") is not None


def test_compressed_streams_belong_to_the_very_subset_object_and_count_in_the_bound():
    cache = SubsetCache(max_entries=3, max_bytes=10)
    content = b"font"
    cache.put("a", content)
    cache.set_compressed(content, b"zz")
    assert cache.compressed(content) == b"zz" and cache.stats().bytes == 6
    assert cache.compressed(bytes(bytearray(b"font"))) is None  # equal bytes, not the subset
    cache.put("b", b"12345")  # 11 bytes in all: "a" and its stream go
    assert cache.compressed(content) is None and cache.stats().bytes == 5


def test_a_weasyprint_without_the_expected_method_is_left_alone():
    class OtherFont:
        def _harfbuzz_subset(self, glyphs, hinting, extra):  # another signature
            return None

    class NoSubset:
        pass

    assert "takes" in (font_subset_cache._patchable(OtherFont) or "")
    assert font_subset_cache._patchable(NoSubset) == "no Font._harfbuzz_subset"
    from weasyprint.pdf.fonts import Font

    assert font_subset_cache.install()  # again: still one wrapper around WeasyPrint's method
    wrapped = Font._harfbuzz_subset.__wrapped__
    assert getattr(Font._harfbuzz_subset, "baton_subset_cache", False)
    assert not getattr(wrapped, "baton_subset_cache", False)
