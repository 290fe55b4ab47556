"""Translated names for the salesperson's pages: notification kinds, commission rules and
roles, the signing ceremony's refusals, and the policy rules' headings.

Like web/labels.py: each table maps a code to a string marked with N_ (so `make i18n` extracts
it); `MeLabels(locale)` translates at render time and falls back to the code itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from web.i18n import N_, gettext

# NotificationRecord.kind (workflows/reassignment.py, models/signing_service.py)
NOTIFICATION_KINDS = {
    "APPROVAL_REQUESTED": N_("Your approval is requested"),
    "APPROVAL_REMINDER": N_("Reminder: an approval is waiting for you"),
    "APPROVAL_ESCALATED": N_("An approval was escalated to you"),
    "APPROVED": N_("Your request was approved"),
    "REPORT_AVAILABLE": N_("Your personal report is ready"),
    "STAGE_CHANGED": N_("A request concerning you moved on"),
    "SIGNATURE_REQUESTED": N_("Please sign or decline the agreement"),
    "SIGNATURE_REMINDER": N_("Reminder: the agreement awaits your decision"),
    "SIGNING_CODE": N_("Your one-time signing code"),
    "APPEAL_OPENED": N_("An appeal was filed"),
    "APPEAL_RESOLVED": N_("HR resolved your appeal"),
    "DECLINED": N_("The salesperson declined the agreement"),
    "EXPIRED_NO_CONSENT": N_("The signature deadline passed"),
    "OWNERSHIP_TRANSFERRED": N_("The reassignment took effect"),
    "COMPLETED": N_("The protection period ended"),
    "REJECTED": N_("A request was rejected"),
    "WITHDRAWN": N_("A request was withdrawn"),
    "CANCELLED": N_("A request was cancelled"),
}

# The workflow writes each notification's message in English from a few templates
# (workflows/reassignment.py, activities/reassignment.py, models/signing_service.py). The page
# says the same in the reader's language when the message matches one; anything else (a new
# template) is shown as stored. Groups: id = request id, level, stage, at (ISO time), reason.
_ID, _AT, _REST = r"(?P<id>\d+)", r"(?P<at>\S+?)", r"(?P<reason>.*)"
NOTIFICATION_TEXTS: list[tuple[str, str]] = [
    (r"Your personal analysis report is ready; you may appeal or sign\.",
     N_("Your personal analysis report is ready: read it, then appeal or sign before the "
        "communication window ends.")),
    (r"The request was approved at every level\.",
     N_("Your request was approved at every level; the communication window is open.")),
    (r"A reassignment to you was approved\.",
     N_("A request that gives you customers was approved.")),
    (rf"Request {_ID} that gives you customers is now (?P<stage>[A-Z_]+)\.",
     N_("Request #%(id)s, which gives you customers, is now at the stage “%(stage)s”.")),
    (rf"Please sign or decline the agreement by {_AT}\.",
     N_("Please sign or decline the agreement by %(at)s.")),
    (rf"The agreement awaits your decision until {_AT}\.",
     N_("The agreement awaits your decision until %(at)s.")),
    (r"The signature deadline passed without consent; ownership is unchanged\.",
     N_("The signature deadline passed without consent: the customers stay where they were.")),
    (r"The reassignment has taken effect\.", N_("The reassignment has taken effect.")),
    (r"The protection period has ended\.", N_("The protection period has ended.")),
    (r"HR resolved your appeal: uphold\.",
     N_("HR resolved your appeal: the request stands as it is.")),
    (r"HR resolved your appeal: amend\.",
     N_("HR resolved your appeal: the terms were amended. Read the new agreement.")),
    (r"HR upheld the appeal and cancelled the request\.",
     N_("HR upheld the appeal and cancelled the request.")),
    (rf"Request {_ID} has an appeal to resolve\.",
     N_("Request #%(id)s has an appeal to resolve.")),
    (r"The request broke the policy and was rejected\.",
     N_("The request broke the policy and was rejected.")),
    (rf"The request was rejected: {_REST}", N_("The request was rejected. Reason: %(reason)s")),
    (rf"The request was withdrawn: {_REST}", N_("The request was withdrawn. Reason: %(reason)s")),
    (rf"The request was cancelled by HR: {_REST}",
     N_("HR cancelled the request. Reason: %(reason)s")),
    (rf"The salesperson declined: {_REST}\. Ownership is unchanged\.",
     N_("The salesperson declined the agreement; the customers stay. Reason: %(reason)s")),
    (rf"Please review reassignment request {_ID} \(approval level (?P<level>\d+)\)\.",
     N_("Please review request #%(id)s (approval level %(level)s).")),
    (rf"Approval level (?P<level>\d+) of request {_ID} is due at {_AT}\.",
     N_("Approval level %(level)s of request #%(id)s is due by %(at)s.")),
    (rf"Approval level (?P<level>\d+) of request {_ID} is overdue and has been escalated "
     r"to you\.",
     N_("Approval level %(level)s of request #%(id)s is overdue and was escalated to you.")),
]
_NOTIFICATION_PATTERNS = [(re.compile(rf"^{pattern}$", re.DOTALL), text)
                          for pattern, text in NOTIFICATION_TEXTS]

# commission_line.rule (domain/commission.py); a clawback is "R4_CLAWBACK:<rule>"
RULES = {
    "R1_OWNER_BASE": N_("Own customer, base rate"),
    "R2_PROTECTION_ORIGINAL": N_("Protection income (you were the salesperson)"),
    "R2_PROTECTION_INHERITED": N_("New owner's share during protection"),
    "R3_OWNER_INHERITED": N_("Inherited customer, inherited rate"),
}
CLAWBACK_PREFIX = "R4_CLAWBACK:"
PROTECTION_RULE = "R2_PROTECTION_ORIGINAL"

# commission_line.role
LINE_ROLES = {
    "OWNER": N_("Owner"),
    "PROTECTED_ORIGINAL": N_("Protected original salesperson"),
    "INHERITED_OWNER": N_("New owner"),
}

# refusals of the signing ceremony and of the salesperson's actions (problem slugs)
PROBLEMS = {
    "typed-name-mismatch": N_("Type your full name exactly as it is on record."),
    "otp-missing": N_("No code was sent for this version of the agreement. Request a new "
                      "code."),
    "otp-used": N_("This code was already used; each code works once. Request a new code."),
    "otp-expired": N_("The code has expired, or a newer code replaced it. Request a new "
                      "code."),
    "otp-attempts-exhausted": N_("The code was entered wrongly too often and no longer "
                                 "works. Request a new code."),
    "otp-throttled": N_("Too many codes were sent for this request in the last hour. Wait a "
                        "while, or sign with a passkey."),
    "otp-invalid": N_("The code is wrong."),
    "passkey-none-registered": N_("You have no passkey yet. Register one first, or sign with "
                                  "a one-time code."),
    "passkey-invalid": N_("The passkey check failed. Try again."),
    "passkey-unknown": N_("This passkey is not registered to you."),
    "passkey-challenge-invalid": N_("The passkey check expired or was already used. Try "
                                    "again."),
    "passkey-wrong-document": N_("Your passkey confirmed another version of the agreement. "
                                 "Try again."),
    "passkey-registration-invalid": N_("The passkey could not be registered. Try again."),
    "passkey-already-registered": N_("This passkey is already registered."),
    "passkey-not-found": N_("There is no such passkey."),
    "not-signable": N_("There is nothing to sign at the request's current stage."),
    "not-the-signer": N_("Only the salesperson who would lose the customers signs this "
                         "agreement."),
    "action-stale_document": N_("A newer version of the agreement exists. Read it and sign "
                                "that one."),
    "action-wrong_stage": N_("This is not possible at the request's current stage."),
    "action-already_done": N_("This was already done."),
    "action-wrong_actor": N_("This action is not yours to take on this request."),
    "request-closed": N_("The request is closed: its process no longer accepts actions."),
    "temporal-unavailable": N_("The workflow service is unavailable right now. Nothing was "
                               "recorded; try again in a moment."),
    "workflow-timeout": N_("The workflow did not answer in time. The action may still be "
                           "applied: check the request before trying again."),
    "validation-failed": N_("Please check the form."),
    "policy-not-found": N_("There is no such policy version."),
    "policy-not-published": N_("Only a published policy version can be acknowledged."),
    "policy-retired": N_("This policy version was replaced by a newer one."),
}


class MeLabels:
    """The tables above in one language."""

    def __init__(self, locale: str) -> None:
        self.locale = locale

    def _get(self, table: dict[str, str], code: object) -> str:
        key = str(getattr(code, "value", code))
        return gettext(self.locale, table[key]) if key in table else key

    def notification(self, kind: str) -> str:
        return self._get(NOTIFICATION_KINDS, kind)

    def notification_text(self, message: str,
                          moment: Callable[[datetime], str]) -> str | None:
        """The message in this language, or None when it matches no known template."""
        for pattern, text in _NOTIFICATION_PATTERNS:
            found = pattern.match(message.strip())
            if found is None:
                continue
            values: dict[str, object] = dict(found.groupdict())
            if "at" in values:
                try:
                    values["at"] = moment(datetime.fromisoformat(str(values["at"])))
                except ValueError:
                    return None
            if "stage" in values:
                from web.labels import Labels

                values["stage"] = Labels(self.locale).stage(values["stage"])
            return gettext(self.locale, text, **values)
        return None

    def rule(self, code: str) -> str:
        if code.startswith(CLAWBACK_PREFIX):
            inner = self.rule(code[len(CLAWBACK_PREFIX):])
            return gettext(self.locale, N_("Taken back after a refund: %(rule)s"), rule=inner)
        return self._get(RULES, code)

    def line_role(self, code: str) -> str:
        return self._get(LINE_ROLES, code)

    def problem(self, slug: str, default: str = "") -> str:
        return gettext(self.locale, PROBLEMS[slug]) if slug in PROBLEMS else default

    @staticmethod
    def is_protection(rule: str) -> bool:
        return PROTECTION_RULE in rule
