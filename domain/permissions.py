"""The permission table: which roles may attempt which action.

One table, read by the API (`api.deps.permit`), the docs (docs/PERMISSIONS.md is generated
from it: `python -m domain.permissions`) and the role x endpoint test. A role here only opens
the door; the data scope (`api.services.scope`) then narrows which records the caller sees, and
the workflow's validators decide whether this person may act on this request right now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum

from domain.stages import Role


class Action(StrEnum):
    # accounts and sessions
    LOGIN = "auth.login"  # public
    REFRESH = "auth.refresh"  # public: a refresh token is the credential
    LOGOUT = "auth.logout"
    HEALTH = "health.read"  # public
    METRICS_READ = "metrics.read"  # public unless BATON_METRICS_TOKEN is set
    OWN_PROFILE = "me.read"
    OWN_PASSWORD = "me.password"
    OWN_PASSKEYS = "me.passkeys"
    OWN_DATA_EXPORT = "me.export"
    OWN_DELEGATIONS = "me.delegations"
    ACCOUNTS_MANAGE = "accounts.manage"
    EMPLOYEE_OFFBOARD = "employees.offboard"
    EMPLOYEES_READ = "employees.read"
    CUSTOMERS_READ = "customers.read"
    # reassignment requests
    REQUEST_READ = "requests.read"
    REQUEST_SUBMIT = "requests.submit"
    REQUEST_DECIDE = "requests.approve-or-reject"
    REQUEST_WITHDRAW = "requests.withdraw"
    REQUEST_CANCEL = "requests.cancel"
    REQUEST_REASSIGN_APPROVAL = "requests.reassign-approval"
    REQUEST_APPEAL = "requests.appeal"
    REQUEST_RESOLVE_APPEAL = "requests.resolve-appeal"
    REQUEST_SIGN = "requests.sign-or-decline"
    REQUEST_AUDIT_READ = "requests.audit"
    DOCUMENT_READ = "documents.read"  # personal report and agreement
    EVIDENCE_EXPORT = "evidence.export"
    # bulk reorganisation (many requests from one file or rule)
    REORGANISATION_RUN = "reorganisations.run"
    REORGANISATION_READ = "reorganisations.read"
    NOTIFICATION_DELIVERIES_READ = "notifications.deliveries"
    # commission
    ORDERS_WRITE = "orders.write"
    PLANS_MANAGE = "plans.manage"
    PLANS_READ = "plans.read"
    STATEMENTS_READ = "statements.read"
    STATEMENTS_EXPORT = "statements.export"
    SETTLEMENT_RUN = "settlements.run"
    SETTLEMENT_READ = "settlements.read"
    VALUATION_RUN = "valuations.run"
    VALUATION_READ = "valuations.read"
    # post-reassignment monitoring
    SATISFACTION_WRITE = "satisfaction.write"
    OUTCOMES_READ = "outcomes.read"
    # published rules (Labour Contract Law art. 4)
    POLICY_READ = "policies.read"
    POLICY_ACKNOWLEDGE = "policies.acknowledge"
    POLICY_MANAGE = "policies.manage"
    # audit and the Temporal UI's codec server
    AUDIT_VERIFY = "audit.verify"
    AUDIT_READ = "audit.read"
    PAYLOAD_DECODE = "codec.decode"
    MONITOR_STUCK = "monitor.stuck"


EVERYONE = frozenset(Role)
PUBLIC: frozenset[Role] = frozenset()  # no login needed; see PUBLIC_ACTIONS
PUBLIC_ACTIONS = frozenset({Action.LOGIN, Action.REFRESH, Action.HEALTH, Action.METRICS_READ})

_S, _M, _D = Role.SALES, Role.MANAGER, Role.DIRECTOR
_HR, _L, _F, _A = Role.HR, Role.LEGAL, Role.FINANCE, Role.ADMIN
APPROVERS = frozenset({_M, _D, _HR, _L})


def _roles(*roles: Role) -> frozenset[Role]:
    return frozenset(roles)


PERMISSIONS: Mapping[Action, frozenset[Role]] = {
    Action.LOGIN: PUBLIC,
    Action.REFRESH: PUBLIC,
    Action.HEALTH: PUBLIC,
    Action.METRICS_READ: PUBLIC,
    Action.LOGOUT: EVERYONE,
    Action.OWN_PROFILE: EVERYONE,
    Action.OWN_PASSWORD: EVERYONE,
    Action.OWN_PASSKEYS: EVERYONE,
    Action.OWN_DATA_EXPORT: EVERYONE,
    Action.OWN_DELEGATIONS: APPROVERS,
    Action.ACCOUNTS_MANAGE: _roles(_A),
    Action.EMPLOYEE_OFFBOARD: _roles(_HR),
    Action.EMPLOYEES_READ: _roles(_M, _D, _HR, _L, _F, _A),
    Action.CUSTOMERS_READ: _roles(_S, _M, _D, _HR, _L, _F),
    Action.REQUEST_READ: _roles(_S, _M, _D, _HR, _L, _F),
    Action.REQUEST_SUBMIT: _roles(_M, _D, _HR),
    Action.REQUEST_DECIDE: APPROVERS,
    Action.REQUEST_WITHDRAW: _roles(_M, _D, _HR),
    Action.REQUEST_CANCEL: _roles(_HR),
    Action.REQUEST_REASSIGN_APPROVAL: _roles(_HR),
    Action.REQUEST_APPEAL: _roles(_S),
    Action.REQUEST_RESOLVE_APPEAL: _roles(_HR),
    Action.REQUEST_SIGN: _roles(_S),
    Action.REQUEST_AUDIT_READ: _roles(_S, _M, _D, _HR, _L),
    Action.DOCUMENT_READ: _roles(_S, _M, _D, _HR, _L),
    Action.EVIDENCE_EXPORT: _roles(_HR, _L),
    Action.REORGANISATION_RUN: _roles(_HR, _A),
    Action.REORGANISATION_READ: _roles(_HR, _A),
    Action.NOTIFICATION_DELIVERIES_READ: _roles(_HR, _A),
    Action.ORDERS_WRITE: _roles(_HR, _F, _A),
    Action.PLANS_MANAGE: _roles(_HR, _A),
    Action.PLANS_READ: EVERYONE,
    Action.STATEMENTS_READ: _roles(_S, _M, _D, _HR, _F),
    Action.STATEMENTS_EXPORT: _roles(_S, _M, _D, _HR, _F),
    Action.SETTLEMENT_RUN: _roles(_HR, _F),
    Action.SETTLEMENT_READ: _roles(_HR, _F, _A),
    Action.VALUATION_RUN: _roles(_HR),
    Action.VALUATION_READ: _roles(_M, _D, _HR, _F),
    Action.SATISFACTION_WRITE: _roles(_HR, _A),
    Action.OUTCOMES_READ: _roles(_M, _D, _HR),
    Action.POLICY_READ: EVERYONE,
    Action.POLICY_ACKNOWLEDGE: EVERYONE,
    Action.POLICY_MANAGE: _roles(_HR),
    Action.AUDIT_VERIFY: _roles(_HR, _L, _A),
    Action.AUDIT_READ: _roles(_HR, _L),
    Action.PAYLOAD_DECODE: _roles(_HR, _A),
    # the Temporal UI's users (PAYLOAD_DECODE); admin sees ids only, HR names in scope
    Action.MONITOR_STUCK: _roles(_HR, _A),
}

ACTION_SUMMARY: Mapping[Action, str] = {
    Action.LOGIN: "log in with a password",
    Action.REFRESH: "exchange a refresh token for a new access token",
    Action.HEALTH: "check that the service is up",
    Action.METRICS_READ: "scrape Prometheus metrics (a bearer token if BATON_METRICS_TOKEN is set)",
    Action.LOGOUT: "log out (revoke this session's refresh token)",
    Action.OWN_PROFILE: "read one's own profile",
    Action.OWN_PASSWORD: "change one's own password",
    Action.OWN_PASSKEYS: "register and remove one's own passkeys",
    Action.OWN_DATA_EXPORT: "export one's own personal data (PIPL art. 45)",
    Action.OWN_DELEGATIONS: "delegate one's approvals to a colleague for a date range",
    Action.ACCOUNTS_MANAGE: "create accounts, set roles, lock and unlock",
    Action.EMPLOYEE_OFFBOARD: "record that an employee left (their logins end)",
    Action.EMPLOYEES_READ: "list employees (contact fields masked unless HR or admin)",
    Action.CUSTOMERS_READ: "list customers in scope (contacts masked unless sales work)",
    Action.REQUEST_READ: "list and read reassignment requests in scope",
    Action.REQUEST_SUBMIT: "preview and submit a reassignment request",
    Action.REQUEST_DECIDE: "approve or reject a level one is (or stands in for) the approver of",
    Action.REQUEST_WITHDRAW: "withdraw one's own request",
    Action.REQUEST_CANCEL: "cancel a request before it takes effect",
    Action.REQUEST_REASSIGN_APPROVAL: "hand a pending approval level to another approver",
    Action.REQUEST_APPEAL: "appeal a request about oneself",
    Action.REQUEST_RESOLVE_APPEAL: "uphold, amend or cancel after an appeal",
    Action.REQUEST_SIGN: "sign or decline the agreement about oneself",
    Action.REQUEST_AUDIT_READ: "read the audit trail of a request in scope",
    Action.DOCUMENT_READ: "read the personal report and the agreement of a request in scope",
    Action.EVIDENCE_EXPORT: "download a case's evidence bundle",
    Action.REORGANISATION_RUN: "dry-run, start and cancel a bulk reorganisation",
    Action.REORGANISATION_READ: "read bulk reorganisations and their progress",
    Action.NOTIFICATION_DELIVERIES_READ: "list e-mail and group-robot deliveries and failures",
    Action.ORDERS_WRITE: "post and import orders",
    Action.PLANS_MANAGE: "create commission plans",
    Action.PLANS_READ: "read commission plans (one's own, or all for HR, finance, admin)",
    Action.STATEMENTS_READ: "read commission statements in scope",
    Action.STATEMENTS_EXPORT: "export a month's statements as CSV (payroll; in scope)",
    Action.SETTLEMENT_RUN: "run a monthly settlement",
    Action.SETTLEMENT_READ: "read settlement runs",
    Action.VALUATION_RUN: "refresh customer valuations",
    Action.VALUATION_READ: "read valuation runs",
    Action.SATISFACTION_WRITE: "post customer satisfaction scores (CSAT, NPS)",
    Action.OUTCOMES_READ: "read and export the post-reassignment report (in scope)",
    Action.POLICY_READ: "read published reassignment policies",
    Action.POLICY_ACKNOWLEDGE: "acknowledge a published policy",
    Action.POLICY_MANAGE: "draft, publish and see acknowledgements of policies",
    Action.AUDIT_VERIFY: "verify the audit hash chain",
    Action.AUDIT_READ: "search and export audit events",
    Action.PAYLOAD_DECODE: "decode Temporal payloads in the Temporal UI (codec server)",
    Action.MONITOR_STUCK: "list overdue cases and failing workflows (Temporal visibility)",
}


def permitted(roles: Iterable[Role], action: Action) -> bool:
    allowed = PERMISSIONS[action]
    if action in PUBLIC_ACTIONS:
        return True
    return bool(allowed.intersection(roles))


def permission_table_markdown() -> str:
    """The table for docs/PERMISSIONS.md: one row per action, one column per role."""
    roles = list(Role)
    head = "| action | what | " + " | ".join(r.value for r in roles) + " |"
    rule = "|---|---|" + "|".join(":-:" for _ in roles) + "|"
    rows = []
    for action in Action:
        if action in PUBLIC_ACTIONS:
            cells = ["public"] * len(roles)
        else:
            cells = ["yes" if r in PERMISSIONS[action] else "-" for r in roles]
        rows.append(f"| `{action.value}` | {ACTION_SUMMARY[action]} | " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *rows]) + "\n"


if __name__ == "__main__":
    print(permission_table_markdown(), end="")
