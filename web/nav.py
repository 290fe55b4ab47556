"""The header's navigation: one entry per journey, shown to the roles that may use it.

To add a journey's entry, append a NavItem here: its label marked with N_ (translated when
rendered), its path, and the action whose permission decides who sees it (the same action the
page route declares, so nobody sees a link that answers 403).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from domain.permissions import Action, permitted
from domain.stages import Role
from web.i18n import N_


@dataclass(frozen=True)
class NavItem:
    label: str  # marked with N_, translated by the template
    href: str
    action: Action
    # the item is "current" on this path and below it (default: href)
    prefix: str | None = None
    # how many things wait there for this person, shown as a badge: (session, actor,
    # settings) -> int, counted by web.deps when a whole page is drawn (never for a fragment)
    count: Callable[[Any, Any, Any], int] | None = None


def _approvals_waiting(session: Any, actor: Any, settings: Any) -> int:
    from web.routes.approvals import waiting_count  # late: the route module imports render

    return waiting_count(session, actor, settings)


NAV: list[NavItem] = [
    NavItem(N_("Customers"), "/app/customers", Action.CUSTOMERS_READ),
    NavItem(N_("Requests"), "/app/requests", Action.REQUEST_READ),
    NavItem(N_("My cases"), "/app/me", Action.REQUEST_SIGN),
    NavItem(N_("Statements"), "/app/statements", Action.STATEMENTS_READ),
    NavItem(N_("Approvals"), "/app/approvals", Action.REQUEST_DECIDE, count=_approvals_waiting),
    NavItem(N_("HR"), "/app/hr", Action.REQUEST_RESOLVE_APPEAL),
    NavItem(N_("Settlement"), "/app/settlements", Action.SETTLEMENT_RUN),
    NavItem(N_("Reorganisation"), "/app/reorganisations", Action.REORGANISATION_RUN),
]


def nav_counts(session: Any, actor: Any, settings: Any) -> dict[str, int]:
    """The badges of the items this person sees, by href (one query per counted item)."""
    return {item.href: item.count(session, actor, settings) for item in NAV
            if item.count is not None and permitted(actor.roles, item.action)}


def nav_items(roles: frozenset[str], path: str,
              counts: Mapping[str, int] | None = None) -> list[dict[str, object]]:
    held = {Role(r) for r in roles if r in Role._value2member_map_}
    items = []
    for item in NAV:
        if not held or not permitted(held, item.action):
            continue
        prefix = item.prefix or item.href
        items.append({"label": item.label, "href": item.href,
                      "current": path == prefix or path.startswith(prefix + "/"),
                      "count": (counts or {}).get(item.href, 0)})
    return items
