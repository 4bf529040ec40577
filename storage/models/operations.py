"""What keeps the bot running: heartbeats, the inbox of handled events, the outbox, rate buckets, job runs."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.kinds import JobRunStatus, OutboxKind, OutboxStatus, enum_column
from storage.models.base import Base, Id


class Heartbeat(Base):
    """A long-running process saying it is alive (the scheduler every 30 s); stale after 90 s."""

    __tablename__ = "heartbeats"
    __table_args__ = (UniqueConstraint("kind", "instance", name="uq_heartbeats"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))  # scheduler | stream
    instance: Mapped[str] = mapped_column(String(128))
    host: Mapped[str] = mapped_column(String(128))
    pid: Mapped[int] = mapped_column(Integer)
    beat_at: Mapped[datetime] = mapped_column(DateTime)


class ProcessedEvent(Base):
    """Inbox: one row per delivered platform event, with the answer given (for redeliveries)."""

    __tablename__ = "processed_events"
    __table_args__ = (UniqueConstraint("platform", "event_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    response_status: Mapped[int] = mapped_column(Integer, default=200)
    response_body: Mapped[str] = mapped_column(Text, default="")
    response_type: Mapped[str] = mapped_column(String(64), default="text/plain")


class Outbox(Base):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    idem_key: Mapped[str | None] = mapped_column(String(191), unique=True, nullable=True)
    kind: Mapped[OutboxKind] = mapped_column(enum_column(OutboxKind, 32))
    platform: Mapped[str] = mapped_column(String(16), default="")
    destination: Mapped[str] = mapped_column(String(191), default="")  # rate-limit bucket
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[OutboxStatus] = mapped_column(enum_column(OutboxStatus, 16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    locked_by: Mapped[str] = mapped_column(String(64), default="")
    last_error: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class RateBucket(Base):
    """Sends per destination per minute window, shared by every delivery worker."""

    __tablename__ = "rate_buckets"
    __table_args__ = (UniqueConstraint("destination", "window"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    destination: Mapped[str] = mapped_column(String(191))
    window: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(Integer, default=0)


class JobRun(Base):
    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job", "period"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(64))
    status: Mapped[JobRunStatus] = mapped_column(enum_column(JobRunStatus, 16))
    owner: Mapped[str] = mapped_column(String(128), default="")
    started_at: Mapped[datetime] = mapped_column(DateTime)
    lease_until: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
