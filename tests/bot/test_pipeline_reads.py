"""Read-only routes: answered from one read transaction, recorded nowhere; writing routes: recorded and acting once."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from app import build_router
from bot.core.context import Context
from bot.core.events import Actor, TextCommand
from bot.core.pipeline import Answer, Pipeline
from bot.core.replies import CardReply, Text
from bot.core.router import Router
from bot.core.stamps import UseStamps
from settings import build_settings
from storage.ledger import Ledger
from storage.members import Member, bind, resolve_member
from storage.models import Base, Binding, Employee, ProcessedEvent, Txn
from tests.storage.factories import make_employee
from cards.text import plain_text

ROUTER = build_router()
READ_ONLY = [r for r in ROUTER.routes if r.reads_only]
SETTINGS = build_settings({"catalog": [{"sku": "c", "name": "课程", "cost": 10}]})


def test_the_read_only_routes_are_the_query_commands() -> None:
    assert {r.name for r in READ_ONLY} == {"points", "history", "rules", "shop", "rank", "help", "lookup", "todo",
                                           "budget"}


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


def _rows(db) -> dict[str, list[tuple]]:  # type: ignore[no-untyped-def]
    """Every row of every table: what a callback wrote durably, if anything."""
    with db.read_scope() as s:
        return {t.name: sorted(map(tuple, s.execute(select(t)).all()), key=repr) for t in Base.metadata.sorted_tables}


def test_a_redelivered_query_is_answered_from_fresh_data_and_writes_nothing(engine_db, clock, dispatches) -> None:
    with engine_db.session_scope() as s:
        emp = make_employee(s, "E1", name="张三")
        bind(s, emp, "wecom", "zs", now=clock(), actor_id=None, how="test")
        Ledger(s, clock).award(emp.id, 42, idem_key="a", reason="r")
    pipeline = Pipeline(engine_db, SETTINGS, ROUTER)
    before = _rows(engine_db)
    first = pipeline.handle(_points("m1", clock()), _render)
    assert "42" in first.body and first.outcome == "answered"
    assert _rows(engine_db) == before
    with engine_db.session_scope() as s:  # the balance moves before the platform delivers m1 again
        Ledger(s, clock).award(emp.id, 8, idem_key="b", reason="r")
    moved = _rows(engine_db)
    again = pipeline.handle(_points("m1", clock()), _render)
    assert "50" in again.body and again.outcome == "answered"
    assert dispatches == ["m1", "m1"]
    assert _rows(engine_db) == moved and pipeline.stamps.pending() == 0


def test_a_due_last_use_stamp_is_written_later_in_a_batch(engine_db, clock) -> None:
    with engine_db.session_scope() as s:
        for no, user in (("E1", "zs"), ("E2", "ls")):
            bind(s, make_employee(s, no), "wecom", user, now=clock(), actor_id=None, how="test")
    pipeline, bound_at = Pipeline(engine_db, SETTINGS, ROUTER), clock()
    clock.advance(hours=2)  # the stamps are due
    for i, user in enumerate(("zs", "ls", "zs")):
        clock.advance(seconds=1)
        event = TextCommand(platform="wecom", event_id=f"m{i}", actor=Actor(user), text="积分", received_at=clock())
        assert pipeline.handle(event, _render).outcome == "answered"
    with engine_db.read_scope() as s:
        assert set(s.scalars(select(Binding.last_used_at))) == {bound_at}  # nothing on the request path
    assert pipeline.stamps.pending() == 2
    assert pipeline.stamps.flush() == 2
    with engine_db.read_scope() as s:
        stamped = dict(s.execute(select(Binding.platform_user_id, Binding.last_used_at)).all())
    assert stamped == {"zs": clock(), "ls": clock() - timedelta(seconds=1)}
    assert pipeline.stamps.flush() == 0


def test_stamps_that_could_not_be_written_wait_for_the_next_turn(sqlite_db, clock, monkeypatch) -> None:
    with sqlite_db.session_scope() as s:
        binding = bind(s, make_employee(s, "E1"), "wecom", "zs", now=clock(), actor_id=None, how="test")
    stamps = UseStamps(sqlite_db, every=3600)
    stamps.add(binding.id, clock() + timedelta(hours=2))
    monkeypatch.setattr("storage.members.stamp_uses", lambda s, batch: (_ for _ in ()).throw(OperationalError("x", {}, Exception())))
    assert stamps.flush() == 0 and stamps.pending() == 1
    monkeypatch.undo()
    assert stamps.flush() == 1
    with sqlite_db.read_scope() as s:
        assert s.scalar(select(Binding.last_used_at)) == clock() + timedelta(hours=2)


def test_a_redelivered_writing_command_is_answered_from_the_store_and_acts_once(engine_db, clock, dispatches) -> None:
    with engine_db.session_scope() as s:
        hr = make_employee(s, "H1", role="hr", name="韩梅")
        bind(s, hr, "wecom", "hm", now=clock(), actor_id=None, how="test")
        make_employee(s, "E1", name="张三")
    pipeline = Pipeline(engine_db, SETTINGS, ROUTER)
    award = TextCommand(platform="wecom", event_id="w1", actor=Actor("hm"), text="奖励 E1 5 帮同事", received_at=clock())
    first = pipeline.handle(award, _render)
    after = _rows(engine_db)
    again = pipeline.handle(award, _render)
    assert (again.body, again.outcome, first.outcome) == (first.body, "redelivery", "applied")
    assert dispatches == ["w1"] and _rows(engine_db) == after
    with engine_db.read_scope() as s:
        assert s.scalar(select(func.count(ProcessedEvent.id))) == 1
        assert s.scalar(select(func.count(Txn.id)).where(Txn.kind == "award")) == 1


def test_a_roster_users_first_query_binds_them_with_the_answer(sqlite_db, clock, dispatches) -> None:
    with sqlite_db.session_scope() as s:
        emp = make_employee(s, "E1", name="张三")
        emp.wecom_userid = "zs"
        s.flush()
        Ledger(s, clock).award(emp.id, 42, idem_key="a", reason="r")
    answer = Pipeline(sqlite_db, SETTINGS, ROUTER).handle(_points("m1", clock()), _render)
    assert "42" in answer.body and answer.outcome == "answered"
    assert dispatches == ["m1"]
    with sqlite_db.session_scope() as s:
        binding = s.scalar(select(Binding))
        assert (binding.platform_user_id, binding.status, binding.last_used_at) == ("zs", "active", clock())


def test_a_read_only_route_that_writes_fails_as_a_bug_and_is_not_run_again(engine_db, clock) -> None:
    """SQLite's query_only and PostgreSQL's READ ONLY transactions refuse the write (MariaDB has no such switch
    per transaction without another round trip: the same routes are checked on the other two)."""
    if engine_db.dialect == "mysql":
        pytest.skip("a MariaDB read transaction is an ordinary one")
    router, runs = Router(), []

    @router.command("peek", reads_only=True, open=True)
    def peek(event, ctx):  # type: ignore[no-untyped-def]
        runs.append(event.event_id)
        ctx.session.execute(update(Employee).values(name="changed"))
        return Text("seen")

    with engine_db.session_scope() as s:
        make_employee(s, "E1", name="张三")
    answer = Pipeline(engine_db, SETTINGS, router).handle(
        TextCommand(platform="wecom", event_id="p1", actor=Actor("zs"), text="peek", received_at=clock()), _render)
    assert (answer.outcome, runs) == ("failed", ["p1"])
    with engine_db.session_scope() as s:
        assert s.scalar(select(Employee.name)) == "张三"
        assert s.scalar(select(func.count(ProcessedEvent.id))) == 0


def test_a_query_sees_its_member_as_plain_values_and_makes_no_orm_object(sqlite_db, clock) -> None:
    with sqlite_db.session_scope() as s:
        emp = make_employee(s, "E1", name="张三")
        bind(s, emp, "wecom", "zs", now=clock(), actor_id=None, how="test")
        Ledger(s, clock).award(emp.id, 42, idem_key="a", reason="r")
    with sqlite_db.read_scope() as s:
        ctx = Context(session=s, settings=SETTINGS, clock=clock, platform="wecom")
        reply = ROUTER.dispatch(_points("m1", clock()), ctx)
        assert isinstance(ctx.member, Member) and (ctx.member.id, ctx.member.name) == (emp.id, "张三")
        assert len(s.identity_map) == 0  # the statement and the rank are read without the ORM too
    assert "42" in plain_text(reply.card)
    with sqlite_db.session_scope() as s:  # a command that writes gets the session's Employee
        assert isinstance(resolve_member(s, "wecom", "zs", clock()), Employee)


def test_the_stamps_thread_writes_them_without_being_asked(sqlite_db, clock) -> None:
    import time

    with sqlite_db.session_scope() as s:
        binding = bind(s, make_employee(s, "E1"), "wecom", "zs", now=clock(), actor_id=None, how="test")
    stamps, later = UseStamps(sqlite_db, every=0.05), clock() + timedelta(hours=2)
    stamps.add(binding.id, later)
    for _ in range(200):  # polled, not timed: the thread's turn comes every 50 ms
        with sqlite_db.read_scope() as s:
            if s.scalar(select(Binding.last_used_at)) == later:
                break
        time.sleep(0.025)
    assert stamps.pending() == 0
    with sqlite_db.read_scope() as s:
        assert s.scalar(select(Binding.last_used_at)) == later
