"""规则/rules: how points are earned, what they buy, and how long they last.

Everything comes from the database (the rules and the catalog HR keeps, storage/rules.py and storage/catalog.py),
so this card can never disagree with what the approval handler or the shop actually does; it says when the rules
last changed.
"""
from __future__ import annotations

from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import CardReply, Reply
from bot.core.router import Router
from cards import messages as msg
from cards.builders_rules import rules_card


def handle_rules(event: Event, ctx: Context) -> Reply:
    changed = ctx.rules.last_change()
    return CardReply(rules_card(ctx.settings, ctx.rules.current(), [(item.name, item.cost) for item in ctx.catalog.shelf()],
                                msg.local_time(changed, ctx.settings.tz, "%Y-%m-%d") if changed else ""))


def register(router: Router) -> None:
    router.command("rules", reads_only=True, aliases=("规则",), usage="规则", example="规则",
                   summary="查看积分获得规则、兑换价格和有效期")(handle_rules)
