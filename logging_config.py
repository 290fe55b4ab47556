"""Log lines for the API and the worker: JSON (one object a line) or text, configured once.

Every line carries the ids that tie it to its cause and nothing personal:
- `request_id` in the API (api/observability.py sets it per request, from a sane incoming
  X-Request-ID or a new one);
- `workflow_id`, `workflow_type`, `run_id` (and `activity_type`, `activity_id`, `attempt` in an
  activity) in the worker, from the Temporal SDK's `workflow.logger`/`activity.logger` extras
  or, for a plain logger inside an activity, from the activity's context.
Callers log ids only: never names, phone numbers, e-mail addresses, request bodies or query
strings. The API's access line is ours (the route template, not the raw path); uvicorn's own
access log is switched off, and httpx's request lines raised to WARNING, because they print
query strings (and httpx the webhook URLs with their keys).
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import IO, Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter
from temporalio import activity

request_id_var: ContextVar[str | None] = ContextVar("baton_request_id", default=None)

# the SDK's structured extras, flattened by ContextFilter into top-level fields
_WORKFLOW_FIELDS = {"workflow_id": "workflow_id", "run_id": "run_id",
                    "workflow_type": "workflow_type"}
_ACTIVITY_FIELDS = {"workflow_id": "workflow_id", "workflow_run_id": "run_id",
                    "workflow_type": "workflow_type", "activity_type": "activity_type",
                    "activity_id": "activity_id", "attempt": "attempt"}
# not printed as fields: the SDK's nested dicts (flattened instead), its core's log object
# and uvicorn's ANSI copy of the message
_HIDDEN = ("temporal_workflow", "temporal_activity", "temporal_log", "color_message")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(ids)s%(message)s"


class ContextFilter(logging.Filter):
    """Adds request_id / workflow and activity ids to each record that has them."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_id_var.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        workflow = getattr(record, "temporal_workflow", None)
        act = getattr(record, "temporal_activity", None)
        if isinstance(workflow, dict):
            _copy(record, workflow, _WORKFLOW_FIELDS)
        elif isinstance(act, dict):
            _copy(record, act, _ACTIVITY_FIELDS)
        elif activity.in_activity():  # a module logger inside an activity
            info = activity.info()
            _copy(record, {"workflow_id": info.workflow_id, "workflow_run_id":
                           info.workflow_run_id, "workflow_type": info.workflow_type,
                           "activity_type": info.activity_type, "activity_id": info.activity_id,
                           "attempt": info.attempt}, _ACTIVITY_FIELDS)
        return True


def _copy(record: logging.LogRecord, source: dict[str, Any], fields: dict[str, str]) -> None:
    for key, name in fields.items():
        value = source.get(key)
        if value is not None and not hasattr(record, name):
            setattr(record, name, value)


class TextFormatter(logging.Formatter):
    """The text format, with the ids in brackets when the line has any."""

    def format(self, record: logging.LogRecord) -> str:
        ids = [f"{name}={getattr(record, name)}" for name in
               ("request_id", "workflow_id", "activity_type") if hasattr(record, name)]
        record.ids = f"[{' '.join(ids)}] " if ids else ""
        return super().format(record)


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        reserved_attrs=[*RESERVED_ATTRS, *_HIDDEN, "ids"],
        timestamp="time",  # ISO 8601, UTC
        json_ensure_ascii=False,
    )


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (pytest and uvicorn replace it)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(log_format: Literal["json", "text"], level: str = "INFO",
                      stream: IO[str] | None = None) -> logging.Handler:
    """Route the root logger (and uvicorn's) through one handler in the chosen format.

    Idempotent: a second call replaces the handler the first one installed, and handlers
    others installed (pytest's) stay. Returns the handler, so a test can remove it.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_baton", False)]:
        root.removeHandler(old)
    handler: logging.Handler = (logging.StreamHandler(stream) if stream is not None
                                else _CurrentStderr())
    handler._baton = True  # type: ignore[attr-defined]
    handler.setFormatter(json_formatter() if log_format == "json"
                         else TextFormatter(TEXT_FORMAT))
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn's server messages through our handler; its access log prints query strings
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True
    # httpx logs every outgoing request's full URL at INFO: query strings, and webhook URLs
    # that carry their robot's key
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # WeasyPrint narrates every rendering step at INFO ("Step 1 - Fetching ...")
    for name in ("weasyprint", "fontTools"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler
