"""A member's standing: own points always exact, the others' totals cached for the TTL, ranks as the leaderboard's."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from storage.models import Employee
from storage.queries import leaderboard, rank_of
from storage.standings import Standings
from tests.storage.ledger_helpers import award, people


class Tick:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_fresh_standings_rank_exactly_as_the_leaderboard(engine_db, emps, clock):
    (e4,) = people(engine_db, ("E4", {}))
    start = clock()
    award(engine_db, emps["a"], 30, "a1")
    award(engine_db, emps["b"], 40, "b1")
    award(engine_db, emps["c"], 30, "c1")  # ties with a: the lower employee id ranks first
    award(engine_db, e4, 99, "e4")
    with engine_db.session_scope() as s:
        s.execute(update(Employee).where(Employee.id == e4).values(status="left"))  # leavers are off the board
    end = clock() + timedelta(days=1)
    fresh = Standings(ttl_seconds=0)
    with engine_db.session_scope() as s:
        board = {r.employee_id: (r.rank, r.points) for r in leaderboard(s, start, end, top_n=100)}
        for emp in (emps["a"], emps["b"], emps["c"], emps["m"]):
            assert fresh.rank_of(s, emp, start, end) == rank_of(s, emp, start, end) == board.get(emp, (None, 0))
    assert board[emps["b"]] == (1, 40) and board[emps["a"]][0] < board[emps["c"]][0]


def test_own_points_are_exact_and_the_field_refreshes_after_the_ttl(engine_db, emps, clock):
    start, end = clock(), clock() + timedelta(days=30)
    award(engine_db, emps["a"], 10, "a1")
    award(engine_db, emps["b"], 20, "b1")
    award(engine_db, emps["c"], 30, "c1")
    tick = Tick()
    cached = Standings(ttl_seconds=60, monotonic=tick)
    with engine_db.session_scope() as s:
        assert cached.rank_of(s, emps["a"], start, end) == (3, 10)
    award(engine_db, emps["a"], 15, "a2")  # a: 25, passes b (20) at once: own points are never cached
    with engine_db.session_scope() as s:
        assert cached.rank_of(s, emps["a"], start, end) == (2, 25)
    award(engine_db, emps["b"], 100, "b2")  # b: 120, but the field is 30 s old
    tick.t += 30
    with engine_db.session_scope() as s:
        assert cached.rank_of(s, emps["a"], start, end) == (2, 25)
        assert cached.rank_of(s, emps["b"], start, end) == (1, 120)  # b's own entry is not counted against b
    tick.t += 31  # past the TTL: the field is read again
    with engine_db.session_scope() as s:
        assert cached.rank_of(s, emps["a"], start, end) == (3, 25) == rank_of(s, emps["a"], start, end)
        assert cached.rank_of(s, emps["m"], start, end) == (None, 0)
