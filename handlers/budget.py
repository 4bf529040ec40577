"""额度/budget: a manager's award budget for this month, left and used.

"Used" counts from the latest monthly grant rather than a calendar month computed here, so the
answer agrees with whatever period the grant job used (time zone included).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import Reply, Text
from bot.core.router import Router
from storage.models import Account, Entry, Txn


def budget_usage(s: Session, manager_id: int, now: datetime) -> tuple[int, int]:
    """(left, used since this month's grant); a manager without a budget account has (0, 0)."""
    acc = s.scalar(select(Account).where(Account.kind == "budget", Account.employee_id == manager_id))
    if acc is None:
        return 0, 0
    since = s.scalar(select(func.max(Txn.created_at))
                     .where(Txn.employee_id == manager_id, Txn.kind == "budget_grant"))
    if since is None:
        since = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    spent = s.scalar(select(func.coalesce(func.sum(Entry.amount), 0)).join(Txn, Txn.id == Entry.txn_id)
                     .where(Entry.account_id == acc.id, Txn.kind.in_(("award", "reverse")), Txn.created_at >= since))
    return int(acc.balance), -int(spent or 0)


def handle_budget(event: Event, ctx: Context) -> Reply:
    left, used = budget_usage(ctx.session, ctx.me.id, ctx.now())
    monthly = ctx.settings.points["manager_monthly_budget"]
    return Text(f"本月奖励额度剩余: {left}\n本月已用: {used}\n每月额度: {monthly}\n"
                f"发送「奖励 <工号/@同事> <积分> <原因>」发放奖励。")


def register(router: Router) -> None:
    router.command("budget", aliases=("额度",), roles=("manager",), usage="额度", example="额度",
                   summary="查看本月奖励额度")(handle_budget)
