"""Gift-card codes and donations in chat (Catalog 2): handed out at once, codes one-to-one only, HR told, refunds."""
from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from cards.builders import CODES_FIELD
from handlers import reverse
from storage import gift_codes
from storage.models import Order, Outbox
from tests.handlers.test_redeem import ShopBot

KEY = Fernet.generate_key().decode()
CATALOG = [
    {"sku": "jd100", "name": "京东卡100元", "cost": 1000, "kind": "gift_card"},
    {"sku": "hope", "name": "希望工程 10 元", "cost": 100, "kind": "donation", "charity": "希望工程"},
]


@pytest.fixture
def gbot(sqlite_db, clock) -> ShopBot:
    bot = ShopBot(sqlite_db, clock, catalog=CATALOG, gift_cards={"codes_key": KEY, "low_stock": 1})
    reverse.register(bot.router)
    bot.setup_company({"E1": 5000, "E2": 5000})
    with sqlite_db.session_scope() as s:
        gift_codes.add(s, gift_codes.Vault(KEY), "jd100", [(1, "GIFTCODE-AAA1"), (2, "GIFTCODE-BBB2"),
                                                           (3, "GIFTCODE-CCC3")], now=clock(), actor_id=None)
    return bot


def outbox_text(bot: ShopBot) -> str:
    with bot.db.session_scope() as s:
        return "\n".join(s.scalars(select(Outbox.payload)))


def test_a_confirmed_gift_card_is_done_at_once_and_its_code_goes_one_to_one_by_reference(gbot: ShopBot) -> None:
    gbot.send("u_e1", "兑换 jd100 2")
    reply = gbot.send("u_e1", "确认兑换 R1")
    assert "兑换成功 R1：卡密已私信发送给你" in reply and "GIFTCODE" not in reply
    assert gbot.order(1).status == "fulfilled" and gbot.balance("E1") == 3000 and gbot.on_hold("E1") == 0
    notice = next(json.loads(p) for p in outbox_text(gbot).splitlines() if '"codes_of"' in p)
    assert notice["codes_of"] == 1 and notice["employee_id"] == gbot.ids["E1"]
    assert ["卡密", CODES_FIELD] in notice["card"]["fields"]
    assert "GIFTCODE" not in outbox_text(gbot)  # a reference only, in every row
    assert not any("新的兑换订单" in c["title"] for c in gbot.notices_to("H1"))  # nothing for HR to do
    assert gbot.invariants() == []


def test_hr_hears_once_per_upload_when_the_pool_runs_low_and_when_it_is_empty(gbot: ShopBot) -> None:
    gbot.send("u_e1", "兑换 jd100 2")
    gbot.send("u_e1", "确认兑换 R1")  # 1 left = low_stock
    titles = [c["title"] for c in gbot.notices_to("H1")]
    assert titles == ["购物卡「京东卡100元」的卡密只剩 1 个"]
    gbot.send("u_e2", "兑换 jd100")
    gbot.send("u_e2", "确认兑换 R2")
    assert [c["title"] for c in gbot.notices_to("H1")][1:] == ["购物卡「京东卡100元」的卡密已用完，员工暂时无法兑换"]
    assert "库存不足" in gbot.send("u_e2", "兑换 jd100")


def test_my_orders_shows_the_codes_one_to_one_and_hides_them_from_what_is_kept(gbot: ShopBot) -> None:
    gbot.send("u_e1", "兑换 jd100")
    gbot.send("u_e1", "确认兑换 R1")
    shown = gbot.send("u_e1", "我的订单")
    assert "卡密: GIFTCODE-AAA1" in shown
    assert gbot.last_reply.secrets == ("GIFTCODE-AAA1",)
    assert "GIFTCODE" not in json.dumps(gbot.last_reply.hidden().card.to_dict(), ensure_ascii=False)
    in_group = gbot.send("u_e1", "我的订单", group=True)
    assert "GIFTCODE" not in in_group and "卡密请在与我的单聊中发送「我的订单」查看" in in_group


def test_a_donation_thanks_the_giver_and_fills_the_charitys_pool(gbot: ShopBot) -> None:
    gbot.send("u_e1", "兑换 hope 3")
    reply = gbot.send("u_e1", "确认兑换 R1")
    assert "感谢你的爱心！已以你的名义向「希望工程」捐赠（R1）" in reply and "300" in reply
    assert gbot.order(1).status == "fulfilled" and gbot.balance("E1") == 4700
    assert gbot.invariants() == []


def test_hr_refunds_a_fulfilled_order_with_reverse_and_the_employee_is_told(gbot: ShopBot) -> None:
    gbot.send("u_e1", "兑换 hope 3")
    gbot.send("u_e1", "确认兑换 R1")
    assert "你没有权限使用「撤销」命令" in gbot.send("u_e1", "撤销 R1 误捐")
    reply = gbot.send("u_hr", "撤销 R1 误捐")
    assert reply.startswith("已为 张三 退回订单 R1（希望工程 10 元 ×3）的 300 积分")
    assert gbot.order(1).status == "refunded" and gbot.balance("E1") == 5000
    assert gbot.notices_to("E1")[-1]["title"] == "你的订单 R1 已退款，300 积分已退回"
    assert "已退款" in gbot.send("u_hr", "撤销 R1 误捐")
    assert "已退款" in gbot.send("u_e1", "我的订单")
    assert gbot.invariants() == []


def test_an_order_waiting_for_hr_is_not_refunded_but_rejected(sbot_manual: ShopBot) -> None:
    sbot_manual.redeem_and_confirm()
    assert "请用「拒绝订单」退回积分" in sbot_manual.send("u_hr", "撤销 R1 弄错了")
    with sbot_manual.db.session_scope() as s:
        assert s.scalar(select(Order.status)) == "awaiting_fulfilment"


@pytest.fixture
def sbot_manual(sqlite_db, clock) -> ShopBot:
    bot = ShopBot(sqlite_db, clock)
    reverse.register(bot.router)
    return bot.setup_company()
