"""Both catalogs are complete and current: every string the pages show is in them, translated
(no empty or fuzzy msgstr), with the same placeholders, and compiled."""

from __future__ import annotations

from io import BytesIO

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from tests.conftest import ROOT
from web.i18n import LOCALES, TRANSLATIONS_DIR
from web.i18n_catalogs import load, problems

# the same as `make i18n` (babel.cfg and the Makefile's keywords)
METHOD_MAP = [("web/**.py", "python"), ("web/templates/**.html", "jinja2")]
OPTIONS = {"web/templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "t": (2,)}


def _source_ids() -> set[str]:
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), METHOD_MAP, OPTIONS, KEYWORDS):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


@pytest.mark.parametrize("locale", LOCALES)
def test_no_empty_or_fuzzy_translation(locale: str) -> None:
    assert problems(locale) == []


@pytest.mark.parametrize("locale", LOCALES)
def test_placeholders_match(locale: str) -> None:
    catalog = load(locale)
    errors = [(m.id, [str(e) for e in errs]) for m, errs in catalog.check()]
    assert errors == []


def test_every_string_in_the_source_is_in_the_catalogs() -> None:
    """Run `make i18n` after adding or changing a page's text."""
    source = _source_ids()
    assert len(source) > 200
    with (TRANSLATIONS_DIR / "messages.pot").open("rb") as f:
        template = {m.id[0] if isinstance(m.id, tuple) else m.id for m in read_po(f) if m.id}
    assert source - template == set(), "not extracted: run `make i18n`"
    for locale in LOCALES:
        ids = {m.id[0] if isinstance(m.id, tuple) else m.id for m in load(locale) if m.id}
        assert source - ids == set(), f"missing in {locale}: run `make i18n`, translate"


def _key(value: object) -> object:
    return tuple(value) if isinstance(value, (list, tuple)) else value


@pytest.mark.parametrize("locale", LOCALES)
def test_the_compiled_catalog_matches_its_po(locale: str) -> None:
    catalog = load(locale)
    compiled_path = TRANSLATIONS_DIR / locale / "LC_MESSAGES" / "messages.mo"
    with compiled_path.open("rb") as f:
        compiled = {_key(m.id): _key(m.string) for m in read_mo(f) if m.id}
    expected = BytesIO()
    write_mo(expected, catalog)
    expected.seek(0)
    wanted = {_key(m.id): _key(m.string) for m in read_mo(expected) if m.id}
    assert compiled == wanted, "run `make i18n` (pybabel compile) and commit the .mo"


def test_chinese_is_really_chinese() -> None:
    """A quick look that the zh_CN catalog is not the English one copied."""
    catalog = load("zh_CN")
    same = [m.id for m in catalog if m.id and m.string == m.id
            and not str(m.id).startswith("{") and any(c.isalpha() for c in str(m.id))]
    assert same == []
