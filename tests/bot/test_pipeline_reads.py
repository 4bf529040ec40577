"""Read-only routes on SQLite: answered from a read scope (no write lock), recorded once, falling back when they write."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, select

from app import build_router
from bot.core.context import Context
from bot.core.events import Actor, TextCommand
from bot.core.pipeline import Answer, Pipeline
from bot.core.replies import CardReply, Text
from settings import build_settings
from storage.ledger import Ledger
from storage.members import bind
from storage.models import Binding, ProcessedEvent
from tests.storage.factories import make_employee
from cards.text import plain_text

ROUTER = build_router()
READ_ONLY = [r for r in ROUTER.routes if r.reads_only]
SETTINGS = build_settings({"catalog": [{"sku": "c", "name": "课程", "cost": 10}]})


def test_the_read_only_routes_are_the_query_commands() -> None:
    assert {r.name for r in READ_ONLY} == {"points", "history", "rules", "shop", "rank", "help", "lookup"}


@pytest.mark.parametrize("route", READ_ONLY, ids=lambda r: r.name)
@pytest.mark.parametrize("role", ("employee", "manager", "hr", "admin"))
def test_a_read_only_route_writes_nothing(sqlite_db, clock, route, role) -> None:
    """Run inside a query_only transaction: any write by the handler raises here."""
    with sqlite_db.session_scope() as s:
        actor = make_employee(s, "U0", role=role)
        bind(s, actor, "wecom", "actor", now=clock(), actor_id=None, how="test")
        Ledger(s, clock).award(actor.id, 30, idem_key="a", reason="r")
    with sqlite_db.read_scope() as s:
        ctx = Context(session=s, settings=SETTINGS, clock=clock, platform="wecom")
        event = TextCommand(platform="wecom", event_id=f"{route.name}-{role}", actor=Actor("actor"),
                            text=route.aliases[0], received_at=clock())
        reply = ROUTER.dispatch(event, ctx)
    assert isinstance(reply, (Text, CardReply))


def _render(event, reply):  # type: ignore[no-untyped-def]
    body = reply.text if isinstance(reply, Text) else plain_text(reply.card)
    return Answer(200, body), ()


def _points(event_id: str, at: datetime) -> TextCommand:
    return TextCommand(platform="wecom", event_id=event_id, actor=Actor("zs"), text="积分", received_at=at)


def test_queries_are_recorded_once_and_a_due_stamp_takes_the_write_path(sqlite_db, clock) -> None:
    with sqlite_db.session_scope() as s:
        emp = make_employee(s, "E1", name="张三")
        bind(s, emp, "wecom", "zs", now=clock(), actor_id=None, how="test")
        Ledger(s, clock).award(emp.id, 42, idem_key="a", reason="r")
    pipeline = Pipeline(sqlite_db, SETTINGS, ROUTER)
    first = pipeline.handle(_points("m1", clock()), _render)
    assert "42" in first.body
    again = pipeline.handle(_points("m1", clock()), _render)  # a redelivery: the stored answer
    assert again == first
    clock.advance(hours=2)  # the binding's last-used stamp is due: a write, so not in the read scope
    later = pipeline.handle(_points("m2", clock()), _render)
    assert "42" in later.body
    with sqlite_db.session_scope() as s:
        assert s.scalar(select(func.count(ProcessedEvent.id))) == 2
        assert s.scalar(select(Binding.last_used_at)) == clock()
