"""Every command a reply or a card tells people to send exists, and runs (Cards, item 4).

The texts are read from the source: every string in cards/ and handlers/ (and the core's), each 「…」 quote
and each "发送: …" instruction; the command word in it must be a route, and sending it as HR must not
get "unknown command".
"""
from __future__ import annotations

import ast
import re
from datetime import datetime
from pathlib import Path

import pytest

from app import build_router
from bot.core.context import Context
from bot.core.events import Actor, TextCommand
from bot.core.replies import CardReply, Text
from cards import messages as msg
from cards.text import plain_text
from settings import build_settings
from storage.members import bind
from tests.storage.factories import make_employee

ROOT = Path(__file__).resolve().parents[2]
ROUTER = build_router()
QUOTED = re.compile(r"「([^」{}]+)」")
INSTRUCTED = re.compile(r"(?:发送|可发送|也可发送)[:：]\s*([^\s，。；;,（(]+)")
NOT_COMMANDS = {"已核实无误"}  # quoted examples of a reason, not commands


def mentioned() -> set[str]:
    found: set[str] = set()
    paths = [*ROOT.glob("cards/*.py"), *ROOT.glob("handlers/*.py"), *ROOT.glob("bot/core/*.py")]
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for m in (*QUOTED.finditer(node.value), *INSTRUCTED.finditer(node.value)):
                    word = m.group(1).split()[0].strip("「」")
                    if re.search(r"[\u4e00-\u9fff]", word) and word not in NOT_COMMANDS:
                        found.add(word)
    return found


def test_the_scan_finds_the_commands_people_are_told_about() -> None:
    assert {"商城", "明细", "恢复员工", "绑定", "申诉", "帮助", "后台"} <= mentioned()


@pytest.mark.parametrize("word", sorted(mentioned()))
def test_a_mentioned_command_exists_and_runs(sqlite_db, clock, word: str) -> None:
    assert ROUTER.match(word) is not None, f"「{word}」 is mentioned in a reply but is no command"
    settings = build_settings({"console": {"enabled": True, "secret_key": "k" * 40}})
    with sqlite_db.session_scope() as s:
        hr = make_employee(s, "H1", role="hr")
        bind(s, hr, "wecom", "hr", now=clock(), actor_id=None, how="test")
    with sqlite_db.session_scope() as s:
        ctx = Context(session=s, settings=settings, clock=clock, platform="wecom")
        reply = ROUTER.dispatch(TextCommand(platform="wecom", event_id=f"m-{word}", actor=Actor("hr"), text=word,
                                            received_at=datetime(2026, 3, 10)), ctx)
    body = reply.text if isinstance(reply, Text) else plain_text(reply.card) if isinstance(reply, CardReply) else ""
    assert body and body != msg.UNKNOWN_COMMAND and "没有权限使用" not in body
