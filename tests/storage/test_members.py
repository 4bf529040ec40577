"""Resolving a chat account to its employee: one query when bound, a coarse last-used stamp, roster auto-binding."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from storage.members import bind, resolve_member
from storage.models import Binding, Employee
from tests.storage.factories import make_employee


def _stamp(db, user_id):  # type: ignore[no-untyped-def]
    with db.session_scope() as s:
        return s.scalar(select(Binding.last_used_at).where(Binding.platform_user_id == user_id))


def test_bound_account_resolves_and_is_stamped_at_most_hourly(engine_db, clock):
    with engine_db.session_scope() as s:
        emp = make_employee(s, "E1", name="张三", role="manager", wecom="")
        bind(s, emp, "wecom", "zs", now=clock(), actor_id=None, how="test")
        emp_id = emp.id
    t0 = clock()
    with engine_db.session_scope() as s:
        got = resolve_member(s, "wecom", "zs", clock())
        assert isinstance(got, Employee) and (got.id, got.name, got.role, got.status) == (emp_id, "张三", "manager",
                                                                                          "active")
        assert got.created_at.year == 2026 and s.get(Employee, emp_id) is got  # one object per row in the session
    assert _stamp(engine_db, "zs") == t0  # bound just now
    clock.advance(minutes=59)
    with engine_db.session_scope() as s:
        resolve_member(s, "wecom", "zs", clock())
    assert _stamp(engine_db, "zs") == t0  # within the hour: no write
    clock.advance(minutes=2)
    with engine_db.session_scope() as s:
        resolve_member(s, "wecom", "zs", clock())
    assert _stamp(engine_db, "zs") == t0 + timedelta(minutes=61)
    with engine_db.session_scope() as s:
        assert resolve_member(s, "wecom", "nobody", clock()) is None
        assert resolve_member(s, "dingtalk", "zs", clock()) is None  # bound on WeCom only


def test_roster_ids_bind_on_first_message(engine_db, clock):
    with engine_db.session_scope() as s:
        emp_id = make_employee(s, "E2", dingtalk="dt-2").id
    with engine_db.session_scope() as s:
        got = resolve_member(s, "dingtalk", "dt-2", clock())
        assert got is not None and got.id == emp_id
    with engine_db.session_scope() as s:
        assert s.scalar(select(Binding.employee_id).where(Binding.platform_user_id == "dt-2")) == emp_id


def test_a_due_stamp_inside_a_read_scope_refuses_instead_of_writing(sqlite_db, clock):
    """The pipeline's read scope relies on this to send such a message down the write path."""
    with sqlite_db.session_scope() as s:
        emp = make_employee(s, "E3")
        bind(s, emp, "wecom", "e3", now=clock(), actor_id=None, how="test")
    clock.advance(hours=2)
    with pytest.raises(OperationalError, match="readonly"):
        with sqlite_db.read_scope() as s:
            resolve_member(s, "wecom", "e3", clock())
    with sqlite_db.read_scope() as s:
        assert resolve_member(s, "wecom", "e3", clock() - timedelta(hours=2)) is not None  # fresh: no write
