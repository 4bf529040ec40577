"""绑定/bind with one-time codes, 解绑/unbind requests and their confirmation, and the binding audit."""
from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from storage import bindings, members
from storage.models import AuditLog, BindCode, Binding, Employee, UnbindRequest
from tests.handlers.test_award import PeopleBot, pbot  # noqa: F401  (fixture)
from tests.storage.factories import make_employee
from cards.text import plain_text


def new_employee(bot: PeopleBot, no: str = "E9", **kw) -> str:
    """An unbound employee with a fresh code; returns the code."""
    with bot.db.session_scope() as s:
        emp = make_employee(s, no, name=kw.pop("name", "新人"), **kw)
        bot.ids[no] = emp.id
        return bindings.issue_code(s, emp, bot.clock())


def bound_ids(bot: PeopleBot, no: str) -> dict[str, str]:
    with bot.db.session_scope() as s:
        return members.bound_ids(s, bot.ids[no])


def test_code_is_stored_hashed_and_binds_once(pbot: PeopleBot) -> None:  # noqa: F811
    code = new_employee(pbot)
    assert re.fullmatch(r"\d{8}", code)
    with pbot.db.session_scope() as s:
        [row] = s.scalars(select(BindCode)).all()
        assert code not in row.code_hash and len(row.code_hash) <= 64
    reply = pbot.send("u_new", f"绑定 E9 {code}")
    assert "绑定成功" in reply and bound_ids(pbot, "E9") == {"wecom": "u_new"}
    assert "bind" in pbot.audit_actions()
    assert "无效" in pbot.send("u_other", f"bind E9 {code}")  # one use
    assert bound_ids(pbot, "E9") == {"wecom": "u_new"}


def test_five_wrong_tries_lock_the_code(pbot: PeopleBot) -> None:  # noqa: F811
    code = new_employee(pbot)
    wrong = f"{(int(code) + 1) % 10 ** 8:08d}"
    for _ in range(5):
        assert "无效" in pbot.send("u_new", f"绑定 E9 {wrong}")
    assert "锁定" in pbot.send("u_new", f"绑定 E9 {code}")
    with pbot.db.session_scope() as s:
        assert s.scalar(select(BindCode.failed_attempts)) == 5
        assert s.scalar(select(Binding).where(Binding.platform_user_id == "u_new")) is None


def test_new_code_ends_the_old_and_codes_expire(pbot: PeopleBot, clock) -> None:  # noqa: F811
    old = new_employee(pbot)
    with pbot.db.session_scope() as s:
        new = bindings.issue_code(s, s.get(Employee, pbot.ids["E9"]), clock())
    assert "无效" in pbot.send("u_new", f"绑定 E9 {old}")
    clock.advance(hours=24, seconds=1)
    assert "无效" in pbot.send("u_new", f"绑定 E9 {new}")
    assert bound_ids(pbot, "E9") == {}


def test_bound_account_keeps_its_code(pbot: PeopleBot) -> None:  # noqa: F811
    code = new_employee(pbot)
    assert "已绑定 张三" in pbot.send("u_e1", "绑定 E1 12345678")
    assert "已绑定其他员工" in pbot.send("u_e1", f"绑定 E9 {code}")
    assert "绑定成功" in pbot.send("u_new", f"绑定 E9 {code}")  # the code was not used up


@pytest.mark.parametrize("text", ["绑定", "绑定 E9", "绑定 E9 abc", "绑定 E9 12", "绑定 E9 123456 x"])
def test_bind_bad_input(pbot: PeopleBot, text: str) -> None:  # noqa: F811
    new_employee(pbot)
    assert "用法: 绑定" in pbot.send("u_new", text)


def test_self_unbind_needs_confirmation(pbot: PeopleBot) -> None:  # noqa: F811
    with pbot.db.session_scope() as s:
        members.bind(s, s.get(Employee, pbot.ids["E1"]), "dingtalk", "d_e1", now=pbot.clock(), actor_id=None,
                     how="test")
    pbot.send("u_e1", "解绑")
    card = pbot.last_reply.card
    u = int(re.search(r"U(\d+)", card.title).group(1))
    assert [b.command for b in card.buttons] == [f"确认解绑 U{u}"] and card.task_id == f"U{u}-confirm"
    assert "企业微信 u_e1" in plain_text(card) and "d_e1" not in plain_text(card)  # only this platform's account
    assert len(bound_ids(pbot, "E1")) == 2  # nothing removed yet
    assert "只有被解绑的员工本人" in pbot.send("u_hr", f"确认解绑 U{u}")
    assert "已解绑 1 个" in pbot.send("u_e1", f"confirm-unbind U{u}")
    assert bound_ids(pbot, "E1") == {"dingtalk": "d_e1"}
    assert "已处理" in pbot.send("d_e1", f"确认解绑 U{u}", platform="dingtalk")
    assert "绑定" in pbot.send("u_e1", "额度")  # the account is a stranger now
    assert "unbind" in pbot.audit_actions()


def test_hr_starts_unbind_the_employee_confirms(pbot: PeopleBot) -> None:  # noqa: F811
    reply = pbot.send("u_hr", "解绑 E1")
    u = int(re.search(r"U(\d+)", reply).group(1))
    [card] = [c for c in pbot.notices_to("E1") if f"U{u}" in c["title"]]
    assert card["buttons"][0]["command"] == f"确认解绑 U{u}" and "人事乙" in " ".join(card["lines"])
    assert "U%d" % u in pbot.send("u_hr", "解绑 E1")  # a second request reuses the pending one
    with pbot.db.session_scope() as s:
        assert len(s.scalars(select(UnbindRequest)).all()) == 1
    assert "已解绑" in pbot.send("u_e1", f"确认解绑 U{u}")
    assert bound_ids(pbot, "E1") == {}
    assert any(f"U{u}" in c["title"] and "完成" in c["title"] for c in pbot.notices_to("H1"))
    assert "只有被解绑的员工本人" in pbot.send("u_hr", f"确认解绑 U{u}")


def test_leaver_unbind_completes_at_once(pbot: PeopleBot) -> None:  # noqa: F811
    with pbot.db.session_scope() as s:
        emp = make_employee(s, "L1", name="离职者", status="left")
        pbot.ids["L1"] = emp.id
        members.bind(s, emp, "dingtalk", "d_l1", now=pbot.clock(), actor_id=None, how="test")
    assert "已直接解除绑定" in pbot.send("u_hr", "解绑 L1")
    assert bound_ids(pbot, "L1") == {}


def test_employee_cannot_unbind_someone_else(pbot: PeopleBot) -> None:  # noqa: F811
    before = pbot.counts()
    assert "只有 HR 或管理员" in pbot.send("u_e1", "解绑 E2")
    assert pbot.counts() == before


@pytest.mark.parametrize("text", ["确认解绑", "确认解绑 A1", "确认解绑 U999", "确认解绑 U1 U2"])
def test_confirm_unbind_bad_input(pbot: PeopleBot, text: str) -> None:  # noqa: F811
    assert "用法: 确认解绑" in pbot.send("u_e1", text)


def test_binding_audit(pbot: PeopleBot, clock) -> None:  # noqa: F811
    with pbot.db.session_scope() as s:
        left = make_employee(s, "L1", name="离职者", status="left")
        members.bind(s, left, "dingtalk", "d_l1", now=clock(), actor_id=None, how="test")
        make_employee(s, "E5", name="名册冲突", wecom="u_e1")  # the roster says u_e1 is E5
    clock.advance(days=100)
    pbot.send("u_e2", "申诉 - 使用一下账号")  # E2's binding is used again
    with pbot.db.session_scope() as s:
        report = bindings.binding_audit(s, clock(), 90)
    assert list(report) == ["leavers", "shared", "unused"]
    assert report["leavers"] == [bindings.AuditRow("L1", "离职者", "dingtalk", "d_l1")]
    assert report["shared"] == [bindings.AuditRow("E1", "张三", "wecom", "u_e1", roster_no="E5")]
    unused = {r.employee_no: r for r in report["unused"]}
    assert unused["E1"].platform_user_id == "u_e1" and unused["E1"].last_used is not None
    assert "E2" not in unused and "L1" not in unused


def test_the_audit_cli_words_each_section(pbot: PeopleBot, clock) -> None:  # noqa: F811
    from app import create_app

    with pbot.db.session_scope() as s:
        left = make_employee(s, "L1", name="离职者", status="left")
        members.bind(s, left, "dingtalk", "d_l1", now=clock(), actor_id=None, how="test")
    app = create_app({"database": {"url": pbot.db.url}}, db=pbot.db)
    result = app.test_cli_runner().invoke(args=["audit-bindings", "--days", "30"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "离职员工仍有的绑定 (leavers): 1" and lines[1] == "  L1 离职者 dingtalk:d_l1"
    assert "超过 30 天未使用的绑定 (unused): 0" in lines


# ---- Bindings: unbinds stick, one platform or forced, bind codes from chat ----------------------
def roster_employee(bot: PeopleBot, no: str = "R1", wecom: str = "u_r1", dingtalk: str = "d_r1") -> int:
    """An employee whose roster row carries chat ids (so the first message would bind them)."""
    with bot.db.session_scope() as s:
        emp = make_employee(s, no, name="赵六", wecom=wecom, dingtalk=dingtalk)
        bot.ids[no] = emp.id
        return emp.id


def test_an_unbind_sticks_through_the_next_message(pbot: PeopleBot) -> None:  # noqa: F811
    roster_employee(pbot)
    assert "绑定" not in pbot.send("u_r1", "解绑")[:4]  # the first message binds from the roster
    u = re.search(r"U(\d+)", plain_text(pbot.last_reply.card)).group(0)
    assert "已解绑 1 个" in pbot.send("u_r1", f"确认解绑 {u}")
    assert "还没有绑定" in pbot.send("u_r1", "解绑")  # before: re-bound from the roster three seconds later
    assert bound_ids(pbot, "R1") == {}
    with pbot.db.session_scope() as s:
        mine = list(s.scalars(select(AuditLog.action).where(AuditLog.target_id == pbot.ids["R1"]).order_by(AuditLog.id)))
    assert mine == ["bind", "unbind_request", "unbind"]


def test_hr_unbinds_one_platform_with_the_employees_confirmation(pbot: PeopleBot) -> None:  # noqa: F811
    roster_employee(pbot)
    pbot.send("u_r1", "帮助")
    pbot.send("d_r1", "帮助", platform="dingtalk")
    assert bound_ids(pbot, "R1") == {"wecom": "u_r1", "dingtalk": "d_r1"}
    reply = pbot.send("u_hr", "解绑 R1 钉钉")
    u = re.search(r"U(\d+)", reply).group(0)
    [card] = [c for c in pbot.notices_to("R1") if u in c["title"]]
    assert "钉钉 d_r1" in " ".join(card["lines"]) and "u_r1" not in " ".join(card["lines"])
    assert "已解绑 1 个" in pbot.send("u_r1", f"确认解绑 {u}")
    assert bound_ids(pbot, "R1") == {"wecom": "u_r1"}


def test_force_unbind_needs_hr_and_a_reason_and_tells_the_remaining_account(pbot: PeopleBot) -> None:  # noqa: F811
    roster_employee(pbot)
    pbot.send("u_r1", "帮助")
    pbot.send("d_r1", "帮助", platform="dingtalk")
    before = pbot.counts()
    assert "没有权限" in pbot.send("u_m1", "强制解绑 R1 钉钉 离职")
    assert "写明强制解绑的原因" in pbot.send("u_hr", "强制解绑 R1 钉钉")
    assert pbot.counts() == before
    reply = pbot.send("u_hr", "强制解绑 R1 钉钉 手机丢失")
    assert "已强制解绑 赵六（R1）的 1 个聊天账号: 钉钉 d_r1" in reply and "手机丢失" in reply
    assert bound_ids(pbot, "R1") == {"wecom": "u_r1"}
    [notice] = [c for c in pbot.notices_to("R1") if c["title"] == "聊天账号已被解绑"]
    assert "人事乙" in " ".join(notice["lines"]) and "手机丢失" in " ".join(notice["lines"])
    assert "force_unbind" in pbot.audit_actions()
    assert "还没有绑定" in pbot.send("d_r1", "额度", platform="dingtalk")  # it sticks
    pbot.send("u_hr", "force-unbind R1 离职")  # all platforms: nobody left to tell
    assert bound_ids(pbot, "R1") == {}
    assert len([c for c in pbot.notices_to("R1") if c["title"] == "聊天账号已被解绑"]) == 1


def test_bind_code_from_chat_binds_and_goes_private_in_a_group(pbot: PeopleBot) -> None:  # noqa: F811
    new_employee(pbot)
    assert "没有权限" in pbot.send("u_e1", "绑定码 E9")
    reply = pbot.send("u_hr", "绑定码 E9", group=True)
    assert reply == "绑定码不能在群里发送，已私信发送给你。" and not re.search(r"\d{6,8}", reply)
    [card] = [c for c in pbot.notices_to("H1") if c["title"] == "绑定码"]
    group_code = re.search(r"绑定码: (\d{8})", " ".join(card["lines"])).group(1)
    code = re.search(r"绑定码: (\d{8})", pbot.send("u_hr", "bind-code E9")).group(1)  # one-to-one: in the reply
    assert "绑定码无效" in pbot.send("u_new", f"绑定 E9 {group_code}")  # a newer code replaces it
    assert "绑定成功" in pbot.send("u_new", f"绑定 E9 {code}")
    with pbot.db.session_scope() as s:
        assert code not in json.dumps([a.detail for a in s.scalars(select(AuditLog))])


def test_bind_accepts_the_employee_number_with_or_without_its_prefix(pbot: PeopleBot) -> None:  # noqa: F811
    with pbot.db.session_scope() as s:
        emp = make_employee(s, "1030", name="钱七")
        code = bindings.issue_code(s, emp, pbot.clock())
    assert "绑定成功！你好，钱七（1030）" in pbot.send("u_q", f"绑定 E1030 {code}")


# ---- 查询 / lookup -------------------------------------------------------------------------------
def test_lookup_by_role_and_a_skip_level_managers_team(pbot: PeopleBot) -> None:  # noqa: F811
    with pbot.db.session_scope() as s:  # M2 reports to M1, so E3 is in M1's team two levels down
        s.get(Employee, pbot.ids["M2"]).manager_id = pbot.ids["M1"]
    pbot.send("u_hr", "奖励 E3 30 帮忙")
    shown = pbot.send("u_hr", "查询 E3")
    assert "王五（E3）的积分: 30" in shown and "帮忙" in shown and "企业微信" in shown
    assert "王五（E3）的积分: 30" in pbot.send("u_m1", "查询 E3")
    assert "只能查询自己团队成员" in pbot.send("u_m2", "查询 E1")
    assert "没有权限" in pbot.send("u_e1", "查询 E2")
    assert "用法: 查询" in pbot.send("u_hr", "查询")
    assert pbot.send("u_hr", "积分 E3") == "查看同事的积分请发送: 查询 E3"  # before: HR's own balance, silently


def test_team_scope_and_appeals_reach_a_skip_level_manager(pbot: PeopleBot) -> None:  # noqa: F811
    pbot.settings.points["manager_award_scope"] = "team"
    with pbot.db.session_scope() as s:
        s.get(Employee, pbot.ids["M2"]).manager_id = pbot.ids["M1"]
    assert "已奖励 王五" in pbot.send("u_m1", "奖励 E3 10 跨级")
    assert "只能奖励自己团队的成员" in pbot.send("u_m2", "奖励 E1 10 别组")
    reply = pbot.send("u_e3", "申诉 - 少了积分")
    a = re.search(r"A\d+", reply).group(0)
    assert f"申诉 {a} 已通过: 补发 5 积分" in pbot.send("u_m1", f"通过申诉 {a} 5")  # before: direct manager only
    assert pbot.balance("E3") == 15
