"""Read-only routes on SQLite: answered from a read scope (no write lock), recorded once, never run twice."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, select, update

from app import build_router
from bot.core.context import Context
from bot.core.events import Actor, TextCommand
from bot.core.pipeline import Answer, Pipeline
from bot.core.replies import CardReply, Text
from bot.core.router import Router
from settings import build_settings
from storage.ledger import Ledger
from storage.members import bind
from storage.models import Binding, Employee, ProcessedEvent
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


@pytest.fixture()
def dispatches(monkeypatch) -> list[str]:  # type: ignore[no-untyped-def]
    """The event ids the router ran, in order: a read that ran twice shows up twice."""
    seen: list[str] = []
    dispatch = ROUTER.dispatch
    monkeypatch.setattr(ROUTER, "dispatch", lambda event, ctx: seen.append(event.event_id) or dispatch(event, ctx))
    return seen


def test_queries_are_recorded_once_and_a_due_stamp_goes_with_the_answer(sqlite_db, clock, dispatches) -> None:
    with sqlite_db.session_scope() as s:
        emp = make_employee(s, "E1", name="张三")
        bind(s, emp, "wecom", "zs", now=clock(), actor_id=None, how="test")
        Ledger(s, clock).award(emp.id, 42, idem_key="a", reason="r")
    pipeline = Pipeline(sqlite_db, SETTINGS, ROUTER)
    first = pipeline.handle(_points("m1", clock()), _render)
    assert "42" in first.body
    again = pipeline.handle(_points("m1", clock()), _render)  # a redelivery: the stored answer
    assert again == first
    clock.advance(hours=2)  # the binding's last-used stamp is due: written with the answer, no second run
    later = pipeline.handle(_points("m2", clock()), _render)
    assert "42" in later.body
    assert dispatches == ["m1", "m2"]
    with sqlite_db.session_scope() as s:
        assert s.scalar(select(func.count(ProcessedEvent.id))) == 2
        assert s.scalar(select(Binding.last_used_at)) == clock()


def test_a_roster_users_first_query_binds_them_with_the_answer(sqlite_db, clock, dispatches) -> None:
    with sqlite_db.session_scope() as s:
        emp = make_employee(s, "E1", name="张三")
        emp.wecom_userid = "zs"
        s.flush()
        Ledger(s, clock).award(emp.id, 42, idem_key="a", reason="r")
    answer = Pipeline(sqlite_db, SETTINGS, ROUTER).handle(_points("m1", clock()), _render)
    assert "42" in answer.body and answer.outcome == "applied"
    assert dispatches == ["m1"]
    with sqlite_db.session_scope() as s:
        binding = s.scalar(select(Binding))
        assert (binding.platform_user_id, binding.status, binding.last_used_at) == ("zs", "active", clock())


def test_a_read_only_route_that_writes_fails_as_a_bug_and_is_not_run_again(sqlite_db, clock) -> None:
    router, runs = Router(), []

    @router.command("peek", reads_only=True, open=True)
    def peek(event, ctx):  # type: ignore[no-untyped-def]
        runs.append(event.event_id)
        ctx.session.execute(update(Employee).values(name="changed"))
        return Text("seen")

    with sqlite_db.session_scope() as s:
        make_employee(s, "E1", name="张三")
    answer = Pipeline(sqlite_db, SETTINGS, router).handle(
        TextCommand(platform="wecom", event_id="p1", actor=Actor("zs"), text="peek", received_at=clock()), _render)
    assert (answer.outcome, runs) == ("failed", ["p1"])
    with sqlite_db.session_scope() as s:
        assert s.scalar(select(Employee.name)) == "张三"
        assert s.scalar(select(func.count(ProcessedEvent.id))) == 0
