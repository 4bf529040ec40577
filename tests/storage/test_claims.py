"""Exactly-once job runs per period (issue 6 "Done when"): racing schedulers, crash takeover, outage catch-up."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

import app as app_module
import scheduler
from scheduler import jobs
from storage import claims
from settings import build_settings
from storage.models import JobRun

TZ = ZoneInfo("Asia/Shanghai")
PERIODIC = [name for name in jobs.JOBS if claims.GRANULARITY[name] != "none"]


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Replace every job by a recorder, so these tests are about claiming, not about the jobs."""
    calls: dict[str, list[str]] = {name: [] for name in jobs.JOBS}
    for name in jobs.JOBS:
        monkeypatch.setitem(jobs.JOBS, name, lambda bot, period, now, lease, n=name: calls[n].append(period) or "ok")
    return calls


def make_bot(db: Any) -> Any:
    return app_module.PointsBot(settings=build_settings({}), db=db, router=None, pipeline=None)


def test_period_keys_in_server_time_zone() -> None:
    late_utc = datetime(2026, 3, 9, 17, 0)  # 01:00 on 10 March in Shanghai
    assert claims.period_key("expire-points", late_utc, TZ) == "2026-03-10"
    assert claims.period_key("leaderboard", late_utc, TZ) == "2026-W11"
    assert claims.period_key("budget-grant", datetime(2026, 2, 28, 16, 30), TZ) == "2026-03"
    assert claims.period_key("manager-digest", datetime(2027, 1, 1, 4), TZ) == "2026-W53"
    assert claims.period_key("reconcile-approvals", datetime(2026, 3, 10, 2, 45), TZ) == "2026-03-10T10:30"


def test_claim_done_failed_force(engine_db: Any, clock: Any) -> None:
    now = clock()
    assert claims.claim(engine_db, "j", "p", "a", now, 60)
    assert not claims.claim(engine_db, "j", "p", "b", now, 60)  # running under a live lease
    assert claims.finish(engine_db, "j", "p", "a", now)
    assert not claims.claim(engine_db, "j", "p", "b", now + timedelta(days=9), 60)  # done stays done
    assert claims.claim(engine_db, "j", "p", "b", now, 60, force=True)
    assert claims.finish(engine_db, "j", "p", "b", now, ok=False, detail="boom")
    assert claims.claim(engine_db, "j", "p", "c", now, 60)  # a failed run may be taken again


def test_crashed_run_is_taken_over_after_the_lease(engine_db: Any, clock: Any, counted: Any) -> None:
    bot = make_bot(engine_db)
    lease = bot.settings.scheduler["lease_seconds"]
    assert claims.claim(engine_db, "expire-points", "2026-03-10", "host-a", clock(), lease)  # then host-a dies
    assert "already done" in jobs.run_claimed(bot, "expire-points", "2026-03-10", clock(), "host-b")
    clock.advance(seconds=lease + 1)
    assert jobs.run_claimed(bot, "expire-points", "2026-03-10", clock(), "host-b").endswith("ok")
    assert counted["expire-points"] == ["2026-03-10"]
    assert not claims.finish(engine_db, "expire-points", "2026-03-10", "host-a", clock())  # a late host-a loses
    with engine_db.session_scope() as s:
        run = s.scalar(select(JobRun))
        assert run is not None and (run.status, run.owner) == ("done", "host-b")


def test_two_schedulers_racing_run_every_job_once(engine_db: Any, clock: Any, counted: Any) -> None:
    bot = make_bot(engine_db)
    owners = [f"host-{h}:worker-{w}" for h in "ab" for w in range(3)]  # 3 workers x 2 hosts (T7)
    barrier = threading.Barrier(len(owners))
    errors: list[BaseException] = []

    def fire(owner: str) -> None:
        try:
            barrier.wait()
            for name in PERIODIC:
                now = clock()
                jobs.run_claimed(bot, name, claims.period_key(name, now, TZ), now, owner)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=fire, args=(o,)) for o in owners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert {name: len(counted[name]) for name in PERIODIC} == {name: 1 for name in PERIODIC}


def test_three_day_outage_runs_each_job_once_on_restart(sqlite_db: Any, clock: Any, counted: Any) -> None:
    bot = make_bot(sqlite_db)
    clock.now = datetime(2026, 3, 6, 20, 0)  # Saturday 04:00 local: everything has run once
    first = scheduler.catch_up(bot, clock(), "host-a")
    assert set(first) == set(scheduler.CRON_KEYS)
    before = {name: list(v) for name, v in counted.items()}
    clock.now = datetime(2026, 3, 10, 2, 0)  # back after 3+ days down, 10:00 local on Tuesday
    ran = scheduler.catch_up(bot, clock(), "host-a")
    for name in ("expire-points", "expiry-notices", "leaver-policy", "manager-digest", "hr-digest"):
        assert len(counted[name]) - len(before[name]) == 1, name  # once, not once per missed day
    assert counted["expire-points"][-1] == "2026-03-10" and counted["manager-digest"][-1] == "2026-W11"
    assert counted["budget-grant"] == ["2026-03"] and "budget-grant" not in ran  # March was granted at first start
    assert "leaderboard" not in ran and counted["leaderboard"] == ["2026-W10"]  # Friday 18:00 local already ran
    assert scheduler.catch_up(bot, clock(), "host-b") == {}  # a second restart runs nothing


def test_last_fire_time_and_scheduler_configuration(sqlite_db: Any, clock: Any) -> None:
    bot = make_bot(sqlite_db)
    trig = scheduler.triggers(bot.settings)["leaderboard"]
    fired = scheduler.last_fire_time(trig, datetime(2026, 3, 10, 2, 0).replace(tzinfo=ZoneInfo("UTC")))
    assert fired is not None and fired.astimezone(TZ) == datetime(2026, 3, 6, 18, 0, tzinfo=TZ)
    sched = scheduler.build_scheduler(type("App", (), {"extensions": {"pointsbot": bot}})())
    assert not sched.running
    names = {j.id for j in sched.get_jobs()}
    assert names == {*scheduler.CRON_KEYS, "deliver-outbox", "take-over", "heartbeat", "catch-up"}
    assert sched._job_defaults == {"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600}
    assert str(sched.timezone) == "Asia/Shanghai"


def test_bad_cron_names_the_key(sqlite_db: Any) -> None:
    settings = build_settings({"scheduler": {"leaderboard": "not cron"}})
    with pytest.raises(ValueError, match="scheduler.leaderboard"):
        scheduler.triggers(settings)
