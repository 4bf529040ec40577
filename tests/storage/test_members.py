"""Resolving a chat account to its employee: one query when bound, a coarse last-used stamp, roster auto-binding."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from storage.employees import import_roster, read_roster
from storage.errors import InvalidState
from storage.ledger import Ledger
from storage.members import bind, bound_ids, by_employee_no, in_team, resolve_member, team, unbind_all
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


# ---- bindings that stick (Bindings) ------------------------------------------------------------
def _status(db, platform, user_id):  # type: ignore[no-untyped-def]
    with db.session_scope() as s:
        return s.execute(select(Binding.status, Binding.unbound_why, Binding.employee_id)
                         .where(Binding.platform == platform, Binding.platform_user_id == user_id)).first()


def test_an_unbound_account_is_not_rebound_from_the_roster(engine_db, clock):
    with engine_db.session_scope() as s:
        emp = make_employee(s, "E1", wecom="zs")
        assert resolve_member(s, "wecom", "zs", clock()) is emp  # roster auto-binding, as before
        assert unbind_all(s, emp.id, now=clock(), actor_id=None, why="U1") == 1
        emp_id = emp.id
    assert tuple(_status(engine_db, "wecom", "zs")) == ("unbound", "unbind", emp_id)
    with engine_db.session_scope() as s:
        assert resolve_member(s, "wecom", "zs", clock()) is None
        assert bound_ids(s, emp_id) == {}
        with pytest.raises(InvalidState):
            bind(s, s.get(Employee, emp_id), "wecom", "zs", now=clock(), actor_id=None, how="roster")
    with engine_db.session_scope() as s:  # a person acting (a bind code) takes the row over
        bind(s, s.get(Employee, emp_id), "wecom", "zs", now=clock(), actor_id=emp_id, how="code")
    assert tuple(_status(engine_db, "wecom", "zs")) == ("active", "", emp_id)
    with engine_db.session_scope() as s:
        assert resolve_member(s, "wecom", "zs", clock()).id == emp_id


def test_a_new_account_replaces_the_old_one_and_a_code_can_take_over_an_unbound_account(engine_db, clock):
    with engine_db.session_scope() as s:
        a, b = make_employee(s, "E1"), make_employee(s, "E2")
        bind(s, a, "dingtalk", "old", now=clock(), actor_id=None, how="test")
        bind(s, a, "dingtalk", "new", now=clock(), actor_id=None, how="code")
        assert bound_ids(s, a.id) == {"dingtalk": "new"}
        bind(s, b, "dingtalk", "old", now=clock(), actor_id=b.id, how="code")  # the account changed hands
        ids = (a.id, b.id)
    assert tuple(_status(engine_db, "dingtalk", "old")) == ("active", "", ids[1])


@pytest.mark.parametrize("roster_no, typed, found", [
    ("1030", "E1030", True), ("1030", "e1030", True), ("E1030", "1030", True), ("e7", "E7", True),
    ("1030", "X1030", True), ("1031", "E1030", False)])
def test_employee_numbers_match_across_case_and_a_letter_prefix(engine_db, roster_no, typed, found):
    with engine_db.session_scope() as s:
        emp = make_employee(s, roster_no)
        got = by_employee_no(s, typed)
        assert (got is emp) if found else got is None


def test_a_prefix_guess_is_used_only_when_unique(engine_db):
    with engine_db.session_scope() as s:
        make_employee(s, "A1030")
        make_employee(s, "B1030")
        assert by_employee_no(s, "1030") is None
        assert by_employee_no(s, "a1030").employee_no == "A1030"


def test_a_team_is_everyone_below_even_with_a_loop_in_the_roster(engine_db):
    with engine_db.session_scope() as s:
        boss = make_employee(s, "B", role="manager")
        mid = make_employee(s, "M", role="manager", manager_id=boss.id)
        low = make_employee(s, "E", manager_id=mid.id)
        other = make_employee(s, "O")
        assert set(s.scalars(team(boss.id))) == {mid.id, low.id}
        assert set(s.scalars(team(mid.id))) == {low.id}
        assert in_team(s, boss.id, low.id) and not in_team(s, boss.id, other.id) and not in_team(s, mid.id, boss.id)
        boss.manager_id = low.id  # a loop: B → M → E → B
        s.flush()
        assert set(s.scalars(team(boss.id))) == {mid.id, low.id}


ROSTER = """employee_no,name,manager_no,role,dingtalk_userid,wecom_userid
E1,张三,,employee,dz,zs
E2,李四,,employee,,ls
E3,王五,,employee,,zs
"""


def test_the_roster_binds_its_ids_at_import_and_reports_what_an_unbind_keeps(engine_db, clock):
    with engine_db.session_scope() as s:
        rows, _ = read_roster(ROSTER)
        report = import_roster(s, rows, Ledger(s, clock), now=clock(), budget=0, rollover=False)
        assert report.bound == ["E1 dingtalk:dz", "E1 wecom:zs", "E2 wecom:ls"]
        assert report.conflicts == ["E3 wecom:zs"]  # the roster gives zs to two people: the first keeps it
        e1 = s.scalar(select(Employee).where(Employee.employee_no == "E1"))
        unbind_all(s, e1.id, now=clock(), actor_id=None, why="U1", platform="wecom")
    with engine_db.session_scope() as s:
        rows, _ = read_roster(ROSTER)
        report = import_roster(s, rows, Ledger(s, clock), now=clock(), budget=0, rollover=False)
        assert report.bound == [] and report.kept_unbound == ["E1 wecom:zs", "E3 wecom:zs"]
    assert _status(engine_db, "wecom", "zs")[0] == "unbound"
