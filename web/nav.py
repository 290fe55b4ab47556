"""The header's navigation: one entry per journey, shown to the roles that may use it.

To add a journey's entry, append a NavItem here: its label marked with N_ (translated when
rendered), its path, and the action whose permission decides who sees it (the same action the
page route declares, so nobody sees a link that answers 403).
"""

from __future__ import annotations

from dataclasses import dataclass

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


NAV: list[NavItem] = [
    NavItem(N_("Customers"), "/app/customers", Action.CUSTOMERS_READ),
    NavItem(N_("Requests"), "/app/requests", Action.REQUEST_READ),
]


def nav_items(roles: frozenset[str], path: str) -> list[dict[str, object]]:
    held = {Role(r) for r in roles if r in Role._value2member_map_}
    items = []
    for item in NAV:
        if not held or not permitted(held, item.action):
            continue
        prefix = item.prefix or item.href
        items.append({"label": item.label, "href": item.href,
                      "current": path == prefix or path.startswith(prefix + "/")})
    return items
