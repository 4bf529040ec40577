"""Replies that say what was wrong and what happened (Cards, items 3 and 6)."""
from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import update

from storage.models import Txn
from tests.handlers.test_award import PeopleBot, pbot  # noqa: F401  (fixture)


def test_a_number_out_of_range_is_told_its_range(pbot: PeopleBot) -> None:  # noqa: F811
    before = pbot.counts()
    assert "积分数需在 1 到 500 之间" in pbot.send("u_m1", "奖励 E1 99999999999 太多")  # a manager: max_award
    assert "积分数需在 1 到 10000000 之间" in pbot.send("u_hr", "奖励 E1 99999999999 太多")
    assert "积分数需在 1 到" in pbot.send("u_hr", "奖励 E1 0 零分")
    assert "积分数量需为正整数" in pbot.send("u_hr", "奖励 E1 abc 不是数")
    assert pbot.counts() == before


def test_history_shows_the_year_of_last_years_lines_newest_first(pbot: PeopleBot) -> None:  # noqa: F811
    pbot.send("u_hr", "奖励 E1 10 今年")
    pbot.send("u_hr", "奖励 E1 20 去年补录")
    with pbot.db.session_scope() as s:  # the second was recorded with last year's date (an import, say)
        s.execute(update(Txn).where(Txn.reason == "去年补录").values(created_at=datetime(2025, 12, 30, 2, 0)))
    lines = pbot.send("u_e1", "明细").splitlines()
    mine = [line for line in lines if re.match(r"E\d+ ", line)]
    assert re.match(r"E\d+ 03-10 10:00 奖励 \+10 今年", mine[0]), mine
    assert re.match(r"E\d+ 2025-12-30 10:00 奖励 \+20 去年补录", mine[1]), mine


def test_a_denial_and_a_rejection_carry_their_reason(pbot: PeopleBot) -> None:  # noqa: F811
    reply = pbot.send("u_e1", "申诉 - 上月全勤未到账")
    a = re.search(r"A\d+", reply).group(0)
    before = pbot.counts()
    assert "请写明理由" in pbot.send("u_hr", f"驳回申诉 {a}") and "已核实无误" in pbot.last_reply.text
    assert pbot.counts() == before
    assert pbot.send("u_hr", f"驳回申诉 {a} 已核实无误") == f"申诉 {a} 已驳回，理由: 已核实无误。已通知 张三。"
    [card] = [c for c in pbot.notices_to("E1") if "已驳回" in c["title"]]
    assert ["驳回理由", "已核实无误"] in card["fields"] and not any(f[1] == "驳回" for f in card["fields"])


def test_help_examples_use_the_companys_own_numbering(pbot: PeopleBot) -> None:  # noqa: F811
    from handlers import help as help_module

    help_module.register(pbot.router)
    shown = pbot.send("u_hr", "帮助 奖励")
    assert "奖励 E1 50 帮忙排查线上故障" in shown and "1002" not in shown  # this company writes E1, E2…
    assert "已奖励 张三" in pbot.send("u_hr", "奖励 E1 50 帮忙排查线上故障")  # the example works as typed
