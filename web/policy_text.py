"""A policy's rules in plain words, in the reader's language: the same lines, in the same order,
as models.policies.describe_rules (the API's English `summary`), for approvers who check
which rules a request runs under and for HR drafting a new version."""

from __future__ import annotations

from datetime import timedelta

from babel.lists import format_list

from documents.formatting import duration, money, percent_bp
from domain.policy import ApprovalLevelRule, PolicyRules
from web.i18n import HTML_LANG, N_, gettext
from web.labels import Labels


def _duration(value: timedelta, locale: str) -> str:
    return duration(value, HTML_LANG[locale])


def _level(level: ApprovalLevelRule, locale: str, labels: Labels) -> str:
    return gettext(locale, N_("%(role)s (SLA %(sla)s, reminder after %(reminder)s)"),
                   role=labels.role(level.role), sla=_duration(level.sla, locale),
                   reminder=_duration(level.reminder_after, locale))


def describe_rules(rules: PolicyRules, locale: str) -> list[str]:
    labels = Labels(locale)
    lang = HTML_LANG[locale].replace("-", "_")
    lines = [gettext(locale, N_("Allowed reasons: %(reasons)s."),
                     reasons=format_list([labels.reason(r) for r in rules.allowed_reasons],
                                         locale=lang))]
    window = _duration(rules.communication_window, locale)
    if rules.legal_minimum_window > timedelta(0):
        lines.append(gettext(locale, N_("Communication window: %(window)s (legal minimum "
                                     "%(minimum)s)."), window=window,
                             minimum=_duration(rules.legal_minimum_window, locale)))
    else:
        lines.append(gettext(locale, N_("Communication window: %(window)s."), window=window))
    deadline = _duration(rules.signature_deadline, locale)
    if rules.signature_reminders_before:
        lines.append(gettext(
            locale, N_("Signature deadline: %(deadline)s after the window ends, reminders "
                    "%(reminders)s before it."), deadline=deadline,
            reminders=format_list([_duration(b, locale)
                                   for b in rules.signature_reminders_before], locale=lang)))
    else:
        lines.append(gettext(locale, N_("Signature deadline: %(deadline)s after the window ends."),
                             deadline=deadline))
    lines.append(gettext(locale, N_("Approval chain: %(levels)s."),
                         levels=" → ".join(_level(x, locale, labels)
                                           for x in rules.approval_levels)))
    if rules.legal_level is not None:
        triggers = [gettext(locale, N_("the customers' value reaches %(amount)s"),
                            amount=money(rules.legal_threshold_fen))]
        if rules.legal_tier_threshold is not None:
            triggers.append(gettext(locale, N_("a customer's value tier is %(tier)s or higher"),
                                    tier=rules.legal_tier_threshold))
        if rules.legal_loss_threshold_fen is not None:
            triggers.append(gettext(locale, N_("the salesperson's projected loss reaches "
                                            "%(amount)s"),
                                    amount=money(rules.legal_loss_threshold_fen)))
        lines.append(gettext(locale, N_("Legal approval: %(level)s, added when %(triggers)s."),
                             level=_level(rules.legal_level, locale, labels),
                             triggers=format_list(triggers, style="or", locale=lang)))
    lines.append(gettext(locale, N_("Protection: for %(period)s after the transfer the original "
                                 "salesperson keeps %(share)s of the commission."),
                         period=_duration(rules.protection_period, locale),
                         share=percent_bp(rules.protection_share_bp)))
    lines.append(gettext(locale, N_("Inherited rate: %(rate)s for the receiving salesperson."),
                         rate=percent_bp(rules.inherited_rate_bp)))
    options = [gettext(locale, N_("%(share)s of the projected loss as a lump sum"),
                       share=percent_bp(rules.compensation_pct_of_loss_bp))]
    if rules.compensation_extra_protection > timedelta(0):
        options.append(gettext(locale, N_("%(extra)s more protection"),
                               extra=_duration(rules.compensation_extra_protection, locale)))
    if rules.compensation_extra_share_bp > 0:
        options.append(gettext(locale, N_("a %(share)s higher share"),
                               share=percent_bp(rules.compensation_extra_share_bp)))
    lines.append(gettext(locale, N_("Compensation: %(options)s."),
                         options=format_list(options, style="or", locale=lang)))
    lines.append(gettext(locale, N_("Cooling-off: at most %(count)s reassignments of one customer "
                                 "within %(window)s."), count=rules.cooling_off_max,
                         window=_duration(rules.cooling_off_window, locale)))
    lines.append(gettext(locale, N_("Valuation horizon: %(months)s months."),
                         months=rules.valuation_horizon_months))
    return lines
