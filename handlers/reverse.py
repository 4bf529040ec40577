"""撤销/reverse: HR or an admin undoes one award, deduction or expiry with a correcting transaction.

Nothing is edited or deleted: the reversal is a new transaction with its actor and reason, pointing at the one it
undoes, and the employee is told. An award whose points were already spent is refused with the balance (the
wallet never goes negative; HR can deduct what is there instead). Other kinds (redemptions, transfers, budgets)
cannot be reversed, as in the appeal table of docs/commands.md.
"""
from __future__ import annotations

from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import Reply, Text
from bot.core.router import Router
from cards import builders_people as cards
from cards import messages as msg
from handlers.appeal import parse_ref
from storage.models import REASON_MAX

USAGE = "撤销 <E编号> <原因>"
EXAMPLE = "撤销 E12 重复发放"
STAFF = ("hr", "admin")


def handle_reverse(event: Event, ctx: Context) -> Reply:
    first, _, reason = ctx.args.strip().partition(" ")
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


def register(router: Router) -> None:
    router.command("reverse", aliases=("撤销",), roles=STAFF, usage=USAGE, example=EXAMPLE,
                   summary="撤销一笔奖励、扣除或过期（以一笔更正记录，通知员工）")(handle_reverse)
