"""Exactly-once job runs per period, from any number of scheduler processes (docs/reliability.md §5.2).

Why a database claim and not a lock file or APScheduler's job store: APScheduler 3 cannot share a job
store between processes, and field reports show jobs running once per gunicorn worker or host. A row
in ``job_runs`` with UNIQUE (job, period) works on SQLite, PostgreSQL and MariaDB alike: the first
INSERT wins, everyone else sees the conflict. A ``lease_until``, renewed between batches, lets another
scheduler take over a run whose owner died (``lapsed``, swept every minute); a finished (``done``)
period is never run again unless forced.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.kinds import JobRunStatus
from storage.models import JobRun

Granularity = Literal["day", "week", "month", "halfhour", "none"]

# How often each job's effect may happen; the period key is derived from this, not from the cron
# expression, so an operator moving a daily job to 02:00 cannot make it run twice in a day.
GRANULARITY: dict[str, Granularity] = {
    "expire-points": "day",
    "expiry-notices": "day",
    "leaderboard": "week",
    "manager-digest": "week",
    "hr-digest": "week",
    "budget-grant": "month",
    "leaver-policy": "day",
    "reconcile-approvals": "halfhour",
    "lapse-orders": "halfhour",
    "prune": "day",
    "deliver-outbox": "none",
}


def worker_name() -> str:
    """Who holds a claim or an outbox lease: host, process and thread, so an operator can find it."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"[:64]


def local(now: datetime, tz: ZoneInfo) -> datetime:
    """A naive-UTC database time as an aware local time."""
    return now.replace(tzinfo=timezone.utc).astimezone(tz)


def to_utc(moment: datetime) -> datetime:
    """An aware time as naive UTC (how the database stores every timestamp)."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def period_key(job: str, now: datetime, tz: ZoneInfo) -> str:
    """``YYYY-MM-DD`` (daily), ``YYYY-Www`` (ISO week), ``YYYY-MM`` (monthly) in the server time zone."""
    at = local(now, tz) if now.tzinfo is None else now.astimezone(tz)
    kind = GRANULARITY.get(job, "day")
    if kind == "week":
        year, week, _ = at.isocalendar()
        return f"{year}-W{week:02d}"
    if kind == "month":
        return f"{at:%Y-%m}"
    if kind == "halfhour":
        return f"{at:%Y-%m-%dT%H}:{0 if at.minute < 30 else 30:02d}"
    if kind == "none":
        return f"{at:%Y-%m-%dT%H:%M:%S}"
    return f"{at:%Y-%m-%d}"


def period_day(period: str) -> date:
    """The date of a daily period key."""
    return date.fromisoformat(period[:10])


def claim(db: Database, job: str, period: str, owner: str, now: datetime, lease_seconds: float, *,
          force: bool = False) -> bool:
    """Take the (job, period) run; False when it is done, or running under a live lease elsewhere.

    A ``failed`` run may be taken again at once (its owner gave up); ``force`` also re-runs a
    ``done`` period but never one that is running under a live lease.
    """
    until = now + timedelta(seconds=lease_seconds)
    with db.session_scope() as s:
        try:
            with s.begin_nested():
                s.add(JobRun(job=job, period=period, status=JobRunStatus.RUNNING, owner=owner[:128], started_at=now,
                             lease_until=until, detail=""))
                s.flush()
            return True
        except IntegrityError:
            pass
        takeable = [(JobRun.status == JobRunStatus.RUNNING) & (JobRun.lease_until <= now), JobRun.status == JobRunStatus.FAILED]
        if force:
            takeable.append(JobRun.status == JobRunStatus.DONE)
        res = s.execute(update(JobRun).where(JobRun.job == job, JobRun.period == period, or_(*takeable))
                        .values(status=JobRunStatus.RUNNING, owner=owner[:128], started_at=now, lease_until=until,
                                finished_at=None))
        return res.rowcount == 1


def renew(db: Database, job: str, period: str, owner: str, now: datetime, lease_seconds: float) -> bool:
    """Extend our lease during a long run; False if another scheduler has taken the run over."""
    with db.session_scope() as s:
        return s.execute(update(JobRun).where(JobRun.job == job, JobRun.period == period, JobRun.owner == owner[:128],
                                              JobRun.status == JobRunStatus.RUNNING)
                         .values(lease_until=now + timedelta(seconds=lease_seconds))).rowcount == 1


def finish(db: Database, job: str, period: str, owner: str, now: datetime, *, ok: bool = True,
           detail: str = "") -> bool:
    """Mark our run done (or failed, so it may be taken again); False if we no longer own it."""
    with db.session_scope() as s:
        return s.execute(update(JobRun).where(JobRun.job == job, JobRun.period == period, JobRun.owner == owner[:128])
                         .values(status=JobRunStatus.DONE if ok else JobRunStatus.FAILED, finished_at=now,
                                 lease_until=now, detail=detail[:4000])).rowcount == 1


def release(db: Database, job: str, period: str, owner: str, now: datetime) -> bool:
    """Give a run we are stopping back: its lease ends now, so the next takeover sweep finishes it."""
    with db.session_scope() as s:
        return s.execute(update(JobRun).where(JobRun.job == job, JobRun.period == period, JobRun.owner == owner[:128],
                                              JobRun.status == JobRunStatus.RUNNING)
                         .values(lease_until=now, detail="released at a batch boundary")).rowcount == 1


def lapsed(db: Database, now: datetime) -> list[tuple[str, str]]:
    """(job, period) of every run left ``running`` by an owner whose lease has lapsed (it died)."""
    with db.session_scope() as s:
        return [(j, p) for j, p in s.execute(select(JobRun.job, JobRun.period).where(
            JobRun.status == JobRunStatus.RUNNING, JobRun.lease_until <= now).order_by(JobRun.period, JobRun.job))]


class LeaseLost(RuntimeError):
    """Stop at this batch boundary: the scheduler is stopping, or another one has taken the run over."""


@dataclass
class Lease:
    """Our claim on a running (job, period): renewed between batches, every ``seconds / 3``.

    A run that cannot renew (the database is gone, another scheduler took over after a long pause)
    must stop at the next boundary rather than race the new owner; so must one whose process was
    asked to stop (``stopping``).
    """

    db: Database
    job: str
    period: str
    owner: str
    seconds: float
    stopping: threading.Event = field(default_factory=threading.Event)
    renewed: float = field(default_factory=time.monotonic)

    def keep(self) -> None:
        if self.stopping.is_set():
            raise LeaseLost(f"{self.job} {self.period}: stopping")
        if time.monotonic() - self.renewed < self.seconds / 3:
            return
        try:
            ok = renew(self.db, self.job, self.period, self.owner, self.db.clock(), self.seconds)
        except Exception as exc:  # the database is unreachable: we cannot prove we still own it
            raise LeaseLost(f"{self.job} {self.period}: lease not renewed ({type(exc).__name__})") from exc
        if not ok:
            raise LeaseLost(f"{self.job} {self.period}: taken over by another scheduler")
        self.renewed = time.monotonic()


def has_run(db: Database, job: str, period: str) -> bool:
    """Whether any run (done, running or failed) exists for the period: the catch-up test."""
    with db.session_scope() as s:
        return s.scalar(select(JobRun.id).where(JobRun.job == job, JobRun.period == period)) is not None


def last_done(db: Database, job: str, before: str) -> str | None:
    """The newest finished period of ``job`` earlier than ``before`` (keys sort chronologically)."""
    with db.session_scope() as s:
        return s.scalar(select(JobRun.period).where(JobRun.job == job, JobRun.status == JobRunStatus.DONE, JobRun.period < before)
                        .order_by(JobRun.period.desc()).limit(1))
