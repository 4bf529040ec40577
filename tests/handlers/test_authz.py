"""Authorization matrix (docs/reliability.md §6.3, target T13): every people command × every role,
plus the business rules that are not roles (self, budget, size, team, own appeal).

A denied command must say so and write nothing: no ledger change, appeal, unbind request,
binding change or outbox message.
"""
from __future__ import annotations

import re

import pytest

from tests.handlers.test_award import PeopleBot

ROLE_USERS = {"employee": "u_e1", "manager": "u_m1", "hr": "u_hr", "admin": "u_admin"}
DENIALS = ("没有权限", "不能", "只有", "只能", "最多", "额度不足")
Y, N = True, False

# command template → allowed for (employee, manager, hr, admin)
MATRIX = {
    "奖励 E3 10 谢谢": (N, Y, Y, Y),
    "扣除 E3 10 更正": (N, N, Y, Y),
    "额度": (N, Y, N, N),
    "待办": (N, Y, Y, Y),
    "申诉 - 积分没到": (Y, Y, Y, Y),
    "通过申诉 A{a_e1}": (N, Y, Y, Y),  # M1 is E1's manager
    "通过申诉 A{a_e1} 5 补发": (N, Y, Y, Y),
    "驳回申诉 A{a_e1} 无误": (N, Y, Y, Y),
    "解绑 E2": (N, N, Y, Y),
    "确认解绑 U{u}": (Y, N, N, N),  # E1's own request: only E1 confirms
    "绑定 E2 12345678": (Y, Y, Y, Y),  # open, and an already bound account is just told so
}
CASES = [(cmd, role, allowed) for cmd, flags in MATRIX.items() for role, allowed in zip(ROLE_USERS, flags)]

# (settings override, user, command, expected text): business rules beyond roles
RULES = [
    ({}, "u_m1", "奖励 M1 10 自己", "不能给自己"),
    ({}, "u_hr", "奖励 H1 10 自己", "不能给自己"),
    ({}, "u_admin", "扣除 A1 1 自己", "不能给自己"),
    ({"manager_monthly_budget": 100}, "u_m1", "奖励 E1 200 超额", "本月奖励额度不足: 剩余 100"),
    ({}, "u_m1", "奖励 E1 501 太多", "单次奖励最多 500"),
    ({"manager_award_scope": "team"}, "u_m1", "奖励 E3 10 别组", "只能奖励自己团队的成员"),
    ({}, "u_hr", "通过申诉 A{a_hr}", "不能处理这条申诉"),
    ({}, "u_hr", "驳回申诉 A{a_hr} 不符合规则", "不能处理这条申诉"),
    ({}, "u_m2", "通过申诉 A{a_e1}", "不能处理这条申诉"),
    ({}, "u_e1", "扣除 E3 10 想扣", "没有权限"),
    ({}, "u_e1", "奖励 E2 10 想给", "没有权限"),
    ({}, "u_m1", "确认解绑 U{u}", "只有被解绑的员工本人"),
]


def prepared(sqlite_db, clock, points: dict | None = None) -> tuple[PeopleBot, dict[str, int]]:
    """A company where E3 has points, E1 and H1 have open appeals and E1 has a pending unbind."""
    bot = PeopleBot(sqlite_db, clock, points).setup_company()
    bot.send("u_hr", "奖励 E3 100 起始")
    bot.send("u_hr", "奖励 E1 50 起始")
    bot.send("u_hr", "扣除 E1 10 迟到")
    refs = {"a_e1": int(re.search(r"A(\d+)", bot.send("u_e1", f"申诉 E{bot.last_txn().id} 出差")).group(1)),
            "a_hr": int(re.search(r"A(\d+)", bot.send("u_hr", "申诉 - 我的也没到")).group(1))}
    bot.send("u_e1", "解绑")
    refs["u"] = int(re.search(r"U(\d+)", bot.last_reply.card.title).group(1))
    clock.advance(seconds=120)  # out of the double-send window of the set-up awards
    return bot, refs


@pytest.mark.parametrize("command,role,allowed", CASES, ids=[f"{c}-{r}" for c, r, _ in CASES])
def test_matrix(sqlite_db, clock, command: str, role: str, allowed: bool) -> None:
    bot, refs = prepared(sqlite_db, clock)
    before = bot.counts()
    reply = bot.send(ROLE_USERS[role], command.format(**refs))
    denied = any(d in reply for d in DENIALS)
    assert denied != allowed, reply
    assert "用法" not in reply
    if not allowed:
        assert bot.counts() == before
    assert bot.invariants() == []


@pytest.mark.parametrize("points,user,command,expected", RULES, ids=[r[2] for r in RULES])
def test_rules(sqlite_db, clock, points: dict, user: str, command: str, expected: str) -> None:
    bot, refs = prepared(sqlite_db, clock, points)
    before = bot.counts()
    assert expected in bot.send(user, command.format(**refs))
    assert bot.counts() == before
    assert bot.invariants() == []


def test_team_scope_allows_own_reports(sqlite_db, clock) -> None:
    bot, _ = prepared(sqlite_db, clock, {"manager_award_scope": "team"})
    bot.send("u_m1", "奖励 E1 10 本组")
    assert bot.balance("E1") == 50
