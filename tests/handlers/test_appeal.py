"""申诉/appeal, 通过申诉/approve, 驳回申诉/deny: reviewers told, one decision, the ledger kept whole."""
from __future__ import annotations

import re

import pytest

from storage.digests import manager_digests
from storage.ledger import Ledger
from storage.models import Appeal
from tests.handlers.test_award import PeopleBot, pbot  # noqa: F401  (fixture)


def ref(prefix: str, text: str) -> int:
    m = re.search(rf"{prefix}(\d+)", text)
    assert m, text
    return int(m.group(1))


def appeal_row(bot: PeopleBot, appeal_id: int) -> Appeal:
    with bot.db.session_scope() as s:
        return s.get(Appeal, appeal_id)


@pytest.fixture
def deducted(pbot: PeopleBot) -> tuple[PeopleBot, int]:  # noqa: F811
    """E1 got 50, then HR deducted 20: the deduction is E<n>."""
    pbot.send("u_hr", "奖励 E1 50 好")
    pbot.send("u_hr", "扣除 E1 20 迟到")
    return pbot, pbot.last_txn().id


@pytest.fixture
def manager_award(pbot: PeopleBot) -> tuple[PeopleBot, int]:  # noqa: F811
    """E1's manager M1 awarded 50 from the budget: the award is E<n>."""
    pbot.send("u_m1", "奖励 E1 50 好")
    return pbot, pbot.last_txn().id


def test_appeal_notifies_manager_and_hr_with_buttons(manager_award) -> None:
    bot, txn_id = manager_award
    reply = bot.send("u_e1", f"申诉 E{txn_id} 应该是100分")
    a = ref("A", reply)
    assert f"E{txn_id}" in reply and "3 位审核人" in reply
    reviews = {no: bot.notices_to(no) for no in ("M1", "H1", "A1", "M2", "E1")}
    assert [len(reviews[no]) for no in ("M1", "H1", "A1", "M2")] == [1, 1, 1, 0]
    assert all("申诉" not in c["title"] for c in reviews["E1"])
    card = reviews["M1"][0]
    assert [b["command"] for b in card["buttons"]] == [f"通过申诉 A{a}", f"驳回申诉 A{a} 已核实无误",
                                                       f"驳回申诉 A{a} 不符合申诉规则", f"驳回申诉 A{a} 信息不全"]
    assert f"通过申诉 A{a} <积分>" in card["footer"]  # approval of an award needs the points to add
    task_ids = {reviews[no][0]["task_id"] for no in ("M1", "H1", "A1")}
    assert len(task_ids) == 3 and all(t.startswith(f"A{a}-review") for t in task_ids)


def test_appeal_against_hr_change_is_not_sent_to_the_manager(deducted) -> None:
    bot, txn_id = deducted
    reply = bot.send("u_e1", f"申诉 E{txn_id} 当天我在出差")
    assert "2 位审核人" in reply
    assert [len(bot.notices_to(no)) for no in ("M1", "H1", "A1")] == [0, 1, 1]
    assert "退回" in bot.notices_to("H1")[0]["footer"]


def test_approve_deduction_appeal_gives_it_back(deducted) -> None:
    bot, txn_id = deducted
    a = ref("A", bot.send("u_e1", f"申诉 E{txn_id} 当天我在出差"))
    reply = bot.send("u_hr", f"通过申诉 A{a} 核实属实")
    assert f"A{a}" in reply and "退回 20 积分" in reply and bot.balance("E1") == 50
    row = appeal_row(bot, a)
    assert (row.status, row.note) == ("approved", "核实属实") and row.resolution_txn_id
    [decided] = [c for c in bot.notices_to("E1") if f"A{a}" in c["title"]]
    assert "通过" in decided["title"]
    before = bot.counts()
    again = bot.send("u_admin", f"approve A{a}")  # the other reviewer, or a double click
    assert "不能重复处理" in again and bot.counts() == before and bot.balance("E1") == 50
    assert bot.invariants() == []


@pytest.mark.parametrize("decide", ["通过申诉 A{a}", "通过申诉 A{a} 20 补偿", "驳回申诉 A{a} 不同意"])
def test_manager_cannot_overturn_hr(deducted, decide: str) -> None:
    bot, txn_id = deducted
    a = ref("A", bot.send("u_e1", f"申诉 E{txn_id} 当天我在出差"))
    before = bot.counts()
    reply = bot.send("u_m1", decide.format(a=a))
    assert "需由 HR 或管理员处理" in reply
    assert bot.counts() == before and appeal_row(bot, a).status == "open" and bot.balance("E1") == 30
    assert bot.balance("M1", "budget") == 1000
    with bot.db.session_scope() as s:
        from storage import appeals
        from storage.models import Employee
        assert appeals.open_for(s, s.get(Employee, bot.ids["M1"])) == []  # not on the manager's todo list
    assert manager_digests(bot.db, bot.clock(), bot.clock())[bot.ids["M1"]].open_appeals == 0  # nor in the digest


def test_approve_award_appeal_never_takes_points(manager_award) -> None:
    """"It should have been 100": approving must not reverse the 50 that did come."""
    bot, txn_id = manager_award
    a = ref("A", bot.send("u_e1", f"申诉 E{txn_id} 应该是100分"))
    before = bot.counts()
    reply = bot.send("u_hr", f"通过申诉 A{a}")
    assert f"通过申诉 A{a} <积分>" in reply and bot.counts() == before and bot.balance("E1") == 50
    assert appeal_row(bot, a).status == "open"
    bot.send("u_hr", f"通过申诉 A{a} 50 补足")
    assert bot.balance("E1") == 100 and appeal_row(bot, a).status == "approved"
    assert bot.invariants() == []


def test_approve_with_points_awards_a_correction(pbot: PeopleBot) -> None:  # noqa: F811
    a = ref("A", pbot.send("u_e1", "申诉 - 上月全勤积分没有发"))
    reply = pbot.send("u_hr", f"通过申诉 A{a} 100 补发全勤")
    txn = pbot.last_txn()
    assert (txn.kind, txn.amount, txn.idem_key) == ("award", 100, f"appeal:{a}:award")
    assert f"E{txn.id}" in reply and pbot.balance("E1") == 100
    assert pbot.balance("M1", "budget") == 1000  # from issuance, not the manager's budget
    assert pbot.invariants() == []


def test_manager_correction_comes_from_budget_within_max_award(manager_award) -> None:
    bot, txn_id = manager_award
    a = ref("A", bot.send("u_e1", f"申诉 E{txn_id} 应该是100分"))
    before = bot.counts()
    assert "单次奖励最多 500 积分" in bot.send("u_m1", f"通过申诉 A{a} 501 补")
    assert bot.counts() == before and appeal_row(bot, a).status == "open"
    reply = bot.send("u_m1", f"通过申诉 A{a} 50 补足")
    assert "剩余: 900" in reply and bot.balance("E1") == 100 and bot.balance("M1", "budget") == 900
    assert bot.last_txn().actor_id == bot.ids["M1"]
    assert bot.invariants() == []


def test_manager_correction_beyond_budget_is_refused(pbot: PeopleBot) -> None:  # noqa: F811
    pbot.send("u_m1", "奖励 E2 500 大项目")
    pbot.send("u_m1", "奖励 E1 480 大项目")
    a = ref("A", pbot.send("u_e1", "申诉 - 还有一笔没到"))
    before = pbot.counts()
    assert "额度不足" in pbot.send("u_m1", f"通过申诉 A{a} 100 补发")
    assert pbot.counts() == before and appeal_row(pbot, a).status == "open" and pbot.balance("E1") == 480
    assert pbot.balance("M1", "budget") == 20


def test_approve_dash_appeal_without_points_explains(pbot: PeopleBot) -> None:  # noqa: F811
    a = ref("A", pbot.send("u_e1", "申诉 -积分没到"))
    before = pbot.counts()
    reply = pbot.send("u_m1", f"通过申诉 A{a}")
    assert "需写明补发的积分" in reply and pbot.counts() == before
    assert appeal_row(pbot, a).status == "open"


def test_deny_then_nothing_more(deducted) -> None:
    bot, txn_id = deducted
    a = ref("A", bot.send("u_e1", f"appeal E{txn_id} wrong"))
    reply = bot.send("u_admin", f"驳回申诉 A{a} 已核实无误")
    assert "驳回" in reply and appeal_row(bot, a).status == "denied" and bot.balance("E1") == 30
    [decided] = [c for c in bot.notices_to("E1") if f"A{a}" in c["title"]]
    assert "驳回" in decided["title"] and ["驳回理由", "已核实无误"] in decided["fields"]
    before = bot.counts()
    assert "已驳回" in bot.send("u_hr", f"通过申诉 A{a}") and bot.counts() == before


def test_redemption_hold_is_not_appealable_by_approval(pbot: PeopleBot) -> None:  # noqa: F811
    pbot.send("u_hr", "奖励 E1 50 好")
    with pbot.db.session_scope() as s:
        hold = Ledger(s, pbot.clock).hold(pbot.ids["E1"], 40, idem_key="spend")
        hold_id = hold.id
    a = ref("A", pbot.send("u_e1", f"申诉 E{hold_id} 不是我兑换的"))
    before = pbot.counts()
    for text in (f"通过申诉 A{a}", f"通过申诉 A{a} 40"):
        assert "拒绝订单" in pbot.send("u_hr", text)
    assert pbot.counts() == before and pbot.balance("E1") == 10
    assert "驳回" in pbot.send("u_hr", f"驳回申诉 A{a}")


def test_long_reason_or_note_is_refused(deducted) -> None:
    bot, txn_id = deducted
    before = bot.counts()
    assert "最多 200 个字" in bot.send("u_e1", f"申诉 E{txn_id} " + "长" * 201) and bot.counts() == before
    a = ref("A", bot.send("u_e1", f"申诉 E{txn_id} 理由"))
    before = bot.counts()
    assert "最多 200 个字" in bot.send("u_hr", f"驳回申诉 A{a} " + "长" * 201) and bot.counts() == before


def test_only_own_changes_and_one_open_appeal_per_change(deducted) -> None:
    bot, txn_id = deducted
    before = bot.counts()
    assert "找不到这条积分记录" in bot.send("u_e2", f"申诉 E{txn_id} 我也要") and bot.counts() == before
    bot.send("u_e1", f"申诉 E{txn_id} 第一次")
    before = bot.counts()
    assert "已有待处理的申诉" in bot.send("u_e1", f"申诉 E{txn_id} 第二次") and bot.counts() == before


@pytest.mark.parametrize("user,text", [
    ("u_e1", "申诉"), ("u_e1", "申诉 E1"), ("u_e1", "申诉 X1 理由"), ("u_e1", "申诉 -"), ("u_e1", "申诉 12 理由"),
    ("u_hr", "通过申诉"), ("u_hr", "通过申诉 B1"), ("u_hr", "通过申诉 A1 0"), ("u_hr", "通过申诉 A1 -5 备注"),
    ("u_hr", "驳回申诉"), ("u_hr", "驳回申诉 1"),
])
def test_bad_input_gets_usage(pbot: PeopleBot, user: str, text: str) -> None:  # noqa: F811
    pbot.send("u_e1", "申诉 - 积分没到")  # so that A1 exists
    before = pbot.counts()
    assert "用法: " in pbot.send(user, text)
    assert pbot.counts() == before


def test_unknown_appeal(pbot: PeopleBot) -> None:  # noqa: F811
    assert "找不到这条申诉" in pbot.send("u_hr", "通过申诉 A999")


def test_conditional_update_stops_a_concurrent_second_decision(pbot: PeopleBot) -> None:  # noqa: F811
    """The pre-check passed on a stale row; the claim must still refuse and move no points."""
    from sqlalchemy import update

    from storage import appeals
    from storage.errors import InvalidState
    from storage.models import Employee

    a = ref("A", pbot.send("u_e1", "申诉 - 积分没到"))
    with pbot.db.session_scope() as s:
        appeal = s.get(Appeal, a)
        assert appeal.status == "open"
        s.execute(update(Appeal).where(Appeal.id == a).values(status="denied")
                  .execution_options(synchronize_session=False))  # another reviewer got there first
        with pytest.raises(InvalidState):
            appeals.decide(s, Ledger(s, pbot.clock), a, s.get(Employee, pbot.ids["H1"]), approve=True, points=10,
                           now=pbot.clock(), max_award=500)
    assert pbot.balance("E1") == 0
