"""Rendering pages: one Jinja2 environment per language, with Babel's catalog installed, the
formatting filters bound to that language, and the context every page gets.

    return render(request, "requests/list.html", {"page": page}, status=200)

Every template extends base.html (header, navigation by role, language switch, footer) or is
a fragment (a name starting with "_") that htmx swaps into a page.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from functools import cache, partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_timedelta
from babel.numbers import format_decimal
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from api.sessions import CSRF_COOKIE, csrf_token
from documents.formatting import money, percent_bp, timezone_name
from settings import Settings
from web import labels
from web.deps import CSRF_FIELD, PageUser
from web.i18n import (
    HTML_LANG,
    LANG_COOKIE,
    LANG_PARAM,
    LOCALE_NAMES,
    LOCALES,
    gettext,
    normalize,
    pick_locale,
    translations,
)
from web.nav import nav_items
from web.static_files import static_url

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600


def _yuan_compact(fen: int, locale: str) -> str:
    """'12.3万' / '123.4k': short chart labels, never a figure of record."""
    yuan = fen / 100
    size = abs(yuan)
    if locale == "zh_CN":
        if size >= 100_000_000:
            return f"¥{yuan / 100_000_000:.1f}亿"
        if size >= 10_000:
            return f"¥{yuan / 10_000:.1f}万"
        return f"¥{yuan:.0f}"
    if size >= 1_000_000:
        return f"¥{yuan / 1_000_000:.1f}M"
    if size >= 1_000:
        return f"¥{yuan / 1_000:.1f}k"
    return f"¥{yuan:.0f}"


def _local(value: datetime, tz: str) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(ZoneInfo(tz))


def _datetime(value: datetime | None, locale: str, tz: str) -> str:
    if value is None:
        return "—"
    pattern = "y年M月d日 HH:mm" if locale == "zh_CN" else "d MMM y, HH:mm"
    return format_datetime(_local(value, tz), pattern, locale=locale)


def _date(value: datetime | date | None, locale: str, tz: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        value = _local(value, tz).date()
    return format_date(value, "medium", locale=locale)


def _duration(value: timedelta | float | None, locale: str) -> str:
    """'5 分钟' / '5 minutes' (Babel's unit names, rounded to the largest unit)."""
    if value is None:
        return "—"
    if not isinstance(value, timedelta):
        value = timedelta(seconds=float(value))
    return format_timedelta(value, threshold=1.0, locale=locale)


def _number(value: float | int, locale: str) -> str:
    return format_decimal(value, locale=locale)


def _iso(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@cache
def environment(locale: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(
        money=money,
        money_compact=partial(_yuan_compact, locale=locale),
        percent_bp=percent_bp,
        number=partial(_number, locale=locale),
        duration=partial(_duration, locale=locale),
        iso=_iso,
    )
    env.globals.update(labels=labels.Labels(locale), static_url=static_url)
    return env


def current_locale(request: Request) -> str:
    cached = getattr(request.state, "locale", None)
    if cached:
        return str(cached)
    user: PageUser | None = getattr(request.state, "page_user", None)
    locale = pick_locale(query=request.query_params.get(LANG_PARAM),
                         cookie=request.cookies.get(LANG_COOKIE),
                         employee_locale=user.locale if user else None)
    request.state.locale = locale
    return locale


def t(request: Request, message: str, **values: object) -> str:
    """`message` in the request's language (extracted by `make i18n`: keyword t, 2nd arg)."""
    return gettext(current_locale(request), message, **values)


def page_csrf_token(request: Request, settings: Settings) -> str:
    actor = getattr(request.state, "actor", None)
    if actor is not None and actor.session_id:
        return csrf_token(actor.session_id, settings)
    return request.cookies.get(CSRF_COOKIE, "")


def _lang_links(request: Request, locale: str) -> list[dict[str, Any]]:
    links = []
    for other in LOCALES:
        params = dict(request.query_params)
        params[LANG_PARAM] = other
        query = urlencode(params)
        links.append({"locale": other, "name": LOCALE_NAMES[other], "lang": HTML_LANG[other],
                      "href": f"{request.url.path}?{query}" if request.method == "GET"
                      else f"{request.url.path}?{LANG_PARAM}={other}",
                      "current": other == locale})
    return links


def render(request: Request, template: str, context: Mapping[str, Any] | None = None, *,
           status: int = 200, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    locale = current_locale(request)
    env = environment(locale)
    user: PageUser | None = getattr(request.state, "page_user", None)
    token = page_csrf_token(request, settings)
    tz = settings.org_timezone
    env_ctx: dict[str, Any] = {
        "request": request,
        "locale": locale,
        "html_lang": HTML_LANG[locale],
        "user": user,
        "nav": nav_items(user.roles if user else frozenset(), request.url.path,
                         getattr(request.state, "nav_counts", None)),
        "lang_links": _lang_links(request, locale),
        "csrf_token": token,
        "csrf_field": lambda: Markup(
            f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(token)}">'),
        "datetime": partial(_datetime, locale=locale, tz=tz),
        "date": partial(_date, locale=locale, tz=tz),
        "now": datetime.now(UTC),
        "timezone": timezone_name(tz, HTML_LANG[locale]),
    }
    env_ctx.update(context or {})
    body = env.get_template(template).render(env_ctx)
    response = HTMLResponse(body, status_code=status, headers=dict(headers or {}))
    chosen = normalize(request.query_params.get(LANG_PARAM))
    if chosen and chosen != request.cookies.get(LANG_COOKIE):
        response.set_cookie(LANG_COOKIE, chosen, max_age=LANG_COOKIE_MAX_AGE, path="/",
                            samesite="lax", httponly=False)
    response.headers.setdefault("Content-Language", HTML_LANG[locale])
    response.headers.setdefault("Vary", "Cookie, HX-Request")
    return response
