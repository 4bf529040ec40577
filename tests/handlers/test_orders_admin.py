"""发放/fulfil and 拒绝订单/reject: roles, one effect per order, refunds to the same lots."""
from __future__ import annotations

import pytest

from storage.models import Order, Outbox, Txn
from tests.handlers.test_redeem import ShopBot


@pytest.fixture
def sbot(sqlite_db, clock) -> ShopBot:
    return ShopBot(sqlite_db, clock).setup_company()


def test_hr_fulfils_and_the_requester_is_told(sbot: ShopBot) -> None:
    sbot.redeem_and_confirm()
    reply = sbot.send("u_hr", "发放 R1 已放到前台请自取")
    assert reply == "已发放订单 R1（张三 100元购物卡 ×1），已通知员工。"
    order = sbot.order(1)
    assert (order.status, order.decided_by, order.note) == ("fulfilled", sbot.ids["H1"], "已放到前台请自取")
    assert sbot.txns("settle") == 1 and sbot.on_hold("E1") == 0 and sbot.balance("E1") == 1500
    [notice] = sbot.notices_to("E1")
    assert notice["title"] == "你的兑换订单 R1 已发放" and ["备注", "已放到前台请自取"] in notice["fields"]
    assert sbot.invariants() == []


def test_admin_may_fulfil_with_the_english_alias(sbot: ShopBot) -> None:
    sbot.redeem_and_confirm()
    assert "已发放订单 R1" in sbot.send("u_admin", "fulfil r1")


@pytest.mark.parametrize("text", ["发放 R1", "fulfil R1", "拒绝订单 R1", "reject R1 不想给"])
def test_employee_is_denied_and_nothing_is_written(sbot: ShopBot, text: str) -> None:
    sbot.redeem_and_confirm()
    outbox = sbot.count(Outbox)
    assert "你没有权限使用" in sbot.send("u_e2", text)
    assert "你没有权限使用" in sbot.send("u_e1", text)
    assert sbot.order(1).status == "awaiting_fulfilment"
    assert sbot.txns("settle") == sbot.txns("release") == 0 and sbot.count(Outbox) == outbox


def test_two_fulfils_give_one_settle(sbot: ShopBot) -> None:
    sbot.redeem_and_confirm()
    sbot.send("u_hr", "发放 R1")
    assert sbot.send("u_hr2", "发放 R1") == "订单 R1 已发放，不能再更改。"
    assert sbot.send("u_hr", "发放 R1") == "订单 R1 已发放，不能再更改。"
    assert sbot.txns("settle") == 1 and len(sbot.notices_to("E1")) == 1
    assert sbot.order(1).decided_by == sbot.ids["H1"] and sbot.invariants() == []


def test_cancel_and_reject_after_fulfil_are_refused(sbot: ShopBot) -> None:
    sbot.redeem_and_confirm()
    sbot.send("u_hr", "发放 R1")
    assert sbot.send("u_e1", "取消兑换 R1") == "订单 R1 已发放，不能再更改。"
    assert sbot.send("u_hr2", "拒绝订单 R1 库存不足") == "订单 R1 已发放，不能再更改。"
    assert sbot.order(1).status == "fulfilled" and sbot.txns("release") == 0
    assert sbot.balance("E1") == 1500 and sbot.stock("card100") == 1


def test_reject_restores_lots_and_stock(sbot: ShopBot) -> None:
    sbot.award("E1", 300, "second-lot")
    before = sbot.lots("E1")
    sbot.redeem_and_confirm(text="兑换 card100 2")
    assert sbot.stock("card100") == 0
    reply = sbot.send("u_hr", "拒绝订单 R1 该商品已停产")
    assert reply == "已拒绝订单 R1（张三 100元购物卡 ×2），理由: 该商品已停产。2000 积分已退回，库存已恢复，已通知员工。"
    assert sbot.lots("E1") == before and sbot.stock("card100") == 2
    assert (sbot.balance("E1"), sbot.on_hold("E1")) == (2800, 0)
    order = sbot.order(1)
    assert (order.status, order.note) == ("rejected", "该商品已停产")
    [notice] = sbot.notices_to("E1")
    assert "被拒绝" in notice["title"] and ["拒绝理由", "该商品已停产"] in notice["fields"]
    assert ["当前可用积分", "2800"] in notice["fields"]
    assert sbot.send("u_hr2", "拒绝订单 R1 库存不足") == "订单 R1 已被拒绝，积分已退回。"
    assert sbot.send("u_hr2", "发放 R1") == "订单 R1 已被拒绝，积分已退回。"
    assert sbot.send("u_e1", "取消兑换 R1") == "订单 R1 已被拒绝，积分已退回。"
    assert sbot.txns("release") == 1 and sbot.txns("settle") == 0 and sbot.invariants() == []


def test_unconfirmed_orders_are_not_for_hr(sbot: ShopBot) -> None:
    sbot.send("u_e1", "兑换 1")
    assert "尚未确认" in sbot.send("u_hr", "发放 R1")
    assert "尚未确认" in sbot.send("u_hr", "拒绝订单 R1 库存不足")
    assert sbot.order(1).status == "awaiting_confirmation"


@pytest.mark.parametrize("text", ["发放", "发放 R", "发放 Rabc", "fulfil 1", "拒绝订单 A1", "reject"])
def test_malformed_references_get_usage(sbot: ShopBot, text: str) -> None:
    sbot.redeem_and_confirm()
    reply = sbot.send("u_hr", text)
    assert "请写明 R 开头的订单号" in reply and "用法:" in reply
    assert sbot.order(1).status == "awaiting_fulfilment"


def test_unknown_order(sbot: ShopBot) -> None:
    assert "找不到这个订单" in sbot.send("u_hr", "发放 R42")


def test_hr_cannot_fulfil_their_own_order(sbot: ShopBot) -> None:
    sbot.award("H1", 1000, "hr-funds")
    sbot.redeem_and_confirm(user="u_hr")
    assert [n for n in sbot.notices_to("H1")] == []  # not asked to fulfil their own order
    assert "不能发放自己的订单" in sbot.send("u_hr", "发放 R1")
    assert sbot.order(1).status == "awaiting_fulfilment"
    assert "已发放订单 R1" in sbot.send("u_hr2", "发放 R1")


def test_pending_orders_survive_many_orders(sbot: ShopBot) -> None:
    """Each order is held and settled on its own keys; a fulfil never touches another order."""
    sbot.redeem_and_confirm(text="兑换 mug")
    sbot.redeem_and_confirm(text="兑换 mug 2")
    sbot.send("u_hr", "发放 R2")
    assert sbot.order(1).status == "awaiting_fulfilment" and sbot.order(2).status == "fulfilled"
    assert sbot.on_hold("E1") == 200 and sbot.count(Order) == 2
    assert sbot.count(Txn, Txn.kind == "settle", Txn.related_txn_id == sbot.order(2).hold_txn_id) == 1
