"""Translated names for the codes the pages show: stages, reasons, roles, workflow events,
compensation kinds, policy violations and problem types.

Each table maps a code to a string marked with N_ (so `make i18n` extracts it); templates use
the `labels` global, e.g. `{{ labels.stage(request.stage) }}`, which translates at render time.
An unknown code falls back to the code itself, so a new stage shows up readable, never blank.
"""

from __future__ import annotations

from web.i18n import N_, gettext

STAGES = {
    "SUBMITTED": N_("Submitted"),
    "PENDING_APPROVAL": N_("Pending approval"),
    "SCHEDULED": N_("Scheduled for the leave date"),
    "COMMUNICATION": N_("Communication window"),
    "APPEAL_REVIEW": N_("Appeal under review"),
    "AWAITING_SIGNATURE": N_("Awaiting signature"),
    "EFFECTIVE": N_("Effective"),
    "PROTECTION": N_("Protection period"),
    "COMPLETED": N_("Completed"),
    "REJECTED": N_("Rejected"),
    "WITHDRAWN": N_("Withdrawn"),
    "CANCELLED": N_("Cancelled"),
    "DECLINED": N_("Declined by the salesperson"),
    "EXPIRED_NO_CONSENT": N_("Expired without consent"),
}

# the colour family of a stage's badge (static/css/app.css: .badge-<tone>)
STAGE_TONES = {
    "SUBMITTED": "neutral", "PENDING_APPROVAL": "wait", "SCHEDULED": "wait",
    "COMMUNICATION": "wait", "APPEAL_REVIEW": "warn", "AWAITING_SIGNATURE": "wait",
    "EFFECTIVE": "good", "PROTECTION": "good", "COMPLETED": "good", "REJECTED": "bad",
    "WITHDRAWN": "neutral", "CANCELLED": "neutral", "DECLINED": "bad",
    "EXPIRED_NO_CONSENT": "bad",
}

REASONS = {
    "TERRITORY_REALIGNMENT": N_("Territory realignment"),
    "PERFORMANCE": N_("Performance"),
    "WORKLOAD_BALANCING": N_("Workload balancing"),
    "CUSTOMER_REQUEST": N_("Customer's request"),
    "EMPLOYEE_DEPARTURE": N_("Salesperson is leaving"),
}

ROLES = {
    "sales": N_("Salesperson"),
    "manager": N_("Sales manager"),
    "director": N_("Director"),
    "hr": N_("HR"),
    "legal": N_("Legal"),
    "finance": N_("Finance"),
    "admin": N_("Administrator"),
}

EVENTS = {
    "REQUEST_SUBMITTED": N_("Request submitted"),
    "POLICY_VIOLATION": N_("Stopped by a policy check"),
    "APPROVAL_STARTED": N_("Approval started"),
    "APPROVAL_LEVEL_OPENED": N_("Approval level opened"),
    "APPROVAL_REMINDED": N_("Approver reminded"),
    "APPROVAL_ESCALATED": N_("Approval escalated"),
    "APPROVAL_REASSIGNED": N_("Approval handed to another approver"),
    "APPROVED": N_("Approved"),
    "REJECTED": N_("Rejected"),
    "WITHDRAWN": N_("Withdrawn"),
    "CANCELLED": N_("Cancelled"),
    "HANDOVER_SCHEDULED": N_("Handover scheduled"),
    "HANDOVER_COMPLETED": N_("Handover completed"),
    "COMMUNICATION_STARTED": N_("Communication window opened"),
    "APPEAL_OPENED": N_("Appeal filed"),
    "APPEAL_RESOLVED": N_("Appeal resolved"),
    "SIGNATURE_REQUESTED": N_("Signature requested"),
    "SIGNED": N_("Agreement signed"),
    "DECLINED": N_("Agreement declined"),
    "SIGNATURE_DEADLINE_PASSED": N_("Signature deadline passed"),
    "OWNERSHIP_TRANSFERRED": N_("Customers transferred"),
    "OWNERSHIP_CHANGED_ELSEWHERE": N_("Ownership changed elsewhere"),
    "PROTECTION_STARTED": N_("Protection period started"),
    "PROTECTION_ENDED": N_("Protection period ended"),
    "COMPLETED_WITHOUT_PROTECTION": N_("Completed without protection"),
}

LEVEL_STATUSES = {
    "WAITING": N_("Waiting"),
    "PENDING": N_("Pending"),
    "APPROVED": N_("Approved"),
    "REJECTED": N_("Rejected"),
}

COMPENSATION_KINDS = {
    "LUMP_SUM": N_("One-off payment"),
    "LONGER_PROTECTION": N_("Longer protection"),
    "HIGHER_SHARE": N_("Higher protection share"),
    "COMBINED": N_("Half payment and longer protection"),
}

VALUATION_METHODS = {
    "BG_NBD_GG": N_("Model (BG/NBD + Gamma-Gamma)"),
    "RUN_RATE": N_("Run rate"),
}

# policy violations (domain/policy.py check_request), by code
VIOLATIONS = {
    "REASON_NOT_ALLOWED": N_("The policy does not allow this reason."),
    "UNKNOWN_EMPLOYEE": N_("Choose a salesperson from the list."),
    "SAME_EMPLOYEE": N_("The receiving salesperson must differ from the current owner."),
    "RECEIVER_NOT_ACTIVE": N_("The receiving salesperson has left the company."),
    "RECEIVER_NOT_SALES": N_("The receiving employee is not a salesperson."),
    "OWNER_LEFT": N_("The current owner has left: use the reason “Salesperson is leaving”."),
    "NO_DEPARTURE": N_("This reason needs a leave date on the current owner (HR records it)."),
    "NO_CUSTOMERS": N_("Select at least one customer."),
    "DUPLICATE_CUSTOMER": N_("A customer is selected twice."),
    "UNKNOWN_CUSTOMER": N_("A selected customer no longer exists."),
    "NOT_OWNER": N_("A selected customer is no longer owned by this salesperson."),
    "IN_PROTECTION": N_("A selected customer is inside a protection period."),
    "OPEN_REQUEST": N_("A selected customer is already in an open request."),
    "COOLING_OFF": N_("A selected customer was reassigned too often recently (cooling-off)."),
}

# problem types (api/problems.py slugs) the pages explain in the reader's language
PROBLEMS = {
    "forbidden-role": N_("Your role does not allow this."),
    "out-of-scope": N_("This salesperson is outside your team."),
    "request-not-found": N_("There is no such request, or you may not see it."),
    "not-found": N_("There is no page at this address."),
    "csrf-token-missing": N_("The form has expired. Reload the page and try again."),
    "csrf-token-invalid": N_("The form has expired. Reload the page and try again."),
    "temporal-unavailable": N_("The workflow service is unavailable right now. Try again in "
                               "a moment."),
    "workflow-timeout": N_("The workflow did not answer in time. The action may still be "
                           "applied: check the request before trying again."),
    "request-closed": N_("The request is closed: its process no longer accepts actions."),
    "action-wrong_stage": N_("This is not possible at the request's current stage."),
    "action-already_done": N_("This was already done."),
    "action-wrong_actor": N_("This action is not yours to take on this request."),
    "action-four_eyes": N_("The four-eyes rule does not allow this."),
    "action-refused": N_("The workflow refused the action."),
    "idempotency-key-reused": N_("This form was already submitted with different details."),
    "no-published-policy": N_("No reassignment policy is published yet. Ask HR to publish "
                              "one."),
    "policy-violation": N_("The request breaks the reassignment policy."),
    "internal-error": N_("Something went wrong on our side. The error was logged; try again "
                         "later."),
    "rate-limited": N_("Too many attempts. Wait a moment and try again."),
    "method-not-allowed": N_("This address does not accept that kind of request."),
    "delegation-not-found": N_("There is no such delegation of yours."),
    "policy-not-found": N_("There is no such policy version."),
    "validation-failed": N_("Some fields are not valid. Check the form and try again."),
    "database-unavailable": N_("The database is unavailable right now. Nothing was changed; "
                               "try again in a moment."),
    "workflow-not-ready": N_("The request's process is catching up. Nothing was changed; try "
                             "again in a moment."),
    "text-contains-nul": N_("The text contains a character that cannot be stored. Remove it "
                            "and try again."),
    "number-out-of-range": N_("A number in the address or the form is too large."),
}

PROBLEM_TITLES = {
    400: N_("Bad request"),
    401: N_("Please log in"),
    403: N_("Not allowed"),
    404: N_("Not found"),
    405: N_("Not allowed"),
    409: N_("Changed in the meantime"),
    422: N_("Please check the form"),
    429: N_("Too many attempts"),
    500: N_("Something went wrong"),
    502: N_("Workflow service error"),
    503: N_("Service unavailable"),
    504: N_("No answer in time"),
}


class Labels:
    """The tables above in one language (the templates' `labels` global)."""

    def __init__(self, locale: str) -> None:
        self.locale = locale

    def _get(self, table: dict[str, str], code: object) -> str:
        key = str(getattr(code, "value", code))
        return gettext(self.locale, table[key]) if key in table else key

    def stage(self, code: object) -> str:
        return self._get(STAGES, code)

    def stage_tone(self, code: object) -> str:
        return STAGE_TONES.get(str(getattr(code, "value", code)), "neutral")

    def reason(self, code: object) -> str:
        return self._get(REASONS, code)

    def role(self, code: object) -> str:
        return self._get(ROLES, code)

    def roles(self, codes: object) -> str:
        separator = "、" if self.locale == "zh_CN" else ", "
        return separator.join(self.role(c) for c in sorted(codes))  # type: ignore[call-overload]

    def event(self, code: object) -> str:
        return self._get(EVENTS, code)

    def level_status(self, code: object) -> str:
        return self._get(LEVEL_STATUSES, code)

    def compensation(self, code: object) -> str:
        return self._get(COMPENSATION_KINDS, code)

    def method(self, code: object) -> str:
        return self._get(VALUATION_METHODS, code)

    def violation(self, code: object) -> str:
        return self._get(VIOLATIONS, code)

    def problem(self, slug: str, default: str = "") -> str:
        if slug in PROBLEMS:
            return gettext(self.locale, PROBLEMS[slug])
        return default

    def problem_title(self, status: int) -> str:
        title = PROBLEM_TITLES.get(status) or PROBLEM_TITLES[500 if status >= 500 else 400]
        return gettext(self.locale, title)
