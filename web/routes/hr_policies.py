"""HR manages the reassignment policy: the versions, drafting one (from the published rules),
editing a draft's rules, and publishing it.

The rules are models.policies' like in api/routes/policies.py: `rules_problems` explains every
problem of a draft with its field path, and those problems are shown next to the form's fields
(whose names are the rule paths, e.g. `approval_levels.0.reminder_after`); create_draft,
update_draft and publish write, with the same audit events. This module only turns the form
(amounts in yuan, shares in %, durations as a number and a unit) into the rules' JSON.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from api.deps import SessionDep, SessionFactoryDep
from api.problems import Problem
from api.security import Actor
from api.services import reassignments as service
from domain.permissions import Action
from domain.policy import PolicyRules
from domain.stages import Reason, Role
from models.db import SessionFactory
from models.policies import (
    PolicyError,
    RuleProblem,
    create_draft,
    get_version,
    list_versions,
    publish,
    rules_problems,
    update_draft,
)
from models.policy import PolicyStatus, PolicyVersion
from web.deps import page_permit
from web.forms import (
    UNIT_LABELS,
    UNITS,
    FieldValueError,
    read_duration,
    read_int,
    read_percent,
    read_yuan,
    show_percent,
    show_yuan,
    split_duration,
)
from web.i18n import N_
from web.policy_text import describe_rules
from web.render import current_locale, render, t

router = APIRouter()

POLICIES_PATH = "/app/hr/policies"
NAME_MAX = 100
LEVEL_ROWS = 5  # rows of the approval chain in the form
RETRIES = 3
NOTICES = {"drafted", "saved", "published"}
T = TypeVar("T")

DURATIONS = ["communication_window", "legal_minimum_window", "signature_deadline",
             "protection_period", "compensation_extra_protection", "cooling_off_window"]
PERCENTS = ["protection_share_bp", "inherited_rate_bp", "compensation_pct_of_loss_bp",
            "compensation_extra_share_bp", "revenue_drop_flag_bp"]
AMOUNTS = ["legal_threshold_fen", "legal_loss_threshold_fen"]
INTEGERS = ["cooling_off_max", "valuation_horizon_months"]
LEVEL_ROLES = [Role.MANAGER, Role.DIRECTOR, Role.HR, Role.LEGAL]

# models.policies' problem codes in the reader's language (the English message is the fallback)
PROBLEM_TEXT = {
    "REQUIRED": N_("Fill this in."),
    "NOT_A_DURATION": N_("Enter a duration."),
    "SHARE_OUT_OF_RANGE": N_("Enter a percentage between 0 and 100."),
    "NOT_A_WHOLE_NUMBER": N_("Enter a whole number."),
    "NOT_ALLOWED_VALUE": N_("Choose a value from the list."),
    "NOT_A_TIER": N_("Choose tier A, B or C, or none."),
    "NEGATIVE_DURATION": N_("This duration must not be negative."),
    "DURATION_NOT_POSITIVE": N_("This duration must be longer than zero."),
    "NEGATIVE_AMOUNT": N_("Enter zero or more."),
    "WINDOW_BELOW_LEGAL_MINIMUM": N_("The communication window is shorter than the legal "
                                     "minimum window."),
    "SHARE_SUM_ABOVE_100": N_("The protection share plus this extra share is more than 100%."),
    "REMINDER_OUTSIDE_DEADLINE": N_("Each reminder must be longer than zero and shorter than "
                                    "the signature deadline."),
    "SLA_NOT_POSITIVE": N_("The SLA must be longer than zero."),
    "REMINDER_NOT_POSITIVE": N_("The reminder must be longer than zero."),
    "REMINDER_AFTER_SLA": N_("The reminder must come before the SLA ends."),
    "APPROVAL_CHAIN_EMPTY": N_("Add at least one approval level."),
    "NAME_EMPTY": N_("Give the policy a name, e.g. “default”."),
}
OUT_OF_RANGE_TEXT = {
    "cooling_off_max": N_("At least 1."),
    "valuation_horizon_months": N_("Between 1 and 60 months."),
    "legal_loss_threshold_fen": N_("Enter zero or more."),
}
CONFLICT_TEXT = {
    "ALREADY_PUBLISHED": N_("This version is already published. To change the policy, draft "
                            "a new version."),
    "POLICY_RETIRED": N_("This version was retired by a newer one and cannot be published. "
                         "Draft a new version from it instead."),
    "NEWER_VERSION_PUBLISHED": N_("A newer version of this policy is already published, so "
                                  "this older draft cannot replace it. Draft a new version "
                                  "instead."),
    "POLICY_IMMUTABLE": N_("A published or retired version never changes: requests submitted "
                           "under it keep it for life. Draft a new version instead."),
    "POLICY_INVALID": N_("This draft's rules are not valid; fix them before publishing."),
}


# --- the form ------------------------------------------------------------------------------------


class PolicyForm:
    """The rules as typed (strings by field name), and the errors by field name."""

    def __init__(self, values: dict[str, str], reasons: list[str], name: str = "") -> None:
        self.values = values
        self.reasons = reasons
        self.name = name
        self.errors: dict[str, str] = {}
        # an approval-level row left empty shifts the later ones: rules path -> form row
        self.row_paths: dict[str, str] = {}

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    @classmethod
    def from_rules(cls, rules: PolicyRules, name: str = "") -> PolicyForm:
        values: dict[str, str] = {}
        for key in DURATIONS:
            values[key], values[f"{key}_unit"] = split_duration(getattr(rules, key))
        for key in PERCENTS:
            values[key] = show_percent(getattr(rules, key))
        for key in AMOUNTS:
            values[key] = show_yuan(getattr(rules, key))
        for key in INTEGERS:
            values[key] = str(getattr(rules, key))
        values["legal_tier_threshold"] = rules.legal_tier_threshold or ""
        reminders = rules.signature_reminders_before
        unit = _common_unit(reminders)
        values["signature_reminders_before"] = ", ".join(
            _number(r.total_seconds() / UNITS[unit]) for r in reminders)
        values["signature_reminders_before_unit"] = unit
        for i, level in enumerate(rules.approval_levels):
            _put_level(values, f"approval_levels.{i}", level.role.value, level.sla,
                       level.reminder_after)
        if rules.legal_level is not None:
            values["legal_level.enabled"] = "on"
            _put_level(values, "legal_level", Role.LEGAL.value, rules.legal_level.sla,
                       rules.legal_level.reminder_after)
        else:
            values["legal_level.sla_unit"] = values["legal_level.reminder_after_unit"] = "days"
        return cls(values, [r.value for r in rules.allowed_reasons], name)

    @classmethod
    def parse(cls, form: FormData) -> PolicyForm:
        values = {k: str(v).strip() for k, v in form.items()
                  if isinstance(v, str) and k not in ("csrf_token", "allowed_reasons")}
        reasons = [str(v) for v in form.getlist("allowed_reasons") if isinstance(v, str)]
        return cls(values, reasons, values.pop("name", ""))

    def rules(self) -> dict[str, Any]:
        """The rules' JSON for models.policies; a field that cannot be read is left out and
        gets its own error (self.errors, untranslated N_ text)."""
        raw: dict[str, Any] = {"allowed_reasons": self.reasons}

        def read(key: str, reader: Callable[[], Any]) -> Any:
            try:
                return reader()
            except FieldValueError as bad:
                self.errors[key] = bad.message
                return None

        for key in DURATIONS:
            value = read(key, lambda k=key: read_duration(self.get(k), self.get(f"{k}_unit")))
            if value is not None:
                raw[key] = value.total_seconds()
        for key in PERCENTS:
            value = read(key, lambda k=key: read_percent(self.get(k)))
            if value is not None:
                raw[key] = value
        for key in INTEGERS:
            value = read(key, lambda k=key: read_int(self.get(k)))
            if value is not None:
                raw[key] = value
        threshold = read("legal_threshold_fen", lambda: read_yuan(self.get("legal_threshold_fen")))
        if threshold is not None:
            raw["legal_threshold_fen"] = threshold
        loss = read("legal_loss_threshold_fen",
                    lambda: read_yuan(self.get("legal_loss_threshold_fen")))
        raw["legal_loss_threshold_fen"] = loss
        raw["legal_tier_threshold"] = self.get("legal_tier_threshold") or None
        reminders = []
        unit = self.get("signature_reminders_before_unit")
        for part in re.split(r"[,，、\s]+", self.get("signature_reminders_before")):
            if part:
                value = read("signature_reminders_before", lambda p=part: read_duration(p, unit))
                if value is not None:
                    reminders.append(value.total_seconds())
        raw["signature_reminders_before"] = reminders
        levels = []
        for i in range(LEVEL_ROWS):
            level = self._level(f"approval_levels.{len(levels)}", f"approval_levels.{i}", read)
            if level is not None:
                levels.append(level)
        raw["approval_levels"] = levels
        raw["legal_level"] = (self._level("legal_level", "legal_level", read, role="legal")
                              if self.get("legal_level.enabled") else None)
        return raw

    def _level(self, path: str, prefix: str, read: Callable[[str, Callable[[], Any]], Any],
               role: str | None = None) -> dict[str, Any] | None:
        role = role or self.get(f"{prefix}.role")
        sla, reminder = self.get(f"{prefix}.sla"), self.get(f"{prefix}.reminder_after")
        if not (role or sla or reminder):
            return None  # an empty row
        if path != prefix:  # rows were skipped: errors belong to the row the person typed
            self.row_paths[path] = prefix
        level: dict[str, Any] = {"role": role}
        for key, text in (("sla", sla), ("reminder_after", reminder)):
            value = read(f"{prefix}.{key}",
                         lambda t=text, k=key: read_duration(t, self.get(f"{prefix}.{k}_unit")))
            if value is not None:
                level[key] = value.total_seconds()
        return level

    def field_of(self, path: str) -> str:
        """The form field a rule path's problem is shown next to."""
        if path.startswith("rules."):
            path = path[len("rules."):]
        for rules_path, form_path in self.row_paths.items():
            if path == rules_path or path.startswith(rules_path + "."):
                path = form_path + path[len(rules_path):]
                break
        if path.startswith("signature_reminders_before"):
            return "signature_reminders_before"
        if path in ("", "rules") or path not in self.known_fields():
            return "form"
        return path

    def known_fields(self) -> set[str]:
        fields = {*DURATIONS, *PERCENTS, *AMOUNTS, *INTEGERS, "legal_tier_threshold",
                  "allowed_reasons", "signature_reminders_before", "approval_levels",
                  "legal_level", "name"}
        for prefix in [*(f"approval_levels.{i}" for i in range(LEVEL_ROWS)), "legal_level"]:
            fields |= {prefix, f"{prefix}.role", f"{prefix}.sla", f"{prefix}.reminder_after"}
        return fields


def _put_level(values: dict[str, str], prefix: str, role: str, sla: timedelta,
               reminder: timedelta) -> None:
    values[f"{prefix}.role"] = role
    values[f"{prefix}.sla"], values[f"{prefix}.sla_unit"] = split_duration(sla)
    values[f"{prefix}.reminder_after"], values[f"{prefix}.reminder_after_unit"] = (
        split_duration(reminder))


def _common_unit(values: list[timedelta]) -> str:
    for unit in ("days", "hours", "minutes"):
        if values and all(int(v.total_seconds()) % UNITS[unit] == 0 for v in values):
            return unit
    return "seconds" if values else "days"


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def _problem_text(request: Request, problem: RuleProblem) -> str:
    name = problem.field.rsplit(".", 1)[-1]
    if problem.code == "OUT_OF_RANGE" and name in OUT_OF_RANGE_TEXT:
        return t(request, OUT_OF_RANGE_TEXT[name])
    if problem.code in PROBLEM_TEXT:
        return t(request, PROBLEM_TEXT[problem.code])
    return problem.message


def check(request: Request, form: PolicyForm, *, naming: bool) -> dict[str, Any] | None:
    """The rules' JSON when valid; else None, with the errors next to the fields."""
    raw = form.rules()
    form.errors = {k: t(request, v) for k, v in form.errors.items()}
    if naming:
        if not form.name:
            form.errors["name"] = t(request, PROBLEM_TEXT["NAME_EMPTY"])
        elif len(form.name) > NAME_MAX:
            form.errors["name"] = t(request, "The name may be at most 100 characters.")
    for problem in rules_problems(raw):
        where = form.field_of(problem.field)
        if where in form.errors:
            continue  # the form's own reading of the field said it first
        text = _problem_text(request, problem)
        if where == "form":
            form.errors["form"] = " ".join(filter(None, [form.errors.get("form"), text]))
        else:
            form.errors[where] = text
    return None if form.errors else raw


def _write(sessions: SessionFactory, work: Callable[[Session], T]) -> T:
    """A transaction; a concurrent first draft of one name wins the unique key, the loser
    retries and numbers after it (as the API does)."""
    for attempt in range(RETRIES):
        try:
            with sessions() as session:
                return work(session)
        except IntegrityError:
            if attempt == RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _policy_or_404(session: Session, policy_id: int) -> PolicyVersion:
    try:
        return get_version(session, policy_id)
    except PolicyError as exc:
        raise Problem(404, "policy-not-found", "Policy version not found", exc.message) from exc


def _form_context(request: Request, form: PolicyForm, **more: Any) -> dict[str, Any]:
    code = more.get("publish_problem")
    return {"form": form, "reasons": list(Reason), "level_roles": LEVEL_ROLES,
            "level_rows": LEVEL_ROWS, "units": UNITS, "unit_labels": UNIT_LABELS,
            "tiers": ["A", "B", "C"],
            "publish_text": t(request, CONFLICT_TEXT[code]) if code in CONFLICT_TEXT else code,
            "editable": more.get("policy") is None
            or more["policy"].status == PolicyStatus.DRAFT, **more}


def _summary(policy: PolicyVersion, locale: str) -> list[str]:
    try:
        return describe_rules(policy.parsed_rules(), locale)
    except ValueError:
        return []


# --- pages ---------------------------------------------------------------------------------------


@router.get(POLICIES_PATH)
def policies(request: Request, actor: Annotated[Actor, page_permit(Action.POLICY_MANAGE)],
             session: SessionDep) -> Response:
    items, total = list_versions(session, include_drafts=True, limit=100)
    current = service.newest_published_policy(session)
    return render(request, "hr/policies.html", {
        "items": items, "total": total, "current": current,
        "summary": _summary(current, current_locale(request)) if current else [],
    })


@router.get(POLICIES_PATH + "/new")
def new_policy(request: Request, actor: Annotated[Actor, page_permit(Action.POLICY_MANAGE)],
               session: SessionDep,
               source: Annotated[str | None, Query(alias="from", max_length=20)] = None
               ) -> Response:
    """A draft's form, filled with the rules of `from` (default: the policy in force)."""
    base = (_policy_or_404(session, int(source)) if source and source.isdigit()
            else service.newest_published_policy(session))
    if base is not None:
        form = PolicyForm.from_rules(base.parsed_rules(), base.name)
    else:
        from models.demo_data import demo_policy_rules  # an empty database: a sane start

        form = PolicyForm.from_rules(demo_policy_rules(), "default")
    return render(request, "hr/policy_form.html",
                  _form_context(request, form, policy=None, summary=[], notice=None,
                                publish_problem=None))


@router.post(POLICIES_PATH)
async def create_policy(request: Request,
                        actor: Annotated[Actor, page_permit(Action.POLICY_MANAGE)],
                        sessions: SessionFactoryDep) -> Response:
    form = PolicyForm.parse(await request.form())
    # the database work in the thread pool: never block the event loop on SQLite's lock
    return await run_in_threadpool(_create_policy, request, actor, sessions, form)


def _create_policy(request: Request, actor: Actor, sessions: SessionFactory,
                   form: PolicyForm) -> Response:
    raw = check(request, form, naming=True)
    if raw is not None:
        try:
            policy_id = _write(sessions, lambda s: create_draft(
                s, name=form.name, rules=raw, actor_id=actor.employee_id).id)
        except PolicyError as refused:  # the same checks said yes above; a safety net
            form.errors["form"] = refused.message
        else:
            return RedirectResponse(f"{POLICIES_PATH}/{policy_id}?notice=drafted", 303)
    return render(request, "hr/policy_form.html",
                  _form_context(request, form, policy=None, summary=[], notice=None,
                                publish_problem=None), status=422)


@router.get(POLICIES_PATH + "/{policy_id}")
def policy_page(request: Request, policy_id: int,
                actor: Annotated[Actor, page_permit(Action.POLICY_MANAGE)],
                session: SessionDep,
                notice: Annotated[str | None, Query(max_length=30)] = None) -> Response:
    policy = _policy_or_404(session, policy_id)
    form = PolicyForm.from_rules(policy.parsed_rules(), policy.name)
    return render(request, "hr/policy_form.html", _form_context(
        request, form, policy=policy, summary=_summary(policy, current_locale(request)),
        notice=notice if notice in NOTICES else None, publish_problem=None))


@router.post(POLICIES_PATH + "/{policy_id}")
async def save_policy(request: Request, policy_id: int,
                      actor: Annotated[Actor, page_permit(Action.POLICY_MANAGE)],
                      sessions: SessionFactoryDep) -> Response:
    """Replace a draft's rules (update_draft); a published or retired version is refused."""
    form = PolicyForm.parse(await request.form())
    return await run_in_threadpool(_save_policy, request, policy_id, actor, sessions, form)


def _save_policy(request: Request, policy_id: int, actor: Actor, sessions: SessionFactory,
                 form: PolicyForm) -> Response:
    with sessions() as session:
        policy = _policy_or_404(session, policy_id)
    form.name = policy.name
    problem = None
    if policy.status != PolicyStatus.DRAFT:
        problem = "POLICY_IMMUTABLE"
    else:
        raw = check(request, form, naming=False)
        if raw is not None:
            try:
                _write(sessions, lambda s: update_draft(s, policy_id, rules=raw,
                                                        actor_id=actor.employee_id))
            except PolicyError as refused:
                problem = refused.code
            else:
                return RedirectResponse(f"{POLICIES_PATH}/{policy_id}?notice=saved", 303)
    with sessions() as session:
        policy = _policy_or_404(session, policy_id)
        summary = _summary(policy, current_locale(request))
    if problem is not None and policy.status != PolicyStatus.DRAFT:
        form = PolicyForm.from_rules(policy.parsed_rules(), policy.name)
    return render(request, "hr/policy_form.html", _form_context(
        request, form, policy=policy, summary=summary, notice=None,
        publish_problem=problem), status=409 if problem else 422)


@router.post(POLICIES_PATH + "/{policy_id}/publish")
def publish_policy(request: Request, policy_id: int,
                   actor: Annotated[Actor, page_permit(Action.POLICY_MANAGE)],
                   sessions: SessionFactoryDep) -> Response:
    """DRAFT -> PUBLISHED; the published version of the same name is retired."""
    with sessions() as session:
        _policy_or_404(session, policy_id)
    try:
        _write(sessions, lambda s: publish(s, policy_id, actor_id=actor.employee_id))
    except PolicyError as refused:
        with sessions() as session:
            policy = _policy_or_404(session, policy_id)
            form = PolicyForm.from_rules(policy.parsed_rules(), policy.name)
            summary = _summary(policy, current_locale(request))
        status = 409 if refused.kind == "conflict" else 422
        return render(request, "hr/policy_form.html", _form_context(
            request, form, policy=policy, summary=summary, notice=None,
            publish_problem=refused.code), status=status)
    return RedirectResponse(f"{POLICIES_PATH}/{policy_id}?notice=published", 303)
