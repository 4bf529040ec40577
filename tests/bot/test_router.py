"""Router matching and the middleware order."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, select

from bot.core.context import Context
from bot.core.events import Actor, MemberJoined, TextCommand
from bot.core.middleware import default_chain
from bot.core.replies import NoReply, Text
from bot.core.router import Router, normalise
from settings import build_settings
from storage.members import bind
from storage.models import Binding
from tests.storage.factories import make_employee


def _router() -> Router:
    r = Router()
    r.middleware = default_chain()

    @r.command("redeem", aliases=("兑换",))
    def redeem(event, ctx):  # type: ignore[no-untyped-def]
        return Text(f"redeem:{ctx.args}")

    @r.command("points", aliases=("积分", "我的积分", "balance"))
    def points(event, ctx):  # type: ignore[no-untyped-def]
        return Text("points")

    @r.command("deduct", aliases=("扣除",), roles=("hr", "admin"))
    def deduct(event, ctx):  # type: ignore[no-untyped-def]
        return Text("deducted")

    @r.command("help", aliases=("帮助",), open=True)
    def help_(event, ctx):  # type: ignore[no-untyped-def]
        return Text("help")

    @r.unknown
    def unknown(event, ctx):  # type: ignore[no-untyped-def]
        return Text("unknown")
    return r


@pytest.mark.parametrize("text, name, args", [
    ("兑换 2", "redeem", "2"), ("兑换2", "redeem", "2"), ("  REDEEM   2  ", "redeem", "2"),
    ("ｒｅｄｅｅｍ　２", "redeem", "2"), ("我的积分", "points", ""), ("积分", "points", ""), ("Balance", "points", ""),
])
def test_match_forgives_spacing_width_and_case(text: str, name: str, args: str) -> None:
    found = _router().match(text)
    assert found is not None and found[0].name == name and found[1] == args


def test_english_alias_needs_a_word_boundary() -> None:
    assert _router().match("pointsx") is None
    assert _router().match("redeemable") is None


def test_normalise_drops_control_characters() -> None:
    assert normalise("积分\x00\x1b  2") == "积分 2"


def _dispatch(db, clock, text: str, user: str = "u1"):  # type: ignore[no-untyped-def]
    with db.session_scope() as s:
        ctx = Context(session=s, settings=build_settings({}), clock=clock, platform="wecom")
        ev = TextCommand(platform="wecom", event_id=text, actor=Actor(user), text=text, received_at=datetime(2026, 1, 1))
        return _router().dispatch(ev, ctx)


def test_unbound_user_gets_bind_card_except_on_open_routes(sqlite_db, clock) -> None:
    reply = _dispatch(sqlite_db, clock, "积分")
    assert "绑定" in reply.card.title
    assert _dispatch(sqlite_db, clock, "帮助").text == "help"


def test_role_is_checked_per_route(sqlite_db, clock) -> None:
    with sqlite_db.session_scope() as s:
        emp = make_employee(s, "E1")
        hr = make_employee(s, "H1", role="hr")
        bind(s, emp, "wecom", "u1", now=clock(), actor_id=None, how="t")
        bind(s, hr, "wecom", "h1", now=clock(), actor_id=None, how="t")
    assert "权限" in _dispatch(sqlite_db, clock, "扣除 E1 5 x", "u1").text
    assert _dispatch(sqlite_db, clock, "扣除 E1 5 x", "h1").text == "deducted"
    assert _dispatch(sqlite_db, clock, "积分", "u1").text == "points"
    assert _dispatch(sqlite_db, clock, "blah", "u1").text == "unknown"


def test_platform_events_run_through_the_middleware_as_nobody(sqlite_db, clock) -> None:
    """Approval and member events once skipped the chain; resolving their applicant would bind them
    from the roster and mark a binding used that nobody used."""
    r = _router()
    seen: list[tuple[str, bool]] = []

    class Spy:
        def process(self, event, ctx, route, next):  # type: ignore[no-untyped-def]
            seen.append((route.name, route.system))
            return next()

    r.middleware.insert(0, Spy())
    r.on(MemberJoined, name="member-joined")(lambda event, ctx: NoReply(f"member={ctx.member}"))
    with sqlite_db.session_scope() as s:
        make_employee(s, "E7", wecom="roster_only")  # in the roster, not bound yet
        ctx = Context(session=s, settings=build_settings({}), clock=clock, platform="wecom")
        event = MemberJoined(platform="wecom", event_id="j1", actor=Actor("roster_only"), received_at=clock(),
                             user_ids=("roster_only",))
        assert r.dispatch(event, ctx) == NoReply("member=None")
        assert ctx.command == "member-joined" and seen == [("member-joined", True)]
        assert s.scalar(select(func.count()).select_from(Binding)) == 0
        # the same account typing a command is resolved (and bound from the roster) as before
        assert r.dispatch(TextCommand(platform="wecom", event_id="m1", actor=Actor("roster_only"), text="积分",
                                      received_at=clock()), ctx) == Text("points")
        assert s.scalar(select(func.count()).select_from(Binding)) == 1


def test_a_member_route_always_has_its_member(sqlite_db, clock) -> None:
    """ctx.me replaced an assert in every handler; reaching it without a member is a bug, said plainly."""
    with sqlite_db.session_scope() as s:
        ctx = Context(session=s, settings=build_settings({}), clock=clock, platform="wecom", command="points")
        with pytest.raises(RuntimeError, match="'points' was reached without a member"):
            ctx.me
        ctx.member = make_employee(s, "E9")
        assert ctx.me is ctx.member


def test_a_route_registered_after_a_text_was_matched_is_found_for_that_text() -> None:
    """Matches are remembered per text (every callback asks twice); registering a route forgets them."""
    router = Router()
    router.command("points", aliases=("积分",))(lambda e, c: Text("p"))
    assert router.match("积分榜") is not None and router.match("积分榜")[0].name == "points"
    router.command("board", aliases=("积分榜",))(lambda e, c: Text("b"))
    assert router.match("积分榜")[0].name == "board"
    assert router.match("积分 2") == (router.route("points"), "2")
