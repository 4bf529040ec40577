"""Calendar periods (week, month, quarter, year) in the company's time zone: the one definition behind
积分's rank, 排行榜 and the pushed leaderboards, so they always mean the same week.

A week starts on Monday 00:00 local time, so an award given at 07:00 in Shanghai on a Monday counts for
the new week although it is still Sunday in UTC. The database keeps naive UTC; the bounds are
converted here, once.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from datetime import date, datetime, timedelta, timezone, tzinfo

@dataclass(frozen=True)
class Period:
    kind: str
    first: date  # the first local day
    last: date  # the last local day
    start: datetime  # local midnight of ``first``, naive UTC
    end: datetime  # local midnight after ``last``, naive UTC (exclusive)

    @property
    def key(self) -> str:
        """Its row key in ``earned_totals`` (storage/ledger/totals.py)."""
        return key(self.kind, self.first)


def _first_day(kind: str, day: date) -> date:
    if kind == "week":
        return day - timedelta(days=day.weekday())
    if kind == "month":
        return day.replace(day=1)
    if kind == "quarter":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    return day.replace(month=1, day=1)


def _next_first_day(kind: str, first: date) -> date:
    if kind == "week":
        return first + timedelta(days=7)
    months = {"month": 1, "quarter": 3}.get(kind, 12)
    total = first.month - 1 + months
    return first.replace(year=first.year + total // 12, month=total % 12 + 1)


def _utc(day: date, tz: tzinfo) -> datetime:
    """Local midnight of ``day`` as naive UTC (the database's convention)."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(timezone.utc).replace(tzinfo=None)


KINDS = ("day", "week", "month", "quarter", "year")


def key(kind: str, first: date) -> str:
    """A period's key in ``earned_totals``: ``d2026-12-07``, ``w2026-12-07``, ``m2026-12-01``, ``q2026-10-01``…"""
    return f"{kind[0]}{first.isoformat()}"


def keys_of(at: datetime, tz: tzinfo) -> tuple[str, ...]:
    """The keys of the day, week, month, quarter and year ``at`` (naive UTC) falls in, locally."""
    return _day_keys(at.replace(tzinfo=timezone.utc).astimezone(tz).date())


@lru_cache(maxsize=4096)
def _day_keys(day: date) -> tuple[str, ...]:
    return tuple(key(kind, day if kind == "day" else _first_day(kind, day)) for kind in KINDS)


def calendar_period(kind: str, now: datetime, tz: tzinfo) -> Period:
    """The local calendar period of ``kind`` containing ``now`` (naive UTC)."""
    today = now.replace(tzinfo=timezone.utc).astimezone(tz).date()
    first = _first_day(kind, today)
    after = _next_first_day(kind, first)
    return Period(kind, first, after - timedelta(days=1), _utc(first, tz), _utc(after, tz))
