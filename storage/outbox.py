"""The transactional outbox: rows written in the same transaction as the change that caused them.

Storage knows only JSON payloads; what they mean (a card, a task) is decided by ``bot/delivery.py``,
the single delivery path, which runs in the scheduler process.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.db import Database
from storage.kinds import OutboxStatus
from storage.models import Outbox


def enqueue(s: Session, kind: str, payload: dict[str, Any], *, now: datetime, idem_key: str | None = None,
            platform: str = "", destination: str = "", not_before: datetime | None = None) -> Outbox | None:
    """Add a row; with ``idem_key`` a second enqueue of the same key is a no-op (returns None)."""
    if idem_key is not None and s.scalar(select(Outbox.id).where(Outbox.idem_key == idem_key)) is not None:
        return None
    row = Outbox(idem_key=idem_key, kind=kind, platform=platform, destination=destination,
                 payload=json.dumps(payload, ensure_ascii=False), status=OutboxStatus.PENDING, attempts=0,
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


BATCH = 500


def enqueue_many(db: Database, rows: list[dict[str, Any]], now: datetime) -> int:
    """Write outbox rows (``idem_key``, ``payload``, optional ``kind``/``platform``/``destination``) in batches of
    ≤ BATCH rows a transaction (the jobs' way to queue thousands of notices), skipping idem keys already present; returns rows added."""
    added = 0
    for start in range(0, len(rows), BATCH):
        chunk = rows[start:start + BATCH]
        keys = [r["idem_key"] for r in chunk]
        try:
            with db.session_scope() as s:
                have = set(s.scalars(select(Outbox.idem_key).where(Outbox.idem_key.in_(keys))))
                new = [{"idem_key": r["idem_key"], "kind": r.get("kind", "notice"), "platform": r.get("platform", ""),
                        "destination": r.get("destination", ""), "payload": json.dumps(r["payload"], ensure_ascii=False),
                        "status": OutboxStatus.PENDING, "attempts": 0, "next_attempt_at": now, "locked_by": "", "last_error": "",
                        "created_at": now} for r in chunk if r["idem_key"] not in have]
                if new:  # Core, not the ORM's bulk path: a year-end expiry queues 100,000 notices
                    s.connection().execute(insert(Outbox.__table__), new)
                added += len(new)
        except IntegrityError:  # a concurrent run wrote some of the same keys: go row by row
            with db.session_scope() as s:
                for r in chunk:
                    added += enqueue(s, r.get("kind", "notice"), r["payload"], now=now, idem_key=r["idem_key"],
                                     platform=r.get("platform", ""), destination=r.get("destination", "")) is not None
    return added
