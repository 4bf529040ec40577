"""积分/points: the balance statement, and 明细/history: the member's changes, newest first.

Read-only. The statement leads with the available balance as a plain number (docs/commands.md, References)
and tells people what will expire within 30 days, because expiry that comes as a surprise is the
complaint HR hears most. Every history line starts with its ``E<n>``, the reference an appeal needs.
"""
from __future__ import annotations

import re

from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import CardReply, Reply, Text
from bot.core.router import Router
from cards import builders
from cards import messages as msg
from handlers.rank import period_bounds
from storage.models import Txn
from storage.periods import calendar_period

HISTORY_USAGE = "明细 [页码]"
HISTORY_EXAMPLE = "明细 2"
PER_PAGE = 10
EXPIRY_WINDOW_DAYS = 30
_PAGE = re.compile(r"^(?:第)?(\d{1,6})(?:页)?$")


def handle_points(event: Event, ctx: Context) -> Reply:
    member = ctx.me
    if ctx.args.strip() and member.role in ("hr", "admin", "manager"):  # 积分 zhangsan: someone else's points
        return Text(msg.USE_LOOKUP.format(who=ctx.args.strip()))
    tz = ctx.settings.tz
    st = ctx.queries.statement(member.id, days=EXPIRY_WINDOW_DAYS)
    period = ctx.settings.leaderboard["period"]
    start, end, label = period_bounds(period, ctx.now(), tz)
    key = calendar_period(period, ctx.now(), tz).key  # the ledger's kept totals for the period
    rank, period_points = ctx.standings.rank_of(ctx.session, member.id, start, end, key=key)
    expiring = [(msg.local_time(at, tz, "%Y-%m-%d"), pts) for at, pts in st.expiring]
    return CardReply(builders.balance_card(
        name=member.name, available=st.available, on_hold=st.on_hold, expiring=expiring,
        lifetime_earned=st.lifetime_earned, rank=rank, period_label=label.split("（")[0],
        period_points=period_points))


def history_line(txn: Txn, ctx: Context) -> str:
    """``E<n> MM-DD HH:MM kind ±points reason``; the year is written when it is not this year's."""
    what = msg.TXN_KIND_TEXT.get(txn.kind, txn.kind)
    this_year = msg.local_time(ctx.now(), ctx.settings.tz, "%Y")
    fmt = "%m-%d %H:%M" if msg.local_time(txn.created_at, ctx.settings.tz, "%Y") == this_year else "%Y-%m-%d %H:%M"
    when = msg.local_time(txn.created_at, ctx.settings.tz, fmt)
    amount = f"{txn.amount:+d}" if txn.amount else "±0"
    reason = f" {txn.reason}" if txn.reason else ""
    return f"E{txn.id} {when} {what} {amount}{reason}"


def handle_history(event: Event, ctx: Context) -> Reply:
    member = ctx.me
    page = 1
    if ctx.args:
        m = _PAGE.match(ctx.args.strip())
        if m is None or int(m.group(1)) < 1:
            return Text(msg.usage_text("history", HISTORY_USAGE, HISTORY_EXAMPLE, msg.BAD_PAGE))
        page = int(m.group(1))
    hp = ctx.queries.history(member.id, page=page, per_page=PER_PAGE)
    rows = [history_line(t, ctx) for t in hp.items]
    return CardReply(builders.history_card(rows=rows, page=hp.page, pages=hp.pages, total=hp.total))


def register(router: Router) -> None:
    router.command("points", reads_only=True, aliases=("积分", "我的积分", "balance"), usage="积分", example="积分",
                   summary="查看可用积分、冻结积分、即将过期的积分和排名")(handle_points)
    router.command("history", reads_only=True, aliases=("明细",), usage=HISTORY_USAGE, example=HISTORY_EXAMPLE,
                   summary="查看积分记录（每条带 E 编号，可用于申诉）")(handle_history)
