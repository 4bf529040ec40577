"""Read side of the ledger: statements, history and leaderboards (no writes here)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import DateTime, bindparam, case, func, literal_column, or_, select
from sqlalchemy.orm import Session

from storage.kinds import AccountKind, TxnKind
from storage.ledger.totals import EARNED
from storage.models import Account, EarnedTotal, Employee, Entry, Lot, Txn

EARNING_KINDS = (TxnKind.AWARD,)
BUDGET_KINDS = (TxnKind.BUDGET_GRANT, TxnKind.BUDGET_RESET, TxnKind.BUDGET_TOPUP)  # a manager's budget, not their wallet


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
    return s.scalar(select(Account.id).where(Account.kind == AccountKind.WALLET, Account.employee_id == employee_id))


_TX = Txn.__table__
_ORIG, _CLOSE = _TX.alias("orig"), _TX.alias("closer")
_WALLET = (select(Account.__table__.c.id, Account.__table__.c.balance).where(
    Account.__table__.c.kind == AccountKind.WALLET, Account.__table__.c.employee_id == bindparam("emp")))


def _sum_if(cond, amount):  # type: ignore[no-untyped-def]
    return func.coalesce(func.sum(case((cond, amount), else_=0)), 0)


# One pass over the member's transactions for every total of the statement (it was five queries):
# awards, reversals of awards, holds settled (spent) and holds still open (on hold).
_TOTALS = (select(_sum_if(or_(*(_TX.c.kind == k for k in EARNING_KINDS)), _TX.c.amount),
                  _sum_if((_TX.c.kind == TxnKind.REVERSE) & (_ORIG.c.kind == TxnKind.AWARD), _TX.c.amount),
                  _sum_if((_TX.c.kind == TxnKind.HOLD) & (_CLOSE.c.kind == TxnKind.SETTLE), -_TX.c.amount),
                  _sum_if((_TX.c.kind == TxnKind.HOLD) & _CLOSE.c.id.is_(None), -_TX.c.amount))
           .select_from(_TX.outerjoin(_ORIG, _ORIG.c.id == _TX.c.reverses_txn_id)
                        .outerjoin(_CLOSE, (_CLOSE.c.related_txn_id == _TX.c.id)
                                   & ((_CLOSE.c.kind == TxnKind.SETTLE) | (_CLOSE.c.kind == TxnKind.RELEASE))))
           .where(_TX.c.employee_id == bindparam("emp")))
_EXPIRING = (select(Lot.expires_at, func.sum(Lot.remaining))
             .where(Lot.account_id == bindparam("wid"), Lot.remaining > literal_column("0"),
                    Lot.expires_at <= bindparam("until", type_=DateTime))
             .group_by(Lot.expires_at).order_by(Lot.expires_at))


def statement(s: Session, employee_id: int, now: datetime, days: int = 30) -> Statement:
    conn = s.connection()  # Core, not the ORM: this runs on every 积分
    wallet = conn.execute(_WALLET, {"emp": employee_id}).first()
    expiring: tuple[tuple[datetime, int], ...] = ()
    if wallet is not None:
        rows = conn.execute(_EXPIRING, {"wid": wallet[0], "until": now + timedelta(days=days)}).all()
        expiring = tuple((at, int(p)) for at, p in rows)
    earned, reversed_awards, spent, held = conn.execute(_TOTALS, {"emp": employee_id}).one()
    return Statement(available=int(wallet[1]) if wallet is not None else 0, on_hold=int(held), expiring=expiring,
                     lifetime_earned=int(earned) + int(reversed_awards), spent=int(spent))


def on_hold(s: Session, employee_id: int) -> int:
    """Holds not yet closed by a settle or a release."""
    return int(s.connection().execute(_TOTALS, {"emp": employee_id}).one()[3])


def history(s: Session, employee_id: int, page: int = 1, per_page: int = 10) -> HistoryPage:
    total = int(s.scalar(select(func.count(Txn.id)).where(Txn.employee_id == employee_id,
                                                          Txn.kind.notin_(BUDGET_KINDS))) or 0)
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    items = s.scalars(select(Txn).where(Txn.employee_id == employee_id,
                                        Txn.kind.notin_(BUDGET_KINDS))
                      .order_by(Txn.created_at.desc(), Txn.id.desc()).offset((page - 1) * per_page)
                      .limit(per_page)).all()
    return HistoryPage(items=tuple(items), page=page, pages=pages, total=total)


# what counts as earned in a period: awards, minus reversals of awards (a reversal of a deduction gives back);
# the ledger keeps the same per period in earned_totals (storage/ledger/totals.py)


def _earned(start: datetime | None = None, end: datetime | None = None):  # type: ignore[no-untyped-def]
    """Points earned per employee in [start, end): awards minus reversals of awards.

    Without bounds, the period comes from the ``start`` and ``end`` parameters at execution.
    """
    lo = start if start is not None else bindparam("start", type_=DateTime)
    hi = end if end is not None else bindparam("end", type_=DateTime)
    return (select(Txn.employee_id.label("eid"), func.sum(Txn.amount).label("pts"))
            .where(Txn.created_at >= lo, Txn.created_at < hi,
                   EARNED)
            .group_by(Txn.employee_id).subquery())


# the period's earned points, the period bound at execution (storage/standings.py runs it on every 积分)
_EARNED = _earned()


def leaderboard(s: Session, start: datetime, end: datetime, *, department: str | None = None,
                top_n: int = 10, period_key: str | None = None) -> list[BoardRow]:
    """Points earned in [start, end), active employees only, most first (ties by employee id). A calendar
    period's ``period_key`` (storage/periods.py) reads the kept totals instead of the period's transactions."""
    if period_key:  # along the (period, points, employee_id) index, from the top: the first rows only
        q = (select(Employee.id, Employee.name, Employee.department, EarnedTotal.points)
             .join(Employee, Employee.id == EarnedTotal.employee_id)
             .where(EarnedTotal.period == period_key, Employee.status == "active", EarnedTotal.points > 0)
             .order_by(EarnedTotal.points.desc(), EarnedTotal.employee_id))
    else:
        earned = _earned(start, end)
        q = (select(Employee.id, Employee.name, Employee.department, earned.c.pts)
             .join(earned, earned.c.eid == Employee.id)
             .where(Employee.status == "active", earned.c.pts > 0)
             .order_by(earned.c.pts.desc(), Employee.id))
    if department:
        q = q.where(Employee.department == department)
    rows = s.execute(q.limit(top_n)).all()
    return [BoardRow(rank=i + 1, employee_id=r[0], name=r[1], department=r[2], points=int(r[3]))
            for i, r in enumerate(rows)]


# ---- lookups the chat handlers need (handlers/ hold no SQL: tests/test_layering.py) ----------------
def txn(s: Session, txn_id: int) -> Txn | None:
    return s.get(Txn, txn_id)


def employee(s: Session, employee_id: int) -> Employee | None:
    return s.get(Employee, employee_id)


def sample_employee_no(s: Session, not_id: int | None) -> str | None:
    """An active colleague's employee number, for examples that must work in this company's numbering."""
    q = select(Employee.employee_no).where(Employee.status == "active", Employee.role == "employee")
    if not_id is not None:
        q = q.where(Employee.id != not_id)
    return s.scalar(q.order_by(Employee.id).limit(1))


def recent_twin(s: Session, *, kind: str, actor_id: int, employee_id: int, amount: int, since: datetime) -> Txn | None:
    """The newest change of this kind by this actor to this employee for this amount since ``since``."""
    return s.scalar(select(Txn).where(Txn.kind == kind, Txn.actor_id == actor_id, Txn.employee_id == employee_id,
                                      Txn.amount == amount, Txn.created_at >= since).order_by(Txn.id.desc()).limit(1))


def budget_usage(s: Session, manager_id: int, now: datetime) -> tuple[int, int]:
    """(left, used since this month's grant); a manager without a budget account has (0, 0).

    "Used" counts from the latest monthly grant rather than a calendar month computed here, so the
    answer agrees with whatever period the grant job used (time zone included).
    """
    acc = s.scalar(select(Account).where(Account.kind == AccountKind.BUDGET, Account.employee_id == manager_id))
    if acc is None:
        return 0, 0
    since = s.scalar(select(func.max(Txn.created_at)).where(Txn.employee_id == manager_id, Txn.kind == TxnKind.BUDGET_GRANT))
    if since is None:
        since = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    spent = s.scalar(select(func.coalesce(func.sum(Entry.amount), 0)).join(Txn, Txn.id == Entry.txn_id)
                     .where(Entry.account_id == acc.id, Txn.kind.in_(("award", "reverse")), Txn.created_at >= since))
    return int(acc.balance), -int(spent or 0)


def leavers_with_points(s: Session, limit: int) -> tuple[list[tuple[Employee, int]], int]:
    """Employees who left and still hold points (the leaver policy decides; someone should know)."""
    q = (select(Employee, Account.balance).join(Account, (Account.employee_id == Employee.id) & (Account.kind == AccountKind.WALLET))
         .where(Employee.status == "left", Account.balance > 0))
    total = int(s.scalar(select(func.count()).select_from(q.subquery())) or 0)
    return [(emp, int(balance)) for emp, balance in s.execute(q.order_by(Employee.id).limit(limit))], total
