"""The prune job's deletions (storage/retention.py), on every engine: only what its window no longer keeps."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from settings import build_settings
from storage import retention
from storage.models import JobRun, Outbox, ProcessedEvent, RateBucket, SentCard


def test_prune_keeps_what_the_windows_keep(engine_db, clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "BATCH", 2)  # several batches per table
    now, days = clock(), build_settings({}).retention

    def ago(**kw: float):  # type: ignore[no-untyped-def]
        return now - timedelta(**kw)

    with engine_db.session_scope() as s:
        s.add_all([ProcessedEvent(platform="wecom", event_id=f"old{i}", created_at=ago(days=31)) for i in range(5)])
        s.add(ProcessedEvent(platform="wecom", event_id="recent", created_at=ago(days=29)))
        for key, status, sent in (("sent-old", "sent", ago(days=31)), ("sent-new", "sent", ago(days=1)),
                                  ("pending-old", "pending", None), ("dead-old", "dead", None)):
            s.add(Outbox(idem_key=key, kind="notice", payload="{}", status=status, attempts=0, sent_at=sent,
                         next_attempt_at=ago(days=60), created_at=ago(days=60)))
        for period, status, finished in (("p-old", "done", ago(days=181)), ("p-new", "done", ago(days=10)),
                                         ("p-run", "running", None), ("p-failed", "failed", ago(days=200))):
            s.add(JobRun(job="j", period=period, status=status, owner="o", started_at=ago(days=300),
                         lease_until=ago(days=300), finished_at=finished, detail=""))
        s.add_all([RateBucket(destination="d", window=f"{ago(days=3):%Y-%m-%dT%H}:{m:02d}", count=1) for m in range(3)])
        s.add(RateBucket(destination="d", window=f"{ago(hours=1):%Y-%m-%dT%H:%M}", count=1))
        s.add(RateBucket(destination="dingtalk:quota", window=f"{ago(days=400):%Y-%m}", count=4999))  # monthly quota
        for subject, age in (("R1", ago(days=8)), ("R2", ago(days=6))):  # cards: kept a week (≥ WeCom's 72 h)
            s.add(SentCard(subject=subject, platform="wecom", user_id="u", task_id="t", response_code="c", sent_at=age))
    result = retention.prune(engine_db, now, days)
    assert result.deleted == {"processed_events": 5, "outbox": 1, "job_runs": 1, "rate_buckets": 3, "sent_cards": 1}
    with engine_db.session_scope() as s:
        assert list(s.scalars(select(ProcessedEvent.event_id))) == ["recent"]  # a redelivery is still answered
        assert sorted(s.scalars(select(Outbox.idem_key))) == ["dead-old", "pending-old", "sent-new"]
        assert sorted(s.scalars(select(JobRun.period))) == ["p-failed", "p-new", "p-run"]
        assert sorted(s.scalars(select(RateBucket.destination))) == ["d", "dingtalk:quota"]
        assert list(s.scalars(select(SentCard.subject))) == ["R2"]
    assert retention.prune(engine_db, now, days).deleted == dict.fromkeys(result.deleted, 0)


def test_retention_windows_are_checked(engine_db) -> None:
    from settings import ConfigError

    with pytest.raises(ConfigError, match="retention.job_runs_days"):
        build_settings({"retention": {"job_runs_days": 30}})
    with pytest.raises(ConfigError, match="retention.events_days"):
        build_settings({"retention": {"events_days": 0}})
