"""The single delivery path for outbox rows (docs/reliability.md §4), run in the scheduler process.

Why it is built this way:

* **Claim, then send outside any transaction.** A row is claimed by a conditional UPDATE (pending,
  due, lease free) and counted by ``rowcount``; this is portable (SQLite, PostgreSQL, MariaDB) and
  two workers can never both win the same row. The HTTP call happens after the claim committed,
  so no database lock is held while a platform is slow.
* **At-least-once.** A row stays ``pending`` until it is marked, so a crash between the business
  commit and the send only delays it. A crash *after* the send but before the mark re-sends the row
  once its lease (``LEASE``) has passed: users may, rarely, see a duplicate. WeCom's duplicate check
  is switched on for notices that ask for it (unique content only).
* **Retry discipline.** Full-jitter exponential backoff (base 1 s, cap 5 min), at most
  ``MAX_ATTEMPTS`` failures, then ``dead`` with a log line. A non-retryable platform error is dead at
  once; a configuration error (wrong secret) keeps the row pending: fixing the config delivers it.
* **Rate limits shared by every worker**: a ``RateBucket`` row per destination and minute,
  incremented conditionally; a row over the limit waits for the next window without using an
  attempt. DingTalk calls are counted per month and personal DingTalk notices stop at the quota.
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.clients import exhaust_quota, get_clients, quota_reached
from bot.errors import ConfigurationError, PlatformApiError
from cards import render_dingtalk, render_wecom
from cards.builders import CODES_FIELD
from cards.model import Card
from storage.errors import CodesKeyMissing, CodesUnreadable
from storage.gift_codes import Vault, reveal
from storage.kinds import OutboxKind, OutboxStatus
from storage.members import bound_ids
from storage.sent_cards import record_sent
from storage.models import Outbox, RateBucket

log = logging.getLogger(__name__)

BASE_DELAY, MAX_DELAY, MAX_ATTEMPTS = 1.0, 300.0, 10
LEASE = timedelta(seconds=60)
CONFIG_WAIT = timedelta(seconds=60)
DUPLICATE_CHECK_SECONDS = 1800
GROUP_PER_MINUTE, MEMBER_PER_MINUTE = 20, 30
API_MAX_BYTES = 12000  # robot API msgParam ≤ 15000 bytes; leave room for JSON escaping
TaskFn = Callable[[Any, dict[str, Any]], None]
"""A ``{"task": name, ...}`` row runs ``bot.tasks[name](bot, payload)`` (the factory fills ``tasks``);
it raises PlatformApiError to be tried again."""


@dataclass
class DeliveryStats:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    deferred: int = 0  # over a rate limit: moved to the next window, no attempt used
    waiting: int = 0  # configuration problem: left pending

    def add(self, other: "DeliveryStats") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Target:
    platform: str  # wecom | dingtalk | session | group | task
    users: list[str] = field(default_factory=list)
    buckets: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class Plan:
    row_id: int
    kind: str
    payload: dict[str, Any]
    targets: list[Target]
    note: str = ""
    receipts: list[tuple[str, str, str]] = field(default_factory=list)  # (platform, user, response_code) per card




@dataclass
class SendResult:
    status: str  # sent | retry | dead | config
    error: str = ""
    payload: dict[str, Any] | None = None  # progress to keep when part of a row was delivered
    receipts: list[tuple[str, str, str]] = field(default_factory=list)  # cards with a subject that went out


def backoff_seconds(attempts: int, rand: Callable[[], float] = random.random) -> float:
    """Full jitter: uniform in [0, min(cap, base·2^(attempts-1))] after ``attempts`` failures."""
    return rand() * min(MAX_DELAY, BASE_DELAY * 2 ** max(attempts - 1, 0))


def _epoch(t: datetime) -> float:
    return t.replace(tzinfo=timezone.utc).timestamp()


# ---- rate buckets ------------------------------------------------------------------------------
def _bump(s: Session, key: str, window: str, limit: int | None, n: int = 1) -> bool:
    """Add ``n`` to a bucket unless that would pass ``limit``; True when counted."""
    cond = [RateBucket.destination == key, RateBucket.window == window]
    if limit is not None:
        cond.append(RateBucket.count + n <= limit)
    if s.execute(update(RateBucket).where(*cond).values(count=RateBucket.count + n)).rowcount == 1:
        return True
    if s.scalar(select(RateBucket.id).where(RateBucket.destination == key, RateBucket.window == window)) is not None:
        return False
    try:
        with s.begin_nested():
            s.add(RateBucket(destination=key, window=window, count=n))
            s.flush()
        return True
    except IntegrityError:  # created concurrently: try the conditional increment once more
        return s.execute(update(RateBucket).where(*cond).values(count=RateBucket.count + n)).rowcount == 1


def _take_tokens(s: Session, buckets: list[tuple[str, int]], window: str) -> bool:
    taken: list[str] = []
    for key, limit in buckets:
        if not _bump(s, key, window, limit):
            for k in taken:  # give back what this row took in other buckets
                s.execute(update(RateBucket).where(RateBucket.destination == k, RateBucket.window == window)
                          .values(count=RateBucket.count - 1))
            return False
        taken.append(key)
    return True


# ---- planning (inside the claim transaction, no network) ---------------------------------------
def _personal(bot: Any, s: Session, t: datetime, users: dict[str, list[str]], notes: list[str]) -> list[Target]:
    clients = get_clients(bot)
    targets: list[Target] = []
    for platform, ids in users.items():
        ids = [u for u in dict.fromkeys(ids) if u]
        if not ids:
            continue
        if platform not in clients:
            notes.append(f"{platform} disabled")
        elif platform == "dingtalk" and not bot.settings.dingtalk["personal_notices"]:
            notes.append("dingtalk personal notices off")
        elif platform == "dingtalk" and quota_reached(bot.settings, s, t):
            notes.append("dingtalk monthly quota reached")
        elif platform == "wecom":
            targets.append(Target("wecom", ids, [(f"wecom:user:{u}", MEMBER_PER_MINUTE) for u in ids]))
        else:
            targets.append(Target(platform, ids))
    return targets


def _plan(bot: Any, s: Session, row: Outbox, payload: dict[str, Any], t: datetime) -> Plan:
    notes: list[str] = []
    plan = Plan(row.id, row.kind, payload, [])
    pending = payload.get("_pending")  # users still owed after a partial delivery
    if row.kind == OutboxKind.NOTICE:
        users: dict[str, list[str]] = {}
        for emp in payload.get("employee_ids") or [payload["employee_id"]]:
            for platform, uid in bound_ids(s, int(emp)).items():
                users.setdefault(platform, []).append(uid)
        if pending is not None:
            users = {p: [u for u in ids if u in pending.get(p, [])] for p, ids in users.items()}
        plan.targets = _personal(bot, s, t, users, notes)
        if not users:
            notes.append("no bound chat account")
    elif row.kind == OutboxKind.PLATFORM_MESSAGE:
        users = pending if pending is not None else {payload["platform"]: [payload["user_id"]]}
        plan.targets = _personal(bot, s, t, users, notes)
    elif row.kind == OutboxKind.SESSION_REPLY:
        expires = payload.get("expires_at")
        if expires is not None and float(expires) <= _epoch(t):
            raise PlatformApiError("dingtalk", "expired", "sessionWebhook expired before delivery", retryable=False)
        plan.targets = [Target("session")]
    elif row.kind == OutboxKind.GROUP:
        chat = payload.get("chat_id") or ""
        if payload.get("webhook_key"):
            chat = "webhook-" + hashlib.sha256(str(payload["webhook_key"]).encode()).hexdigest()[:16]
        plan.targets = [Target("group", [], [(f"{payload['platform']}:group:{chat}", GROUP_PER_MINUTE)])]
    elif row.kind == OutboxKind.TASK:
        plan.targets = [Target("task")]
    else:
        raise PlatformApiError("outbox", "unknown_kind", f"unknown outbox kind {row.kind!r}", retryable=False)
    plan.note = "; ".join(notes)
    return plan


# ---- sending (outside any transaction) ----------------------------------------------------------
def _task_fn(bot: Any, name: str) -> TaskFn:
    fn: TaskFn | None = bot.tasks.get(name)
    if fn is None:
        raise PlatformApiError("outbox", "unknown_task", f"no task registered as {name!r}", retryable=False)
    return fn


def _with_codes(bot: Any, card: Card, order_id: int) -> Card:
    """The order's gift-card codes, opened only now (storage/gift_codes.py): the row holds the order's id. A key
    that is missing or changed is the operator's to fix, and the row waits for it."""
    try:
        with bot.db.read_scope() as s:
            codes = reveal(s, Vault(bot.settings.gift_cards["codes_key"]), order_id)
    except (CodesKeyMissing, CodesUnreadable) as exc:
        raise ConfigurationError(str(exc)) from None
    return card.substituted({CODES_FIELD: "、".join(codes)})


def _send_target(bot: Any, plan: Plan, target: Target) -> list[str]:
    """Send one target; returns the users still owed (DingTalk flow control), usually []."""
    clients, payload = get_clients(bot), plan.payload
    if target.platform == "task":
        _task_fn(bot, str(payload.get("task")))(bot, payload)
        return []
    if target.platform == "session":
        clients["dingtalk"].session_webhook_send(payload["url"], payload["message"])
        return []
    card = Card.from_dict(payload["card"])
    if payload.get("codes_of") is not None:
        card = _with_codes(bot, card, int(payload["codes_of"]))
    if target.platform == "group":
        if payload["platform"] == "dingtalk":
            key, param = render_dingtalk.to_robot_api(render_dingtalk.render_markdown(card, API_MAX_BYTES))
            clients["dingtalk"].robot_send_group(payload["chat_id"], key, param)
        else:
            msg = render_wecom.render_markdown(card, 0)
            msg.pop("agentid", None)
            if payload.get("webhook_key"):
                clients["wecom"].webhook_send(payload["webhook_key"], msg)
            else:
                clients["wecom"].appchat_send(payload["chat_id"], msg)
        return []
    if target.platform == "wecom":
        client = clients["wecom"]
        body = render_wecom.render(card, client.agent_id)
        # Content unique to one event (a notice naming an E/R/A/U reference or an event): WeCom drops a re-send
        # of it, so a send whose answer came after our timeout and was retried arrives once. Never on a reply to
        # a user's own repeated query: a second identical 积分 answer would vanish.
        check = DUPLICATE_CHECK_SECONDS if payload.get("duplicate_check") else None
        if body["msgtype"] == "template_card":
            code = client.send_template_card(target.users, body["template_card"], duplicate_check_seconds=check)
            if card.subject:
                plan.receipts += [("wecom", u, code or "") for u in target.users]
        else:
            client.send_text(target.users, body["text"]["content"], duplicate_check_seconds=check)
        return []
    key, param = render_dingtalk.to_robot_api(render_dingtalk.render_markdown(card, API_MAX_BYTES))
    result = clients["dingtalk"].robot_send_oto(target.users, key, param)
    if card.subject:
        plan.receipts += [("dingtalk", u, "") for u in target.users if u not in result.failed_staff_ids]
    if result.error is not None and not result.error.retryable:
        log.warning("outbox row %s: dingtalk dropped %d user(s): %s", plan.row_id, len(result.failed_staff_ids),
                    result.error.code)
    return result.retry_user_ids


def _send(bot: Any, plan: Plan) -> SendResult:
    """Send every target; a retry later owes only the users that did not get the message yet."""
    owed: dict[str, list[str]] = {}
    problems: list[str] = []
    gave_up = 0
    for target in plan.targets:
        try:
            left = _send_target(bot, plan, target)
        except ConfigurationError as exc:
            return SendResult("config", str(exc)[:500])
        except PlatformApiError as exc:
            if exc.code == "quota" and exc.platform == "dingtalk":
                exhaust_quota(bot.db, bot.settings, bot.db.clock())
            problems.append(f"{exc.platform} {exc.code}")
            if not exc.retryable:
                gave_up += 1
                log.warning("outbox row %s: %s refused the message (%s)", plan.row_id, exc.platform, exc.code)
                continue
            left = target.users or [""]
        except Exception as exc:  # a bug or an unexpected answer: retry, then dead-letter
            log.exception("outbox row %s: unexpected error sending to %s", plan.row_id, target.platform)
            problems.append(type(exc).__name__)
            left = target.users or [""]
        if left:
            owed[target.platform] = [u for u in left if u]
            problems.append(f"{target.platform}: {len(left)} owed")
    text = "; ".join(dict.fromkeys(problems))[:500]
    if plan.targets and gave_up == len(plan.targets):
        result = SendResult("dead", text)
    elif not owed:
        result = SendResult("sent", "; ".join(x for x in (plan.note, text) if x)[:500])
    else:
        progress = dict(plan.payload, _pending=owed) if plan.kind in (OutboxKind.NOTICE, OutboxKind.PLATFORM_MESSAGE) else None
        result = SendResult("retry", text, progress)
    result.receipts = plan.receipts  # whatever went out is recorded, whatever happens to the rest
    return result


# ---- claim / mark -------------------------------------------------------------------------------
def _due_ids(db: Any, t: datetime, limit: int) -> list[int]:
    with db.session_scope() as s:
        return list(s.scalars(select(Outbox.id).where(
            Outbox.status == OutboxStatus.PENDING, Outbox.next_attempt_at <= t,
            or_(Outbox.locked_until.is_(None), Outbox.locked_until < t)).order_by(Outbox.next_attempt_at, Outbox.id)
            .limit(limit)))


def _claim(bot: Any, row_id: int, worker_id: str, t: datetime, stats: DeliveryStats) -> Plan | SendResult | None:
    """Claim one row and plan its sends in one short transaction; None when another worker has it."""
    with bot.db.session_scope() as s:
        won = s.execute(update(Outbox).where(
            Outbox.id == row_id, Outbox.status == OutboxStatus.PENDING, Outbox.next_attempt_at <= t,
            or_(Outbox.locked_until.is_(None), Outbox.locked_until < t))
            .values(locked_by=worker_id, locked_until=t + LEASE)).rowcount == 1
        if not won:
            return None
        stats.claimed += 1
        row = s.get(Outbox, row_id)
        assert row is not None
        try:
            plan = _plan(bot, s, row, json.loads(row.payload), t)
        except (PlatformApiError, KeyError, TypeError, ValueError) as exc:
            why = f"{exc.platform} {exc.code}" if isinstance(exc, PlatformApiError) else type(exc).__name__
            return SendResult("dead", f"cannot deliver: {why}")  # "<platform> <code>": the metrics' error label
        buckets = [b for target in plan.targets for b in target.buckets]
        if buckets and not _take_tokens(s, buckets, f"{t:%Y-%m-%dT%H:%M}"):
            next_window = t.replace(second=0, microsecond=0) + timedelta(minutes=1)
            row.locked_by, row.locked_until, row.next_attempt_at = "", None, next_window
            stats.deferred += 1
            return None
        return plan


def _mark(bot: Any, row_id: int, worker_id: str, outcome: SendResult, t: datetime, rand: Callable[[], float],
          stats: DeliveryStats) -> None:
    with bot.db.session_scope() as s:
        row = s.scalar(select(Outbox).where(Outbox.id == row_id, Outbox.locked_by == worker_id))
        if row is None:  # our lease ran out and another worker took the row over
            log.warning("outbox row %s: lost the lease before marking it", row_id)
            return
        row.locked_by, row.locked_until, row.last_error = "", None, outcome.error[:500]
        if outcome.receipts:
            record_sent(s, json.loads(row.payload).get("card") or {}, outcome.receipts, t)
        if outcome.payload is not None:
            row.payload = json.dumps(outcome.payload, ensure_ascii=False)
        if outcome.status == "sent":
            row.status, row.sent_at = OutboxStatus.SENT, t
            stats.sent += 1
        elif outcome.status == "config":
            row.next_attempt_at = t + CONFIG_WAIT
            stats.waiting += 1
            log.error("outbox row %s (%s) waits for a configuration fix: %s", row_id, row.kind, outcome.error)
        elif outcome.status == "retry" and row.attempts + 1 < MAX_ATTEMPTS:
            row.attempts += 1
            row.next_attempt_at = t + timedelta(seconds=backoff_seconds(row.attempts, rand))
            stats.retried += 1
            log.info("outbox row %s (%s): attempt %d failed (%s); retrying", row_id, row.kind, row.attempts,
                     outcome.error)
        else:
            row.attempts += 1
            row.status = OutboxStatus.DEAD
            stats.dead += 1
            log.error("outbox row %s (%s) dead-lettered after %d attempt(s): %s", row_id, row.kind, row.attempts,
                      outcome.error)


def deliver_once(bot: Any, *, worker_id: str, now: datetime | None = None, limit: int = 50,
                 rand: Callable[[], float] = random.random) -> DeliveryStats:
    """Deliver up to ``limit`` due rows; safe to run from several workers at once."""
    stats = DeliveryStats()
    for row_id in _due_ids(bot.db, now or bot.db.clock(), limit):
        planned = _claim(bot, row_id, worker_id, now or bot.db.clock(), stats)
        if planned is None:
            continue
        outcome = planned if isinstance(planned, SendResult) else _send(bot, planned)
        _mark(bot, row_id, worker_id, outcome, now or bot.db.clock(), rand, stats)
    return stats


def drain(bot: Any, *, worker_id: str, now: datetime | None = None, max_rounds: int = 200,
          rand: Callable[[], float] = random.random) -> DeliveryStats:
    """Deliver until nothing due is left (or ``max_rounds`` batches); used by ``run-job deliver-outbox``."""
    total = DeliveryStats()
    for _ in range(max_rounds):
        stats = deliver_once(bot, worker_id=worker_id, now=now, rand=rand)
        total.add(stats)
        if stats.claimed == 0:
            break
    return total
