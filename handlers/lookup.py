"""查询/lookup: one employee's statement and recent history, for HR and admins, and for a manager about
their team (everyone below them in the reporting tree, storage/members.py ``team``).

Read-only. HR answers "how many points do I have, and why" questions all day; before this they had to
ask the employee to send 积分 and forward it.
"""
from __future__ import annotations

from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import CardReply, Reply
from bot.core.router import Router
from cards import builders_people as cards
from cards import messages as msg
from handlers.award import one_person
from handlers.query import EXPIRY_WINDOW_DAYS, history_line
from storage.errors import NotPermitted
from storage.models import Employee

LOOKUP_USAGE = "查询 <工号/@同事/姓名>"
LOOKUP_EXAMPLE = "查询 1002"
LOOKERS = ("hr", "admin", "manager")
RECENT = 10


def handle_lookup(event: Event, ctx: Context) -> Reply:
    target = one_person(ctx, event, "lookup", LOOKUP_USAGE, LOOKUP_EXAMPLE, spaced_mention=True)
    if not isinstance(target, Employee):
        return target
    me = ctx.me
    if me.role == "manager" and target.id != me.id and not ctx.members.in_team(me.id, target.id):
        raise NotPermitted("outside team", reason="lookup_outside_team")
    st = ctx.queries.statement(target.id, days=EXPIRY_WINDOW_DAYS)
    page = ctx.queries.history(target.id, page=1, per_page=RECENT)
    expiring = [(msg.local_time(at, ctx.settings.tz, "%Y-%m-%d"), pts) for at, pts in st.expiring]
    platforms = [msg.PLATFORM_NAMES.get(p, p) for p in sorted(ctx.members.bound_ids(target.id))]
    return CardReply(cards.lookup_card(
        name=target.name, no=target.employee_no, department=target.department, active=target.status == "active",
        available=st.available, on_hold=st.on_hold, lifetime_earned=st.lifetime_earned, expiring=expiring,
        rows=[history_line(t, ctx) for t in page.items], total=page.total, platforms=platforms))


def register(router: Router) -> None:
    router.command("lookup", aliases=("查询",), roles=LOOKERS, reads_only=True, usage=LOOKUP_USAGE,
                   example=LOOKUP_EXAMPLE, summary="查看某位员工的积分和最近记录（经理限本团队）")(handle_lookup)
