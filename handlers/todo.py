"""待办/todo: what is waiting for this manager, HR person or admin.

Managers see the open appeals of their reports; HR and admins see every open appeal (but their
own), orders awaiting fulfilment and leavers who still hold points (the leaver policy decides
what happens to those, but someone should know they are there).
"""
from __future__ import annotations

from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import CardReply, Reply
from bot.core.router import Router
from cards import builders_people as cards
from cards import messages as msg
from storage.models import Employee

SHOW = 10  # lines per section; the card says how many more there are
Section = tuple[str, list[str], int]


def appeal_section(ctx: Context, member: Employee) -> Section:
    rows = ctx.appeals.open_for(member)
    lines = []
    for a in rows[:SHOW]:
        emp = ctx.members.get(a.employee_id)
        about = f"E{a.txn_id}" if a.txn_id else msg.TODO_APPEAL_MISSING
        lines.append(msg.TODO_APPEAL_LINE.format(id=a.id, name=emp.name if emp else "?", about=about,
                                                 reason=a.reason[:40]))
    return msg.TODO_APPEALS, lines, len(rows)


def order_section(ctx: Context) -> Section:
    rows, total = ctx.orders.to_fulfil(SHOW)
    return msg.TODO_ORDERS, [msg.TODO_ORDER_LINE.format(id=o.id, name=name, item=o.item_name, qty=o.quantity)
                             for o, name in rows], total


def leaver_section(ctx: Context) -> Section:
    rows, total = ctx.queries.leavers_with_points(SHOW)
    return msg.TODO_LEAVERS, [msg.TODO_LEAVER_LINE.format(name=emp.name, no=emp.employee_no, balance=balance)
                              for emp, balance in rows], total


def handle_todo(event: Event, ctx: Context) -> Reply:
    member = ctx.me
    sections = [appeal_section(ctx, member)]
    if member.role in ("hr", "admin"):
        sections += [order_section(ctx), leaver_section(ctx)]
    return CardReply(cards.todo_card(sections))


def register(router: Router) -> None:
    router.command("todo", reads_only=True, aliases=("待办",), roles=("manager", "hr", "admin"), usage="待办", example="待办",
                   summary="查看待处理的申诉、订单和离职员工积分")(handle_todo)
