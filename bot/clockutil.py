"""Bridge between the database clock (naive UTC datetimes), epoch times and the platforms' time stamps."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable


def epoch_clock(clock: Callable[[], datetime]) -> Callable[[], float]:
    return lambda: clock().replace(tzinfo=timezone.utc).timestamp()


def platform_time(value: object) -> datetime | None:
    """A platform time stamp as naive UTC, or None when absent, zero or unreadable.

    The platforms write the same moment three ways: epoch seconds (WeCom ``SpTime``, ``CreateTime``),
    epoch milliseconds (DingTalk events' ``finishTime``) and ISO 8601 text (DingTalk's
    ``/v1.0/workflow/processInstances``: ``"2026-11-01T12:00Z"``). See docs/protocols.md.
    """
    text = str(value).strip() if value is not None else ""
    if not text or text == "0":
        return None
    if text.isdigit():
        number = int(text)
        seconds = number / 1000 if number > 10**11 else number  # 10**11 s is the year 5138
        return datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed
