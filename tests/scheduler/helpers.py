"""Helpers of the scheduler tests: the groups the leaderboard goes to, an award at a given time, a claimed run."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from scheduler import jobs
from storage.claims import period_key
from storage.ledger import Ledger

GROUPS = [{"platform": "dingtalk", "chat_id": "cid-all"}, {"platform": "wecom", "chat_id": "robot", "webhook_key": "k1"}]


def award(bot: Any, emp: int, pts: int, at: datetime, key: str, budget_of: int | None = None) -> None:
    with bot.db.session_scope() as s:
        Ledger(s, lambda: at, bot.settings.points["validity_days"]).award(
            emp, pts, idem_key=key, reason="测试", budget_of=budget_of, actor_id=budget_of)


def run(bot: Any, name: str, now: datetime, owner: str = "t", force: bool = False) -> str:
    return jobs.run_claimed(bot, name, period_key(name, now, bot.settings.tz), now, owner, force=force)
