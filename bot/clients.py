"""The outbound API clients of one process, built once from the settings.

Why one place: both platforms' access tokens must be cached and shared (a second concurrent
``gettoken`` can invalidate the token other threads use, docs/reliability.md §4), so every client of a
process shares one :class:`~bot.tokens.TokenCache` and one pooled ``requests`` session. The web
app never calls out during a request; only the scheduler process (outbox, jobs) builds clients,
lazily, through :func:`get_clients`.

DingTalk standard-edition organisations have a monthly API quota (docs/protocols.md B.7.4), so every
DingTalk business call is counted in the database (:func:`count_dingtalk_call`) where all
delivery workers on all hosts see the same number.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable

import requests
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.dingtalk.send import DingTalkClient
from bot.http import make_session
from bot.tokens import TokenCache
from bot.wecom.send import WeComClient
from settings import Settings
from storage.db import Database
from storage.models import RateBucket

log = logging.getLogger(__name__)

DINGTALK_CALLS = "dingtalk:calls"  # RateBucket destination; window = YYYY-MM in server.timezone
_build_lock = threading.Lock()
_quota_logged: set[str] = set()


def build_clients(settings: Settings, *, session: requests.Session | None = None,
                  clock: Callable[[], float] = time.time,
                  on_call: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``{"wecom": WeComClient, "dingtalk": DingTalkClient}`` for the enabled platforms."""
    session = session if session is not None else make_session(pool_maxsize=16)
    tokens = TokenCache(clock=clock)
    clients: dict[str, Any] = {}
    wc = settings.wecom
    if wc["enabled"]:
        clients["wecom"] = WeComClient(wc["corp_id"], wc["agent_id"], wc["secret"], api_base=wc["api_base"],
                                       session=session, clock=clock, token_cache=tokens, on_call=on_call,
                                       webhook_base=wc["group_webhook_base"])
    dt = settings.dingtalk
    if dt["enabled"]:
        clients["dingtalk"] = DingTalkClient(dt["app_key"], dt["app_secret"], dt["robot_code"], dt["agent_id"],
                                             api_base=dt["api_base"], oapi_base=dt["oapi_base"], session=session,
                                             clock=clock, token_cache=tokens, on_call=on_call)
    return clients


def month_window(settings: Settings, now: datetime) -> str:
    """The quota month (``YYYY-MM``) of a naive-UTC ``now`` in the organisation's time zone."""
    return f"{now.replace(tzinfo=timezone.utc).astimezone(settings.tz):%Y-%m}"


def count_dingtalk_call(db: Database, settings: Settings, now: datetime | None = None, n: int = 1) -> None:
    """Add ``n`` to this month's DingTalk call counter (conditional increment, insert on first use)."""
    window = month_window(settings, now or db.clock())
    with db.session_scope() as s:
        res = s.execute(update(RateBucket).where(RateBucket.destination == DINGTALK_CALLS, RateBucket.window == window)
                        .values(count=RateBucket.count + n))
        if res.rowcount == 1:
            return
        try:
            with s.begin_nested():
                s.add(RateBucket(destination=DINGTALK_CALLS, window=window, count=n))
                s.flush()
        except IntegrityError:  # another worker created it first
            s.execute(update(RateBucket).where(RateBucket.destination == DINGTALK_CALLS, RateBucket.window == window)
                      .values(count=RateBucket.count + n))


def quota_reached(settings: Settings, s: Session, now: datetime) -> bool:
    """True once this month's DingTalk calls reached ``dingtalk.monthly_api_quota`` (logged once a month)."""
    window = month_window(settings, now)
    used = s.scalar(select(RateBucket.count).where(RateBucket.destination == DINGTALK_CALLS,
                                                   RateBucket.window == window)) or 0
    if used < settings.dingtalk["monthly_api_quota"]:
        return False
    if window not in _quota_logged:
        _quota_logged.add(window)
        log.error("dingtalk: monthly API quota reached (%s calls in %s); personal DingTalk notices are skipped "
                  "until next month", used, window)
    return True


def exhaust_quota(db: Database, settings: Settings, now: datetime) -> None:
    """DingTalk said the quota is used up: make our counter agree, so personal notices stop."""
    window, quota = month_window(settings, now), settings.dingtalk["monthly_api_quota"]
    count_dingtalk_call(db, settings, now, n=0)
    with db.session_scope() as s:
        s.execute(update(RateBucket).where(RateBucket.destination == DINGTALK_CALLS, RateBucket.window == window,
                                           RateBucket.count < quota).values(count=quota))


def call_counter(bot: Any) -> Callable[[str], None]:
    """An ``on_call`` hook that counts DingTalk business calls in the database."""
    def on_call(platform: str) -> None:
        if platform != "dingtalk":
            return
        try:
            count_dingtalk_call(bot.db, bot.settings)
        except Exception:  # counting must never stop a send that is already under way
            log.exception("could not count a DingTalk API call")
    return on_call


def get_clients(bot: Any) -> dict[str, Any]:
    """The clients of ``bot`` (a PointsBot), built on first use and cached in ``bot.clients``."""
    if bot.clients:
        return bot.clients
    with _build_lock:
        if not bot.clients:
            bot.clients.update(build_clients(bot.settings, on_call=call_counter(bot)))
    return bot.clients
