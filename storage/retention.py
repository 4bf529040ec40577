"""The ``prune`` job's work: rows that are only useful for a while, deleted in small batches.

Why each window: a platform redelivers an event within minutes, so the stored answers of
``processed_events`` are kept ``events_days`` (a redelivery inside the window is still answered
from the store); sent outbox rows are history, not state; finished ``job_runs`` must outlive the
scheduler's catch-up look-back (40 days); per-minute rate buckets are dead a minute later. The
monthly DingTalk quota counters (``rate_buckets`` whose window is a month, ``YYYY-MM``) are kept.
``sent_cards`` outlive WeCom's 72-hour card codes (a decision after that is answered by a message).
Batches keep every transaction short, as expiry does (docs/reliability.md §2.3): on SQLite a long
delete would hold the write lock against every callback.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping

from sqlalchemy import delete, select
from sqlalchemy.sql import ColumnElement

from storage.db import Database
from storage.kinds import JobRunStatus, OutboxStatus
from storage.models import JobRun, Outbox, ProcessedEvent, RateBucket, SentCard

BATCH = 1000


@dataclass
class PruneResult:
    deleted: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        return ", ".join(f"{n} {table}" for table, n in self.deleted.items()) + " pruned"


def _targets(now: datetime, days: Mapping[str, int]) -> list[tuple[Any, ColumnElement[bool]]]:
    def before(n: int) -> datetime:
        return now - timedelta(days=n)

    minute = f"{before(days['rate_buckets_days']):%Y-%m-%dT%H:%M}"
    return [
        (ProcessedEvent, ProcessedEvent.created_at < before(days["events_days"])),
        (Outbox, (Outbox.status == OutboxStatus.SENT) & (Outbox.sent_at < before(days["sent_messages_days"]))),
        (JobRun, (JobRun.status == JobRunStatus.DONE) & (JobRun.finished_at < before(days["job_runs_days"]))),
        (RateBucket, RateBucket.window.like("%T%") & (RateBucket.window < minute)),  # per-minute windows only
        (SentCard, SentCard.sent_at < before(max(days["sent_cards_days"], 3))),  # never inside WeCom's 72 hours
    ]


def prune(db: Database, now: datetime, days: Mapping[str, int], *,
          between_batches: Callable[[], None] = lambda: None) -> PruneResult:
    """Delete what the retention windows no longer keep, ``BATCH`` rows per transaction."""
    result = PruneResult()
    for model, old in _targets(now, days):
        total = 0
        while True:
            with db.session_scope() as s:
                ids = list(s.scalars(select(model.id).where(old).order_by(model.id).limit(BATCH)))
                if ids:
                    s.execute(delete(model).where(model.id.in_(ids)))
            total += len(ids)
            if len(ids) < BATCH:
                break
            between_batches()
        result.deleted[model.__tablename__] = total
    return result
