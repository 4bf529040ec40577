"""恢复员工/reactivate: HR or an admin brings back an employee marked as left (a roster mistake, a return).

The wallet is unfrozen and the points that are still there come back with the person; chat accounts
are not re-bound by guess (docs/commands.md, "Binding"): the reply says how to give them a bind code.
"""
from __future__ import annotations

from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import Reply, Text
from bot.core.router import Router
from cards import messages as msg
from handlers.award import one_person
from storage.models import Employee

USAGE = "恢复员工 <工号/@同事/姓名>"
EXAMPLE = "恢复员工 1002"
STAFF = ("hr", "admin")


def handle_reactivate(event: Event, ctx: Context) -> Reply:
    emp = one_person(ctx, event, "reactivate", USAGE, EXAMPLE)
    if not isinstance(emp, Employee):
        return emp
    if not ctx.members.reactivate(emp, ctx.me):
        return Text(msg.ALREADY_ACTIVE.format(name=emp.name, no=emp.employee_no))
    balance = ctx.orders.available_points(emp.id)
    return Text(msg.REACTIVATED.format(name=emp.name, no=emp.employee_no, balance=balance))


def register(router: Router) -> None:
    router.command("reactivate", aliases=("恢复员工",), roles=STAFF, usage=USAGE, example=EXAMPLE,
                   summary="恢复被标记为离职的员工（账户解冻）")(handle_reactivate)
