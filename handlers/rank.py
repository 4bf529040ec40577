"""排行榜/rank/leaderboard [week|month|quarter|year] [department].

Periods are calendar periods in the company's time zone (storage/periods.py), the same ones the
pushed leaderboards use.
"""
from __future__ import annotations

from datetime import datetime, tzinfo

from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import CardReply, Reply
from bot.core.router import Router
from cards import builders
from cards import messages as msg
from storage.periods import calendar_period

USAGE = "排行榜 [周|月|季度|年] [部门]"
EXAMPLE = "排行榜 月 研发部"
PERIOD_WORDS = {
    "week": "week", "weekly": "week", "周": "week", "本周": "week", "周榜": "week",
    "month": "month", "monthly": "month", "月": "month", "本月": "month", "月榜": "month",
    "quarter": "quarter", "季": "quarter", "季度": "quarter", "本季": "quarter", "本季度": "quarter",
    "year": "year", "yearly": "year", "年": "year", "本年": "year", "今年": "year", "全年": "year", "年榜": "year",
}
def period_bounds(period: str, now: datetime, tz: tzinfo) -> tuple[datetime, datetime, str]:
    """[start, end) of the local calendar period containing ``now`` (naive UTC), and its label."""
    p = calendar_period(period, now, tz)
    return p.start, p.end, msg.period_label(p.kind, p.first, p.last)


def parse_args(args: str, default: str) -> tuple[str, str]:
    """(period, department): the period word is optional, and anything else names a department."""
    tokens = args.split()
    if tokens and tokens[0].casefold() in PERIOD_WORDS:
        return PERIOD_WORDS[tokens[0].casefold()], " ".join(tokens[1:])
    if len(tokens) > 1 and tokens[-1].casefold() in PERIOD_WORDS:  # 排行榜 研发部 月
        return PERIOD_WORDS[tokens[-1].casefold()], " ".join(tokens[:-1])
    return default, " ".join(tokens)


def handle_rank(event: Event, ctx: Context) -> Reply:
    period, department = parse_args(ctx.args, ctx.settings.leaderboard["period"])
    start, end, label = period_bounds(period, ctx.now(), ctx.settings.tz)
    key = calendar_period(period, ctx.now(), ctx.settings.tz).key  # the ledger's kept totals for the period
    top_n = int(ctx.settings.leaderboard["top_n"])
    rows = ctx.queries.leaderboard(start, end, department=department or None, top_n=top_n, period_key=key)
    title = msg.BOARD_TITLE.format(department=f"{department} · " if department else "", label=label)
    me = ""
    member = ctx.member
    if member is not None:
        if department:
            mine = next((r for r in rows if r.employee_id == member.id), None)
            rank, pts = (mine.rank, mine.points) if mine else (None, 0)
        else:
            rank, pts = ctx.standings.rank_of(ctx.session, member.id, start, end, max_age=0, key=key)
        me = msg.MY_RANK.format(rank=rank, points=pts) if rank else msg.NOT_RANKED
    if not rows and department:
        me = msg.EMPTY_DEPARTMENT.format(department=department) + ("\n" + me if me else "")
    card = builders.leaderboard_card(title=title, rows=[(r.rank, r.name, r.department, r.points) for r in rows], me=me)
    return CardReply(card)


def register(router: Router) -> None:
    router.command("rank", reads_only=True, aliases=("排行榜", "leaderboard"), usage=USAGE, example=EXAMPLE,
                   summary="查看积分排行榜（可按周/月/季度/年、部门）")(handle_rank)
