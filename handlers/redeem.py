"""兑换/redeem, 确认兑换/confirm, 取消兑换/cancel and 我的订单/orders (docs/architecture.md §1.3).

Redeeming is two steps on purpose: ``兑换 2`` only creates ``R<n>`` and asks; no points move
until the owner confirms, so a typo costs nothing. A confirmation card's buttons are the typed
commands, so a double click is simply a second ``确认兑换 R<n>``, which the order service turns
into "already confirmed" instead of a second hold.
"""
from __future__ import annotations

import logging
import re

from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import CardReply, Reply, Text
from bot.core.router import Router
from cards import builders
from cards import messages as msg
from handlers.orders_admin import notify_fulfillers
from storage import orders
from storage.errors import CodesUnreadable, UnknownItem
from storage.models import Employee, Order

log = logging.getLogger(__name__)
REDEEM_USAGE = "兑换 <商品编号/sku/名称> [数量]"
REDEEM_EXAMPLE = "兑换 1"
CONFIRM_USAGE, CONFIRM_EXAMPLE = "确认兑换 <R订单号>", "确认兑换 R12"
CANCEL_USAGE, CANCEL_EXAMPLE = "取消兑换 <R订单号>", "取消兑换 R12"
_NUMBERISH = re.compile(r"[x×*]?[+\-]?[\d.,]+(?:个|份|张|件)?", re.IGNORECASE)
_QTY = re.compile(r"[x×*]?\+?(\d{1,6})(?:个|份|张|件)?", re.IGNORECASE)


def parse_redeem(ctx: Context) -> tuple[str, int] | str:
    """(item token, quantity), or the problem to show with the usage."""
    tokens = ctx.args.split()
    if not tokens:
        return msg.NEED_ITEM
    if len(tokens) == 1:
        return tokens[0], 1
    whole = " ".join(tokens)
    try:  # an exact name may itself contain spaces and digits
        ctx.orders.item(whole)
        return whole, 1
    except UnknownItem:
        pass
    last = tokens[-1]
    if not _NUMBERISH.fullmatch(last):
        return whole, 1
    m = _QTY.fullmatch(last)
    qty = int(m.group(1)) if m else 0
    if not 1 <= qty <= orders.MAX_QUANTITY:
        return msg.BAD_QUANTITY.format(max=orders.MAX_QUANTITY)
    return " ".join(tokens[:-1]), qty


def handle_redeem(event: Event, ctx: Context) -> Reply:
    parsed = parse_redeem(ctx)
    if isinstance(parsed, str):
        return Text(msg.usage_text("redeem", REDEEM_USAGE, REDEEM_EXAMPLE, parsed))
    token, qty = parsed
    try:
        ctx.orders.item(token)
    except UnknownItem as exc:
        return Text(msg.usage_text("redeem", REDEEM_USAGE, REDEEM_EXAMPLE, msg.domain_error(exc)))
    member = ctx.me
    order = ctx.orders.start(member, token, qty)
    balance = ctx.orders.available_points(member.id)
    return CardReply(builders.redeem_confirm(order_id=order.id, item=order.item_name, quantity=order.quantity,
                                             cost=order.cost, balance=balance))


def order_ref(ctx: Context) -> int | None:
    first = ctx.args.split()[0] if ctx.args.split() else ""
    return orders.parse_ref(first)


def _own_order(ctx: Context, command: str, usage: str, example: str) -> tuple[int, Employee, str] | Reply:
    """(order id, member, status before) for the owner's confirm/cancel, or the reply that ends it here.

    A lapsed order of the owner is answered, not raised, so that the lapse is kept.
    """
    ref = order_ref(ctx)
    if ref is None:
        return Text(msg.usage_text(command, usage, example, msg.NEED_ORDER_REF))
    member = ctx.me
    current = ctx.orders.get(ref)
    if current.status == orders.LAPSED and current.employee_id == member.id:
        return Text(msg.order_state(current.id, current.status))
    return ref, member, current.status


def handle_confirm(event: Event, ctx: Context) -> Reply:
    found = _own_order(ctx, "confirm", CONFIRM_USAGE, CONFIRM_EXAMPLE)
    if not isinstance(found, tuple):
        return found
    ref, member, was = found
    order = ctx.orders.confirm(member, ref)
    if was != orders.AWAITING_CONFIRMATION:
        if order.status == orders.FULFILLED:
            return Text(msg.ORDER_FULFILLED_ALREADY.format(id=order.id))
        return Text(msg.ALREADY_CONFIRMED.format(id=order.id))
    ctx.close_cards(f"R{order.id}:confirm", "confirmed", member)
    if order.status == orders.FULFILLED:
        return _done_at_once(ctx, order, member)
    notify_fulfillers(ctx, order, member)
    balance = ctx.orders.available_points(member.id)
    return CardReply(builders.redeem_done(order_id=order.id, item=order.item_name, quantity=order.quantity,
                                          cost=order.cost, balance=balance, hold_txn_id=order.hold_txn_id))


def _done_at_once(ctx: Context, order: Order, member: Employee) -> Reply:
    """A donation thanks the giver; a gift card's codes go one-to-one (filled in when sent), and HR hears
    when the pool runs low or empty (once per upload and state)."""
    item = ctx.catalog.get(order.sku)
    balance = ctx.orders.available_points(member.id)
    if item is not None and item.kind == "donation":
        return CardReply(builders.donation_thanks(order_id=order.id, item=order.item_name, quantity=order.quantity,
                                                  cost=order.cost, charity=item.charity, balance=balance,
                                                  hold_txn_id=order.hold_txn_id))
    ctx.notify(member.id, builders.codes_notice(order_id=order.id, item=order.item_name, quantity=order.quantity),
               key=f"R{order.id}:codes", codes_of=order.id)
    low = ctx.catalog.pool_running_low(order.sku)
    if low is not None:
        free, batch = low
        card = builders.codes_running_low(item=order.item_name, sku=order.sku, free=free)
        for person in ctx.orders.fulfillers():
            ctx.notify(person.id, card, key=f"codes-{'empty' if free <= 0 else 'low'}:{order.sku}:{batch}:{person.id}")
    return CardReply(builders.codes_sent(order_id=order.id, item=order.item_name, quantity=order.quantity,
                                         cost=order.cost, balance=balance, hold_txn_id=order.hold_txn_id))


def handle_cancel(event: Event, ctx: Context) -> Reply:
    found = _own_order(ctx, "cancel", CANCEL_USAGE, CANCEL_EXAMPLE)
    if not isinstance(found, tuple):
        return found
    ref, member, was = found
    order = ctx.orders.cancel(member, ref)
    if was == orders.CANCELLED:
        return Text(msg.ALREADY_CANCELLED.format(id=order.id))
    ctx.close_cards(f"R{order.id}:confirm" if was == orders.AWAITING_CONFIRMATION else f"R{order.id}", "cancelled",
                    member)
    if was != orders.AWAITING_FULFILMENT:
        return Text(msg.CANCELLED_NOTHING_HELD.format(id=order.id))
    release = ctx.ledger.find(f"order:{order.id}:release")
    balance = ctx.orders.available_points(member.id)
    return Text(msg.CANCELLED_REFUNDED.format(id=order.id, cost=order.cost, balance=balance,
                                              txn=f"（E{release.id}）" if release else ""))


def order_line(order: Order, ctx: Context, codes: list[str] | None = None) -> str:
    """One order; ``codes`` are its gift-card codes, opened (one-to-one) or not ([]: told where to see them)."""
    when = msg.local_time(order.created_at, ctx.settings.tz, "%m-%d %H:%M")
    line = msg.ORDER_LINE.format(id=order.id, item=order.item_name, qty=order.quantity, cost=order.cost,
                                 status=msg.ORDER_STATUS.get(order.status, order.status), when=when)
    if order.status == orders.AWAITING_CONFIRMATION:
        line += msg.ORDER_TO_CONFIRM.format(id=order.id)
    elif order.status == orders.AWAITING_FULFILMENT:
        line += msg.ORDER_CANCELLABLE.format(id=order.id)
    elif order.status in (orders.REJECTED, orders.FULFILLED, orders.REFUNDED) and order.note:
        line += f"（{order.note}）"
    if codes is not None:
        line += msg.ORDER_CODES_HERE.format(codes="、".join(codes)) if codes else msg.ORDER_CODES_PRIVATE
    return line


def handle_orders(event: Event, ctx: Context) -> Reply:
    """Gift-card codes are shown again to their owner alone: one-to-one, and never kept in the stored answer."""
    mine = ctx.orders.list_for(ctx.me)
    with_codes = ctx.orders.with_codes(mine)
    opened: dict[int, list[str]] = {}
    if with_codes and not event.conversation.is_group:
        try:
            opened = ctx.orders.codes_of([o for o in mine if o.id in with_codes])
        except CodesUnreadable:
            log.error("gift-card codes of employee %s do not open: check gift_cards.codes_key", ctx.me.employee_no)
    rows = [order_line(o, ctx, opened.get(o.id, []) if o.id in with_codes else None) for o in mine]
    return CardReply(builders.orders_card(rows), secrets=tuple(c for codes in opened.values() for c in codes))


def register(router: Router) -> None:
    router.command("redeem", aliases=("兑换",), usage=REDEEM_USAGE, example=REDEEM_EXAMPLE,
                   summary="用积分兑换奖励（先生成订单，确认后才扣积分）")(handle_redeem)
    router.command("confirm", aliases=("确认兑换",), usage=CONFIRM_USAGE, example=CONFIRM_EXAMPLE,
                   summary="确认自己的兑换订单（冻结积分，等待 HR 发放）")(handle_confirm)
    router.command("cancel", aliases=("取消兑换",), usage=CANCEL_USAGE, example=CANCEL_EXAMPLE,
                   summary="取消自己的兑换订单（HR 发放前均可取消，积分原路退回）")(handle_cancel)
    router.command("orders", aliases=("我的订单",), usage="我的订单", example="我的订单",
                   summary="查看自己的兑换订单")(handle_orders)
