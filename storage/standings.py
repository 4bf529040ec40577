"""Where a member stands in a period: their rank and points, as ``queries.leaderboard`` orders everyone.

For a calendar period (the only kind the chat asks about) the ledger keeps each employee's earned total
(storage/ledger/totals.py): the member's own points are one row and the rank two counts of an index range (everyone
ahead, less the leavers among them), exact and fresh at any size. For any other range, summing every award of the
period for everyone cost 45 ms at 10,000 employees, so that field is computed once per range and kept for ``ttl``
seconds per process, while the member's own points are summed fresh; ``max_age=0`` reads it fresh.
"""
from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import DateTime, Select, bindparam, func, select
from sqlalchemy.orm import Session

from storage.models import EarnedTotal, Employee, Txn
from storage.queries import _EARNED, EARNED

_TX = Txn.__table__
_OWN = (select(func.coalesce(func.sum(_TX.c.amount), 0))
        .where(_TX.c.employee_id == bindparam("emp"),
               _TX.c.created_at >= bindparam("start", type_=DateTime),
               _TX.c.created_at < bindparam("end", type_=DateTime), EARNED))
_FIELD = (select(_EARNED.c.eid, _EARNED.c.pts).join(Employee, Employee.id == _EARNED.c.eid)
          .where(Employee.status == "active", _EARNED.c.pts > 0))
# the same from the totals the ledger keeps per calendar period (storage/ledger/totals.py): one row per employee
_ET, _EMP = EarnedTotal.__table__, Employee.__table__
_OWN_KEPT = select(_ET.c.points).where(_ET.c.period == bindparam("key"), _ET.c.employee_id == bindparam("emp"))
# ahead of the member: more points, or as many and a smaller id (queries.leaderboard's order); two index ranges
# counted, not one OR (which PostgreSQL scanned the whole period to filter: 28 ms at 100,000 employees)
_MORE = (_ET.c.period == bindparam("key")) & (_ET.c.points > bindparam("pts"))
_TIED_BEFORE = (_ET.c.period == bindparam("key")) & (_ET.c.points == bindparam("pts")) \
    & (_ET.c.employee_id < bindparam("emp"))


def _count_ahead(*also: Any) -> Select[tuple[int]]:
    def count(where: Any) -> Any:
        return select(func.count()).select_from(_ET).where(where, *also).scalar_subquery()
    return select(count(_MORE) + count(_TIED_BEFORE))


_ALL_AHEAD = _count_ahead()
_LEAVERS = select(_EMP.c.id).where(_EMP.c.status == "left")  # few, by the status index
# driven by the leavers' ids (a primary-key lookup each), never by the range: without statistics SQLite chose the
# range, 76,000 lookups of employees for a rank at 100,000 employees (bench/scale.py)
_LEFT_AHEAD = _count_ahead(_ET.c.employee_id.in_(bindparam("left", expanding=True)))


@dataclass(frozen=True)
class _Field:
    keys: list[tuple[int, int]]  # (-points, employee id), ascending: the leaderboard's order
    points: dict[int, int]
    taken_at: float


class Standings:
    def __init__(self, ttl_seconds: float = 60.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.monotonic = ttl_seconds, monotonic
        self._fields: dict[tuple[datetime, datetime], _Field] = {}

    @staticmethod
    def _kept_rank(s: Session, employee_id: int, key: str) -> tuple[int | None, int]:
        """Exact and fresh from the kept totals: everyone ahead, less the leavers among them (two index counts)."""
        conn = s.connection()
        mine = int(conn.execute(_OWN_KEPT, {"key": key, "emp": employee_id}).scalar() or 0)
        if mine <= 0:
            return None, 0
        args = {"key": key, "pts": mine, "emp": employee_id}
        ahead = int(conn.execute(_ALL_AHEAD, args).scalar() or 0)
        left = list(conn.execute(_LEAVERS).scalars())
        if left:
            ahead -= int(conn.execute(_LEFT_AHEAD, {**args, "left": left}).scalar() or 0)
        return ahead + 1, mine

    def _field(self, s: Session, start: datetime, end: datetime, max_age: float) -> _Field:
        now = self.monotonic()
        found = self._fields.get((start, end))
        if found is None or now - found.taken_at >= max_age:
            rows = s.connection().execute(_FIELD, {"start": start, "end": end}).all()
            points = {int(eid): int(pts) for eid, pts in rows}
            found = _Field(sorted((-p, e) for e, p in points.items()), points, now)
            self._fields = {(start, end): found}  # one period at a time: the newest asked for
        return found

    def rank_of(self, s: Session, employee_id: int, start: datetime, end: datetime, *,
                max_age: float | None = None, key: str | None = None) -> tuple[int | None, int]:
        """(rank, points) as ``queries.leaderboard`` ranks them (points, then employee id); None when the
        member earned nothing. The others' totals are at most ``max_age`` seconds old (default: ``ttl``). A
        calendar period's ``key`` reads the totals the ledger keeps instead of the period's transactions."""
        if key:
            return self._kept_rank(s, employee_id, key)
        mine = int(s.connection().execute(_OWN, {"emp": employee_id, "start": start, "end": end}).scalar() or 0)
        if mine <= 0:
            return None, 0
        field = self._field(s, start, end, self.ttl if max_age is None else max_age)
        ahead = bisect.bisect_left(field.keys, (-mine, employee_id))
        cached = field.points.get(employee_id)
        if cached is not None and (-cached, employee_id) < (-mine, employee_id):
            ahead -= 1  # the member's own (older) entry is not someone ahead of them
        return ahead + 1, mine
