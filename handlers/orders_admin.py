"""发放/fulfil and 拒绝订单/reject: HR and admins close confirmed orders.

Every HR member and admin gets the request card, so two of them may click at once; the order
service claims the order with a conditional update, so the second one is told it was already
handled instead of settling twice. The requester is told the outcome through the outbox, in the
same transaction as the ledger change, so a crash cannot leave the change untold.
"""
from __future__ import annotations

from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import Reply, Text
from bot.core.router import Router
from cards import builders
from cards import messages as msg
from storage import orders
from storage.models import REASON_MAX, Employee, Order

FULFIL_USAGE = "发放 <R订单号> [备注]"
FULFIL_EXAMPLE = "发放 R12 已放到前台，请自取"
REJECT_USAGE = "拒绝订单 <R订单号> <理由>"
REJECT_EXAMPLE = "拒绝订单 R12 该商品已停产"


def notify_fulfillers(ctx: Context, order: Order, requester: Employee) -> int:
    """Ask every HR member and admin (but the requester) to fulfil; keyed so a retry asks once."""
    told = 0
    item = ctx.catalog.get(order.sku)
    todo = msg.fulfil_todo(str(item.kind) if item else "goods", order.item_name, order.quantity,
                           item.leave_days if item else None)
    for person in ctx.orders.fulfillers():
        if person.id == requester.id:
            continue
        card = builders.fulfil_request(order_id=order.id, employee=requester.name, employee_no=requester.employee_no,
                                       department=requester.department, item=order.item_name,
                                       quantity=order.quantity, cost=order.cost, reviewer_id=person.id, todo=todo,
                                       reject_reasons=ctx.settings.orders["reject_reasons"])
        ctx.notify(person.id, card, key=f"R{order.id}:fulfil-request:{person.id}")
        told += 1
    return told


def parse(ctx: Context) -> tuple[int, str] | None:
    """(order id, note); None when the first word is not an ``R<n>`` reference."""
    first, _, note = ctx.args.strip().partition(" ")
    ref = orders.parse_ref(first)
    return None if ref is None else (ref, note.strip())


def _requester(ctx: Context, order: Order) -> Employee:
    emp = ctx.members.get(order.employee_id)
    assert emp is not None
    return emp


def handle_fulfil(event: Event, ctx: Context) -> Reply:
    parsed = parse(ctx)
    if parsed is None:
        return Text(msg.usage_text("fulfil", FULFIL_USAGE, FULFIL_EXAMPLE, msg.NEED_ORDER_REF))
    ref, note = parsed
    if len(note) > REASON_MAX:
        return Text(msg.usage_text("fulfil", FULFIL_USAGE, FULFIL_EXAMPLE, msg.NOTE_TOO_LONG.format(max=REASON_MAX)))
    actor = ctx.me
    order = ctx.orders.fulfil(actor, ref, note=note)
    owner = _requester(ctx, order)
    item = ctx.catalog.get(order.sku)
    ctx.notify(owner.id, builders.order_fulfilled(order_id=order.id, item=order.item_name, quantity=order.quantity,
                                                  actor=actor.name, note=note, kind=str(item.kind) if item else "goods",
                                                  leave_days=item.leave_days if item else None),
               key=f"R{order.id}:fulfilled")
    ctx.close_cards(f"R{order.id}", "fulfilled", actor)
    return Text(msg.FULFILLED.format(id=order.id, name=owner.name, item=order.item_name, qty=order.quantity))


def handle_reject(event: Event, ctx: Context) -> Reply:
    parsed = parse(ctx)
    if parsed is None:
        return Text(msg.usage_text("reject", REJECT_USAGE, REJECT_EXAMPLE, msg.NEED_ORDER_REF))
    ref, note = parsed
    if not note:  # the employee is always told why
        return Text(msg.usage_text("reject", REJECT_USAGE, REJECT_EXAMPLE, msg.NEED_REASON.format(
            presets="、".join(ctx.settings.orders["reject_reasons"]))))
    if len(note) > REASON_MAX:
        return Text(msg.usage_text("reject", REJECT_USAGE, REJECT_EXAMPLE, msg.NOTE_TOO_LONG.format(max=REASON_MAX)))
    actor = ctx.me
    order = ctx.orders.reject(actor, ref, note=note)
    owner = _requester(ctx, order)
    balance = ctx.orders.available_points(owner.id)
    ctx.notify(owner.id, builders.order_rejected(order_id=order.id, item=order.item_name, quantity=order.quantity,
                                                 cost=order.cost, actor=actor.name, note=note, balance=balance),
               key=f"R{order.id}:rejected")
    ctx.close_cards(f"R{order.id}", "rejected", actor)
    return Text(msg.REJECTED.format(id=order.id, name=owner.name, item=order.item_name, qty=order.quantity,
                                    cost=order.cost, note=note))


def register(router: Router) -> None:
    router.command("fulfil", aliases=("发放", "fulfill"), roles=orders.FULFILLERS, usage=FULFIL_USAGE,
                   example=FULFIL_EXAMPLE, summary="发放员工已确认的兑换订单")(handle_fulfil)
    router.command("reject", aliases=("拒绝订单",), roles=orders.FULFILLERS, usage=REJECT_USAGE,
                   example=REJECT_EXAMPLE, summary="拒绝兑换订单（积分原路退回，库存恢复）")(handle_reject)
