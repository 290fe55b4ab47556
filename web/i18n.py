"""The pages' languages: Simplified Chinese (the default) and English, from Babel catalogs.

Catalogs live in web/translations/<locale>/LC_MESSAGES/messages.po (compiled to .mo, both
committed); `make i18n` extracts the strings from web/ (babel.cfg), updates both catalogs and
compiles them. tests/web/test_i18n.py fails on an empty or fuzzy translation, so neither
language can fall behind.

Which language a page uses: the `lang` query parameter (the language switch's links; it is
then remembered in the `baton_lang` cookie), else that cookie, else the logged-in employee's
own `locale`, else Simplified Chinese.

In Python, wrap a user-visible string in `gettext(locale, "...")` when the locale is at hand,
or mark it with `N_("...")` where it is defined (a module constant, a label table) and
translate it at render time with `{{ _(label) }}` in the template.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from babel.support import NullTranslations, Translations

TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"
LOCALES = ("zh_CN", "en")  # the order of the language switch
DEFAULT_LOCALE = "zh_CN"
LANG_COOKIE = "baton_lang"
LANG_PARAM = "lang"
# how each locale names itself in the switch (never translated)
LOCALE_NAMES = {"zh_CN": "简体中文", "en": "English"}
# <html lang>, and the spelling that Employee.locale and documents/ use
HTML_LANG = {"zh_CN": "zh-CN", "en": "en"}


def N_(message: str) -> str:  # noqa: N802  (the conventional name of the no-op marker)
    """Mark a string for extraction without translating it here."""
    return message


def normalize(value: str | None) -> str | None:
    """'zh-CN', 'zh_cn', 'zh' -> 'zh_CN'; 'en-US' -> 'en'; anything else -> None."""
    if not value:
        return None
    key = value.strip().replace("-", "_").lower()
    if key.startswith("zh"):
        return "zh_CN"
    if key.startswith("en"):
        return "en"
    return None


@cache
def translations(locale: str) -> NullTranslations:
    """The compiled catalog of a supported locale (cached for the process)."""
    if locale not in LOCALES:
        raise ValueError(f"unsupported locale {locale!r}")
    return Translations.load(str(TRANSLATIONS_DIR), [locale], domain="messages")


def gettext(locale: str, message: str, **values: object) -> str:
    text = translations(locale).gettext(message)
    return text % values if values else text


def ngettext(locale: str, singular: str, plural: str, n: int, **values: object) -> str:
    text = translations(locale).ngettext(singular, plural, n)
    return text % {"num": n, **values}


def pick_locale(*, query: str | None, cookie: str | None, employee_locale: str | None) -> str:
    return (normalize(query) or normalize(cookie) or normalize(employee_locale)
            or DEFAULT_LOCALE)
