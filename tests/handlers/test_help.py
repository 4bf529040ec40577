"""帮助/help and the answer to unrecognised messages."""
from __future__ import annotations

import pytest

from handlers import help as help_module
from handlers import orders_admin, query, rank, redeem, rules, shop
from handlers.help import suggest
from storage.models import Order, Txn
from tests.handlers.test_redeem import ShopBot


@pytest.fixture
def sbot(sqlite_db, clock) -> ShopBot:
    return ShopBot(sqlite_db, clock).setup_company()


def test_help_works_before_binding(sbot: ShopBot) -> None:
    text = sbot.send("u_stranger", "帮助")
    assert "积分机器人: 可用命令" in text and "· 兑换（redeem）" in text
    assert "请先绑定员工账号" in text
    assert "· 发放" not in text  # role-restricted commands are not offered


def test_help_lists_what_the_role_may_use(sbot: ShopBot) -> None:
    employee = sbot.send("u_e1", "help")
    hr = sbot.send("u_hr", "help")
    assert "· 发放（fulfill / fulfil）" not in employee and "· 发放（fulfill / fulfil）" in hr
    assert "· 拒绝订单（reject）" in hr and "请先绑定" not in hr
    assert "· 积分（我的积分 / balance / points）" in employee


@pytest.mark.parametrize("topic", ["兑换", "redeem", "REDEEM", "兑换 2"])
def test_help_for_one_command_shows_usage_and_example(sbot: ShopBot, topic: str) -> None:
    sbot.send("u_e1", f"帮助 {topic}")
    card = sbot.last_reply.card
    assert card.title == "帮助: 兑换"
    fields = dict(card.fields)
    assert fields["用法"] == "兑换 <商品编号/sku/名称> [数量]" and fields["示例"] == "兑换 1"
    assert fields["其他写法"] == "redeem" and fields["可用人员"] == "所有员工"


def test_help_for_a_restricted_command_names_the_roles(sbot: ShopBot) -> None:
    sbot.send("u_e1", "帮助 发放")
    assert dict(sbot.last_reply.card.fields)["可用人员"] == "HR、管理员"
    sbot.send("u_e1", "帮助 help")
    assert dict(sbot.last_reply.card.fields)["可用人员"] == "所有员工（绑定前也可使用）"


def test_help_for_an_unknown_topic_suggests(sbot: ShopBot) -> None:
    text = sbot.send("u_e1", "帮助 兑奂")
    assert "没有找到命令「兑奂」" in text and "你是不是想输入: 兑换" in text


@pytest.mark.parametrize("typed, suggestion", [
    ("兑奂 2", "兑换 2"), ("兑奂2", "兑换 2"), ("redem 2", "redeem 2"), ("poinst", "points"),
    ("确认兑奂 R3", "确认兑换 R3"), ("排行帮 月", "排行榜 月"),
])
def test_unknown_command_gets_a_suggestion_and_the_help_card(sbot: ShopBot, typed: str, suggestion: str) -> None:
    text = sbot.send("u_e1", typed)
    assert f"你是不是想输入: {suggestion}" in text
    assert "积分机器人: 可用命令" in text
    assert sbot.count(Order) == 0


def test_gibberish_gets_the_help_card_without_a_guess(sbot: ShopBot) -> None:
    text = sbot.send("u_e1", "asdfghjkl")
    assert "没看懂「asdfghjkl」" in text and "你是不是想输入" not in text and "可用命令" in text


def test_unknown_from_an_unbound_user(sbot: ShopBot) -> None:
    text = sbot.send("u_stranger", "兑奂 1")
    assert "你是不是想输入: 兑换 1" in text and "请先绑定员工账号" in text
    assert sbot.count(Txn, Txn.kind != "award") == 0


def test_suggest_handles_empty_text(sbot: ShopBot) -> None:
    assert suggest(sbot.router, "") is None
    assert "可用命令" in sbot.send("u_e1", "　")


def test_every_command_here_documents_itself() -> None:
    from bot.core.router import Router

    router = Router()
    for module in (query, shop, redeem, orders_admin, rank, rules, help_module):
        module.register(router)
    for route in router.routes:
        assert route.usage and route.example and route.summary, route.name
        assert any("\u4e00" <= ch <= "\u9fff" for ch in route.aliases[0]), f"{route.name}: Chinese name first"
    assert router.fallback is not None
