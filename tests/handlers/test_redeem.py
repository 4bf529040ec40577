"""兑换/redeem, 确认兑换/confirm, 取消兑换/cancel and 我的订单/orders through the router and middleware.

``ShopBot`` (also used by the query, orders-admin and help tests) sends typed commands as a chat
account, one transaction per event, the way the pipeline does, with only this area's modules
registered on a plain ``Router`` and the real middleware chain.
"""
from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.core.context import Context
from bot.core.events import Actor, Conversation, TextCommand
from bot.core.middleware import default_chain
from bot.core.replies import CardReply, Text
from bot.core.router import Router
from cards.model import Card
from handlers import help as help_module
from handlers import orders_admin, query, rank, redeem, rules, shop
from settings import CatalogItem, build_settings
from storage import catalog, members, queries
from storage import rules as rule_store
from storage.catalog import seed_from_config
from storage.invariants import check_invariants
from storage.ledger import Ledger
from storage.models import Account, Item, Lot, Order, Outbox, Txn
from tests.storage.factories import make_employee
from cards.text import plain_text

CATALOG = [
    {"sku": "card100", "name": "100元购物卡", "cost": 1000, "stock": 2},
    {"sku": "mug", "name": "马克杯", "cost": 200},  # unlimited
    {"sku": "leave", "name": "半天假", "cost": 500, "stock": 0},
]
RULES = [
    {"name": "全勤", "platform": "dingtalk", "template": "PROC-FULLATT", "points": 100, "category": "attendance",
     "max_per": {"count": 1, "period": "month"}},
    {"name": "季度绩效", "platform": "wecom", "template": "TPL-PERF", "field": "绩效得分", "category": "performance",
     "tiers": [{"min": 90, "points": 500}, {"min": 80, "points": 300}, {"min": 70, "points": 100}]},
]
# employee_no: (role, name, department, wecom user id)
COMPANY = {
    "A1": ("admin", "管理员甲", "行政部", "u_admin"),
    "H1": ("hr", "人事乙", "人事部", "u_hr"),
    "H2": ("hr", "人事丙", "人事部", "u_hr2"),
    "E1": ("employee", "张三", "研发部", "u_e1"),
    "E2": ("employee", "李四", "研发部", "u_e2"),
    "E3": ("employee", "王五", "市场部", "u_e3"),
}
MODULES = (query, shop, redeem, orders_admin, rank, rules, help_module)


def as_text(reply: Any) -> str:
    if isinstance(reply, Text):
        return reply.text
    if isinstance(reply, CardReply):
        return plain_text(reply.card)
    if isinstance(reply, Card):  # the middleware's not-bound answer
        return plain_text(reply)
    return ""


class ShopBot:
    def __init__(self, db, clock, **settings: Any) -> None:
        self.db, self.clock = db, clock
        self.settings = build_settings({"catalog": CATALOG, "rules": RULES, **settings})
        self.router = Router(middleware=default_chain())
        for module in MODULES:
            module.register(self.router)
        self.seq = 0
        self.ids: dict[str, int] = {}
        self.last_reply: Any = None

    def setup_company(self, points: dict[str, int] | None = None) -> "ShopBot":
        points = {"E1": 2500} if points is None else points
        with self.db.session_scope() as s:
            ledger = Ledger(s, self.clock)
            for no, (role, name, dept, uid) in COMPANY.items():
                emp = make_employee(s, no, role=role, name=name, department=dept)
                self.ids[no] = emp.id
                members.bind(s, emp, "wecom", uid, now=self.clock(), actor_id=None, how="test")
                ledger.wallet(emp.id)
            for no, pts in points.items():
                ledger.award(self.ids[no], pts, idem_key=f"seed:{no}", reason="初始积分")
            seed_from_config(s, self.settings.catalog, now=self.clock())
            rule_store.seed_from_config(s, self.settings.rules, now=self.clock())
        return self

    def send(self, user: str, text: str, platform: str = "wecom", *, group: bool = False) -> str:
        self.seq += 1
        event = TextCommand(platform=platform, event_id=f"ev{self.seq}", actor=Actor(user),
                            conversation=Conversation(is_group=group), received_at=self.clock(), text=text)
        with self.db.session_scope() as s:
            ctx = Context(session=s, settings=self.settings, clock=self.clock, platform=platform)
            self.last_reply = self.router.dispatch(event, ctx)
        return as_text(self.last_reply)

    def award(self, no: str, points: int, key: str) -> int:
        with self.db.session_scope() as s:
            return Ledger(s, self.clock).award(self.ids[no], points, idem_key=key, reason="测试").id

    def balance(self, no: str) -> int:
        with self.db.session_scope() as s:
            return int(s.scalar(select(Account.balance).where(Account.kind == "wallet",
                                                               Account.employee_id == self.ids[no])) or 0)

    def on_hold(self, no: str) -> int:
        with self.db.session_scope() as s:
            return queries.on_hold(s, self.ids[no])

    def stock(self, sku: str) -> int | None:
        with self.db.session_scope() as s:
            return s.scalar(select(Item.stock).where(Item.sku == sku))

    def order(self, order_id: int) -> Order:
        with self.db.session_scope() as s:
            order = s.get(Order, order_id)
            assert order is not None
            return order

    def count(self, model: Any, *where: Any) -> int:
        with self.db.session_scope() as s:
            return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    def txns(self, kind: str) -> int:
        return self.count(Txn, Txn.kind == kind)

    def lots(self, no: str) -> list[tuple[int, int]]:
        with self.db.session_scope() as s:
            return [tuple(r) for r in s.execute(select(Lot.id, Lot.remaining).join(Account, Account.id == Lot.account_id)
                                                .where(Account.employee_id == self.ids[no]).order_by(Lot.id))]

    def notices_to(self, no: str) -> list[dict]:
        with self.db.session_scope() as s:
            payloads = [json.loads(p) for p in s.scalars(select(Outbox.payload).order_by(Outbox.id))]
        return [p["card"] for p in payloads if p.get("employee_id") == self.ids[no]]

    def invariants(self) -> list[str]:
        with self.db.session_scope() as s:
            return check_invariants(s)

    def redeem_and_confirm(self, user: str = "u_e1", text: str = "兑换 1") -> int:
        """Start and confirm an order; returns its id."""
        self.send(user, text)
        order_id = self.count(Order)
        assert "已确认兑换" in self.send(user, f"确认兑换 R{order_id}"), as_text(self.last_reply)
        return order_id


@pytest.fixture
def sbot(sqlite_db, clock) -> ShopBot:
    return ShopBot(sqlite_db, clock).setup_company()


# ---- redeem ---------------------------------------------------------------------------------------

def test_redeem_asks_first_and_moves_nothing(sbot: ShopBot) -> None:
    sbot.send("u_e1", "兑换 1")
    card = sbot.last_reply.card
    assert card.title == "R1: 是否确认兑换? 需扣除 1000 积分"
    assert [(b.label, b.command) for b in card.buttons] == [("确认兑换", "确认兑换 R1"), ("取消兑换", "取消兑换 R1")]
    assert card.task_id == "R1-confirm"
    assert ("确认后剩余", "1500") in card.fields
    assert sbot.order(1).status == "awaiting_confirmation"
    assert sbot.balance("E1") == 2500 and sbot.txns("hold") == 0 and sbot.stock("card100") == 2


@pytest.mark.parametrize("text, sku, qty, cost", [
    ("兑换 mug 3", "mug", 3, 600), ("兑换 马克杯", "mug", 1, 200), ("redeem CARD100", "card100", 1, 1000),
    ("兑换2", "mug", 1, 200), ("ＲＥＤＥＥＭ　２　２", "mug", 2, 400), ("兑换 2 x2", "mug", 2, 400),
])
def test_item_by_number_sku_or_name(sbot: ShopBot, text: str, sku: str, qty: int, cost: int) -> None:
    assert "是否确认兑换" in sbot.send("u_e1", text)
    order = sbot.order(1)
    assert (order.sku, order.quantity, order.cost) == (sku, qty, cost)


@pytest.mark.parametrize("text, problem", [
    ("兑换", "请写明要兑换的商品"), ("兑换 99", "找不到这个商品"), ("兑换 不存在的东西", "找不到这个商品"),
    ("兑换 0", "找不到这个商品"), ("兑换 1 0", "数量需为 1 到 99"), ("兑换 1 -1", "数量需为 1 到 99"),
    ("兑换 1 100000000000", "数量需为 1 到 99"), ("兑换 1 1.5", "数量需为 1 到 99"), ("兑换 mug 100", "数量需为 1 到 99"),
])
def test_bad_input_gets_usage_and_writes_nothing(sbot: ShopBot, text: str, problem: str) -> None:
    reply = sbot.send("u_e1", text)
    assert problem in reply and "用法: 兑换 <商品编号/sku/名称> [数量]" in reply
    assert sbot.count(Order) == 0


def test_not_enough_points_or_stock_is_refused_up_front(sbot: ShopBot) -> None:
    assert "积分不足: 可用 0 积分，需要 1000 积分" in sbot.send("u_e2", "兑换 1")
    assert "库存不足" in sbot.send("u_e1", "兑换 半天假")
    assert "库存不足" in sbot.send("u_e1", "兑换 card100 3")
    assert sbot.count(Order) == 0


def test_unbound_user_gets_the_bind_card(sbot: ShopBot) -> None:
    assert "绑定" in sbot.send("u_stranger", "兑换 1")
    assert sbot.count(Order) == 0


# ---- confirm ----------------------------------------------------------------------------------------

def test_confirm_holds_points_takes_stock_and_asks_hr(sbot: ShopBot) -> None:
    sbot.send("u_e1", "兑换 1")
    reply = sbot.send("u_e1", "确认兑换 R1")
    hold = sbot.order(1).hold_txn_id
    assert "已确认兑换 R1" in reply and f"E{hold}" in reply and "当前可用: 1500" in reply
    assert sbot.order(1).status == "awaiting_fulfilment"
    assert (sbot.balance("E1"), sbot.on_hold("E1"), sbot.stock("card100")) == (1500, 1000, 1)
    for no in ("H1", "H2", "A1"):
        [card] = sbot.notices_to(no)
        assert [b["command"] for b in card["buttons"]] == ["发放 R1", "拒绝订单 R1 库存不足",
                                                           "拒绝订单 R1 不符合兑换规则", "拒绝订单 R1 信息不全"]
        assert card["task_id"] == f"R1-fulfil-{sbot.ids[no]}" and "张三" in json.dumps(card, ensure_ascii=False)
    assert sbot.notices_to("E2") == [] and sbot.invariants() == []


def test_double_confirm_gives_one_hold(sbot: ShopBot) -> None:
    sbot.send("u_e1", "兑换 1")
    sbot.send("u_e1", "确认兑换 R1")
    assert sbot.send("u_e1", "确认兑换 R1") == "订单 R1 已确认，等待发放。"
    assert sbot.send("u_e1", "CONFIRM r1") == "订单 R1 已确认，等待发放。"
    assert sbot.txns("hold") == 1 and sbot.balance("E1") == 1500 and sbot.stock("card100") == 1
    assert sbot.count(Outbox) == 4  # one request per HR/admin and one close of the confirm card, not one per click
    assert sbot.invariants() == []


def test_only_the_owner_may_confirm_or_cancel(sbot: ShopBot) -> None:
    sbot.send("u_e1", "兑换 1")
    assert "只有下单人本人" in sbot.send("u_e2", "确认兑换 R1")
    assert "只有下单人本人" in sbot.send("u_hr", "取消兑换 R1")
    assert sbot.order(1).status == "awaiting_confirmation" and sbot.txns("hold") == 0


@pytest.mark.parametrize("text", ["确认兑换", "确认兑换 R", "确认兑换 Rabc", "confirm 12", "取消兑换 R", "cancel E1",
                                  "取消兑换 R-1"])
def test_malformed_references_get_usage(sbot: ShopBot, text: str) -> None:
    sbot.send("u_e1", "兑换 1")
    reply = sbot.send("u_e1", text)
    assert "请写明 R 开头的订单号" in reply and "用法:" in reply
    assert sbot.order(1).status == "awaiting_confirmation" and sbot.txns("hold") == 0


def test_unknown_order(sbot: ShopBot) -> None:
    assert "找不到这个订单" in sbot.send("u_e1", "确认兑换 R999")


def test_full_width_confirm(sbot: ShopBot) -> None:
    sbot.send("u_e1", "兑换 1")
    assert "已确认兑换 R1" in sbot.send("u_e1", "确认兑换　Ｒ１")


def test_confirm_rechecks_the_balance_and_rolls_back(sbot: ShopBot) -> None:
    sbot.send("u_e1", "兑换 1 2")  # 2000 of 2500
    with sbot.db.session_scope() as s:
        Ledger(s, sbot.clock).deduct(sbot.ids["E1"], 1000, idem_key="spent-elsewhere", reason="测试")
    assert "积分不足: 可用 1500 积分，需要 2000 积分" in sbot.send("u_e1", "确认兑换 R1")
    assert sbot.order(1).status == "awaiting_confirmation"  # the claim was undone with the hold
    assert sbot.stock("card100") == 2 and sbot.txns("hold") == 0 and sbot.invariants() == []


def test_confirm_when_sold_out_meanwhile(sbot: ShopBot) -> None:
    sbot.award("E2", 3000, "e2-funds")
    sbot.send("u_e1", "兑换 1 2")
    sbot.send("u_e2", "兑换 1 2")
    sbot.send("u_e2", "确认兑换 R2")
    assert "库存不足" in sbot.send("u_e1", "确认兑换 R1")
    assert sbot.order(1).status == "awaiting_confirmation" and sbot.balance("E1") == 2500
    assert sbot.stock("card100") == 0 and sbot.invariants() == []


def test_unconfirmed_order_lapses_after_24_hours(sbot: ShopBot) -> None:
    sbot.send("u_e1", "兑换 1")
    sbot.clock.advance(hours=23, minutes=59)
    sbot.send("u_e1", "兑换 2")
    sbot.clock.advance(minutes=1)
    assert "已失效" in sbot.send("u_e1", "确认兑换 R1")
    assert sbot.order(1).status == "lapsed" and sbot.txns("hold") == 0
    reply = sbot.send("u_e1", "我的订单")
    assert "R1 100元购物卡 ×1  1000 积分 · 已失效" in reply and "R2 马克杯 ×1  200 积分 · 待确认" in reply
    assert "已确认兑换 R2" in sbot.send("u_e1", "确认兑换 R2")


# ---- cancel -----------------------------------------------------------------------------------------

def test_cancel_before_confirm_moves_nothing(sbot: ShopBot) -> None:
    sbot.send("u_e1", "兑换 1")
    assert sbot.send("u_e1", "取消兑换 R1") == "已取消订单 R1，没有扣除积分。"
    assert sbot.send("u_e1", "取消兑换 R1") == "订单 R1 已取消。"
    assert "已取消" in sbot.send("u_e1", "确认兑换 R1")
    assert sbot.count(Txn, Txn.kind != "award") == 0 and sbot.order(1).status == "cancelled"


def test_cancel_after_confirm_releases_to_the_same_lots(sbot: ShopBot) -> None:
    sbot.award("E1", 300, "second-lot")
    before = sbot.lots("E1")
    sbot.redeem_and_confirm(text="兑换 1 2")
    assert sbot.lots("E1") != before
    reply = sbot.send("u_e1", "取消兑换 R1")
    assert "已取消订单 R1，2000 积分已退回（E" in reply and "当前可用积分: 2800" in reply
    assert sbot.lots("E1") == before and sbot.stock("card100") == 2 and sbot.on_hold("E1") == 0
    assert sbot.send("u_e1", "取消兑换 R1") == "订单 R1 已取消。"
    assert sbot.txns("release") == 1 and sbot.invariants() == []


def test_orders_lists_newest_first_with_next_steps(sbot: ShopBot) -> None:
    assert "你还没有兑换订单" in sbot.send("u_e1", "我的订单")
    sbot.redeem_and_confirm()
    sbot.send("u_e1", "兑换 mug")
    lines = sbot.send("u_e1", "orders").splitlines()
    r2 = next(i for i, line in enumerate(lines) if line.startswith("R2 "))
    r1 = next(i for i, line in enumerate(lines) if line.startswith("R1 "))
    assert r2 < r1
    assert "确认兑换 R2 / 取消兑换 R2" in lines[r2] and "等待发放" in lines[r1] and "取消兑换 R1" in lines[r1]
    assert "R1" not in sbot.send("u_e2", "我的订单")


def _stock_item(sbot: ShopBot, item: CatalogItem) -> None:
    """HR puts an item on the shelf (the console and the CSV import save through the same call)."""
    with sbot.db.session_scope() as s:
        catalog.save(s, item, now=sbot.clock(), actor_id=sbot.ids["H1"])


def test_fulfilment_is_worded_for_the_kind_of_item(sbot: ShopBot) -> None:
    _stock_item(sbot, CatalogItem("leave2", "2天年假", 300, None, kind="leave", leave_days=2, sort=-1))
    order_id = sbot.redeem_and_confirm(text="兑换 leave2")
    request = sbot.notices_to("H1")[-1]
    assert ["需要做", "在假期系统中为兑换人增加 2 天假期（2天年假 ×1）"] in request["fields"]
    sbot.send("u_hr", f"发放 R{order_id}")
    assert sbot.notices_to("E1")[-1]["title"] == f"已为你增加 2 天假期（R{order_id}），可在假期系统中查看"


def test_a_per_employee_limit_is_shown_and_enforced_in_chat(sbot: ShopBot) -> None:
    _stock_item(sbot, CatalogItem("leave2", "2天年假", 300, None, kind="leave", leave_days=2, limit=1,
                                  limit_period="quarter", sort=-1))
    shop = sbot.send("u_e1", "商城")
    assert "1. [假期] 2天年假（leave2）  300 积分  ·  库存充足  ·  每季度限兑 1 个" in shop
    sbot.redeem_and_confirm(text="兑换 1")
    assert sbot.send("u_e1", "兑换 1") == "「2天年假」每季度每人限兑 1 个，你这期已兑换 1 个。"
    assert sbot.count(Order) == 1


def test_an_edit_by_hr_shows_in_the_next_message(sbot: ShopBot) -> None:
    assert "马克杯（mug）  200 积分" in sbot.send("u_e1", "商城")
    _stock_item(sbot, CatalogItem("mug", "保温杯", 260, 3))
    assert "保温杯（mug）  260 积分  ·  库存 3" in sbot.send("u_e1", "商城")
    _stock_item(sbot, CatalogItem("mug", "保温杯", 260, 3, active=False))
    assert "mug" not in sbot.send("u_e1", "商城")
    assert "找不到这个商品" in sbot.send("u_e1", "兑换 mug")
