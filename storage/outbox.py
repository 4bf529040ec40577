"""The transactional outbox: rows written in the same transaction as the change that caused them.

Storage knows only JSON payloads; what they mean (a card, a task) is decided by ``bot/delivery.py``,
the single delivery path, which runs in the scheduler process.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.models import Outbox


def enqueue(s: Session, kind: str, payload: dict[str, Any], *, now: datetime, idem_key: str | None = None,
            platform: str = "", destination: str = "", not_before: datetime | None = None) -> Outbox | None:
    """Add a row; with ``idem_key`` a second enqueue of the same key is a no-op (returns None)."""
    if idem_key is not None and s.scalar(select(Outbox.id).where(Outbox.idem_key == idem_key)) is not None:
        return None
    row = Outbox(idem_key=idem_key, kind=kind, platform=platform, destination=destination,
                 payload=json.dumps(payload, ensure_ascii=False), status="pending", attempts=0,
                 next_attempt_at=not_before or now, created_at=now)
    if idem_key is None:  # nothing to collide with: no savepoint
        s.add(row)
        s.flush()
        return row
    try:
        with s.begin_nested():
            s.add(row)
            s.flush()
    except IntegrityError:
        return None
    return row
