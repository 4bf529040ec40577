"""Arbitrary text on the command path: never an exception, never a points change, always a reply."""
from __future__ import annotations

from datetime import datetime

from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select

from bot.core.events import Actor, TextCommand
from bot.core.pipeline import Answer
from bot.core.replies import CardReply, NoReply, Text
from storage.models import Entry, Employee, Txn
from storage import members
from storage.ledger import Ledger
from cards.text import plain_text

NASTY = st.sampled_from(["'; DROP TABLE employees; --", "**[x](javascript:alert(1))**", "兑换 99999999999999999999",
                         "奖励 @x -5 坏", "申诉 E-1 x", "发放 R", "\x00\x01\x1b[31m", "😀" * 300, "ｂａｌａｎｃｅ",
                         "help " * 500, "确认解绑 U0", "绑定 E1 000000"])


def _setup(app) -> None:  # type: ignore[no-untyped-def]
    bot = app.extensions["pointsbot"]
    with bot.db.session_scope() as s:
        emp = Employee(employee_no="F1", name="模糊", department="研发部", role="employee", status="active",
                       created_at=datetime(2026, 1, 1))
        s.add(emp)
        s.flush()
        members.bind(s, emp, "wecom", "fuzzer", now=bot.db.clock(), actor_id=None, how="test")
        Ledger(s, bot.db.clock).award(emp.id, 50, idem_key="fuzz-seed", reason="seed")


def test_arbitrary_text_never_fails(app, engine_name) -> None:
    if engine_name != "sqlite":
        return  # the command path is engine-neutral; SQLite is enough for the fuzzing
    _setup(app)
    bot = app.extensions["pointsbot"]
    counter = iter(range(10**9))
    replies: list[object] = []

    def render(event, reply):  # type: ignore[no-untyped-def]
        replies.append(reply)
        return Answer(200, "x"), ()

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.text(max_size=3000), NASTY))
    def check(text: str) -> None:
        with bot.db.session_scope() as s:
            before = (s.scalar(select(func.count(Txn.id))), s.scalar(select(func.count(Entry.id))))
        event = TextCommand(platform="wecom", event_id=f"fz{next(counter)}", actor=Actor("fuzzer"), text=text,
                            received_at=bot.db.clock())
        answer = bot.pipeline.handle(event, render)
        assert answer.status == 200
        reply = replies[-1]
        assert isinstance(reply, (Text, CardReply)) and not isinstance(reply, NoReply)
        body = reply.text if isinstance(reply, Text) else plain_text(reply.card)
        assert body.strip() and "Traceback" not in body
        with bot.db.session_scope() as s:
            after = (s.scalar(select(func.count(Txn.id))), s.scalar(select(func.count(Entry.id))))
        assert after == before

    check()
