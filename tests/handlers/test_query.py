"""The read-only commands: 积分/points, 明细/history, 商城/shop, 排行榜/rank and 规则/rules."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from handlers.rank import parse_args, period_bounds
from settings import build_settings
from settings_rules import parse_tiers
from storage import rules
from storage.models import Txn
from tests.handlers.test_redeem import ShopBot

T0 = datetime(2026, 3, 10, 2, 0, 0)  # the FakeClock's start: Tuesday 10:00 in Shanghai


@pytest.fixture
def sbot(sqlite_db, clock) -> ShopBot:
    return ShopBot(sqlite_db, clock).setup_company(points={})


def award_at(sbot: ShopBot, at: datetime, no: str, points: int, key: str) -> int:
    now = sbot.clock.now
    sbot.clock.now = at
    try:
        return sbot.award(no, points, key)
    finally:
        sbot.clock.now = now


# ---- points -------------------------------------------------------------------------------------------

def test_statement_shows_available_hold_expiry_earned_and_rank(sbot: ShopBot) -> None:
    # earned 350 days ago + 18 h: expires 2026-03-25 20:00 UTC, which is 03-26 in Shanghai
    award_at(sbot, T0 - timedelta(days=350) + timedelta(hours=18), "E1", 300, "old")
    sbot.award("E1", 2500, "new")
    sbot.award("E2", 100, "e2")
    sbot.redeem_and_confirm(text="兑换 mug")
    sbot.send("u_e1", "积分")
    card = sbot.last_reply.card
    fields = dict(card.fields)
    assert fields["可用积分"] == "2600"  # a plain number
    assert card.title == "张三 的积分: 2600"
    assert fields["兑换冻结中"] == "200" and fields["累计获得"] == "2800"
    assert fields["本周排名"] == "第 1 名（2500 积分）"
    assert "30 天内将过期: 100 积分（2026-03-26 到期）" in card.lines  # 200 of the oldest lot is on hold


@pytest.mark.parametrize("text", ["积分", "我的积分", "points", "Balance", "ＰＯＩＮＴＳ"])
def test_statement_aliases(sbot: ShopBot, text: str) -> None:
    assert "可用积分: 0" in sbot.send("u_e2", text)
    assert "30 天内没有将过期的积分" in sbot.send("u_e2", text)
    assert "暂未上榜" in sbot.send("u_e2", text)


# ---- history ------------------------------------------------------------------------------------------

def test_history_is_newest_first_and_paged(sbot: ShopBot) -> None:
    ids = [sbot.award("E1", 10 + i, f"h{i}") for i in range(13)]
    sbot.send("u_e1", "明细")
    card = sbot.last_reply.card
    assert len(card.lines) == 10
    assert card.lines[0].startswith(f"E{ids[-1]} 03-10 10:00 奖励 +22 测试")
    assert "第 1/2 页，共 13 条" in card.footer and "明细 2" in card.footer
    sbot.send("u_e1", "history 2")
    assert [line.split()[0] for line in sbot.last_reply.card.lines] == [f"E{i}" for i in reversed(ids[:3])]
    sbot.send("u_e1", "明细 99")  # past the end: the last page
    assert sbot.last_reply.card.footer.startswith("第 2/2 页")


def test_history_shows_holds_and_releases(sbot: ShopBot) -> None:
    sbot.award("E1", 2500, "funds")
    sbot.redeem_and_confirm()
    sbot.send("u_e1", "取消兑换 R1")
    lines = sbot.send("u_e1", "明细").splitlines()
    assert "兑换退回 +1000" in lines[1] and "兑换冻结 -1000 兑换 R1 100元购物卡×1" in lines[2]


@pytest.mark.parametrize("text", ["明细 abc", "明细 0", "明细 -1", "明细 1 2"])
def test_history_bad_page(sbot: ShopBot, text: str) -> None:
    reply = sbot.send("u_e1", text)
    assert "页码需为正整数" in reply and "用法: 明细 [页码]" in reply


def test_history_empty(sbot: ShopBot) -> None:
    assert "暂无积分记录" in sbot.send("u_e2", "明细")


# ---- shop ---------------------------------------------------------------------------------------------

def test_shop_is_numbered_with_price_and_stock(sbot: ShopBot) -> None:
    sbot.award("E1", 2500, "funds")
    sbot.redeem_and_confirm()
    sbot.send("u_e1", "商城")
    card = sbot.last_reply.card
    assert card.lines == ("1. [实物] 100元购物卡（card100）  1000 积分  ·  库存 1",
                          "2. [实物] 马克杯（mug）  200 积分  ·  库存充足",
                          "3. [实物] 半天假（leave）  500 积分  ·  已兑完")
    assert ("你的可用积分", "1500") in card.fields
    assert sbot.send("u_e1", "catalog") == sbot.send("u_e1", "shop")


def test_the_configuration_changed_later_does_not_change_the_shop(sqlite_db, clock) -> None:
    """The catalog was loaded from ``[[catalog]]`` once; after that only HR's edits change it (README, Reward catalog)."""
    sbot = ShopBot(sqlite_db, clock).setup_company(points={"E1": 500})
    sbot.settings = build_settings({"catalog": [{"sku": "card100", "name": "100元购物卡", "cost": 1, "stock": 2},
                                                {"sku": "pen", "name": "钢笔", "cost": 50, "stock": 7}]})
    shop = sbot.send("u_e1", "商城")
    assert "pen" not in shop and "100元购物卡（card100）  1000 积分" in shop
    assert "找不到这个商品" in sbot.send("u_e1", "兑换 pen 2")


# ---- rank ---------------------------------------------------------------------------------------------

def test_period_bounds_follow_the_company_time_zone() -> None:
    tz = build_settings({}).tz
    start, end, label = period_bounds("week", T0, tz)
    assert (start, end) == (datetime(2026, 3, 8, 16), datetime(2026, 3, 15, 16))
    assert label == "本周（03-09 至 03-15）"
    assert period_bounds("month", T0, tz)[:2] == (datetime(2026, 2, 28, 16), datetime(2026, 3, 31, 16))
    assert period_bounds("quarter", T0, tz)[:2] == (datetime(2025, 12, 31, 16), datetime(2026, 3, 31, 16))
    assert period_bounds("year", T0, tz)[:2] == (datetime(2025, 12, 31, 16), datetime(2026, 12, 31, 16))
    # Sunday 23:30 UTC is already Monday in Shanghai: a new week
    assert period_bounds("week", datetime(2026, 3, 15, 16, 30), tz)[0] == datetime(2026, 3, 15, 16)
    assert period_bounds("quarter", datetime(2026, 12, 31, 16, 0), tz)[:2] == (datetime(2026, 12, 31, 16),
                                                                              datetime(2027, 3, 31, 16))


@pytest.mark.parametrize("args, expected", [
    ("", ("week", "")), ("月", ("month", "")), ("month 研发部", ("month", "研发部")), ("研发部", ("week", "研发部")),
    ("研发部 年", ("year", "研发部")), ("QUARTER", ("quarter", "")),
])
def test_rank_arguments(args: str, expected: tuple[str, str]) -> None:
    assert parse_args(args, "week") == expected


def test_leaderboard_by_period_and_department(sbot: ShopBot) -> None:
    award_at(sbot, datetime(2026, 3, 8, 15, 59), "E2", 900, "last-week")  # Sunday 23:59 local
    award_at(sbot, datetime(2026, 3, 8, 16, 0), "E3", 300, "this-week")  # Monday 00:00 local
    sbot.award("E1", 200, "now")
    sbot.send("u_e1", "排行榜")
    card = sbot.last_reply.card
    assert card.lines == ("1. 王五（市场部）  300 积分", "2. 张三（研发部）  200 积分")
    assert card.title == "积分排行榜 · 本周（03-09 至 03-15）" and card.footer == "你的排名: 第 2 名（200 积分）"
    sbot.send("u_e1", "排行榜 月 研发部")
    assert sbot.last_reply.card.lines == ("1. 李四（研发部）  900 积分", "2. 张三（研发部）  200 积分")
    assert "研发部" in sbot.last_reply.card.title
    assert "第 2 名" in sbot.last_reply.card.footer
    assert "还没有人获得积分" in sbot.send("u_e1", "leaderboard year 不存在的部门")


def test_leaderboard_of_someone_without_points(sbot: ShopBot) -> None:
    assert "你在这段时间还没有获得积分" in sbot.send("u_e2", "rank")


# ---- rules --------------------------------------------------------------------------------------------

def test_rules_show_tiers_caps_and_prices(sbot: ShopBot) -> None:
    text = sbot.send("u_e1", "规则")
    assert "· 全勤（钉钉审批通过后自动发放）: 100 积分，每月最多 1 次" in text
    assert "· 季度绩效（企业微信审批通过后自动发放）: 按「绩效得分」分档 ≥90: 500 / ≥80: 300 / ≥70: 100 积分" in text
    assert "· 1. 100元购物卡: 1000 积分" in text and "· 3. 半天假: 500 积分" in text
    assert "365 天后过期" in text and "最近一次调整" not in text  # loaded from the configuration, never changed
    assert sbot.send("u_e1", "rules") == text


def test_rules_show_a_changed_rules_version_and_when_rules_last_changed(sbot: ShopBot) -> None:
    with sbot.db.session_scope() as s:
        perf = next(r for r in rules.current(s) if r.name == "季度绩效")
        rules.save(s, replace(perf, tiers=parse_tiers("90:110%;80:100%;70:95%;0:0%"), base_points=129), now=sbot.clock(),
                   actor_id=None)
    text = sbot.send("u_e1", "规则")
    assert ("· 季度绩效（第 2 版）（企业微信审批通过后自动发放）: 按「绩效得分」分档（基数 129） ≥90: 142（110%） / "
            "≥80: 129（100%） / ≥70: 123（95%） / ≥0: 0（0%） 积分") in text
    assert f"获得规则最近一次调整: {sbot.clock() + timedelta(hours=8):%Y-%m-%d}" in text


def test_reads_write_nothing(sbot: ShopBot) -> None:
    before = sbot.count(Txn)
    for text in ("积分", "明细", "商城", "排行榜", "规则"):
        sbot.send("u_e1", text)
    assert sbot.count(Txn) == before and sbot.invariants() == []
