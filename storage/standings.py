"""Where a member stands in a period, for every 积分: their own points exact, the field cached briefly.

Ranking one employee means summing every award of the period for everyone: 45 ms per call on
SQLite and PostgreSQL at 10,000 employees with five awards each a month, and 积分 asks on every
call. So the field (everyone's points, sorted) is computed once per period and kept for ``ttl``
seconds per process, while the member's own points are summed fresh from their own transactions:
an award shows in their total at once, and only the others' totals may be up to ``ttl`` old.
This is the one rank of a member: 排行榜 asks it with ``max_age=0`` (the field read fresh, and kept
for the next 积分), so the two can differ only by others' awards of the last ``ttl`` seconds.
"""
from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from sqlalchemy import DateTime, bindparam, func, select
from sqlalchemy.orm import Session

from storage.models import Employee, Txn
from storage.queries import _EARNED, EARNED

_TX = Txn.__table__
_OWN = (select(func.coalesce(func.sum(_TX.c.amount), 0))
        .where(_TX.c.employee_id == bindparam("emp"),
               _TX.c.created_at >= bindparam("start", type_=DateTime),
               _TX.c.created_at < bindparam("end", type_=DateTime), EARNED))
_FIELD = (select(_EARNED.c.eid, _EARNED.c.pts).join(Employee, Employee.id == _EARNED.c.eid)
          .where(Employee.status == "active", _EARNED.c.pts > 0))


@dataclass(frozen=True)
class _Field:
    keys: list[tuple[int, int]]  # (-points, employee id), ascending: the leaderboard's order
    points: dict[int, int]
    taken_at: float


class Standings:
    def __init__(self, ttl_seconds: float = 60.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.monotonic = ttl_seconds, monotonic
        self._fields: dict[tuple[datetime, datetime], _Field] = {}

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
                max_age: float | None = None) -> tuple[int | None, int]:
        """(rank, points) as ``queries.leaderboard`` ranks them (points, then employee id); None when the
        member earned nothing. The others' totals are at most ``max_age`` seconds old (default: ``ttl``)."""
        mine = int(s.connection().execute(_OWN, {"emp": employee_id, "start": start, "end": end}).scalar() or 0)
        if mine <= 0:
            return None, 0
        field = self._field(s, start, end, self.ttl if max_age is None else max_age)
        ahead = bisect.bisect_left(field.keys, (-mine, employee_id))
        cached = field.points.get(employee_id)
        if cached is not None and (-cached, employee_id) < (-mine, employee_id):
            ahead -= 1  # the member's own (older) entry is not someone ahead of them
        return ahead + 1, mine
