"""额度/budget: a manager's award budget for this month, left and used (storage/queries.py budget_usage)."""
from __future__ import annotations

from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import Reply, Text
from bot.core.router import Router
from cards import messages as msg


def handle_budget(event: Event, ctx: Context) -> Reply:
    left, used = ctx.queries.budget_usage(ctx.me.id)
    monthly = ctx.budgets.terms([ctx.me.id])[ctx.me.id].monthly
    return Text(msg.BUDGET.format(left=left, used=used, monthly=monthly))


def register(router: Router) -> None:
    router.command("budget", reads_only=True, aliases=("额度",), roles=("manager",), usage="额度", example="额度",
                   summary="查看本月奖励额度")(handle_budget)
