"""额度/budget: a manager's award budget for this month, left and used (storage/queries.py budget_usage)."""
from __future__ import annotations

from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import Reply, Text
from bot.core.router import Router


def handle_budget(event: Event, ctx: Context) -> Reply:
    left, used = ctx.queries.budget_usage(ctx.me.id)
    monthly = ctx.settings.points["manager_monthly_budget"]
    return Text(f"本月奖励额度剩余: {left}\n本月已用: {used}\n每月额度: {monthly}\n"
                f"发送「奖励 <工号/@同事> <积分> <原因>」发放奖励。")


def register(router: Router) -> None:
    router.command("budget", aliases=("额度",), roles=("manager",), usage="额度", example="额度",
                   summary="查看本月奖励额度")(handle_budget)
