"""奖励/award, 扣除/deduct and 额度/budget through the router and the real middleware chain.

``PeopleBot`` (also used by the appeal, bind, todo and authorization tests) sends typed commands
as a given chat account, one transaction per event, the way the pipeline does.
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
from handlers import appeal, award, bind, budget, lookup, query, todo
from settings import build_settings
from storage import members
from storage.employees import month_key
from storage.invariants import check_invariants
from storage.ledger import Ledger
from storage.models import Account, Appeal, AuditLog, Binding, Outbox, Txn, UnbindRequest
from tests.storage.factories import make_employee
from cards.text import plain_text

POINTS = {"manager_monthly_budget": 1000, "max_award": 500, "manager_award_scope": "all"}
# employee_no: (role, name, manager_no, chat user id on wecom)
COMPANY = {
    "A1": ("admin", "管理员甲", None, "u_admin"),
    "H1": ("hr", "人事乙", None, "u_hr"),
    "M1": ("manager", "经理丙", None, "u_m1"),
    "M2": ("manager", "经理丁", None, "u_m2"),
    "E1": ("employee", "张三", "M1", "u_e1"),
    "E2": ("employee", "李四", "M1", "u_e2"),
    "E3": ("employee", "王五", "M2", "u_e3"),
}


def as_text(reply: Any) -> str:
    if isinstance(reply, Text):
        return reply.text
    if isinstance(reply, CardReply):
        return plain_text(reply.card)
    if isinstance(reply, Card):  # the middleware's not-bound answer
        return plain_text(reply)
    return ""


class PeopleBot:
    def __init__(self, db, clock, points: dict | None = None) -> None:
        self.db, self.clock = db, clock
        self.settings = build_settings({"points": {**POINTS, **(points or {})}})
        self.router = Router(middleware=default_chain())
        for module in (award, budget, appeal, todo, bind, lookup, query):
            module.register(self.router)
        self.seq = 0
        self.ids: dict[str, int] = {}
        self.last_reply: Any = None

    def setup_company(self) -> "PeopleBot":
        with self.db.session_scope() as s:
            ledger = Ledger(s, self.clock)
            for no, (role, name, mgr, uid) in COMPANY.items():
                emp = make_employee(s, no, role=role, name=name, manager_id=self.ids.get(mgr) if mgr else None)
                self.ids[no] = emp.id
                members.bind(s, emp, "wecom", uid, now=self.clock(), actor_id=None, how="test")
                ledger.wallet(emp.id)
                if role == "manager":
                    ledger.grant_budget(emp.id, month_key(self.clock()), self.settings.points["manager_monthly_budget"])
        return self

    def send(self, user: str, text: str, mentions: tuple[str, ...] = (), platform: str = "wecom",
             group: bool = False) -> str:
        self.seq += 1
        event = TextCommand(platform=platform, event_id=f"ev{self.seq}", actor=Actor(user),
                            received_at=self.clock(), text=text, mentions=mentions,
                            conversation=Conversation(is_group=group))
        with self.db.session_scope() as s:
            ctx = Context(session=s, settings=self.settings, clock=self.clock, platform=platform)
            self.last_reply = self.router.dispatch(event, ctx)
        return as_text(self.last_reply)

    def counts(self) -> dict[str, int]:
        with self.db.session_scope() as s:
            return {m.__name__: int(s.scalar(select(func.count()).select_from(m)) or 0)
                    for m in (Txn, Appeal, Outbox, UnbindRequest, Binding)}

    def balance(self, no: str, kind: str = "wallet") -> int:
        with self.db.session_scope() as s:
            return int(s.scalar(select(Account.balance).where(Account.kind == kind,
                                                               Account.employee_id == self.ids[no])) or 0)

    def notices(self) -> list[dict]:
        with self.db.session_scope() as s:
            return [json.loads(p) for p in s.scalars(select(Outbox.payload).order_by(Outbox.id))]

    def notices_to(self, no: str) -> list[dict]:
        return [n["card"] for n in self.notices() if n.get("employee_id") == self.ids[no]]

    def last_txn(self) -> Txn:
        with self.db.session_scope() as s:
            return s.scalar(select(Txn).order_by(Txn.id.desc()).limit(1))

    def invariants(self) -> list[str]:
        with self.db.session_scope() as s:
            return check_invariants(s)

    def audit_actions(self) -> list[str]:
        with self.db.session_scope() as s:
            return list(s.scalars(select(AuditLog.action).order_by(AuditLog.id)))


@pytest.fixture
def pbot(sqlite_db, clock) -> PeopleBot:
    return PeopleBot(sqlite_db, clock).setup_company()


def test_manager_award_uses_budget_and_notifies_receiver(pbot: PeopleBot) -> None:
    reply = pbot.send("u_m1", "奖励 E1 50 帮忙排查线上故障")
    txn = pbot.last_txn()
    assert f"E{txn.id}" in reply and "张三" in reply and "本月剩余额度: 950" in reply
    assert (txn.kind, txn.amount, txn.reason, txn.idem_key) == ("award", 50, "帮忙排查线上故障", "award:wecom:ev1")
    assert pbot.balance("E1") == 50 and pbot.balance("M1", "budget") == 950
    [card] = pbot.notices_to("E1")
    text = plain_text(Card.from_dict(card))
    assert "50" in card["title"] and "经理丙" in text and "帮忙排查线上故障" in text and "当前可用积分: 50" in text
    assert pbot.invariants() == []


def test_hr_award_comes_from_issuance(pbot: PeopleBot) -> None:
    reply = pbot.send("u_hr", "award E3 80 great demo")
    assert "E" in reply and "额度" not in reply
    assert pbot.balance("E3") == 80 and pbot.balance("M2", "budget") == 1000
    assert pbot.invariants() == []


@pytest.mark.parametrize("text,mentions,who", [
    ("奖励 @李四 30 帮忙", ("u_e2",), "E2"),
    ("奖励 @Li Lei 30 帮忙", ("u_e2",), "E2"),  # a display name with a space
    ("奖励 李四 30 帮忙", (), "E2"),
    ("奖励 u_e2 30 帮忙", (), "E2"),
    ("GIVE E3 30 thanks", (), "E3"),
    ("奖励　E3　３０分　全角也行", (), "E3"),
])
def test_person_forms(pbot: PeopleBot, text: str, mentions: tuple, who: str) -> None:
    pbot.send("u_m1", text, mentions=mentions)
    assert pbot.balance(who) == 30


@pytest.mark.parametrize("text", [
    "奖励", "奖励 E1", "奖励 E1 10", "奖励 E1 abc 原因", "奖励 E1 0 原因", "奖励 E1 -5 原因",
    "奖励 E1 1.5 原因", "奖励 nobody 10 原因", "奖励 E1 99999999999 原因", "扣除 E1", "扣除 E1 x 原因",
])
def test_bad_input_gets_usage_and_writes_nothing(pbot: PeopleBot, text: str) -> None:
    before = pbot.counts()
    user = "u_hr" if text.startswith("扣除") else "u_m1"
    reply = pbot.send(user, text)
    assert "用法: " + text[:2] in reply
    assert pbot.counts() == before


def test_identical_award_within_60s_is_refused(pbot: PeopleBot, clock) -> None:
    pbot.send("u_m1", "奖励 E1 20 好")
    before = pbot.counts()
    reply = pbot.send("u_m1", "奖励 E1 20 好")
    assert "疑似重复" in reply and pbot.counts() == before
    pbot.send("u_m1", "奖励 E1 21 好")  # a different amount is a different award
    assert pbot.balance("E1") == 41
    clock.advance(seconds=61)
    pbot.send("u_m1", "奖励 E1 20 好")
    assert pbot.balance("E1") == 61 and pbot.invariants() == []


def test_deduct_by_hr(pbot: PeopleBot) -> None:
    pbot.send("u_hr", "奖励 E1 50 好")
    reply = pbot.send("u_hr", "扣除 E1 20 重复领取")
    txn = pbot.last_txn()
    assert txn.kind == "deduct" and f"E{txn.id}" in reply and "当前可用积分: 30" in reply
    assert pbot.balance("E1") == 30
    cards = pbot.notices_to("E1")
    assert len(cards) == 2 and "扣除" in cards[-1]["title"]
    before = pbot.counts()
    reply = pbot.send("u_hr", "扣除 E1 31 太多")
    assert "积分不足" in reply and pbot.counts() == before
    assert pbot.invariants() == []


def test_award_to_leaver_is_refused(pbot: PeopleBot, sqlite_db) -> None:
    with sqlite_db.session_scope() as s:
        make_employee(s, "L1", name="离职者", status="left")
    before = pbot.counts()
    assert "冻结" in pbot.send("u_hr", "奖励 L1 10 谢谢")
    assert pbot.counts() == before


def test_budget_shows_left_and_used(pbot: PeopleBot) -> None:
    pbot.send("u_m1", "奖励 E1 50 好")
    pbot.send("u_m1", "奖励 E2 30 好")
    reply = pbot.send("u_m1", "额度")
    assert "剩余: 920" in reply and "已用: 80" in reply and "每月额度: 1000" in reply
    assert "剩余: 1000" in pbot.send("u_m2", "budget")
