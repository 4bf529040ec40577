"""The rows of the console's exports: balances, the ledger, orders — streamed, scoped, read-only.

Why pages: an export of two million transactions must neither hold them in memory nor hold one
transaction open for a minute, so each export walks its table by primary key, ``PAGE`` rows at a
time, each page in its own read transaction (``Database.read_scope``: no write lock on SQLite, so
callbacks go on while HR downloads). Rows are data (raw kinds and statuses, UTC times); the console
words and formats them (console/exports.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import Any, Iterator

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import aliased

from storage.console import STAFF_ROLES
from storage.db import Database
from storage.kinds import AccountKind, TxnKind
from storage.members import team
from storage.ledger.books import CHARITY_PREFIX
from storage.models import Account, Employee, Entry, Order, Txn
from storage.queries import EARNING_KINDS

PAGE = 5000


@dataclass(frozen=True)
class ExportFilter:
    start: datetime | None = None  # UTC, inclusive
    end: datetime | None = None  # UTC, exclusive
    department: str = ""
    employee_no: str = ""
    kind: str = ""  # a transaction kind, or an order status


def _scope(viewer: Employee, column: Any) -> Any:
    """HR and admins see everyone; a manager their team and themselves (storage/members.py ``team``)."""
    if viewer.role in STAFF_ROLES:
        return True
    return or_(column == viewer.id, column.in_(team(viewer.id)))


def _people(f: ExportFilter) -> list[Any]:
    conds = []
    if f.department:
        conds.append(Employee.department == f.department)
    if f.employee_no:
        conds.append(Employee.employee_no == f.employee_no)
    return conds


def _within(f: ExportFilter, at: Any, kind: Any) -> list[Any]:
    """The period and kind (or status) conditions of a filter, on the given columns."""
    conds = [at >= f.start] if f.start is not None else []
    conds += [at < f.end] if f.end is not None else []
    return conds + ([kind == f.kind] if f.kind else [])


def _pages(db: Database, viewer_id: int, build: Any) -> Iterator[Any]:
    """Rows of ``build(viewer, after_id)`` (a query ordered by id, whose first column is the id), page by page."""
    after = 0
    while True:
        with db.read_scope(scan=True) as s:
            viewer = s.get(Employee, viewer_id)
            rows = [] if viewer is None else s.execute(build(viewer, after).limit(PAGE)).all()
        if viewer is None:
            return
        yield from rows
        if len(rows) < PAGE:
            return
        after = rows[-1][0]


def balances(db: Database, viewer_id: int, f: ExportFilter) -> Iterator[tuple[Any, ...]]:
    """(id, 工号, 姓名, 部门, status, available, on hold, lifetime earned): the figures of 积分's statement."""
    def build(viewer: Employee, after: int) -> Any:
        return (select(Employee.id, Employee.employee_no, Employee.name, Employee.department, Employee.status,
                       func.coalesce(Account.balance, 0))
                .outerjoin(Account, and_(Account.employee_id == Employee.id, Account.kind == AccountKind.WALLET))
                .where(Employee.id > after, _scope(viewer, Employee.id), *_people(f)).order_by(Employee.id))
    page: list[Any] = []
    for row in _pages(db, viewer_id, build):
        page.append(row)
        if len(page) == PAGE:
            yield from _with_totals(db, page)
            page = []
    yield from _with_totals(db, page)


def _with_totals(db: Database, page: list[Any]) -> Iterator[tuple[Any, ...]]:
    if not page:
        return
    found = _totals(db, [r[0] for r in page])
    for row in page:
        yield (*row, *found.get(row[0], (0, 0)))


def _totals(db: Database, ids: list[int]) -> dict[int, tuple[int, int]]:
    """{employee id: (on hold, lifetime earned)} for a page, reckoned as storage/queries.py ``statement`` does."""
    tx, orig, closer = Txn.__table__, Txn.__table__.alias("orig"), Txn.__table__.alias("closer")
    q = (select(tx.c.employee_id,
                func.coalesce(func.sum(case(((tx.c.kind == TxnKind.HOLD) & closer.c.id.is_(None), -tx.c.amount),
                                            else_=0)), 0),
                func.coalesce(func.sum(case((tx.c.kind.in_(EARNING_KINDS), tx.c.amount),
                                            ((tx.c.kind == TxnKind.REVERSE) & (orig.c.kind == TxnKind.AWARD), tx.c.amount),
                                            else_=0)), 0))
         .select_from(tx.outerjoin(orig, orig.c.id == tx.c.reverses_txn_id)
                      .outerjoin(closer, (closer.c.related_txn_id == tx.c.id)
                                 & closer.c.kind.in_(("settle", "release"))))
         .where(tx.c.employee_id.in_(ids)).group_by(tx.c.employee_id))
    with db.read_scope() as s:
        return {e: (int(h), int(e_)) for e, h, e_ in s.execute(q).all()}


def ledger(db: Database, viewer_id: int, f: ExportFilter) -> Iterator[tuple[Any, ...]]:
    """(E id, time, 工号, 姓名, 部门, kind, points, actor name, reason), oldest first."""
    actor = aliased(Employee)

    def build(viewer: Employee, after: int) -> Any:
        conds = [Txn.id > after, _scope(viewer, Txn.employee_id), *_people(f), *_within(f, Txn.created_at, Txn.kind)]
        return (select(Txn.id, Txn.created_at, Employee.employee_no, Employee.name, Employee.department, Txn.kind,
                       Txn.amount, func.coalesce(actor.name, ""), Txn.reason)
                .outerjoin(Employee, Employee.id == Txn.employee_id).outerjoin(actor, actor.id == Txn.actor_id)
                .where(*conds).order_by(Txn.id))
    return _pages(db, viewer_id, build)


def orders(db: Database, viewer_id: int, f: ExportFilter) -> Iterator[tuple[Any, ...]]:
    """(R id, time, 工号, 姓名, 部门, item, quantity, points, status, decided by, decided at, note)."""
    decider = aliased(Employee)

    def build(viewer: Employee, after: int) -> Any:
        conds = [Order.id > after, _scope(viewer, Order.employee_id), *_people(f),
                 *_within(f, Order.created_at, Order.status)]
        return (select(Order.id, Order.created_at, Employee.employee_no, Employee.name, Employee.department,
                       Order.item_name, Order.quantity, Order.cost, Order.status, func.coalesce(decider.name, ""),
                       Order.decided_at, Order.note)
                .join(Employee, Employee.id == Order.employee_id).outerjoin(decider, decider.id == Order.decided_by)
                .where(*conds).order_by(Order.id))
    return _pages(db, viewer_id, build)


def donations(db: Database, viewer_id: int, f: ExportFilter, tz: tzinfo) -> list[tuple[str, str, int, int]]:
    """(month, charity, donations, points) per month (in the company's zone) and charity, newest month first:
    what HR hands over to each charity. Net of refunds, counted in the month they were made. HR and admins only.

    Read from the charity pools' entries (storage/ledger/credit.py ``settle``), so it is the ledger's own sum.
    """
    totals: dict[tuple[str, str], list[int]] = {}
    with db.read_scope(scan=True) as s:
        viewer = s.get(Employee, viewer_id)
        if viewer is None or viewer.role not in STAFF_ROLES:
            return []
        q = (select(Txn.created_at, Account.name, Entry.amount).join(Entry, Entry.txn_id == Txn.id)
             .join(Account, Account.id == Entry.account_id)
             .where(Account.kind == AccountKind.CHARITY, *_within(ExportFilter(f.start, f.end), Txn.created_at, None)))
        for at, name, amount in s.execute(q):
            month = at.replace(tzinfo=timezone.utc).astimezone(tz).strftime("%Y-%m")
            row = totals.setdefault((month, name.removeprefix(CHARITY_PREFIX)), [0, 0])
            row[0] += 1 if amount > 0 else -1
            row[1] += int(amount)
    return [(m, c, n, p) for (m, c), (n, p) in sorted(totals.items(), key=lambda kv: (kv[0][0], kv[0][1]), reverse=True)]


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe(value: Any) -> Any:
    """A cell as written: text that a spreadsheet would read as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def unsafe(value: str) -> str:
    """A cell as read back: the apostrophe ``safe`` added comes off again, so an export imports unchanged."""
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_START) else value
