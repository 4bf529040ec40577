"""规则/rules: how points are earned, what they buy, and how long they last.

Everything comes from the configuration (the source of truth for rules and prices), so this card
can never disagree with what the approval handler or the shop actually does.
"""
from __future__ import annotations

from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import CardReply, Reply
from bot.core.router import Router
from cards.builders_rules import rules_card

def handle_rules(event: Event, ctx: Context) -> Reply:
    return CardReply(rules_card(ctx.settings, [(item.name, item.cost) for item in ctx.catalog.shelf()]))


def register(router: Router) -> None:
    router.command("rules", reads_only=True, aliases=("规则",), usage="规则", example="规则",
                   summary="查看积分获得规则、兑换价格和有效期")(handle_rules)
