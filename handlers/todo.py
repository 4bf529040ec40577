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
from storage.models import Employee

SHOW = 10  # lines per section; the card says how many more there are
Section = tuple[str, list[str], int]


def appeal_section(ctx: Context, member: Employee) -> Section:
    rows = ctx.appeals.open_for(member)
    lines = []
    for a in rows[:SHOW]:
        emp = ctx.members.get(a.employee_id)
        about = f"E{a.txn_id}" if a.txn_id else "未收到的积分"
        lines.append(f"A{a.id} {emp.name if emp else '?'} {about}: {a.reason[:40]}  →  通过申诉 A{a.id} / 驳回申诉 A{a.id}")
    return "待处理申诉", lines, len(rows)


def order_section(ctx: Context) -> Section:
    rows, total = ctx.queries.orders_to_fulfil(SHOW)
    return "待发放订单", [f"R{o.id} {name} {o.item_name} ×{o.quantity}  →  发放 R{o.id} / 拒绝订单 R{o.id}"
                     for o, name in rows], total


def leaver_section(ctx: Context) -> Section:
    rows, total = ctx.queries.leavers_with_points(SHOW)
    return "仍有积分的离职员工", [f"{emp.name}（{emp.employee_no}）剩余 {balance} 积分" for emp, balance in rows], total


def handle_todo(event: Event, ctx: Context) -> Reply:
    member = ctx.me
    sections = [appeal_section(ctx, member)]
    if member.role in ("hr", "admin"):
        sections += [order_section(ctx), leaver_section(ctx)]
    return CardReply(cards.todo_card(sections))


def register(router: Router) -> None:
    router.command("todo", aliases=("待办",), roles=("manager", "hr", "admin"), usage="待办", example="待办",
                   summary="查看待处理的申诉、订单和离职员工积分")(handle_todo)
