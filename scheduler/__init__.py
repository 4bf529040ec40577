"""The scheduler process: ``flask --app app scheduler`` (never inside a web worker, docs/reliability.md §5.1).

Why this shape: APScheduler 3's ``BlockingScheduler`` with the in-memory job store and code-defined
cron jobs, because job stores cannot be shared between processes. Running several of these processes
is still safe: every run is claimed in ``job_runs`` (storage/claims.py), so each period runs once
wherever it fires. ``misfire_grace_time`` is an hour (APScheduler's default of one second would skip a
daily job that fires while the process is busy), runs coalesce, and at start each job whose last
scheduled period has no run at all is caught up once (not once per missed period).
"""
from __future__ import annotations

import logging
import signal
import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

import telemetry

log = logging.getLogger(__name__)

# job name -> [scheduler] key of its cron expression
CRON_KEYS = {
    "expire-points": "expire_points", "expiry-notices": "expiry_notices", "leaderboard": "leaderboard",
    "manager-digest": "manager_digest", "hr-digest": "hr_digest", "budget-grant": "budget_grant",
    "leaver-policy": "leaver_policy", "reconcile-approvals": "reconcile_approvals", "prune": "prune",
    "lapse-orders": "lapse_orders",
}
LOOKBACK = timedelta(days=40)  # longer than the longest schedule (monthly)
TAKE_OVER_SECONDS = 60  # how often running schedulers look for runs whose owner died
BEAT_SECONDS = 30  # storage/status.py: a heartbeat older than 90 s is stale


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
    from storage.claims import has_run, period_key
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


def _fire(bot: Any, job: str, owner: str, stopping: threading.Event) -> None:
    """What APScheduler calls: claim the current period and run (errors are logged, not raised)."""
    from storage.claims import period_key
    from scheduler.jobs import run_claimed

    if stopping.is_set():
        return
    now = bot.db.clock()
    run_claimed(bot, job, period_key(job, now, bot.settings.tz), now, owner, stopping=stopping)


def _take_over(bot: Any, owner: str, stopping: threading.Event) -> None:
    """Finish the runs of schedulers that died mid-job (every minute; a database hiccup is logged)."""
    from scheduler.jobs import take_over

    try:
        take_over(bot, bot.db.clock(), owner, stopping)
    except Exception:
        log.exception("take-over sweep failed")


def _beat(bot: Any, owner: str) -> None:
    """Tell /status this scheduler is alive (a database hiccup is logged, the next beat tries again)."""
    from storage.status import beat

    try:
        beat(bot.db, "scheduler", owner, bot.db.clock())
    except Exception:
        log.exception("heartbeat failed")


def _start(bot: Any, owner: str, stopping: threading.Event) -> None:
    """At start: say so, finish what a dead scheduler left, then catch up the periods nobody ran."""
    _beat(bot, owner)
    _take_over(bot, owner, stopping)
    catch_up(bot, bot.db.clock(), owner)


def _deliver(bot: Any, worker_id: str) -> None:
    try:
        with telemetry.scope(job="deliver-outbox", run_id=uuid.uuid4().hex[:16]):
            bot.deliver(worker_id=worker_id, max_rounds=20)
    except Exception:  # a database hiccup must not stop the interval job
        log.exception("outbox delivery failed")


def build_scheduler(app: Any, stopping: threading.Event | None = None) -> BlockingScheduler:
    """A configured, not yet started scheduler; ``start()`` first runs the catch-up, then blocks.

    ``stopping``, once set (by SIGTERM or SIGINT, see ``serve``), makes it claim nothing more and
    makes running jobs stop at their next batch boundary and release their claim.
    """
    from storage.claims import worker_name

    bot = app.extensions["pointsbot"]
    settings, stopping = bot.settings, stopping or threading.Event()
    logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)  # one line a second otherwise
    owner = f"scheduler:{worker_name()}"
    scheduler = BlockingScheduler(timezone=settings.tz, job_defaults={
        "coalesce": True, "max_instances": 1, "misfire_grace_time": 3600})
    for job, trigger in triggers(settings).items():
        scheduler.add_job(_fire, trigger, args=(bot, job, owner, stopping), id=job, name=job)
    scheduler.add_job(_deliver, "interval", seconds=float(settings.scheduler["outbox_interval_seconds"]),
                      args=(bot, f"outbox:{worker_name()}"), id="deliver-outbox", name="deliver-outbox",
                      misfire_grace_time=30)
    scheduler.add_job(_take_over, "interval", seconds=TAKE_OVER_SECONDS, args=(bot, owner, stopping), id="take-over",
                      name="take-over", misfire_grace_time=30)
    scheduler.add_job(_beat, "interval", seconds=BEAT_SECONDS, args=(bot, owner), id="heartbeat", name="heartbeat",
                      misfire_grace_time=30)
    # a one-off job at start: the clock is read when it runs, not when the scheduler is built
    scheduler.add_job(_start, "date", args=(bot, owner, stopping), id="catch-up", name="catch-up",
                      misfire_grace_time=None)
    return scheduler


def serve(app: Any) -> None:
    """``flask scheduler``: run until SIGTERM or SIGINT, then stop claiming, let running jobs stop at a
    batch boundary (releasing their claim for the next sweep) and return, so the process exits 0."""
    stopping = threading.Event()
    scheduler = build_scheduler(app, stopping)

    def stop(signum: int, _frame: Any) -> None:
        if stopping.is_set():  # a second signal (a supervisor and a terminal both sent one)
            return
        log.info("scheduler: %s received, stopping", signal.Signals(signum).name)
        stopping.set()
        if scheduler.running:
            scheduler.shutdown(wait=False)  # the main loop returns; running jobs see ``stopping``

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not stopping.is_set():
        scheduler.start()
    log.info("scheduler: stopped")
