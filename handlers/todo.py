"""待办/todo: what is waiting for this manager, HR person or admin.

Managers see the open appeals of their reports; HR and admins see every open appeal (but their
own), orders awaiting fulfilment and leavers who still hold points (the leaver policy decides
what happens to those, but someone should know they are there).
"""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import CardReply, Reply
from bot.core.router import Router
from cards import builders_people as cards
from storage import appeals
from storage.models import Account, Employee, Order

SHOW = 10  # lines per section; the card says how many more there are
Section = tuple[str, list[str], int]


def appeal_section(s: Session, member: Employee) -> Section:
    rows = appeals.open_for(s, member)
    lines = []
    for a in rows[:SHOW]:
        emp = s.get(Employee, a.employee_id)
        about = f"E{a.txn_id}" if a.txn_id else "未收到的积分"
        lines.append(f"A{a.id} {emp.name if emp else '?'} {about}: {a.reason[:40]}  →  通过申诉 A{a.id} / 驳回申诉 A{a.id}")
    return "待处理申诉", lines, len(rows)


def order_section(s: Session) -> Section:
    """Orders are another module's; the model is queried directly so the two stay independent."""
    q = select(Order).where(Order.status == "awaiting_fulfilment")
    total = int(s.scalar(select(func.count()).select_from(q.subquery())) or 0)
    lines = []
    for o in s.scalars(q.order_by(Order.id).limit(SHOW)):
        emp = s.get(Employee, o.employee_id)
        lines.append(f"R{o.id} {emp.name if emp else '?'} {o.item_name} ×{o.quantity}  →  发放 R{o.id} / 拒绝订单 R{o.id}")
    return "待发放订单", lines, total


def leaver_section(s: Session) -> Section:
    q = (select(Employee, Account.balance).join(Account, (Account.employee_id == Employee.id) & (Account.kind == "wallet"))
         .where(Employee.status == "left", Account.balance > 0))
    total = int(s.scalar(select(func.count()).select_from(q.subquery())) or 0)
    lines = [f"{emp.name}（{emp.employee_no}）剩余 {balance} 积分"
             for emp, balance in s.execute(q.order_by(Employee.id).limit(SHOW))]
    return "仍有积分的离职员工", lines, total


def handle_todo(event: Event, ctx: Context) -> Reply:
    member = ctx.me
    sections = [appeal_section(ctx.session, member)]
    if member.role in ("hr", "admin"):
        sections += [order_section(ctx.session), leaver_section(ctx.session)]
    return CardReply(cards.todo_card(sections))


def register(router: Router) -> None:
    router.command("todo", aliases=("待办",), roles=("manager", "hr", "admin"), usage="待办", example="待办",
                   summary="查看待处理的申诉、订单和离职员工积分")(handle_todo)
