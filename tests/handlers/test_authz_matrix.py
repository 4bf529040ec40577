"""Every registered command × every role, through the real router and middleware (T13).

A role outside a route's roles gets the friendly "no permission" text and nothing is written; a role
inside never gets it. Routes open to everyone are tried by every role and never refused for role.
"""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, select

from app import build_router
from bot.core.context import Context
from bot.core.events import Actor, TextCommand
from bot.core.replies import CardReply, Text
from settings import build_settings
from storage.members import bind
from storage.models import Appeal, AuditLog, Binding, Entry, Order, Outbox, Txn, UnbindRequest
from tests.storage.factories import make_employee
from cards.text import plain_text

ROLES = ("employee", "manager", "hr", "admin")
ROUTER = build_router()
ARGS = {"award": "T1 10 帮忙", "deduct": "T1 10 违规", "approve": "A1", "deny": "A1", "fulfil": "R1", "reject": "R1",
        "redeem": "1", "confirm": "R1", "cancel": "R1", "appeal": "- 少了积分", "bind": "T1 123456",
        "unbind": "T1", "confirm-unbind": "U1", "history": "", "rank": "month", "help": "积分",
        "force-unbind": "T1 账号停用", "bind-code": "T1", "lookup": "T1", "reactivate": "T1", "reverse": "E1 重复"}
TABLES = (Txn, Entry, Order, Appeal, Outbox, UnbindRequest, Binding)


def _counts(s) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    return tuple(s.scalar(select(func.count(m.id))) or 0 for m in TABLES)


@pytest.mark.parametrize("route", ROUTER.routes, ids=lambda r: r.name)
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(sqlite_db, clock, route, role: str) -> None:
    settings = build_settings({"catalog": [{"sku": "c", "name": "课程", "cost": 10}]})
    with sqlite_db.session_scope() as s:
        actor = make_employee(s, "U0", role=role)
        make_employee(s, "T1")
        bind(s, actor, "wecom", "actor", now=clock(), actor_id=None, how="test")
    alias = route.aliases[0]
    text = f"{alias} {ARGS.get(route.name, '')}".strip()
    with sqlite_db.session_scope() as s:
        before = _counts(s)
        ctx = Context(session=s, settings=settings, clock=clock, platform="wecom")
        event = TextCommand(platform="wecom", event_id=f"{route.name}-{role}", actor=Actor("actor"), text=text,
                            received_at=datetime(2026, 3, 10))
        reply = ROUTER.dispatch(event, ctx)
        s.flush()
        after = _counts(s)
    body = reply.text if isinstance(reply, Text) else plain_text(reply.card) if isinstance(reply, CardReply) else ""
    denied = "没有权限使用" in body
    if route.roles is not None and role not in route.roles:
        assert denied, f"{role} must not use {route.name}: {body}"
        assert after == before, f"a refused {route.name} wrote something"
    else:
        assert not denied, f"{role} may use {route.name}: {body}"
