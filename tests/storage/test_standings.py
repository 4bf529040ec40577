"""A member's standing: own points always exact, the others' totals cached for the TTL, ranks as the leaderboard's."""
from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import update

from storage.models import Employee
from storage.queries import leaderboard
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
            assert fresh.rank_of(s, emp, start, end) == board.get(emp, (None, 0))
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
        assert cached.rank_of(s, emps["a"], start, end) == (3, 25)
        assert cached.rank_of(s, emps["m"], start, end) == (None, 0)


def test_the_leaderboard_reads_fresh_and_leaves_the_field_fresh_for_the_next_query(engine_db, emps, clock):
    """排行榜 asks with max_age=0: it never shows a stale rank, and the 积分 after it agrees."""
    start, end = clock(), clock() + timedelta(days=30)
    award(engine_db, emps["a"], 25, "a1")
    award(engine_db, emps["b"], 20, "b1")
    cached = Standings(ttl_seconds=60, monotonic=Tick())
    with engine_db.session_scope() as s:
        assert cached.rank_of(s, emps["a"], start, end) == (1, 25)
    award(engine_db, emps["b"], 100, "b2")  # b passes a; the cached field does not know yet
    with engine_db.session_scope() as s:
        assert cached.rank_of(s, emps["a"], start, end) == (1, 25)  # 积分: up to a minute old
        assert cached.rank_of(s, emps["a"], start, end, max_age=0) == (2, 25)  # 排行榜: fresh
        assert cached.rank_of(s, emps["a"], start, end) == (2, 25)  # and 积分 after it agrees


def test_one_calendar_period_for_the_command_and_the_pushed_board() -> None:
    """排行榜 and the leaderboard job once computed the period each their own way."""
    from zoneinfo import ZoneInfo

    from cards.messages import board_label, period_label
    from storage.periods import calendar_period

    tz = ZoneInfo("Asia/Shanghai")
    monday_morning = datetime(2026, 3, 15, 23, 30)  # Sunday in UTC, Monday 07:30 in Shanghai
    week = calendar_period("week", monday_morning, tz)
    assert (week.first, week.last, week.start, week.end) == (date(2026, 3, 16), date(2026, 3, 22),
                                                             datetime(2026, 3, 15, 16), datetime(2026, 3, 22, 16))
    assert period_label("week", week.first, week.last) == "本周（03-16 至 03-22）"
    assert board_label("week", week.first) == "2026年第12周"
    q4 = calendar_period("quarter", datetime(2026, 12, 31, 16, 30), tz)  # 1 January 00:30 local
    assert (q4.first, q4.start, board_label("quarter", q4.first)) == (date(2027, 1, 1), datetime(2026, 12, 31, 16),
                                                                       "2027年第1季度")
