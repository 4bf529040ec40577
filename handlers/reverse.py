"""撤销/reverse: HR or an admin undoes one award, deduction or expiry with a correcting transaction.

Nothing is edited or deleted: the reversal is a new transaction with its actor and reason, pointing at the one it
undoes, and the employee is told. An award whose points were already spent is refused with the balance (the
wallet never goes negative; HR can deduct what is there instead). ``撤销 R<n>`` refunds a fulfilled order (the
points come back from where its settlement put them: spent, or a charity's pool). Other kinds (holds, transfers,
budgets) cannot be reversed, as in the appeal table of docs/commands.md.
"""
from __future__ import annotations

from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import Reply, Text
from bot.core.router import Router
from cards import builders_people as cards
from cards import messages as msg
from handlers.appeal import parse_ref
from storage import orders
from storage.models import REASON_MAX

USAGE = "撤销 <E编号/R订单号> <原因>"
EXAMPLE = "撤销 E12 重复发放"
STAFF = ("hr", "admin")


def handle_reverse(event: Event, ctx: Context) -> Reply:
    first, _, reason = ctx.args.strip().partition(" ")
    if first and orders.parse_ref(first) is not None and reason.strip():
        return _refund(ctx, orders.parse_ref(first), reason.strip())  # type: ignore[arg-type]
    txn_id, reason = parse_ref(first, "E") if first else None, reason.strip()
    if txn_id is None or not reason:
        return Text(msg.usage_text("reverse", USAGE, EXAMPLE, "" if txn_id is not None or not first
                                   else msg.NEED_TXN_REF))
    if len(reason) > REASON_MAX:
        return Text(msg.usage_text("reverse", USAGE, EXAMPLE, msg.REASON_TOO_LONG.format(max=REASON_MAX)))
    me = ctx.me
    txn, _ = ctx.ledger.reverse(txn_id, idem_key=f"reverse:{event.platform}:{event.event_id}", actor_id=me.id,
                                reason=reason)
    assert txn.employee_id is not None
    person = ctx.members.get(txn.employee_id)
    balance = ctx.ledger.balance(ctx.ledger.wallet(txn.employee_id).id)
    ctx.notify(txn.employee_id, cards.reversal_notice(original=txn_id, points=txn.amount, actor=me.name, reason=reason,
                                                      balance=balance, txn_id=txn.id), key=f"E{txn.id}:notice")
    return Text(msg.REVERSED.format(orig=txn_id, name=person.name if person else "", points=txn.amount, txn=txn.id))


def _refund(ctx: Context, order_id: int, reason: str) -> Reply:
    """``撤销 R<n>``: a fulfilled order is undone (a gift card whose code failed, a donation made by mistake)."""
    if len(reason) > REASON_MAX:
        return Text(msg.usage_text("reverse", USAGE, EXAMPLE, msg.REASON_TOO_LONG.format(max=REASON_MAX)))
    me = ctx.me
    order = ctx.orders.refund(me, order_id, reason)
    txn = ctx.ledger.find(f"order:{order.id}:refund")
    assert txn is not None
    person = ctx.members.get(order.employee_id)
    balance = ctx.ledger.balance(ctx.ledger.wallet(order.employee_id).id)
    ctx.notify(order.employee_id, cards.refund_notice(order_id=order.id, item=order.item_name, quantity=order.quantity,
                                                      points=txn.amount, actor=me.name, reason=reason,
                                                      balance=balance, txn_id=txn.id), key=f"R{order.id}:refunded")
    return Text(msg.REFUNDED.format(name=person.name if person else "", id=order.id, item=order.item_name,
                                    qty=order.quantity, cost=txn.amount, txn=txn.id))


def register(router: Router) -> None:
    router.command("reverse", aliases=("撤销",), roles=STAFF, usage=USAGE, example=EXAMPLE,
                   summary="撤销一笔奖励、扣除或过期，或为已发放的订单退款（以一笔更正记录，通知员工）")(handle_reverse)
