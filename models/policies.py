"""Policy versions: drafting, publishing, acknowledging, and who has not acknowledged yet.

HR drafts a version of a named policy, may replace a draft's rules, then publishes it. A
published version is immutable; publishing it retires the version of the same name that was
published before. Requests keep the version they were submitted under for life (the request
row stores `policy_version_id`); only new requests use the newly published version.

Asking salespeople to acknowledge: a published version is to be acknowledged by every active
salesperson (status EMPLOYED and holding the sales role, by job role or account roles; managers
hold sales through their account). No NotificationRecord is written for this, because that
table belongs to a request (`request_id` is required). The ask is the pending list instead:
`acknowledgement_overview` lists who has acknowledged and when, and who has not yet.

Validation: `rules_problems` decides with pydantic (`PolicyRules`, with unknown settings
refused) and explains every problem it can find with its field path and how to fix it. The
domain model stops at its first cross-field problem, so the explanation also re-checks the
cross-field rules on every value it can read, to list them all at once. Explanations are only
given for a policy pydantic rejected, or for the few extra checks below (negative
`legal_minimum_window` or `compensation_extra_protection`); they never accept anything
pydantic refuses.

Shared by the API; nothing here knows about HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError
from sqlalchemy import func
from sqlmodel import Session, col, select

from domain.policy import ApprovalLevelRule, PolicyRules, describe_duration
from domain.stages import Role
from models.audit import AuditEvent, append_audit_event
from models.org import Employee, EmploymentStatus, UserAccount
from models.policy import PolicyAcknowledgement, PolicyStatus, PolicyVersion
from models.types import utcnow

EVENT_DRAFTED = "POLICY_DRAFTED"
EVENT_UPDATED = "POLICY_UPDATED"
EVENT_PUBLISHED = "POLICY_PUBLISHED"
EVENT_ACKNOWLEDGED = "POLICY_ACKNOWLEDGED"
ENTITY_POLICY = "policy_version"

MAX_BP = 10_000


class PolicyRulesIn(PolicyRules):
    """PolicyRules as HR sends them: an unknown (e.g. misspelt) setting is refused, not
    silently ignored, so that a typo never falls back to a default."""

    model_config = ConfigDict(extra="forbid")


class PolicyError(ValueError):
    """A policy action that cannot be done.

    `kind`: "invalid" (422, `problems` lists each), "conflict" (409), "not_found" (404).
    """

    def __init__(self, kind: str, code: str, message: str,
                 problems: Sequence[RuleProblem] = ()) -> None:
        super().__init__(message)
        self.kind, self.code, self.message = kind, code, message
        self.problems = list(problems)


# --- validation and its explanation ------------------------------------------------------------


@dataclass(frozen=True)
class RuleProblem:
    # dotted path, e.g. "approval_levels.0.reminder_after" inside the rules (rules_problems),
    # "rules.approval_levels.0.reminder_after" in the body (PolicyError.problems); "" = all
    field: str
    code: str
    message: str


_DURATION = TypeAdapter(timedelta)
_DURATION_HINT = ('send an ISO 8601 duration such as "P15D" (15 days) or "PT30M" (30 minutes), '
                  "or a number of seconds")

# What each setting means, for "is required" and range messages.
_MEANING: dict[str, str] = {
    "allowed_reasons": "the reasons a request may give, e.g. [\"WORKLOAD_BALANCING\"]",
    "communication_window": "how long the salesperson has to read the report and appeal",
    "signature_deadline": "how long the salesperson has to sign after the window ends",
    "approval_levels": "the approval chain, one level per role",
    "protection_period": "how long the original salesperson keeps part of the commission",
    "protection_share_bp": "the share of commission the original salesperson keeps during "
                           "protection, in basis points",
    "inherited_rate_bp": "the commission rate the receiving salesperson earns on inherited "
                         "customers, in basis points",
    "compensation_pct_of_loss_bp": "the lump-sum compensation as a share of the projected "
                                   "loss, in basis points",
    "compensation_extra_share_bp": "the extra protection share offered as a compensation "
                                   "alternative, in basis points",
    "revenue_drop_flag_bp": "the fall in the moved customers' revenue (after vs before the "
                            "transfer) above which the post-reassignment report flags a case, "
                            "in basis points",
    "role": "the role that approves at this level",
    "sla": "how long the approver has before the level is late",
    "reminder_after": "when the approver is reminded, counted from the level's start",
}


def _label(path: Sequence[Any]) -> str:
    return ".".join(str(p) for p in path)


def _pct(bp: int) -> str:
    sign = "-" if bp < 0 else ""
    bp = abs(bp)
    return f"{sign}{bp // 100}.{bp % 100:02d}%"


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}¥{fen // 100:,}.{fen % 100:02d}"


def _show(value: Any) -> str:
    if isinstance(value, timedelta):
        if value < timedelta(0):
            return f"minus {describe_duration(-value)}"
        return describe_duration(value)
    return repr(value) if isinstance(value, str) else str(value)


def _field_message(err: Mapping[str, Any]) -> RuleProblem | None:
    """A human message for one pydantic error on a field; None for a model-level check."""
    loc = tuple(err.get("loc", ()))
    kind = str(err.get("type", "invalid"))
    ctx = err.get("ctx") or {}
    value = err.get("input")
    field = _label(loc)
    name = str(loc[-1]) if loc else "rules"
    meaning = _MEANING.get(name)
    if kind == "value_error":
        if loc == ("approval_levels",):
            return RuleProblem(field, "APPROVAL_CHAIN_EMPTY",
                               "The approval chain is empty: a policy needs at least one approval "
                               'level. Add one, e.g. {"role": "manager", "sla": "P3D", '
                               '"reminder_after": "P2D"}.')
        return None  # a cross-field check: explained by _cross_field_problems
    if kind == "missing":
        hint = f" ({meaning})" if meaning else ""
        return RuleProblem(field, "REQUIRED", f"{field} is required{hint}; add it.")
    if kind == "extra_forbidden":
        known = ", ".join(PolicyRules.model_fields)
        return RuleProblem(field, "UNKNOWN_SETTING",
                           f"{field} is not a policy setting; check its spelling. Known "
                           f"settings: {known}.")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return RuleProblem(field, "NOT_AN_OBJECT",
                           f"{field or 'rules'} must be a JSON object of policy settings; "
                           f"you sent {_show(value)}.")
    if kind.startswith("time_delta"):
        return RuleProblem(field, "NOT_A_DURATION",
                           f"{field} is a duration: {_DURATION_HINT}; you sent {_show(value)}.")
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        if name.endswith("_bp"):
            what = f" It is {meaning}." if meaning else ""
            shown = f" ({_pct(value)})" if isinstance(value, int) else ""
            return RuleProblem(field, "SHARE_OUT_OF_RANGE",
                               f"{field} must be between 0 (0%) and {MAX_BP} (100%); you sent "
                               f"{_show(value)}{shown}.{what} Example: 5000 means 50%.")
        bounds = {"greater_than_equal": "at least", "less_than_equal": "at most",
                  "greater_than": "more than", "less_than": "less than"}[kind]
        limit = next(iter(ctx.values()), None)
        return RuleProblem(field, "OUT_OF_RANGE",
                           f"{field} must be {bounds} {limit}; you sent {_show(value)}.")
    if kind.startswith("int_"):
        return RuleProblem(field, "NOT_A_WHOLE_NUMBER",
                           f"{field} must be a whole number; you sent {_show(value)}.")
    if kind == "enum":
        expected = ctx.get("expected", "")
        return RuleProblem(field, "NOT_ALLOWED_VALUE",
                           f"{field} must be one of {expected}; you sent {_show(value)}.")
    if kind == "string_pattern_mismatch" and name == "legal_tier_threshold":
        return RuleProblem(field, "NOT_A_TIER",
                           f"{field} is a value tier: \"A\", \"B\" or \"C\" (or null for no tier "
                           f"threshold); you sent {_show(value)}.")
    message = str(err.get("msg", "invalid value"))
    return RuleProblem(field, kind.upper(), f"{field or 'rules'}: {message}.")


def _read_duration(raw: Mapping[str, Any], key: str) -> timedelta | None:
    """The duration `key` as sent, its default when left out, None when unreadable."""
    if key not in raw:
        default = PolicyRules.model_fields[key].default if key in PolicyRules.model_fields \
            else None
        return default if isinstance(default, timedelta) else None
    try:
        return _DURATION.validate_python(raw[key])
    except ValidationError:
        return None


def _read_int(raw: Mapping[str, Any], key: str) -> int | None:
    if key not in raw:
        default = PolicyRules.model_fields[key].default
        return default if isinstance(default, int) else None
    value = raw[key]
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _level_problems(raw: Any, path: str) -> list[RuleProblem]:
    if not isinstance(raw, Mapping):
        return []
    sla, reminder = _read_duration(raw, "sla"), _read_duration(raw, "reminder_after")
    problems = []
    if sla is not None and sla <= timedelta(0):
        problems.append(RuleProblem(f"{path}.sla", "SLA_NOT_POSITIVE",
                                    f"{path}.sla must be longer than zero; you sent {_show(sla)}. "
                                    "Give the approver time to act, e.g. \"P3D\"."))
    if reminder is not None and reminder <= timedelta(0):
        problems.append(RuleProblem(f"{path}.reminder_after", "REMINDER_NOT_POSITIVE",
                                    f"{path}.reminder_after must be longer than zero; you sent "
                                    f"{_show(reminder)}."))
    elif reminder is not None and sla is not None and sla > timedelta(0) and reminder >= sla:
        problems.append(RuleProblem(
            f"{path}.reminder_after", "REMINDER_AFTER_SLA",
            f"{path}.reminder_after ({_show(reminder)}) must be shorter than the level's SLA "
            f"({_show(sla)}): the reminder has to go out before the level is late. Use e.g. "
            f"half the SLA ({_show(sla / 2)})."))
    return problems


def _cross_field_problems(raw: Mapping[str, Any]) -> list[RuleProblem]:
    """Every cross-field rule of PolicyRules (and a few extra ones), on the values readable."""
    zero = timedelta(0)
    problems: list[RuleProblem] = []
    for key, what in (("communication_window", "the days the salesperson has to read and "
                       "appeal, e.g. \"P15D\""),
                      ("protection_period", "how long the original salesperson keeps part of "
                       "the commission, e.g. \"P90D\""),
                      ("legal_minimum_window", "the shortest communication window the law "
                       "allows, or \"PT0S\" for none"),
                      ("compensation_extra_protection", "the extra protection offered as a "
                       "compensation alternative, or \"PT0S\" for none")):
        value = _read_duration(raw, key)
        if value is not None and value < zero:
            problems.append(RuleProblem(key, "NEGATIVE_DURATION",
                                        f"{key} must not be negative; you sent {_show(value)}. "
                                        f"Set {what}."))
    for key, what in (("signature_deadline", "how long the salesperson has to sign after the "
                       "window ends, e.g. \"P7D\""),
                      ("cooling_off_window", "the period in which reassignments of one "
                       "customer are counted, e.g. \"P90D\"")):
        value = _read_duration(raw, key)
        if value is not None and value <= zero:
            problems.append(RuleProblem(key, "DURATION_NOT_POSITIVE",
                                        f"{key} must be longer than zero; you sent "
                                        f"{_show(value)}. Set {what}."))
    threshold = _read_int(raw, "legal_threshold_fen")
    if threshold is not None and threshold < 0:
        problems.append(RuleProblem("legal_threshold_fen", "NEGATIVE_AMOUNT",
                                    f"legal_threshold_fen must not be negative; you sent "
                                    f"{threshold}. It is the customers' value in fen (1 yuan = "
                                    "100 fen) from which legal approves; 0 means always."))
    window = _read_duration(raw, "communication_window")
    minimum = _read_duration(raw, "legal_minimum_window")
    if window is not None and minimum is not None and zero <= window < minimum:
        problems.append(RuleProblem(
            "communication_window", "WINDOW_BELOW_LEGAL_MINIMUM",
            f"communication_window ({_show(window)}) is shorter than legal_minimum_window "
            f"({_show(minimum)}), the policy's own legal minimum. Lengthen communication_window "
            f"to at least {_show(minimum)}, or lower legal_minimum_window if the legal minimum "
            "really is shorter."))
    share = _read_int(raw, "protection_share_bp")
    extra = _read_int(raw, "compensation_extra_share_bp")
    if share is not None and extra is not None and 0 <= share <= MAX_BP \
            and 0 <= extra <= MAX_BP and share + extra > MAX_BP:
        problems.append(RuleProblem(
            "compensation_extra_share_bp", "SHARE_SUM_ABOVE_100",
            f"protection_share_bp ({_pct(share)}) plus compensation_extra_share_bp "
            f"({_pct(extra)}) is {_pct(share + extra)}, more than 100%: the higher-share "
            f"alternative would pay out more than the whole commission. Lower "
            f"compensation_extra_share_bp to at most {MAX_BP - share}."))
    deadline = _read_duration(raw, "signature_deadline")
    reminders = raw.get("signature_reminders_before")
    if deadline is not None and deadline > zero and isinstance(reminders, list):
        for i, item in enumerate(reminders):
            try:
                before = _DURATION.validate_python(item)
            except ValidationError:
                continue
            if not zero < before < deadline:
                problems.append(RuleProblem(
                    f"signature_reminders_before.{i}", "REMINDER_OUTSIDE_DEADLINE",
                    f"signature_reminders_before.{i} ({_show(before)}) must be longer than zero "
                    f"and shorter than signature_deadline ({_show(deadline)}): a reminder is sent "
                    "that long before the deadline."))
    levels = raw.get("approval_levels")
    if isinstance(levels, list):
        for i, level in enumerate(levels):
            problems.extend(_level_problems(level, f"approval_levels.{i}"))
    problems.extend(_level_problems(raw.get("legal_level"), "legal_level"))
    return problems


def rules_problems(raw: Any) -> list[RuleProblem]:
    """Every problem with `raw` as a policy's rules; empty means it is a valid policy."""
    try:
        PolicyRulesIn.model_validate(raw)
        rejected: list[dict[str, Any]] = []
    except ValidationError as exc:
        rejected = [dict(e) for e in exc.errors()]
    problems: list[RuleProblem] = []
    unexplained: list[dict[str, Any]] = []
    for err in rejected:
        problem = _field_message(err)
        if problem is None:
            unexplained.append(err)
        else:
            problems.append(problem)
    cross: list[RuleProblem] = []
    if isinstance(raw, Mapping):
        seen = {p.field for p in problems}
        cross = [p for p in _cross_field_problems(raw) if p.field not in seen]
        problems.extend(cross)
    # A check we cannot explain (e.g. one added to the domain later): say what pydantic said,
    # at the object it was raised on.
    for err in unexplained:
        where = _label(err.get("loc", ()))
        if any(not where or p.field == where or p.field.startswith(where + ".")
               for p in cross):
            continue
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        problems.append(RuleProblem(where, "INVALID_POLICY", f"{message}."))
    return problems


def parse_rules(raw: Any) -> PolicyRules:
    """Valid rules as PolicyRules, or PolicyError("invalid") listing each problem."""
    problems = [RuleProblem(f"rules.{p.field}" if p.field else "rules", p.code, p.message)
                for p in rules_problems(raw)]
    if problems:
        fields = ", ".join(p.field for p in problems)
        raise PolicyError("invalid", "POLICY_INVALID",
                          f"The policy's figures do not make sense; fix these settings: {fields}.",
                          problems)
    return PolicyRules.model_validate(dict(raw))


# --- reading -------------------------------------------------------------------------------


def get_version(session: Session, policy_id: int, *, lock: bool = False,
                shared: bool = False) -> PolicyVersion:
    query = select(PolicyVersion).where(PolicyVersion.id == policy_id)
    if lock or shared:
        query = query.with_for_update(read=shared and not lock)
    policy = session.exec(query).first()
    if policy is None:
        raise PolicyError("not_found", "POLICY_NOT_FOUND",
                          f"There is no policy version {policy_id}.")
    return policy


def list_versions(
    session: Session, *, include_drafts: bool, name: str | None = None,
    status: PolicyStatus | None = None, limit: int = 50, offset: int = 0,
) -> tuple[list[PolicyVersion], int]:
    """Versions, newest first; drafts only when `include_drafts`. And the total count."""
    conditions = []
    if not include_drafts:
        conditions.append(PolicyVersion.status != PolicyStatus.DRAFT)
    if name is not None:
        conditions.append(PolicyVersion.name == name)
    if status is not None:
        conditions.append(PolicyVersion.status == status)
    total = session.exec(select(func.count()).select_from(PolicyVersion).where(*conditions)).one()
    rows = session.exec(
        select(PolicyVersion).where(*conditions)
        .order_by(col(PolicyVersion.id).desc()).limit(limit).offset(offset)
    ).all()
    return list(rows), int(total)


def acknowledged_at(session: Session, employee_id: int,
                    policy_ids: Iterable[int]) -> dict[int, datetime]:
    """When `employee_id` acknowledged each of `policy_ids` (absent: not acknowledged)."""
    ids = list(policy_ids)
    if not ids:
        return {}
    rows = session.exec(
        select(PolicyAcknowledgement.policy_version_id, PolicyAcknowledgement.acknowledged_at)
        .where(PolicyAcknowledgement.employee_id == employee_id,
               col(PolicyAcknowledgement.policy_version_id).in_(ids))
    ).all()
    return dict(rows)


# --- writing -------------------------------------------------------------------------------


def _audit(session: Session, event_type: str, actor_id: int | None,
           detail: dict[str, int | list[int]], *, entity: tuple[str, int | None],
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
    """An audit event; ids and numbers only in the detail (no names, no free text)."""
    append_audit_event(session, AuditEvent(
        occurred_at=utcnow(), event_type=event_type, actor_id=actor_id, detail=detail,
        entity_type=entity[0], entity_id=str(entity[1]), before=before, after=after,
        chain_index=0, prev_hash="", hash=""))


def _policy_state(policy: PolicyVersion) -> dict[str, Any]:
    return {"name": policy.name, "version": policy.version, "status": str(policy.status),
            "rules": policy.rules,
            "published_at": policy.published_at.isoformat() if policy.published_at else None}


def create_draft(session: Session, *, name: str, rules: Any, actor_id: int) -> PolicyVersion:
    """A new DRAFT numbered 1 + the latest version of `name`.

    Two concurrent drafts of one name collide on the (name, version) unique key: the caller
    retries the transaction (IntegrityError).
    """
    parsed = parse_rules(rules if not isinstance(rules, PolicyRules)
                         else rules.model_dump(mode="json"))
    name = name.strip()
    if not name:
        raise PolicyError("invalid", "NAME_EMPTY", "Give the policy a name, e.g. \"default\".",
                          [RuleProblem("name", "NAME_EMPTY",
                                       'name must not be empty; e.g. "default".')])
    latest = session.exec(
        select(func.max(PolicyVersion.version)).where(PolicyVersion.name == name)
    ).one()
    policy = PolicyVersion(name=name, version=int(latest or 0) + 1, status=PolicyStatus.DRAFT,
                           rules=parsed.model_dump(mode="json"), created_at=utcnow())
    session.add(policy)
    session.flush()
    assert policy.id is not None
    _audit(session, EVENT_DRAFTED, actor_id,
           {"policy_version_id": policy.id, "version": policy.version},
           entity=(ENTITY_POLICY, policy.id), after=_policy_state(policy))
    return policy


def _immutable(policy: PolicyVersion) -> PolicyError:
    return PolicyError(
        "conflict", "POLICY_IMMUTABLE",
        f"Policy version {policy.id} ({policy.name} v{policy.version}) is {policy.status} and "
        "can no longer change: requests submitted under it keep it for life. Publish a new "
        "version instead (POST /api/v1/policies with the new rules, then publish it).")


def update_draft(session: Session, policy_id: int, *, rules: Any,
                 actor_id: int) -> PolicyVersion:
    """Replace a DRAFT's rules. A published or retired version is immutable (conflict)."""
    policy = get_version(session, policy_id, lock=True)
    if policy.status != PolicyStatus.DRAFT:
        raise _immutable(policy)
    parsed = parse_rules(rules if not isinstance(rules, PolicyRules)
                         else rules.model_dump(mode="json"))
    before = _policy_state(policy)
    policy.rules = parsed.model_dump(mode="json")
    session.add(policy)
    session.flush()
    assert policy.id is not None
    _audit(session, EVENT_UPDATED, actor_id, {"policy_version_id": policy.id},
           entity=(ENTITY_POLICY, policy.id), before=before, after=_policy_state(policy))
    return policy


@dataclass(frozen=True)
class Published:
    policy: PolicyVersion
    retired: list[PolicyVersion]
    awaiting_acknowledgement: int  # active salespeople asked to acknowledge it


def publish(session: Session, policy_id: int, *, actor_id: int) -> Published:
    """DRAFT -> PUBLISHED; the version of the same name published before becomes RETIRED.

    All versions of the name are locked (PostgreSQL), so two publishes of one name queue up
    and a concurrent update of the draft cannot slip in after the status check.
    """
    policy = get_version(session, policy_id)
    siblings = session.exec(
        select(PolicyVersion).where(PolicyVersion.name == policy.name)
        .order_by(col(PolicyVersion.id)).with_for_update()
    ).all()
    policy = next(p for p in siblings if p.id == policy_id)
    if policy.status == PolicyStatus.PUBLISHED:
        raise PolicyError("conflict", "ALREADY_PUBLISHED",
                          f"Policy version {policy.id} ({policy.name} v{policy.version}) is "
                          "already published. To change the policy, draft and publish a new "
                          "version.")
    if policy.status == PolicyStatus.RETIRED:
        raise PolicyError("conflict", "POLICY_RETIRED",
                          f"Policy version {policy.id} ({policy.name} v{policy.version}) was "
                          "retired by a newer version and cannot be published again. Draft a "
                          "new version with these rules instead.")
    current = [p for p in siblings if p.status == PolicyStatus.PUBLISHED]
    newer = [p for p in current if p.version > policy.version]
    if newer:
        raise PolicyError("conflict", "NEWER_VERSION_PUBLISHED",
                          f"{policy.name} v{newer[0].version} (id {newer[0].id}) is already "
                          f"published, so this older draft v{policy.version} would replace a "
                          "newer policy. Draft a new version from these rules instead.")
    parse_rules(policy.rules)  # a draft stored by an older release must still be valid
    now = utcnow()
    before = {**_policy_state(policy),
              "published_version_ids": [p.id for p in current if p.id is not None]}
    for old in current:
        old.status = PolicyStatus.RETIRED
        session.add(old)
    policy.status = PolicyStatus.PUBLISHED
    policy.published_at = now
    session.add(policy)
    session.flush()
    assert policy.id is not None
    retired = [p.id for p in current if p.id is not None]
    _audit(session, EVENT_PUBLISHED, actor_id, {
        "policy_version_id": policy.id,
        "retired_policy_version_ids": retired,
    }, entity=(ENTITY_POLICY, policy.id), before=before,
        after={**_policy_state(policy), "retired_version_ids": retired})
    return Published(policy=policy, retired=current,
                     awaiting_acknowledgement=len(active_salespeople(session)))


@dataclass(frozen=True)
class Acknowledged:
    acknowledgement: PolicyAcknowledgement
    recorded_now: bool  # False: acknowledged before; the first time is returned


def acknowledge(session: Session, policy_id: int, *, employee_id: int) -> Acknowledged:
    """Record that `employee_id` read a PUBLISHED version; a repeat returns the first record.

    Two concurrent first acknowledgements collide on the unique key: the caller retries the
    transaction (IntegrityError) and then gets the first one back.
    """
    policy = get_version(session, policy_id, shared=True)
    existing = session.exec(
        select(PolicyAcknowledgement).where(
            PolicyAcknowledgement.policy_version_id == policy_id,
            PolicyAcknowledgement.employee_id == employee_id)
    ).first()
    if existing is not None:
        return Acknowledged(existing, recorded_now=False)
    if policy.status != PolicyStatus.PUBLISHED:
        what = ("still a draft; only a published version can be acknowledged"
                if policy.status == PolicyStatus.DRAFT else
                "retired; acknowledge the version that is published now (GET "
                "/api/v1/policies?status=PUBLISHED)")
        raise PolicyError("conflict", "POLICY_NOT_PUBLISHED",
                          f"Policy version {policy.id} ({policy.name} v{policy.version}) is "
                          f"{what}.")
    ack = PolicyAcknowledgement(policy_version_id=policy_id, employee_id=employee_id,
                                acknowledged_at=utcnow())
    session.add(ack)
    session.flush()
    _audit(session, EVENT_ACKNOWLEDGED, employee_id,
           {"policy_version_id": policy_id, "employee_id": employee_id},
           entity=("policy_acknowledgement", ack.id),
           after={"policy_version_id": policy_id, "employee_id": employee_id,
                  "acknowledged_at": ack.acknowledged_at.isoformat()})
    return Acknowledged(ack, recorded_now=True)


# --- who has acknowledged ------------------------------------------------------------------


def active_salespeople(session: Session) -> list[Employee]:
    """Employees still employed who hold the sales role (job role or account roles)."""
    accounts = {a.employee_id: a for a in session.exec(select(UserAccount)).all()}
    people = session.exec(
        select(Employee).where(Employee.status == EmploymentStatus.EMPLOYED)
        .order_by(col(Employee.employee_no))
    ).all()

    def sells(e: Employee) -> bool:
        account = accounts.get(e.id) if e.id is not None else None
        return e.role == Role.SALES.value or (
            account is not None and Role.SALES.value in account.roles)

    return [e for e in people if sells(e)]


@dataclass(frozen=True)
class AckOverview:
    policy: PolicyVersion
    acknowledged: list[tuple[Employee, datetime]]  # oldest acknowledgement first
    pending: list[Employee]  # active salespeople without one; empty unless PUBLISHED


def acknowledgement_overview(session: Session, policy_id: int) -> AckOverview:
    policy = get_version(session, policy_id)
    rows = session.exec(
        select(Employee, PolicyAcknowledgement.acknowledged_at)
        .join(PolicyAcknowledgement, col(PolicyAcknowledgement.employee_id) == Employee.id)
        .where(PolicyAcknowledgement.policy_version_id == policy_id)
        .order_by(col(PolicyAcknowledgement.acknowledged_at), col(Employee.employee_no))
    ).all()
    acknowledged = [(e, at) for e, at in rows]
    done = {e.id for e, _ in acknowledged}
    pending = ([e for e in active_salespeople(session) if e.id not in done]
               if policy.status == PolicyStatus.PUBLISHED else [])
    return AckOverview(policy=policy, acknowledged=acknowledged, pending=pending)


# --- plain-language rendering --------------------------------------------------------------


def _level_text(level: ApprovalLevelRule) -> str:
    return (f"{level.role.value} (SLA {describe_duration(level.sla)}, reminder after "
            f"{describe_duration(level.reminder_after)})")


def describe_rules(rules: PolicyRules) -> list[str]:
    """The policy in plain English, one line per setting group, for people who acknowledge."""
    lines = [
        "Allowed reasons: " + ", ".join(r.value for r in rules.allowed_reasons) + ".",
        f"Communication window: {describe_duration(rules.communication_window)}"
        + (f" (legal minimum {describe_duration(rules.legal_minimum_window)})"
           if rules.legal_minimum_window > timedelta(0) else "") + ".",
        f"Signature deadline: {describe_duration(rules.signature_deadline)} after the window "
        "ends" + (", reminders " + ", ".join(describe_duration(b)
                                              for b in rules.signature_reminders_before)
                  + " before it" if rules.signature_reminders_before else "") + ".",
        "Approval chain: " + " -> ".join(_level_text(x) for x in rules.approval_levels) + ".",
    ]
    if rules.legal_level is not None:
        triggers = [f"the customers' value reaches {_yuan(rules.legal_threshold_fen)}"]
        if rules.legal_tier_threshold is not None:
            triggers.append(f"a customer's value tier is {rules.legal_tier_threshold} or higher")
        if rules.legal_loss_threshold_fen is not None:
            triggers.append("the salesperson's projected loss reaches "
                            f"{_yuan(rules.legal_loss_threshold_fen)}")
        lines.append(f"Legal approval: {_level_text(rules.legal_level)}, added when "
                     + " or ".join(triggers) + ".")
    lines += [
        f"Protection: for {describe_duration(rules.protection_period)} after the transfer the "
        f"original salesperson keeps {_pct(rules.protection_share_bp)} of the commission.",
        f"Inherited rate: {_pct(rules.inherited_rate_bp)} for the receiving salesperson.",
        f"Compensation: {_pct(rules.compensation_pct_of_loss_bp)} of the projected loss as a "
        "lump sum"
        + (f"; or {describe_duration(rules.compensation_extra_protection)} more protection"
           if rules.compensation_extra_protection > timedelta(0) else "")
        + (f"; or a {_pct(rules.compensation_extra_share_bp)} higher share"
           if rules.compensation_extra_share_bp > 0 else "") + ".",
        f"Cooling-off: at most {rules.cooling_off_max} reassignment(s) of one customer within "
        f"{describe_duration(rules.cooling_off_window)}.",
        f"Valuation horizon: {rules.valuation_horizon_months} months.",
    ]
    return lines
