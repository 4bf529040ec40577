"""Conversations through the real endpoints (signed, encrypted) on both platforms and every role.

Each step asserts what the user sees, the ledger and the outbox, the way a tenant would exercise it:
balance, shop, redeem → confirm by button, HR fulfils, a manager awards, an appeal is decided, and
the role checks hold.
"""
from __future__ import annotations

import itertools
import json
import re
import time
from urllib.parse import unquote
from xml.etree import ElementTree

import pytest
from sqlalchemy import func, select

from storage import queries
from storage.employees import import_roster, read_roster
from storage.invariants import check_invariants
from storage.ledger import Ledger
from storage.models import Appeal, Employee, Order, Outbox, Txn
from tests.e2e import signing
from tests.e2e.conftest import DINGTALK, WECOM

ROSTER = """employee_no,name,department,manager_no,role,dingtalk_userid,wecom_userid
M1,王经理,研发部,,manager,mgr,mgr
E1,张三,研发部,M1,employee,zhang,zhang
E2,李四,研发部,M1,employee,li,li
H1,韩梅,人力资源部,,hr,hr1,hr1
"""
_ids = itertools.count(1)


class Chat:
    """Sends what a platform would send for one user and returns what that user would see."""

    def __init__(self, client, platform: str) -> None:  # type: ignore[no-untyped-def]
        self.client, self.platform = client, platform

    def say(self, user: str, text: str) -> str:
        n = next(_ids)
        if self.platform == "wecom":
            ts = int(time.time())
            xml = signing.wecom_text_xml(user, WECOM["corp_id"], text, 500000 + n, ts)
            return self._wecom(xml, ts)
        ts = int(time.time() * 1000)
        resp = self.client.post("/callback/dingtalk/robot", data=signing.robot_body(user, text, f"m{n}"),
                                headers=signing.robot_headers(DINGTALK["app_secret"], ts))
        assert resp.status_code == 200
        data = json.loads(resp.data)
        if data["msgtype"] == "text":
            return data["text"]["content"]
        return data.get("markdown", {}).get("text", "")

    def click(self, user: str, command: str) -> str:
        """WeCom: a template_card_event; DingTalk: the dtmd link sends the command as the user."""
        if self.platform == "dingtalk":
            return self.say(user, command)
        ts = int(time.time()) + next(_ids)
        return self._wecom(signing.wecom_click_xml(user, WECOM["corp_id"], command, ts), int(time.time()))

    def _wecom(self, xml: str, ts: int) -> str:
        params, body = signing.wecom_post(WECOM["token"], WECOM["encoding_aes_key"], WECOM["corp_id"], xml, ts)
        resp = self.client.post("/callback/wecom", query_string=params, data=body)
        assert resp.status_code == 200
        if not resp.data:
            return ""
        outer = ElementTree.fromstring(resp.data)
        inner, corp = signing.aes_decrypt(WECOM["encoding_aes_key"], outer.findtext("Encrypt"))
        assert corp == WECOM["corp_id"]
        assert outer.findtext("MsgSignature") == signing.sha1_signature(
            WECOM["token"], outer.findtext("TimeStamp"), outer.findtext("Nonce"), outer.findtext("Encrypt"))
        root = ElementTree.fromstring(inner)
        if root.findtext("MsgType") == "update_button":
            return "update_button:" + (root.findtext("Button/ReplaceName") or "")
        return root.findtext("Content") or ""


@pytest.fixture
def company(app):  # type: ignore[no-untyped-def]
    bot = app.extensions["pointsbot"]
    with bot.db.session_scope() as s:
        rows, err = read_roster(ROSTER)
        assert err is None
        ledger = Ledger(s, bot.db.clock)
        report = import_roster(s, rows, ledger, now=bot.db.clock(), budget=1000, rollover=False)
        assert not report.rejected
        e1 = s.scalar(select(Employee).where(Employee.employee_no == "E1"))
        ledger.award(e1.id, 1500, idem_key="seed-e1", reason="入职奖励")
    return bot


def _balance(bot, no: str) -> int:  # type: ignore[no-untyped-def]
    with bot.db.session_scope() as s:
        emp = s.scalar(select(Employee).where(Employee.employee_no == no))
        return queries.statement(s, emp.id, bot.db.clock()).available


def _count(bot, model) -> int:  # type: ignore[no-untyped-def]
    with bot.db.session_scope() as s:
        return s.scalar(select(func.count(model.id))) or 0


def _outbox_cards(bot) -> list[dict]:  # type: ignore[no-untyped-def]
    with bot.db.session_scope() as s:
        return [json.loads(r.payload) for r in s.scalars(select(Outbox).order_by(Outbox.id))]


def _latest_card_text(bot, platform: str, reply: str) -> str:  # type: ignore[no-untyped-def]
    """WeCom sends cards with buttons through the outbox; DingTalk returns them in the response."""
    if platform == "dingtalk":
        return unquote(reply)
    rows = [c for c in _outbox_cards(bot) if "card" in c]
    return reply + (json.dumps(rows[-1]["card"], ensure_ascii=False) if rows else "")


@pytest.mark.parametrize("platform", ["wecom", "dingtalk"])
def test_redeem_confirm_fulfil_award_and_appeal(client, company, platform: str) -> None:
    bot, chat = company, Chat(client, platform)
    assert "1500" in chat.say("zhang", "积分")
    assert "100元购物卡" in chat.say("zhang", "商城")

    reply = chat.say("zhang", "兑换 card100")
    shown = _latest_card_text(bot, platform, reply)
    ref = re.search(r"R(\d+)", shown).group(0)
    assert "确认兑换 " + ref in shown and "1000" in shown
    assert _balance(bot, "E1") == 1500  # nothing moves before confirmation

    clicked = chat.click("zhang", f"确认兑换 {ref}")
    if platform == "wecom":
        assert clicked.startswith("update_button:")
    assert _balance(bot, "E1") == 500
    with bot.db.session_scope() as s:
        assert s.scalar(select(Order.status)) == "awaiting_fulfilment"
    hr_notices = [c for c in _outbox_cards(bot) if c.get("employee_id") and "发放 " + ref in json.dumps(c, ensure_ascii=False)]
    assert hr_notices, "HR gets a card to fulfil the order"

    assert "权限" in chat.say("zhang", f"发放 {ref}")  # an employee cannot fulfil
    chat.say("hr1", f"发放 {ref}")
    with bot.db.session_scope() as s:
        assert s.scalar(select(Order.status)) == "fulfilled"

    before = _count(bot, Txn)
    chat.say("mgr", "奖励 E1 50 帮助同事排查线上故障")
    assert _balance(bot, "E1") == 550
    assert _count(bot, Txn) == before + 1
    assert "权限" in chat.say("zhang", "奖励 E2 50 自己人") and _count(bot, Txn) == before + 1

    with bot.db.session_scope() as s:
        award_id = s.scalar(select(Txn.id).where(Txn.kind == "award", Txn.amount == 50))
    appeal_reply = chat.say("zhang", f"申诉 E{award_id} 应该是100分")
    assert re.search(r"A\d+", appeal_reply + _latest_card_text(bot, platform, appeal_reply))
    with bot.db.session_scope() as s:
        appeal_id = s.scalar(select(Appeal.id))
    assert "权限" in chat.say("zhang", f"通过申诉 A{appeal_id} 50") or _balance(bot, "E1") == 550
    chat.say("mgr", f"通过申诉 A{appeal_id} 50 补发")
    assert _balance(bot, "E1") == 600
    with bot.db.session_scope() as s:
        assert check_invariants(s) == []


@pytest.mark.parametrize("platform", ["wecom", "dingtalk"])
def test_unbound_user_is_told_how_to_bind_and_nothing_is_written(client, company, platform: str) -> None:
    chat = Chat(client, platform)
    before = _count(company, Txn)
    shown = _latest_card_text(company, platform, chat.say("stranger", "积分"))
    assert "绑定" in shown
    assert _count(company, Txn) == before


@pytest.mark.parametrize("platform", ["wecom", "dingtalk"])
def test_unknown_command_suggests_the_closest(client, company, platform: str) -> None:
    shown = _latest_card_text(company, platform, Chat(client, platform).say("zhang", "兑唤 1"))
    assert "兑换" in shown


ROLE_USER = {"employee": "zhang", "manager": "mgr", "hr": "hr1"}
SAMPLE_ARGS = {"award": "E2 10 帮忙", "deduct": "E2 10 违规", "approve": "A1", "deny": "A1", "fulfil": "R1",
               "reject": "R1", "redeem": "course", "confirm": "R1", "cancel": "R1", "appeal": "- 少了积分",
               "bind": "E1 123456", "unbind": "", "confirm-unbind": "U1", "rank": "month", "help": "兑换",
               "history": "1"}


def _routes():  # type: ignore[no-untyped-def]
    from app import build_router

    return build_router().routes


@pytest.mark.parametrize("platform", ["wecom", "dingtalk"])
@pytest.mark.parametrize("route", _routes(), ids=lambda r: r.name)
def test_every_command_answers_through_the_real_endpoint(client, company, platform: str, route) -> None:
    """Each command, typed by a role allowed to use it, gets a real answer on both platforms."""
    role = "employee" if route.roles is None else next(r for r in ("employee", "manager", "hr") if r in route.roles)
    text = f"{route.aliases[0]} {SAMPLE_ARGS.get(route.name, '')}".strip()
    reply = Chat(client, platform).say(ROLE_USER[role], text)
    shown = _latest_card_text(company, platform, reply)
    assert shown.strip(), f"{text!r} got no answer"
    assert "系统暂时出了点问题" not in shown and "没有权限" not in shown
    with company.db.session_scope() as s:
        assert check_invariants(s) == []


@pytest.mark.parametrize("platform", ["wecom", "dingtalk"])
def test_reasons_and_notes_are_at_most_200_characters(client, company, platform: str) -> None:
    bot, chat = company, Chat(client, platform)
    before = _count(bot, Txn)
    assert "最多 200 个字" in chat.say("mgr", "奖励 E1 50 " + "好" * 201)
    assert "最多 200 个字" in chat.say("hr1", "扣除 E1 5 " + "错" * 201)
    assert _count(bot, Txn) == before
    assert "已奖励" in chat.say("mgr", "奖励 E1 50 " + "好" * 200)  # exactly 200 is fine
