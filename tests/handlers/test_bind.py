"""绑定/bind with one-time codes, 解绑/unbind requests and their confirmation, and the binding audit."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from storage import bindings, members
from storage.models import BindCode, Binding, Employee, UnbindRequest
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
