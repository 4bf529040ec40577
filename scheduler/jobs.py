"""The scheduled jobs and the one way to run them: claimed once per period (storage/claims.py).

Why every job is ``fn(bot, period, now) -> detail``: the period key, not the wall clock, names the
work, so a run that starts late (misfire grace, catch-up after an outage) still does that period's
work once, and a re-run of a period finds every outbox row already written (idempotency keys) and
sends nothing new. Jobs only *write* messages, in batches of at most ``BATCH`` rows per transaction;
the outbox delivers them within the platforms' limits.

A step that works inside one transaction calls ``Services`` like a handler does; the set-based steps
(expiry, digests, notices, pruning) are storage functions that open their own short transactions,
because one transaction over ten thousand employees would hold SQLite's write lock for seconds.
"""
from __future__ import annotations

import logging
import threading
from time import perf_counter
import uuid
from datetime import date, datetime, time, timedelta
from typing import Any, Callable

import telemetry
from cards import builders_jobs as cards
from cards import messages as msg
from storage.claims import (GRANULARITY, Lease, LeaseLost, claim, finish, lapsed, last_done, local, period_day,
                              period_key, release, to_utc, worker_name)
from storage import budgets
from storage.digests import AUDIT_DAYS, hr_digest, manager_digests
from storage.employees import active_ids
from storage.ledger.expiry import expire_due, expired_between, expiring_between
from storage.leavers import apply_leaver_policy
from storage.outbox import enqueue_many
from storage.orders import lapse_due
from storage.periods import calendar_period
from storage.retention import prune
from storage.services import Services

log = logging.getLogger(__name__)
BATCH_SECONDS = 0.1  # the longest a batched job step holds one transaction (Speed: none over 250 ms)
EXPIRY_BATCH = 1000  # lots in the first expiry transaction; the next are sized to take EXPIRY_TARGET_MS
EXPIRY_TARGET_MS = 80.0  # below BATCH_SECONDS: an expiry commit writes thousands of pages, and now and then stalls
Job = Callable[[Any, str, datetime, "Lease"], str]  # long jobs call lease.keep() between batches


# ---- helpers -------------------------------------------------------------------------------------
def notice(emp: int, card: Any, key: str, **extra: Any) -> dict[str, Any]:
    return {"idem_key": key, "kind": "notice", "payload": {"employee_id": emp, "card": card.to_dict(), **extra}}


def in_batches(bot: Any, now: datetime, items: list[Any], step: Callable[[Services, Any], None], lease: Lease) -> int:
    """``step`` for every item, as many per transaction as fit in ``BATCH_SECONDS``; the transactions used.

    One transaction per item fsyncs once per item (10,000 managers took 77 s on SQLite); one for all
    would hold SQLite's write lock for seconds. Bounding a batch by time, not count, keeps every
    transaction short on any machine. Each step must be idempotent (a rerun after a failure redoes
    the batch that failed, and finds the ones before it done).
    """
    done = batches = 0
    while done < len(items):
        lease.keep()
        batches += 1
        with bot.db.session_scope() as s:
            services, started = Services(s, bot.settings, lambda: now), perf_counter()
            while done < len(items):
                step(services, items[done])
                done += 1
                if perf_counter() - started >= BATCH_SECONDS:
                    break
    return batches


def day_bounds(day: date, tz: Any) -> tuple[datetime, datetime]:
    """[start, end) of a local day as naive UTC."""
    start = datetime.combine(day, time(), tz)
    return to_utc(start), to_utc(datetime.combine(day + timedelta(days=1), time(), tz))


# ---- jobs ----------------------------------------------------------------------------------------
def expire_points(bot: Any, period: str, now: datetime, lease: Lease) -> str:
    """Expire due lots (batched, set-based), then tell each affected employee what expired today."""
    result = expire_due(bot.db, now, batch_size=EXPIRY_BATCH, between_batches=lease.keep,
                        target_ms=EXPIRY_TARGET_MS)
    start, end = day_bounds(period_day(period), bot.settings.tz)
    end = max(end, now + timedelta(seconds=1))  # a catch-up run expires after its period's day
    rows = expired_between(bot.db, start, end)
    day = period_day(period)
    added = enqueue_many(bot.db, [notice(emp, cards.expired_card(int(pts), day, int(bal)), f"expired:{emp}:{period}",
                                  duplicate_check=True) for emp, pts, bal in rows if pts and pts > 0], now)
    return f"expired {result.lots} lots ({result.points} points, longest batch {result.longest_batch_ms:.0f} ms); " \
           f"{added} notices queued"


def _expiring_on(bot: Any, day: date) -> list[tuple[int, int]]:
    return expiring_between(bot.db, *day_bounds(day, bot.settings.tz))


def expiry_notices(bot: Any, period: str, now: datetime, lease: Lease) -> str:
    """For each threshold T, tell each employee once about points expiring on today+T.

    After an outage the days that were missed are covered too (up to 6), so nobody misses a warning;
    a date that is already inside a smaller threshold is left to that threshold's notice.
    """
    today = period_day(period)
    previous = last_done(bot.db, "expiry-notices", period)
    gap = min(6, max(0, (today - period_day(previous)).days - 1)) if previous else 0
    thresholds = sorted(set(bot.settings.points["expiry_notice_days"]))
    rows: list[dict[str, Any]] = []
    for i, t in enumerate(thresholds):
        lower = thresholds[i - 1] if i else 0
        for days in range(max(t - gap, lower + 1), t + 1):
            when = today + timedelta(days=days)
            for emp, pts in _expiring_on(bot, when):
                card = cards.expiry_notice_card(pts, when, days, task_id=f"expn-{emp}-{when:%Y%m%d}-T{t}")
                rows.append(notice(emp, card, f"expiry-notice:{emp}:{when.isoformat()}:T-{t}", duplicate_check=True))
    return f"{enqueue_many(bot.db, rows, now)} expiry notices queued ({len(rows)} due)"


def leaderboard_job(bot: Any, period: str, now: datetime, lease: Lease) -> str:
    """One aggregated message per configured group: top N and each department's leader."""
    conf = bot.settings.leaderboard
    period_ = calendar_period(conf["period"], now, bot.settings.tz)  # the same period 排行榜 shows
    label = msg.board_label(period_.kind, period_.first)
    with bot.db.session_scope() as s:
        everyone = Services(s, bot.settings, lambda: now).queries.leaderboard(period_.start, now, top_n=1_000_000,
                                                                              period_key=period_.key)
    entries = [cards.BoardEntry(r.rank, r.name, r.department, r.points) for r in everyone]
    depts: dict[str, list[cards.BoardEntry]] = {}
    for e in entries:
        depts.setdefault(e.department, []).append(e)
    card = cards.leaderboard_card(label, entries[:conf["top_n"]], sorted(depts.items(), key=lambda kv: -kv[1][0].points))
    rows = []
    for g in conf["groups"]:
        payload = {"platform": g["platform"], "chat_id": g["chat_id"], "card": card.to_dict()}
        if g.get("webhook_key"):
            payload["webhook_key"] = g["webhook_key"]
        rows.append({"idem_key": f"leaderboard:{g['platform']}:{g['chat_id']}:{period}"[:191], "kind": "group",
                     "platform": g["platform"], "destination": f"{g['platform']}:group:{g['chat_id']}"[:191],
                     "payload": payload})
    return f"{enqueue_many(bot.db, rows, now)} leaderboard message(s) queued ({len(entries)} ranked)"


def manager_digest(bot: Any, period: str, now: datetime, lease: Lease) -> str:
    month_start = to_utc(local(now, bot.settings.tz).replace(day=1, hour=0, minute=0, second=0, microsecond=0))
    digests = manager_digests(bot.db, now, month_start)
    rows = [notice(mid, cards.manager_digest_card(d, period, task_id=f"mgrd-{period}-{mid}"),
                   f"manager-digest:{mid}:{period}") for mid, d in digests.items()]
    return f"{enqueue_many(bot.db, rows, now)} manager digests queued"


def hr_digest_job(bot: Any, period: str, now: datetime, lease: Lease) -> str:
    """One digest for all HR people, sent as one batch call per platform (same content for everyone)."""
    at = local(now, bot.settings.tz)
    first = (at.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + timedelta(days=32)).replace(day=1)
    after = (first + timedelta(days=32)).replace(day=1)
    data = hr_digest(bot.db, now, (to_utc(first), to_utc(after)), f"{first:%Y-%m}", f"{at:%Y-%m}")
    hr = active_ids(bot.db, "hr") or active_ids(bot.db, "admin")
    if not hr:
        return "no HR or admin employee to send the digest to"
    digest = cards.hr_digest_cards(data, period, AUDIT_DAYS)
    audit = [cards.binding_audit_card(kind, r, AUDIT_DAYS, task_id=f"hrd-{period}-b{i}")
             for i, (kind, r) in enumerate(data.binding_rows)]
    keyed = [(f"hr-digest:{period}" + (f":{i}" if i else ""), c) for i, c in enumerate(digest)]
    keyed += [(f"hr-digest:{period}:binding:{i}", c) for i, c in enumerate(audit)]
    rows = [{"idem_key": key, "kind": "notice", "payload": {"employee_id": hr[0], "employee_ids": hr, "card": c.to_dict()}}
            for key, c in keyed]
    return f"{enqueue_many(bot.db, rows, now)} HR digest card(s) queued for {len(hr)} people"


def budget_grant(bot: Any, period: str, now: datetime, lease: Lease) -> str:
    """This month's budget for every active manager, by their own terms (idempotent per manager and month)."""
    managers = active_ids(bot.db, "manager")
    with bot.db.read_scope() as s:
        terms = budgets.terms(s, bot.settings.points, managers)
    due = [mid for mid in managers if terms[mid].monthly > 0]

    def grant(services: Services, mid: int) -> None:
        services.ledger.grant_budget(mid, period, terms[mid].monthly, rollover=terms[mid].rollover)

    batches = in_batches(bot, now, due, grant, lease)
    return f"budget {period} granted to {len(managers)} managers ({batches} transactions)"


def leaver_policy(bot: Any, period: str, now: datetime, lease: Lease) -> str:
    return str(apply_leaver_policy(bot.db, bot.settings, now))


def reconcile_approvals(bot: Any, period: str, now: datetime, lease: Lease) -> str:
    """Asks the platforms what the callbacks may have missed: ``bot.reconcile``, wired by the factory
    (the platform clients live above the scheduler, app.py)."""
    return f"{bot.reconcile(now)} award(s) made by reconcile"


def prune_job(bot: Any, period: str, now: datetime, lease: Lease) -> str:
    """Delete what the ``[retention]`` windows no longer keep (storage/retention.py)."""
    return str(prune(bot.db, now, bot.settings.retention, between_batches=lease.keep))


def lapse_orders(bot: Any, period: str, now: datetime, lease: Lease) -> str:
    """Orders left unconfirmed for 24 hours lapse (storage/orders.py ``lapse_due``): no points or stock ever
    moved, and without this they lapsed only when someone looked, so queues and exports showed them waiting."""
    with bot.db.session_scope() as s:
        return f"{lapse_due(s, now)} unconfirmed order(s) lapsed"


def deliver_outbox(bot: Any, period: str, now: datetime, lease: Lease) -> str:
    stats = bot.deliver(worker_id=worker_name())  # the outbox relay, wired by the factory (app.py)
    return f"outbox: {stats.sent} sent, {stats.retried} to retry, {stats.dead} dead, {stats.deferred} deferred"


JOBS: dict[str, Job] = {
    "expire-points": expire_points, "expiry-notices": expiry_notices, "leaderboard": leaderboard_job,
    "manager-digest": manager_digest, "hr-digest": hr_digest_job, "budget-grant": budget_grant,
    "leaver-policy": leaver_policy, "reconcile-approvals": reconcile_approvals, "deliver-outbox": deliver_outbox,
    "prune": prune_job, "lapse-orders": lapse_orders,
}


def run_claimed(bot: Any, name: str, period: str, now: datetime, owner: str, *, force: bool = False,
                stopping: threading.Event | None = None) -> str:
    """Run ``name`` for ``period`` if this process wins the claim; the outcome as one line.

    A run stopped at a batch boundary (``stopping`` set, or the lease lost) is not finished: a
    released or lapsed run is taken over by ``take_over`` and completed, its notices sent once. Every
    line it logs carries the job and a run id (telemetry.py).
    """
    with telemetry.scope(job=name, run_id=uuid.uuid4().hex[:16]):
        return _run_claimed(bot, name, period, now, owner, force=force, stopping=stopping)


def _run_claimed(bot: Any, name: str, period: str, now: datetime, owner: str, *, force: bool,
                 stopping: threading.Event | None) -> str:
    lease = Lease(bot.db, name, period, owner, float(bot.settings.scheduler["lease_seconds"]),
                  stopping or threading.Event())
    if GRANULARITY.get(name) == "none":
        return JOBS[name](bot, period, now, lease)
    if not claim(bot.db, name, period, owner, now, lease.seconds, force=force):
        return f"{name} {period}: already done or running elsewhere (nothing to do; --force runs it again)"
    try:
        detail = JOBS[name](bot, period, now, lease)
    except LeaseLost as exc:
        if lease.stopping.is_set():
            release(bot.db, name, period, owner, bot.db.clock())
        log.warning("job %s %s stopped: %s", name, period, exc)
        return f"{name} {period}: stopped: {exc}"
    except Exception as exc:
        log.exception("job %s %s failed", name, period)
        finish(bot.db, name, period, owner, bot.db.clock(), ok=False, detail=f"{type(exc).__name__}: {exc}")
        return f"{name} {period}: failed: {type(exc).__name__}: {exc}"
    finish(bot.db, name, period, owner, bot.db.clock(), detail=detail)
    log.info("job %s %s: %s", name, period, detail)
    return f"{name} {period}: {detail}"


def take_over(bot: Any, now: datetime, owner: str, stopping: threading.Event | None = None) -> dict[str, str]:
    """Finish every run whose owner died (lease lapsed): at scheduler start and every minute."""
    done = {}
    for job, period in lapsed(bot.db, now):
        if job in JOBS and not (stopping and stopping.is_set()):
            done[f"{job} {period}"] = run_claimed(bot, job, period, now, owner, stopping=stopping)
            log.info("take-over: %s", done[f"{job} {period}"])
    return done


def run_job_now(app: Any, name: str, force: bool = False) -> str:
    """``flask run-job NAME``: the current period, claimed as the scheduler claims it."""
    bot = app.extensions["pointsbot"]
    now = bot.db.clock()
    return run_claimed(bot, name, period_key(name, now, bot.settings.tz), now, f"run-job:{worker_name()}", force=force)
