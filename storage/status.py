"""What an operator asks first: is the scheduler alive, is anything stuck, is a setting wrong.

Read by ``GET /status``. Configuration problems are the outbox rows that wait for a fix: a
configuration error (a wrong secret, WeCom 60020) keeps its row pending without counting an attempt
(bot/delivery.py), so pending rows with an error and no attempt are exactly those.
"""
from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.models import Heartbeat, JobRun, Outbox

BEAT_SECONDS, STALE_SECONDS = 30, 90


def beat(db: Database, kind: str, instance: str, now: datetime) -> None:
    """Record that this process is alive (insert once, then update)."""
    values = {"host": socket.gethostname()[:128], "pid": os.getpid(), "beat_at": now}
    with db.session_scope() as s:
        row = s.scalar(select(Heartbeat).where(Heartbeat.kind == kind, Heartbeat.instance == instance[:128]))
        if row is not None:
            for key, value in values.items():
                setattr(row, key, value)
            return
        try:
            with s.begin_nested():
                s.add(Heartbeat(kind=kind, instance=instance[:128], **values))
                s.flush()
        except IntegrityError:  # the same instance beat from another thread just now
            pass


def status(db: Database, now: datetime) -> dict[str, Any]:
    with db.session_scope() as s:
        counts = dict(s.execute(select(Outbox.status, func.count(Outbox.id)).group_by(Outbox.status)).all())
        oldest = s.scalar(select(func.min(Outbox.created_at)).where(Outbox.status == "pending"))
        problems = sorted(set(s.scalars(select(Outbox.last_error).where(
            Outbox.status == "pending", Outbox.attempts == 0, Outbox.last_error != ""))))
        jobs = dict(s.execute(select(JobRun.job, func.max(JobRun.finished_at)).where(JobRun.status == "done")
                              .group_by(JobRun.job)).all())
        beats = list(s.scalars(select(Heartbeat).order_by(Heartbeat.kind, Heartbeat.instance)))
    stale = now - timedelta(seconds=STALE_SECONDS)
    return {
        "configuration_errors": problems,
        "outbox": {"pending": int(counts.get("pending", 0)), "dead": int(counts.get("dead", 0)),
                   "oldest_pending_seconds": int((now - oldest).total_seconds()) if oldest else 0},
        "jobs": {job: at.isoformat() + "Z" for job, at in sorted(jobs.items()) if at is not None},
        "heartbeats": [{"kind": b.kind, "instance": b.instance, "host": b.host, "pid": b.pid,
                        "beat_at": b.beat_at.isoformat() + "Z", "stale": b.beat_at < stale} for b in beats],
    }
