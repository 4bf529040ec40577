"""Who a log line is about, in what shape it is written, and what this process counts (docs/operations.md).

Why a module of its own at the top: the core (the pipeline), storage (the ledger) and the scheduler all add
to the same log context and counters, and none may import another's edge; this module imports only the
standard library and prometheus_client, so every layer may use it.

The log context is a ``ContextVar``: a web request (``bot/web.py``) or a job run (``scheduler/jobs.py``)
opens a scope with its id, the pipeline adds the platform, the event id and the employee number, and every
line logged meanwhile carries them, in text or JSON (``[server] log_format``).

The counters are prometheus_client's module-level metrics, as that library is built to be used. Under
gunicorn, set ``PROMETHEUS_MULTIPROC_DIR`` so that every worker writes its numbers to files that ``/metrics``
adds up (prometheus_client's multiprocess mode).
"""
from __future__ import annotations

import json
import logging
import re
import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any, Iterator

from prometheus_client import Counter, Histogram

FIELDS = ("request_id", "run_id", "job", "platform", "event_id", "employee")
_CONTEXT: ContextVar[dict[str, str] | None] = ContextVar("pointsbot_log_context", default=None)
_REQUEST_ID = re.compile(r"[A-Za-z0-9-]{1,64}")

CALLBACKS = Counter("pointsbot_callbacks_total", "Platform callbacks answered, by platform, event kind and outcome.",
                    ["platform", "kind", "outcome"])
CALLBACK_SECONDS = Histogram("pointsbot_callback_seconds", "Time to answer a platform callback.", ["platform"],
                             buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
LEDGER_TXNS = Counter("pointsbot_ledger_transactions_total", "Ledger transactions committed, by kind.", ["kind"])


def request_id(given: str | None) -> str:
    """An incoming ``X-Request-ID`` when it is safe to log (≤ 64 of ``[A-Za-z0-9-]``), else a new one."""
    return given if given and _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


@contextmanager
def scope(**fields: Any) -> Iterator[None]:
    """A context layered on the current one (a request's, a job run's, an event's), undone on exit."""
    layer = {**(_CONTEXT.get() or {}), **{k: str(v) for k, v in fields.items() if v not in (None, "")}}
    token = _CONTEXT.set(layer)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def note(**fields: Any) -> None:
    """Add to the innermost scope (the employee, once resolved); outside any scope, nothing."""
    layer = _CONTEXT.get()
    if layer is not None:
        layer.update({k: str(v) for k, v in fields.items() if v not in (None, "")})


class ContextFilter(logging.Filter):
    """Puts the context on every record a handler emits, ``-`` where a field is not known."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _CONTEXT.get() or {}
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, context.get(name, "-"))
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(f"{name}={getattr(record, name)}" for name in FIELDS if getattr(record, name, "-") != "-")
        return f"{line} [{ids}]" if ids else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context fields that are known."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {"ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
                                "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        data |= {name: getattr(record, name) for name in FIELDS if getattr(record, name, "-") != "-"}
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def configure_logging(level: str, fmt: str, *, force: bool = False) -> bool:
    """Give the root logger a stderr handler in the configured format, with the context filter. Like
    ``logging.basicConfig``, it leaves a root logger that has handlers of someone else's alone (a test
    runner's) unless ``force``; a handler it added before is replaced. True when it configured."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_pointsbot", False)]
    if len(ours) != len(root.handlers) and not force:
        return False
    for old in ours:
        root.removeHandler(old)
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    handler._pointsbot = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    return True
