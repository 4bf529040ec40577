"""后台/console in chat: a login link for managers, HR and admins, one-to-one only."""
from __future__ import annotations

import re

import pytest

from handlers import console_link
from settings import build_settings
from tests.handlers.test_award import POINTS, PeopleBot


@pytest.fixture
def cbot(sqlite_db, clock) -> PeopleBot:
    bot = PeopleBot(sqlite_db, clock).setup_company()
    bot.settings = build_settings({"points": POINTS, "server": {"public_url": "https://points.example.test/"},
                                   "console": {"enabled": True, "secret_key": "k" * 40}})
    console_link.register(bot.router)
    return bot


URL = re.compile(r"https://points\.example\.test/console/login/[\w-]{40,}")


def test_a_manager_gets_a_link_one_to_one(cbot: PeopleBot) -> None:
    reply = cbot.send("u_m1", "后台")
    assert URL.search(reply) and "10 分钟内有效" in reply
    assert URL.search(cbot.send("u_hr", "console"))


def test_in_a_group_the_link_goes_private(cbot: PeopleBot) -> None:
    reply = cbot.send("u_admin", "后台", group=True)
    assert reply == "后台登录链接不能在群里发送，已私信发送给你。" and not URL.search(reply)
    [card] = [c for c in cbot.notices_to("A1") if c["title"] == "积分后台登录链接"]
    assert URL.search(" ".join(card["lines"]))


def test_an_employee_is_refused_and_nothing_is_issued(cbot: PeopleBot) -> None:
    before = cbot.counts()
    assert "没有权限使用「后台」" in cbot.send("u_e1", "后台")
    assert cbot.counts() == before


def test_a_console_that_is_off_says_so(cbot: PeopleBot) -> None:
    cbot.settings = build_settings({"points": POINTS})
    assert cbot.send("u_hr", "后台") == "积分后台未启用，请联系管理员。"
