"""Read side of the ledger: statements, history and leaderboards (no writes here)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, aliased

from storage.models import Account, Employee, Lot, Txn

EARNING_KINDS = ("award",)
# Built once: aliased() copies every column, which cost more than the queries themselves per request.
_CLOSER = aliased(Txn, name="closer")
_REV = aliased(Txn, name="rev")
_HOLD = aliased(Txn, name="hold")


@dataclass(frozen=True)
class Statement:
    available: int
    on_hold: int
    expiring: tuple[tuple[datetime, int], ...]  # (expires_at, points), soonest first
    lifetime_earned: int
    spent: int


@dataclass(frozen=True)
class HistoryPage:
    items: tuple[Txn, ...]
    page: int
    pages: int
    total: int


@dataclass(frozen=True)
class BoardRow:
    rank: int
    employee_id: int
    name: str
    department: str
    points: int


def wallet_id(s: Session, employee_id: int) -> int | None:
    return s.scalar(select(Account.id).where(Account.kind == "wallet", Account.employee_id == employee_id))


def on_hold(s: Session, employee_id: int) -> int:
    """Holds not yet closed by a settle or a release."""
    closer = _CLOSER
    open_holds = (select(func.coalesce(func.sum(-Txn.amount), 0))
                  .where(Txn.employee_id == employee_id, Txn.kind == "hold")
                  .where(~select(closer.id).where(closer.related_txn_id == Txn.id,
                                                  closer.kind.in_(("settle", "release"))).exists()))
    return int(s.scalar(open_holds) or 0)


def statement(s: Session, employee_id: int, now: datetime, days: int = 30) -> Statement:
    wid = wallet_id(s, employee_id)
    available = int(s.scalar(select(Account.balance).where(Account.id == wid)) or 0) if wid else 0
    expiring: tuple[tuple[datetime, int], ...] = ()
    if wid:
        rows = s.execute(select(Lot.expires_at, func.sum(Lot.remaining))
                         .where(Lot.account_id == wid, Lot.remaining > 0, Lot.expires_at <= now + timedelta(days=days))
                         .group_by(Lot.expires_at).order_by(Lot.expires_at)).all()
        expiring = tuple((at, int(p)) for at, p in rows)
    earned = s.scalar(select(func.coalesce(func.sum(Txn.amount), 0))
                      .where(Txn.employee_id == employee_id, Txn.kind.in_(EARNING_KINDS)))
    rev = _REV
    reversed_awards = s.scalar(select(func.coalesce(func.sum(rev.amount), 0))
                               .join(Txn, rev.reverses_txn_id == Txn.id)
                               .where(rev.employee_id == employee_id, Txn.kind == "award"))
    hold = _HOLD
    spent = s.scalar(select(func.coalesce(func.sum(-hold.amount), 0))
                     .join(Txn, and_(Txn.related_txn_id == hold.id, Txn.kind == "settle"))
                     .where(hold.employee_id == employee_id))
    return Statement(available=available, on_hold=on_hold(s, employee_id), expiring=expiring,
                     lifetime_earned=int(earned or 0) + int(reversed_awards or 0), spent=int(spent or 0))


def history(s: Session, employee_id: int, page: int = 1, per_page: int = 10) -> HistoryPage:
    total = int(s.scalar(select(func.count(Txn.id)).where(Txn.employee_id == employee_id,
                                                          Txn.kind.notin_(("budget_grant", "budget_reset")))) or 0)
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    items = s.scalars(select(Txn).where(Txn.employee_id == employee_id,
                                        Txn.kind.notin_(("budget_grant", "budget_reset")))
                      .order_by(Txn.id.desc()).offset((page - 1) * per_page).limit(per_page)).all()
    return HistoryPage(items=tuple(items), page=page, pages=pages, total=total)


def leaderboard(s: Session, start: datetime, end: datetime, *, department: str | None = None,
                top_n: int = 10) -> list[BoardRow]:
    """Points earned in [start, end): awards minus reversals of awards, active employees only."""
    earned = (select(Txn.employee_id.label("eid"), func.sum(Txn.amount).label("pts"))
              .where(Txn.created_at >= start, Txn.created_at < end,
                     (Txn.kind == "award") | ((Txn.kind == "reverse") & (Txn.amount < 0)))
              .group_by(Txn.employee_id).subquery())
    q = (select(Employee.id, Employee.name, Employee.department, earned.c.pts)
         .join(earned, earned.c.eid == Employee.id)
         .where(Employee.status == "active", earned.c.pts > 0)
         .order_by(earned.c.pts.desc(), Employee.id))
    if department:
        q = q.where(Employee.department == department)
    rows = s.execute(q.limit(top_n)).all()
    return [BoardRow(rank=i + 1, employee_id=r[0], name=r[1], department=r[2], points=int(r[3]))
            for i, r in enumerate(rows)]


def rank_of(s: Session, employee_id: int, start: datetime, end: datetime) -> tuple[int | None, int]:
    """(rank, points) of one employee in the period; rank None when they earned nothing."""
    rows = leaderboard(s, start, end, top_n=1_000_000)
    for row in rows:
        if row.employee_id == employee_id:
            return row.rank, row.points
    return None, 0
