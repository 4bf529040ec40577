"""商城/shop/catalog: the numbered reward list that ``兑换 <编号>`` refers to.

The numbers follow the order HR gives the items (their ``sort``, then sku), and sold-out items stay
in the list, so a number someone saw yesterday means the same item today unless HR changed the list.
"""
from __future__ import annotations

from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import CardReply, Reply
from bot.core.router import Router
from cards import builders
from cards import messages as msg


def shop_rows(ctx: Context) -> list[builders.ShopRow]:
    """The active items as HR keeps them (storage/catalog.py): read on every message, never cached."""
    return [builders.ShopRow(number=i, sku=item.sku, name=item.name, cost=item.cost, stock=item.stock,
                             kind=str(item.kind), description=item.description,
                             limit=msg.limit_text(item.limit_count, item.limit_period))
            for i, item in enumerate(ctx.catalog.shelf(), start=1)]


def handle_shop(event: Event, ctx: Context) -> Reply:
    balance = ctx.orders.available_points(ctx.member.id) if ctx.member is not None else None
    return CardReply(builders.shop_card(shop_rows(ctx), balance))


def register(router: Router) -> None:
    router.command("shop", reads_only=True, aliases=("商城", "catalog"), usage="商城", example="商城",
                   summary="查看可兑换的奖励（带编号、价格和库存）")(handle_shop)
