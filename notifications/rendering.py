"""Each notice kind as a message in the reader's language, from Jinja2 templates.

`templates/<language>/<kind in lower case>.j2` defines three blocks: `subject`, `body` (plain
paragraphs separated by blank lines) and `action` (the link's label). The layouts
`_layout.txt.j2` and `_layout.html.j2` of the same language wrap them into the e-mail's text
and HTML parts; a group robot gets the subject and the link only.

Subjects use ids only, so the same block serves the group robots: they are rendered with a
context of ids and links alone, and StrictUndefined makes a subject that names a person fail
(tests/unit/test_notification_rendering.py renders every kind that way).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template

from documents import formatting as fmt

TEMPLATES = Path(__file__).resolve().parent / "templates"
LANGUAGES = ("zh-CN", "en")
DEFAULT_LANGUAGE = "zh-CN"

# every kind the workflow, the escalation activity and a robot may hear of
KINDS = (
    "APPROVAL_REQUESTED", "APPROVAL_REMINDER", "APPROVAL_ESCALATED", "APPROVED",
    "REPORT_AVAILABLE", "STAGE_CHANGED", "SIGNATURE_REQUESTED", "SIGNATURE_REMINDER",
    "APPEAL_OPENED", "APPEAL_RESOLVED", "DECLINED", "EXPIRED_NO_CONSENT",
    "OWNERSHIP_TRANSFERRED", "COMPLETED", "REJECTED", "WITHDRAWN", "CANCELLED",
)
# the values a notice's params may carry (all ids, codes or times; `reason` is free text and
# only ever reaches a personal e-mail)
PARAM_KEYS = ("level", "due_at", "deadline", "window_end", "stage", "outcome", "reason",
              "protection_end")
TIME_PARAMS = ("due_at", "deadline", "window_end", "protection_end")
ROBOT_KEYS = ("request_id", "link", "level", "stage", "stage_label")

STAGE_LABELS = {
    "zh-CN": {"SUBMITTED": "已提交", "PENDING_APPROVAL": "审批中", "SCHEDULED": "待生效",
              "COMMUNICATION": "沟通期", "APPEAL_REVIEW": "申诉处理中",
              "AWAITING_SIGNATURE": "待签署", "EFFECTIVE": "已生效", "PROTECTION": "保护期",
              "COMPLETED": "已完成", "REJECTED": "已驳回", "WITHDRAWN": "已撤回",
              "CANCELLED": "已取消", "DECLINED": "已拒签", "EXPIRED_NO_CONSENT": "逾期未签署"},
    "en": {"SUBMITTED": "submitted", "PENDING_APPROVAL": "pending approval",
           "SCHEDULED": "scheduled", "COMMUNICATION": "communication window",
           "APPEAL_REVIEW": "appeal review", "AWAITING_SIGNATURE": "awaiting signature",
           "EFFECTIVE": "effective", "PROTECTION": "protection period",
           "COMPLETED": "completed", "REJECTED": "rejected", "WITHDRAWN": "withdrawn",
           "CANCELLED": "cancelled", "DECLINED": "declined",
           "EXPIRED_NO_CONSENT": "expired without consent"},
}
_PARAGRAPHS = re.compile(r"\n\s*\n")


def language_of(locale: str | None) -> str:
    """An employee's locale as a template language: 'en-US' -> 'en', anything else zh-CN."""
    key = (locale or "").strip().replace("_", "-").lower()
    return "en" if key.startswith("en") else DEFAULT_LANGUAGE


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: str
    link: str
    action: str
    language: str


@dataclass(frozen=True)
class RobotText:
    title: str
    link: str
    action: str


@cache
def _env(autoescape: bool, layout: bool = True) -> Environment:
    # the kinds' bodies keep every newline: a blank line inside `{% if %}` starts a paragraph
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=autoescape,
                       undefined=StrictUndefined, trim_blocks=layout, lstrip_blocks=layout)


def _block(template: Template, name: str, context: dict[str, Any]) -> str:
    return "".join(template.blocks[name](template.new_context(context))).strip()


def template_for(kind: str, language: str) -> Template:
    return _env(False, layout=False).get_template(f"{language}/{kind.lower()}.j2")


def prepare(params: dict[str, Any], language: str, timezone: str) -> dict[str, Any]:
    """Params as the reader reads them: times in the office's zone and language."""
    values: dict[str, Any] = {key: None for key in PARAM_KEYS}
    values.update(params)
    for key in TIME_PARAMS:
        value = values.get(key)
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime):
            values[key] = fmt.moment(value, language, timezone)
    stage = values.get("stage")
    values["stage_label"] = STAGE_LABELS[language].get(stage, stage) if stage else None
    return values


def render_email(kind: str, language: str, context: dict[str, Any]) -> RenderedMessage:
    """The subject, text and HTML of one notice to one person. `context` holds the prepared
    params plus request_id, link, recipient_name, requester_name, from_name, to_name and
    customer_count."""
    template = template_for(kind, language)
    subject = " ".join(_block(template, "subject", context).split())
    body = _block(template, "body", context)
    action = _block(template, "action", context)
    paragraphs = [" ".join(p.split()) for p in _PARAGRAPHS.split(body) if p.strip()]
    layout = {**context, "subject": subject, "paragraphs": paragraphs, "action": action,
              "lang": language}
    text = _env(False).get_template(f"{language}/_layout.txt.j2").render(layout).strip() + "\n"
    html = _env(True).get_template(f"{language}/_layout.html.j2").render(layout)
    return RenderedMessage(subject=subject, text=text, html=html, link=context["link"],
                           action=action, language=language)


def render_robot(kind: str, language: str, context: dict[str, Any]) -> RobotText:
    """A group robot's message: the subject and the link, from ids alone."""
    safe = {key: context[key] for key in ROBOT_KEYS if key in context}
    template = template_for(kind, language)
    return RobotText(title=" ".join(_block(template, "subject", safe).split()),
                     link=safe["link"], action=_block(template, "action", safe))
