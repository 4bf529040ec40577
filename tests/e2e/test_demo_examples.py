"""Every command's example (shown by 帮助) works in the demo company, typed by someone allowed to use it."""
from __future__ import annotations

import pytest

from playground.demo import FEATURED, load_demo
from tests.e2e.test_conversations import Chat, _latest_card_text


def _routes():  # type: ignore[no-untyped-def]
    from app import build_router

    return [r for r in build_router().routes if r.example]


@pytest.fixture
def demo(app):  # type: ignore[no-untyped-def]
    bot = app.extensions["pointsbot"]
    load_demo(bot.db, bot.settings)
    return bot


def test_each_example_is_understood_in_the_demo(client, demo) -> None:
    failures = []
    for route in _routes():
        role = "employee" if route.roles is None else next(r for r in ("employee", "manager", "hr", "admin")
                                                           if r in route.roles)
        shown = _latest_card_text(demo, "dingtalk", Chat(client, "dingtalk").say(FEATURED[role], route.example))
        misread = "用法:" in shown and "找不到这条" not in shown  # a reference missing in the demo is fine
        if not shown.strip() or misread or "找不到这位员工" in shown or "系统暂时出了点问题" in shown:
            failures.append(f"{route.example!r} → {shown[:120]!r}")
    assert failures == []
