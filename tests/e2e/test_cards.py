"""Cards that tell the truth, through the real endpoints on both platforms (Cards)."""
from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from storage.models import Order, Outbox, SentCard
from tests.e2e.conftest import load_roster
from tests.e2e.test_conversations import Chat

ROSTER = """employee_no,name,department,manager_no,role,dingtalk_userid,wecom_userid
M1,王经理,研发部,,manager,mgr,mgr
E1,张三,研发部,M1,employee,zhang,zhang
H1,韩梅,人力资源部,,hr,hr1,hr1
H2,冯雪,人力资源部,,hr,hr2,hr2
"""


@pytest.fixture
def bot(app):  # type: ignore[no-untyped-def]
    bot = app.extensions["pointsbot"]
    load_roster(bot, ROSTER)
    return bot


def sent_to(bot, user: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The outbox messages for one chat user, as text."""
    with bot.db.session_scope() as s:
        rows = [json.loads(r.payload) for r in s.scalars(select(Outbox).order_by(Outbox.id))]
    return [json.dumps(r.get("card", r), ensure_ascii=False) for r in rows if r.get("user_id") == user]


@pytest.mark.parametrize("platform", ["wecom", "dingtalk"])
def test_a_failed_confirm_leaves_the_card_open(client, bot, platform: str) -> None:
    chat = Chat(client, platform)
    chat.say("hr1", "奖励 E1 400 季度之星")
    reply = chat.say("zhang", "兑换 course")  # 300 points: affordable now
    ref = re.search(r"R\d+", reply + "".join(sent_to(bot, "zhang"))).group(0)
    chat.say("hr1", "扣除 E1 200 更正")  # now 200 left: the confirm must fail
    clicked = chat.click("zhang", f"确认兑换 {ref}")
    if platform == "wecom":
        assert clicked == ""  # no update_button: the card keeps its buttons
        assert "积分不足" in sent_to(bot, "zhang")[-1]
    else:
        assert "积分不足" in clicked
    with bot.db.session_scope() as s:
        assert s.scalar(select(Order.status)) == "awaiting_confirmation"
    chat.say("hr1", "奖励 E1 200 补回")
    clicked = chat.click("zhang", f"确认兑换 {ref}")  # the same button works once it can
    if platform == "wecom":
        assert clicked.startswith("update_button:")
    with bot.db.session_scope() as s:
        assert s.scalar(select(Order.status)) == "awaiting_fulfilment"


@pytest.mark.parametrize("platform", ["wecom", "dingtalk"])
def test_a_preset_reason_button_rejects_and_the_employee_reads_why(client, bot, platform: str) -> None:
    chat = Chat(client, platform)
    chat.say("hr1", "奖励 E1 400 季度之星")
    chat.say("zhang", "兑换 course")
    chat.click("zhang", "确认兑换 R1")
    with bot.db.session_scope() as s:
        cards = [json.loads(r.payload)["card"] for r in s.scalars(select(Outbox).order_by(Outbox.id))
                 if json.loads(r.payload).get("employee_id") and "R1" in r.payload and "待发放" in r.payload]
    commands = [b["command"] for c in cards for b in c["buttons"]]
    assert "拒绝订单 R1 库存不足" in commands and "拒绝订单 R1" not in commands
    clicked = chat.click("hr2", "拒绝订单 R1 库存不足")
    if platform == "wecom":
        assert clicked.startswith("update_button:")
    with bot.db.session_scope() as s:
        order = s.scalar(select(Order))
        told = [r.payload for r in s.scalars(select(Outbox).order_by(Outbox.id)) if "被拒绝" in r.payload]
    assert order.status == "rejected" and order.note == "库存不足"
    assert told and "拒绝理由" in told[-1] and "库存不足" in told[-1]


@pytest.mark.parametrize("platform", ["wecom", "dingtalk"])
def test_the_leaver_notice_names_a_command_that_brings_them_back(client, bot, platform: str) -> None:
    from storage.employees import mark_left
    from storage.ledger import Ledger
    from storage.models import Account, Employee

    chat = Chat(client, platform)
    chat.say("hr1", "奖励 E1 70 交接")
    with bot.db.session_scope() as s:
        emp = s.scalar(select(Employee).where(Employee.employee_no == "E1"))
        mark_left(s, Ledger(s, bot.db.clock), emp, now=bot.db.clock(), actor_id=None, why="test")
    assert "没有权限" in chat.say("mgr", "恢复员工 E1")
    reply = chat.say("hr1", "恢复员工 E1")
    assert "已恢复 张三（E1）为在职，账户已解冻，可用积分 70" in reply and "绑定码 E1" in reply
    with bot.db.session_scope() as s:
        emp = s.scalar(select(Employee).where(Employee.employee_no == "E1"))
        wallet = s.scalar(select(Account).where(Account.employee_id == emp.id, Account.kind == "wallet"))
        assert emp.status == "active" and not wallet.frozen
    assert "在职，无需恢复" in chat.say("hr1", "恢复员工 E1")


# ---- every copy of a decided card shows the outcome (item 1) --------------------------------------------
@pytest.fixture
def fake():  # type: ignore[no-untyped-def]
    import responses

    from tests.bot.fake_platforms import FakePlatforms

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        f = FakePlatforms()
        f.install(rsps)
        yield f


def _to(fake, platform: str, user: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [d.text for d in fake.delivered if d.platform == platform and user in d.to.split("|")]


@pytest.mark.parametrize("platform", ["wecom", "dingtalk"])
def test_a_typed_fulfil_closes_every_card_about_the_order(client, bot, fake, platform: str) -> None:
    chat = Chat(client, platform)
    chat.say("hr1", "奖励 E1 400 季度之星")
    chat.say("zhang", "兑换 course")
    chat.click("zhang", "确认兑换 R1")
    bot.deliver(worker_id="w1")  # the fulfil cards to 韩梅 and 冯雪, the cancel card to 张三, on both platforms
    # the confirm card: on WeCom it went out through the outbox and is edited in place; on DingTalk it was the
    # reply in the callback's answer, nothing to edit (and its owner, the decider, had the reply)
    assert fake.updated == ([("zhang", "已确认")] if platform == "wecom" else [])
    assert "已由 韩梅 发放" not in json.dumps(fake.updated, ensure_ascii=False)
    assert chat.say("hr1", "发放 R1 前台自取").startswith("已发放订单 R1")  # typed, not clicked
    bot.deliver(worker_id="w1")
    edited = [("hr1", "已由 韩梅 发放"), ("hr2", "已由 韩梅 发放")] + ([("zhang", "已由 韩梅 发放")] if platform == "wecom" else [])
    assert sorted(fake.updated[1 if platform == "wecom" else 0:]) == edited  # on DingTalk 张三's card was a reply
    assert any("订单 R1 已由 韩梅 发放" in t for t in _to(fake, "dingtalk", "hr2"))  # markdown: told instead
    assert not any("已由 韩梅 发放" in t for t in _to(fake, "dingtalk", "hr1"))  # the decider had the reply
    assert "已发放，不能再更改" in chat.click("hr2", "发放 R1") + "".join(sent_to(bot, "hr2"))  # a stale click


def test_an_appeal_decided_by_one_reviewer_closes_the_others_cards(client, bot, fake) -> None:
    chat = Chat(client, "wecom")
    a = re.search(r"A\d+", chat.say("zhang", "申诉 - 上月全勤未到账")).group(0)
    bot.deliver(worker_id="w1")  # review cards to 王经理, 韩梅, 冯雪
    chat.click("hr2", f"驳回申诉 {a} 信息不全")
    bot.deliver(worker_id="w1")
    assert sorted(u for u, text in fake.updated if text == "已由 冯雪 驳回") == ["hr1", "hr2", "mgr"]
    assert any(f"申诉 {a} 已由 冯雪 驳回" in t for t in _to(fake, "dingtalk", "mgr"))


def test_a_card_whose_code_is_too_old_is_answered_by_a_message(client, bot, fake, wall_clock) -> None:
    chat = Chat(client, "wecom")
    a = re.search(r"A\d+", chat.say("zhang", "申诉 - 上月全勤未到账")).group(0)
    bot.deliver(worker_id="w1")
    with bot.db.session_scope() as s:  # sent four days ago: WeCom's code lasts 72 hours
        for card in s.scalars(select(SentCard)):
            card.sent_at -= timedelta(days=4)
    chat.say("hr1", f"驳回申诉 {a} 已核实无误")
    bot.deliver(worker_id="w1")
    assert fake.updated == []
    assert any(f"申诉 {a} 已由 韩梅 驳回" in t for t in _to(fake, "wecom", "hr2"))
    assert not any("已由 韩梅 驳回" in t for t in _to(fake, "wecom", "hr1"))


def test_an_order_cancelled_by_its_owner_closes_hrs_cards(client, bot, fake) -> None:
    chat = Chat(client, "wecom")
    chat.say("hr1", "奖励 E1 400 季度之星")
    chat.say("zhang", "兑换 course")
    chat.click("zhang", "确认兑换 R1")
    bot.deliver(worker_id="w1")
    chat.say("zhang", "取消兑换 R1")
    bot.deliver(worker_id="w1")
    assert sorted(u for u, text in fake.updated if text == "已由 张三 取消") == ["hr1", "hr2", "zhang"]
    assert any("订单 R1 已由 张三 取消" in t for t in _to(fake, "dingtalk", "hr1"))


@pytest.mark.parametrize("platform", ["wecom", "dingtalk"])
def test_replies_say_what_was_wrong_and_examples_fit_the_company(client, bot, platform: str) -> None:
    chat = Chat(client, platform)
    assert "积分数需在 1 到 500 之间" in chat.say("mgr", "奖励 E1 99999999999 太多")
    shown = chat.say("hr1", "帮助 奖励")
    assert "奖励 E1 50" in shown and "奖励 1002" not in shown  # this roster writes E1, E2…
    a = re.search(r"A\d+", chat.say("zhang", "申诉 - 上月全勤未到账")).group(0)
    assert chat.say("hr1", f"驳回申诉 {a} 已核实无误") == f"申诉 {a} 已驳回，理由: 已核实无误。已通知 张三。"
