"""商城/shop/catalog: the numbered reward list that ``兑换 <编号>`` refers to.

The numbers follow the order of ``[[catalog]]`` in the configuration, and sold-out items stay in
the list, so a number someone saw yesterday still means the same item today.
"""
from __future__ import annotations

from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import CardReply, Reply
from bot.core.router import Router
from cards import builders


def shop_rows(ctx: Context) -> list[builders.ShopRow]:
    """Config gives names and prices; the database gives stock (the config's until first seeded)."""
    stock = ctx.catalog.stocks()
    return [builders.ShopRow(number=i, sku=item.sku, name=item.name, cost=item.cost,
                             stock=stock[item.sku] if item.sku in stock else item.stock)
            for i, item in enumerate(ctx.settings.catalog, start=1)]


def handle_shop(event: Event, ctx: Context) -> Reply:
    balance = ctx.orders.available_points(ctx.member.id) if ctx.member is not None else None
    return CardReply(builders.shop_card(shop_rows(ctx), balance))


def register(router: Router) -> None:
    router.command("shop", reads_only=True, aliases=("商城", "catalog"), usage="商城", example="商城",
                   summary="查看可兑换的奖励（带编号、价格和库存）")(handle_shop)
