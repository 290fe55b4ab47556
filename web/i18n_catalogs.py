"""Catalog chores for `make i18n` and the completeness test.

    python -m web.i18n_catalogs fill-en   # English: each new msgstr is its msgid
    python -m web.i18n_catalogs check     # exit 1 listing empty or fuzzy entries

The English catalog is the source language, so filling it is mechanical; the Chinese one is
translated by a person (an empty or fuzzy msgstr fails tests/web/test_i18n.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

from web.i18n import LOCALES, TRANSLATIONS_DIR

SOURCE_LOCALE = "en"


def po_path(locale: str) -> Path:
    return TRANSLATIONS_DIR / locale / "LC_MESSAGES" / "messages.po"


def load(locale: str) -> Catalog:
    with po_path(locale).open("rb") as f:
        return read_po(f, locale=locale)


def save(catalog: Catalog, locale: str) -> None:
    with po_path(locale).open("wb") as f:
        write_po(f, catalog, sort_output=True, include_lineno=False)


def fill_source() -> int:
    """Copy msgid to msgstr in the English catalog wherever it is empty or fuzzy."""
    catalog = load(SOURCE_LOCALE)
    changed = 0
    for message in catalog:
        if not message.id:
            continue
        if message.fuzzy or not _complete(message.string):
            message.string = message.id
            message.flags.discard("fuzzy")
            changed += 1
    save(catalog, SOURCE_LOCALE)
    return changed


def _complete(value: object) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return bool(value) and all(isinstance(v, str) and v.strip() for v in value)  # type: ignore[union-attr]


def problems(locale: str) -> list[str]:
    """Entries of a catalog that a reader would see untranslated: empty or fuzzy."""
    found = []
    for message in load(locale):
        if not message.id:
            continue
        if message.fuzzy:
            found.append(f"{locale}: fuzzy: {message.id!r}")
        elif not _complete(message.string):
            found.append(f"{locale}: empty: {message.id!r}")
    return found


def main(argv: list[str]) -> int:
    if argv == ["fill-en"]:
        print(f"{SOURCE_LOCALE}: {fill_source()} entries filled from their msgid")
        return 0
    if argv == ["check"]:
        found = [p for locale in LOCALES for p in problems(locale)]
        print("\n".join(found) or "catalogs complete")
        return 1 if found else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
