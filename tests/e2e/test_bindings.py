"""Bindings through the real endpoints (signed, encrypted callbacks) on both platforms.

An unbind sticks through the next message and a roster re-import; a roster employee who never wrote to
the bot is told about an award (delivered to the platform's API, faked in-process); HR unbinds one
platform or forces an unbind; a bind code asked for in a group goes private; 查询 by role; a skip-level
manager's team.
"""
from __future__ import annotations

import json
import re
import time
from typing import Iterator

import pytest
import responses
from sqlalchemy import select

from storage.employees import import_roster, read_roster
from storage.ledger import Ledger
from storage.models import AuditLog, Binding, Employee
from tests.bot.fake_platforms import FakePlatforms
from tests.e2e import signing
from tests.e2e.conftest import DINGTALK, load_roster
from tests.e2e.test_conversations import Chat

# Each person has the same id on both platforms, so one test body runs on either.
ROSTER = """employee_no,name,department,manager_no,role,dingtalk_userid,wecom_userid
B1,周总,研发部,,manager,boss,boss
M1,王经理,研发部,B1,manager,mgr,mgr
E1,张三,研发部,M1,employee,zhang,zhang
E2,李四,研发部,M1,employee,li,li
E3,孙八,市场部,,employee,sun,sun
H1,韩梅,人力资源部,,hr,hr1,hr1
"""
PLATFORMS = ["wecom", "dingtalk"]


@pytest.fixture
def fake() -> Iterator[FakePlatforms]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        f = FakePlatforms()
        f.install(rsps)
        yield f


@pytest.fixture
def bot(app):  # type: ignore[no-untyped-def]
    bot = app.extensions["pointsbot"]
    load_roster(bot, ROSTER)
    return bot


def bound(bot, no: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with bot.db.session_scope() as s:
        emp = s.scalar(select(Employee).where(Employee.employee_no == no))
        return {b.platform: b.platform_user_id
                for b in s.scalars(select(Binding).where(Binding.employee_id == emp.id, Binding.status == "active"))}


def reimport(bot):  # type: ignore[no-untyped-def]
    with bot.db.session_scope() as s:
        rows, _ = read_roster(ROSTER)
        return import_roster(s, rows, Ledger(s, bot.db.clock), now=bot.db.clock(), budget=1000, rollover=False)


def shown(bot, platform: str, reply: str) -> str:  # type: ignore[no-untyped-def]
    """What the user saw: the reply, or on WeCom the card that went out through the outbox after it."""
    from urllib.parse import unquote

    from tests.e2e.test_conversations import _latest_card_text

    return unquote(_latest_card_text(bot, platform, reply))


@pytest.mark.parametrize("platform", PLATFORMS)
def test_an_unbind_sticks_through_the_next_message_and_a_roster_reimport(client, bot, platform: str) -> None:
    chat = Chat(client, platform)
    assert bound(bot, "E1") == {"dingtalk": "zhang", "wecom": "zhang"}  # the import bound both at once
    ref = re.search(r"U\d+", shown(bot, platform, chat.say("zhang", "解绑"))).group(0)
    assert "已解绑 1 个" in chat.say("zhang", f"确认解绑 {ref}")
    assert "还没有绑定" in shown(bot, platform, chat.say("zhang", "积分"))
    report = reimport(bot)
    assert report.kept_unbound == [f"E1 {platform}:zhang"] and report.bound == []
    assert "还没有绑定" in shown(bot, platform, chat.say("zhang", "积分"))
    assert platform not in bound(bot, "E1")
    code = re.search(r"绑定码: (\d{8})", chat.say("hr1", "绑定码 E1")).group(1)
    assert "绑定成功" in chat.say("zhang", f"绑定 e1 {code}")  # the owner re-links it with a new code
    assert bound(bot, "E1")[platform] == "zhang"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_roster_employee_who_never_wrote_gets_the_award_notice(client, bot, fake, platform: str) -> None:
    assert "已奖励 李四" in Chat(client, platform).say("mgr", "奖励 E2 20 季度之星")
    bot.deliver(worker_id="w1")
    to_li = [d for d in fake.delivered if "li" in d.to.split("|")]
    assert {d.platform for d in to_li} == {"wecom", "dingtalk"}  # both accounts, though li never wrote
    assert all("20" in d.text and "季度之星" in d.text for d in to_li)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_hr_unbinds_one_platform_and_forces_the_other(client, bot, fake, platform: str) -> None:
    chat = Chat(client, platform)
    other = "dingtalk" if platform == "wecom" else "wecom"
    word = {"wecom": "企业微信", "dingtalk": "钉钉"}
    ref = re.search(r"U\d+", chat.say("hr1", f"解绑 E1 {word[other]}")).group(0)
    bot.deliver(worker_id="w1")
    confirm = [d for d in fake.delivered if d.platform == other and d.to == "zhang" and ref in d.text]
    assert confirm, "the confirmation card reaches the account being unbound"
    assert "已解绑 1 个" in chat.say("zhang", f"确认解绑 {ref}")  # confirmed from the account that stays
    assert bound(bot, "E1") == {platform: "zhang"}
    assert "没有权限" in chat.say("mgr", "强制解绑 E2 离职")
    reply = chat.say("hr1", f"强制解绑 E2 {word[other]} 账号已停用")
    assert f"已强制解绑 李四（E2）的 1 个聊天账号: {word[other]} li" in reply
    bot.deliver(worker_id="w1")
    told = [d for d in fake.delivered if d.platform == platform and d.to == "li" and "账号已停用" in d.text]
    assert told, "the employee is told on the platform still bound"
    assert bound(bot, "E2") == {platform: "li"}
    with bot.db.session_scope() as s:
        assert s.scalar(select(AuditLog.detail).where(AuditLog.action == "force_unbind")).endswith("账号已停用")


def test_a_bind_code_asked_for_in_a_dingtalk_group_goes_private(client, bot, fake) -> None:
    n = int(time.time() * 1000)
    resp = client.post("/callback/dingtalk/robot", data=signing.robot_body("hr1", "绑定码 E3", "g1", group=True),
                       headers=signing.robot_headers(DINGTALK["app_secret"], n))
    text = json.loads(resp.data)["text"]["content"]
    assert text == "绑定码不能在群里发送，已私信发送给你。"
    bot.deliver(worker_id="w1")
    private = [d for d in fake.delivered if d.to == "hr1"]
    assert {d.platform for d in private} == {"wecom", "dingtalk"} and all("绑定码" in d.text for d in private)
    assert not [d for d in fake.delivered if d.to not in ("hr1",)]  # nothing to the group
    code = re.search(r"(\d{8})", private[0].text).group(1)
    assert "绑定成功" in Chat(client, "wecom").say("sun-new", f"绑定 E3 {code}")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_lookup_by_role_and_a_skip_level_team(client, bot, platform: str) -> None:
    chat = Chat(client, platform)
    chat.say("hr1", "奖励 E1 40 值班")
    assert "张三（E1）的积分: 40" in shown(bot, platform, chat.say("hr1", "查询 E1"))
    assert "张三（E1）的积分: 40" in shown(bot, platform, chat.say("boss", "查询 E1"))  # two levels down
    assert "只能查询自己团队成员" in chat.say("mgr", "查询 E3")
    assert "没有权限" in chat.say("zhang", "查询 E2")
    assert chat.say("hr1", "积分 E1") == "查看同事的积分请发送: 查询 E1"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_skip_level_manager_awards_in_team_scope(client, bot, platform: str, config) -> None:
    bot.settings.points["manager_award_scope"] = "team"
    chat = Chat(client, platform)
    assert "已奖励 张三" in chat.say("boss", "奖励 E1 10 跨级认可")
    assert "只能奖励自己团队的成员" in chat.say("mgr", "奖励 E3 10 别组")
