"""Bridge between the database clock (naive UTC datetimes) and epoch seconds for signature windows."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable


def epoch_clock(clock: Callable[[], datetime]) -> Callable[[], float]:
    return lambda: clock().replace(tzinfo=timezone.utc).timestamp()
