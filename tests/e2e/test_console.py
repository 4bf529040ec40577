"""The console reached from chat: 后台 through a signed callback on each platform gives a link that logs in once."""
from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from tests.console.conftest import csrf_of
from tests.e2e.conftest import BASE_CONFIG, load_roster
from tests.e2e.test_conversations import Chat

ROSTER = """employee_no,name,department,manager_no,role,dingtalk_userid,wecom_userid
M1,王经理,研发部,,manager,mgr,mgr
E1,张三,研发部,M1,employee,zhang,zhang
E2,孙八,市场部,,employee,sun,sun
"""


@pytest.fixture
def config() -> dict[str, Any]:
    conf = copy.deepcopy(BASE_CONFIG)
    conf["server"] = {**conf["server"], "public_url": "http://127.0.0.1:8000"}
    conf["console"] = {"enabled": True, "secret_key": "e2e-console-secret-key-0123456789abcdef"}
    return conf


@pytest.mark.parametrize("platform", ["wecom", "dingtalk"])
def test_a_link_from_chat_logs_a_manager_into_their_team(client, app, platform: str) -> None:
    load_roster(app.extensions["pointsbot"], ROSTER)
    chat = Chat(client, platform)
    assert "没有权限" in chat.say("zhang", "后台")
    reply = chat.say("mgr", "后台")
    path = re.search(r"http://127\.0\.0\.1:8000(/console/login/[\w-]+)", reply).group(1)
    browser = app.test_client()
    form = browser.get(path).get_data(as_text=True)
    assert browser.post(path, data={"csrf_token": csrf_of(form)}).status_code == 302
    people = browser.get("/console/people").get_data(as_text=True).split("<main>", 1)[1]
    assert "张三" in people and "孙八" not in people  # a manager sees their team
    again = app.test_client()
    form = again.get(path).get_data(as_text=True)
    assert again.post(path, data={"csrf_token": csrf_of(form)}).status_code == 403
