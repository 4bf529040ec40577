"""What an operator asks first: is the scheduler alive, is anything stuck, is a setting wrong.

Read by ``GET /status`` and, as gauges, by ``GET /metrics`` (docs/operations.md). Configuration problems are the outbox rows that wait for a fix: a
configuration error (a wrong secret, WeCom 60020) keeps its row pending without counting an attempt
(bot/delivery.py), so pending rows with an error and no attempt are exactly those.
"""
from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.kinds import JobRunStatus, OutboxStatus
from storage.models import Heartbeat, JobRun, Outbox, RateBucket

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
        oldest = s.scalar(select(func.min(Outbox.created_at)).where(Outbox.status == OutboxStatus.PENDING))
        problems = sorted(set(s.scalars(select(Outbox.last_error).where(
            Outbox.status == OutboxStatus.PENDING, Outbox.attempts == 0, Outbox.last_error != ""))))
        jobs = dict(s.execute(select(JobRun.job, func.max(JobRun.finished_at)).where(JobRun.status == JobRunStatus.DONE)
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


ERROR_CODE = re.compile(r"\b(wecom|dingtalk|outbox)\s+([\w.-]+)")


@dataclass
class Gauges:
    """What ``/metrics`` reads from the database at scrape time: the work of every process and host."""

    outbox: dict[tuple[str, str], int] = field(default_factory=dict)  # (platform, status) → rows
    oldest_pending_seconds: float = 0.0
    errors: dict[tuple[str, str], int] = field(default_factory=dict)  # (platform, code) → pending or dead rows
    job_success: dict[str, tuple[float, float]] = field(default_factory=dict)  # job → (finished epoch, seconds)
    heartbeats: dict[tuple[str, str], float] = field(default_factory=dict)  # (kind, instance) → age seconds
    counters: dict[tuple[str, str], int] = field(default_factory=dict)  # rate bucket (destination, window) → count


def _epoch(t: datetime) -> float:
    return t.replace(tzinfo=timezone.utc).timestamp()


def gauges(db: Database, now: datetime, buckets: list[tuple[str, str]]) -> Gauges:
    """Outbox rows by platform and status, delivery errors by code, each job's last success, heartbeats and
    the named rate-bucket counters (the DingTalk monthly calls)."""
    g = Gauges()
    with db.session_scope() as s:
        for platform, st, n in s.execute(select(Outbox.platform, Outbox.status, func.count(Outbox.id))
                                         .where(Outbox.status.in_(("pending", "dead")))
                                         .group_by(Outbox.platform, Outbox.status)):
            g.outbox[(platform or "-", st)] = int(n)
        oldest = s.scalar(select(func.min(Outbox.created_at)).where(Outbox.status == OutboxStatus.PENDING))
        g.oldest_pending_seconds = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
        for error, n in s.execute(select(Outbox.last_error, func.count(Outbox.id))
                                  .where(Outbox.status.in_(("pending", "dead")), Outbox.last_error != "")
                                  .group_by(Outbox.last_error)):
            for platform, code in set(ERROR_CODE.findall(error or "")) or {("-", "other")}:
                g.errors[(platform, code)] = g.errors.get((platform, code), 0) + int(n)
        last = (select(JobRun.job, func.max(JobRun.finished_at).label("at")).where(JobRun.status == JobRunStatus.DONE)
                .group_by(JobRun.job).subquery())
        for job, started, finished in s.execute(select(JobRun.job, JobRun.started_at, JobRun.finished_at).join(
                last, (last.c.job == JobRun.job) & (last.c.at == JobRun.finished_at))):
            g.job_success[job] = (_epoch(finished), max(0.0, (finished - started).total_seconds()))
        for b in s.scalars(select(Heartbeat)):
            g.heartbeats[(b.kind, b.instance)] = max(0.0, (now - b.beat_at).total_seconds())
        for destination, window in buckets:
            count = s.scalar(select(RateBucket.count).where(RateBucket.destination == destination,
                                                            RateBucket.window == window))
            g.counters[(destination, window)] = int(count or 0)
    return g
