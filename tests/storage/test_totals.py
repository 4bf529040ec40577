"""Earned totals per period (Scale): the kept totals give the same leaderboards and ranks as summing the ledger."""
from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, update

from storage import queries
from storage.db import Database
from storage.errors import AlreadyReversed
from storage.invariants import check_invariants
from storage.ledger import Ledger, totals
from storage.models import EarnedTotal, Employee
from storage.periods import calendar_period, keys_of
from storage.standings import Standings
from tests.storage.factories import make_employee

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2025, 12, 20, 10, 0)


def _random_history(db: Database, seed: int) -> list[int]:
    """Awards, reversals of awards (some partial), deductions and their reversals, spread over four months, for
    employees some of whom leave; what a leaderboard must count or ignore."""
    rnd = random.Random(seed)
    clock = {"now": START}
    with db.session_scope() as s:
        ids = [make_employee(s, f"E{i}", department=f"D{i % 3}").id for i in range(12)]
    awards: list[int] = []
    for n in range(160):
        clock["now"] = START + timedelta(hours=rnd.randrange(0, 24 * 120), minutes=rnd.randrange(60))
        with db.session_scope() as s:
            lg = Ledger(s, lambda: clock["now"], tz=TZ)
            who, roll = rnd.choice(ids), rnd.random()
            if roll < 0.7 or not awards:
                awards.append(lg.award(who, rnd.randrange(1, 90), idem_key=f"a{n}", reason="r").id)
            elif roll < 0.85:
                try:
                    lg.reverse(rnd.choice(awards), idem_key=f"r{n}", reason="r", allow_partial=True)
                except AlreadyReversed:  # the walk picked an award it had reversed: refused, nothing moves
                    pass
            else:
                balance = lg.balance(lg.wallet(who).id)
                if balance:
                    deduct = lg.deduct(who, rnd.randrange(1, balance + 1), idem_key=f"d{n}", reason="r")
                    if rnd.random() < 0.5:
                        lg.reverse(deduct.id, idem_key=f"rd{n}", reason="r")
    with db.session_scope() as s:
        s.execute(update(Employee).where(Employee.id.in_(ids[:2])).values(status="left"))
    return ids


def test_kept_totals_equal_the_ledgers_sums_for_every_period_on_random_data(engine_db: Database) -> None:
    _random_history(engine_db, 11)
    standings = Standings(ttl_seconds=0)
    with engine_db.session_scope() as s:
        assert check_invariants(s, TZ) == []  # totals.differences among them
        for at in (START, START + timedelta(days=40), START + timedelta(days=100)):
            for kind in ("week", "month", "quarter", "year"):
                p = calendar_period(kind, at, TZ)
                for dept in (None, "D1"):
                    kept = queries.leaderboard(s, p.start, p.end, department=dept, top_n=50, period_key=p.key)
                    summed = queries.leaderboard(s, p.start, p.end, department=dept, top_n=50)
                    assert kept == summed, (kind, at, dept)
                for emp in s.scalars(select(Employee.id)):
                    assert standings.rank_of(s, emp, p.start, p.end, key=p.key) == \
                        standings.rank_of(s, emp, p.start, p.end), (kind, at, emp)


def test_a_tampered_total_is_found_and_a_rebuild_mends_it_and_is_safe_twice(engine_db: Database) -> None:
    _random_history(engine_db, 3)
    with engine_db.session_scope() as s:
        row = s.scalar(select(EarnedTotal).limit(1))
        key, emp = row.period, row.employee_id
        s.execute(update(EarnedTotal).where(EarnedTotal.period == key, EarnedTotal.employee_id == emp)
                  .values(points=EarnedTotal.points + 7))
        problems = check_invariants(s, TZ)
        assert len(problems) == 1 and problems[0].startswith(f"earned total {key} of employee {emp}:")
    seen: list[tuple[int, int]] = []
    first = totals.rebuild(engine_db, TZ, batch=5, progress=lambda last, n: seen.append((last, n)))
    assert first > 0 and len(seen) >= 2  # batches
    assert totals.rebuild(engine_db, TZ, batch=5) == first
    with engine_db.session_scope() as s:
        assert check_invariants(s, TZ) == []
        s.execute(delete(EarnedTotal))
        assert totals.missing(s)
    assert totals.rebuild(engine_db, TZ, start_after=0) == first


def test_local_periods_key_by_the_company_day() -> None:
    """00:30 on Monday 2 March in Shanghai is still Sunday in UTC: it counts for the new week and the new day."""
    assert keys_of(datetime(2026, 3, 1, 16, 30), TZ) == ("d2026-03-02", "w2026-03-02", "m2026-03-01", "q2026-01-01",
                                                          "y2026-01-01")
    assert calendar_period("quarter", datetime(2026, 3, 31, 16, 30), TZ).key == "q2026-04-01"
