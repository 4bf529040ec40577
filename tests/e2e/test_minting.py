"""Minting: no path grants more than its actor's authority, and an approved appeal never hurts.

Through the real endpoints (signed DingTalk robot messages and encrypted approval events) on every
engine, because each of these failed on PostgreSQL and MariaDB behind gunicorn.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from storage import members
from storage.invariants import check_invariants
from storage.ledger import Ledger
from storage.models import Account, ApprovalSlot, Employee, Txn
from tests.e2e.conftest import load_roster, post_approval
from tests.e2e.racing import race
from tests.e2e.test_conversations import Chat

ROUNDS = 20  # the cap race: each round six approvals of one employee at once, from six processes
RACERS = 6
ROSTER = "\n".join([
    "employee_no,name,department,manager_no,role,dingtalk_userid,wecom_userid",
    "M1,王经理,研发部,,manager,mgr,mgr",
    "E1,张三,研发部,M1,employee,zhang,zhang",
    "H1,韩梅,人力资源部,,hr,hr1,hr1",
    *(f"W{i:02d},员工{i},研发部,M1,employee,w{i:02d},w{i:02d}" for i in range(ROUNDS)),
]) + "\n"


@pytest.fixture
def config(config):  # type: ignore[no-untyped-def]
    config["rules"][0]["max_per"] = {"count": 1, "period": "month"}  # 全勤: once a month
    return config


@pytest.fixture
def company(app):  # type: ignore[no-untyped-def]
    """M1 has spent this month's budget: 0 left, as in the report."""
    bot = app.extensions["pointsbot"]
    ids = load_roster(bot, ROSTER, budget=500)
    with bot.db.session_scope() as s:
        Ledger(s, bot.db.clock).award(ids["H1"], 500, idem_key="spent", reason="大项目", actor_id=ids["M1"],
                                      budget_of=ids["M1"])
        for r in range(ROUNDS):  # they have used the bot before: no first-message binding to serialise them
            members.bind(s, s.get(Employee, ids[f"W{r:02d}"]), "dingtalk", f"w{r:02d}", now=bot.db.clock(),
                         actor_id=None, how="test")
    return bot


def wallet(bot, no: str, kind: str = "wallet") -> int:  # type: ignore[no-untyped-def]
    with bot.db.session_scope() as s:
        emp = s.scalar(select(Employee.id).where(Employee.employee_no == no))
        return int(s.scalar(select(Account.balance).where(Account.employee_id == emp, Account.kind == kind)) or 0)


def minted(bot) -> int:  # type: ignore[no-untyped-def]
    """Every point that ever left issuance for a wallet (awards, corrections)."""
    with bot.db.session_scope() as s:
        return int(s.scalar(select(func.coalesce(func.sum(Txn.amount), 0)).where(Txn.kind == "award")) or 0)


def clean(bot) -> None:  # type: ignore[no-untyped-def]
    with bot.db.session_scope() as s:
        assert check_invariants(s) == []


def appeal_ref(reply: str) -> str:
    m = re.search(r"A\d+", reply)
    assert m, reply
    return m.group(0)


def test_a_manager_cannot_mint_through_an_appeal(client, company) -> None:
    bot, chat = company, Chat(client, "dingtalk")
    a = appeal_ref(chat.say("zhang", "申诉 - 上月全勤没有发"))
    assert "单次奖励最多 500" in chat.say("mgr", f"通过申诉 {a} 10000000 全勤补发")
    assert "额度不足" in chat.say("mgr", f"通过申诉 {a} 100 全勤补发")
    assert (wallet(bot, "E1"), minted(bot)) == (0, 500)
    chat.say("hr1", f"通过申诉 {a} 100 全勤补发")  # HR corrects from issuance
    assert wallet(bot, "E1") == 100

    assert post_approval(client, "inst-att-1", "zhang") == 200  # an approval award: no human made it
    with bot.db.session_scope() as s:
        award = s.scalar(select(Txn.id).where(Txn.idem_key == "approval:dingtalk:inst-att-1"))
    b = appeal_ref(chat.say("zhang", f"申诉 E{award} 应该是200分"))
    assert "需由 HR 或管理员处理" in chat.say("mgr", f"通过申诉 {b} 100 补足")
    assert "需由 HR 或管理员处理" in chat.say("mgr", f"驳回申诉 {b} 已核实")
    assert (wallet(bot, "E1"), wallet(bot, "M1", "budget")) == (200, 0)
    clean(bot)


def test_approving_an_appeal_against_an_award_never_takes_it_away(client, company) -> None:
    bot, chat = company, Chat(client, "dingtalk")
    chat.say("hr1", "奖励 E1 50 帮助同事")
    with bot.db.session_scope() as s:
        award = s.scalar(select(Txn.id).where(Txn.kind == "award", Txn.amount == 50))
    a = appeal_ref(chat.say("zhang", f"申诉 E{award} 应该是100分"))
    reply = chat.say("hr1", f"通过申诉 {a}")  # what the card's button sends
    assert f"通过申诉 {a} <积分>" in reply and wallet(bot, "E1") == 50
    chat.say("hr1", f"通过申诉 {a} 50 补足")
    assert wallet(bot, "E1") == 100
    clean(bot)


def test_concurrent_capped_approvals_award_once(config, company) -> None:
    """Six distinct approved 全勤 instances of one employee at once, from six processes: one award, every round."""
    results = race(config, ROUNDS, RACERS, lambda client, r, i: post_approval(client, f"inst-{r}-{i}", f"w{r:02d}"))
    assert results == [[200] * RACERS] * ROUNDS
    assert [wallet(company, f"W{r:02d}") for r in range(ROUNDS)] == [100] * ROUNDS
    with company.db.session_scope() as s:
        assert s.scalar(select(func.count(ApprovalSlot.id))) == ROUNDS
    clean(company)


def test_the_cap_counts_in_the_month_the_approval_finished(client, company) -> None:
    """An approval that finished last month and arrives now (reconcile, a late push) is last month's."""
    bot = company
    last_month = datetime.now(timezone.utc).replace(day=1) - timedelta(days=10)
    assert post_approval(client, "inst-late", "zhang", finished=last_month) == 200
    assert post_approval(client, "inst-now", "zhang") == 200
    assert post_approval(client, "inst-now-2", "zhang") == 200  # this month's slot is taken
    assert wallet(bot, "E1") == 200
    clean(bot)
