"""The scheduler process: ``flask --app app scheduler`` (never inside a web worker, reliability.md §5).

Why this shape: APScheduler 3's ``BlockingScheduler`` with the in-memory job store and code-defined
cron jobs, because job stores cannot be shared between processes. Running several of these processes
is still safe: every run is claimed in ``job_runs`` (scheduler/claims.py), so each period runs once
wherever it fires. ``misfire_grace_time`` is an hour (APScheduler's default of one second would skip a
daily job that fires while the process is busy), runs coalesce, and at start each job whose last
scheduled period has no run at all is caught up once (not once per missed period).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

log = logging.getLogger(__name__)

# job name -> [scheduler] key of its cron expression
CRON_KEYS = {
    "expire-points": "expire_points", "expiry-notices": "expiry_notices", "leaderboard": "leaderboard",
    "manager-digest": "manager_digest", "hr-digest": "hr_digest", "budget-grant": "budget_grant",
    "leaver-policy": "leaver_policy", "reconcile-approvals": "reconcile_approvals",
}
LOOKBACK = timedelta(days=40)  # longer than the longest schedule (monthly)


def triggers(settings: Any) -> dict[str, CronTrigger]:
    """The cron trigger of every job, in the server time zone (a bad expression names its key)."""
    out = {}
    for job, key in CRON_KEYS.items():
        try:
            out[job] = CronTrigger.from_crontab(settings.scheduler[key], timezone=settings.tz)
        except ValueError as exc:
            raise ValueError(f"scheduler.{key}: not a valid cron expression ({exc})") from None
    return out


def last_fire_time(trigger: CronTrigger, now: datetime) -> datetime | None:
    """The most recent time at or before ``now`` (aware) at which ``trigger`` fired."""
    fire, last = trigger.get_next_fire_time(None, now - LOOKBACK), None
    while fire is not None and fire <= now:
        last, fire = fire, trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    return last


def catch_up(bot: Any, now: datetime, owner: str) -> dict[str, str]:
    """Run once each job whose last scheduled period has no ``job_runs`` row; returns what ran."""
    from scheduler.claims import has_run, period_key
    from scheduler.jobs import run_claimed

    done: dict[str, str] = {}
    aware = now.replace(tzinfo=timezone.utc)
    for job, trigger in triggers(bot.settings).items():
        fired = last_fire_time(trigger, aware)
        if fired is None:
            continue
        period = period_key(job, fired, bot.settings.tz)
        if not has_run(bot.db, job, period):
            done[job] = run_claimed(bot, job, period, now, owner)
            log.info("catch-up: %s", done[job])
    return done


def _fire(bot: Any, job: str, owner: str) -> None:
    """What APScheduler calls: claim the current period and run (errors are logged, not raised)."""
    from scheduler.claims import period_key
    from scheduler.jobs import run_claimed

    now = bot.db.clock()
    run_claimed(bot, job, period_key(job, now, bot.settings.tz), now, owner)


def _deliver(bot: Any, worker_id: str) -> None:
    from bot.outbox import drain

    try:
        drain(bot, worker_id=worker_id, max_rounds=20)
    except Exception:  # a database hiccup must not stop the interval job
        log.exception("outbox delivery failed")


def build_scheduler(app: Any) -> BlockingScheduler:
    """A configured, not yet started scheduler; ``start()`` first runs the catch-up, then blocks."""
    from bot.outbox import worker_name

    bot = app.extensions["pointsbot"]
    settings = bot.settings
    logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)  # one line a second otherwise
    owner = f"scheduler:{worker_name()}"
    scheduler = BlockingScheduler(timezone=settings.tz, job_defaults={
        "coalesce": True, "max_instances": 1, "misfire_grace_time": 3600})
    for job, trigger in triggers(settings).items():
        scheduler.add_job(_fire, trigger, args=(bot, job, owner), id=job, name=job)
    scheduler.add_job(_deliver, "interval", seconds=float(settings.scheduler["outbox_interval_seconds"]),
                      args=(bot, f"outbox:{worker_name()}"), id="deliver-outbox", name="deliver-outbox",
                      misfire_grace_time=30)
    # a one-off job at start: the clock is read when it runs, not when the scheduler is built
    scheduler.add_job(lambda: catch_up(bot, bot.db.clock(), owner), "date", id="catch-up", name="catch-up",
                      misfire_grace_time=None)
    return scheduler
