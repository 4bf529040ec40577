"""Set-based reads for the weekly manager and HR digests.

Why set-based: with 10,000 employees and ~1,000 managers, one query per manager per figure would be
thousands of round trips; instead each figure is one GROUP BY over everyone, each in its own short
transaction (on SQLite every transaction takes the write lock, so long reads would stall webhooks).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import and_, func, select
from sqlalchemy.orm import aliased

from storage import appeals
from storage.bindings import AuditRow, binding_audit
from storage.db import Database
from storage.kinds import AccountKind, AppealStatus, OrderStatus, TxnKind
from storage.ledger.expiry import PAGE, expiring_per_wallet
from storage.manyrows import among
from storage.models import Account, Appeal, Employee, Entry, Order, Txn

REDEEMED = ("awaiting_fulfilment", "fulfilled")
AUDIT_DAYS, AUDIT_ROWS = 90, 5  # the HR digest's binding audit: unused for 90 days; 5 cards with a button


@dataclass
class ManagerDigest:
    name: str
    awarded_by_me: int = 0
    awarded_to_team: int = 0
    budget_used: int = 0
    budget_left: int = 0
    open_appeals: int = 0
    team_orders: int = 0
    quiet: list[str] = field(default_factory=list)


class WaitingOrder(NamedTuple):
    id: int
    owner: str
    item: str
    quantity: int
    days: int


class OpenAppeal(NamedTuple):
    id: int
    owner: str
    days: int


class LeaverPoints(NamedTuple):
    employee_no: str
    name: str
    points: int


class ItemTrend(NamedTuple):
    item: str
    weeks: tuple[int, int, int, int]  # redeemed quantity per week, oldest first


class DepartmentExpiry(NamedTuple):
    department: str  # "" when the roster names none
    points: int


@dataclass
class HrDigest:
    """The weekly HR figures as data; cards/builders_jobs.py words them."""

    orders: list[WaitingOrder] = field(default_factory=list)  # oldest first, at most 20
    orders_total: int = 0
    appeals: list[OpenAppeal] = field(default_factory=list)
    appeals_total: int = 0
    leavers: list[LeaverPoints] = field(default_factory=list)
    leavers_total: int = 0
    trend: list[ItemTrend] = field(default_factory=list)
    expiring: list[DepartmentExpiry] = field(default_factory=list)  # next month
    expiring_month: str = ""
    expiring_now: list[DepartmentExpiry] = field(default_factory=list)  # the rest of this month
    this_month: str = ""
    bindings: dict[str, int] = field(default_factory=dict)  # storage/bindings.py AUDIT_KINDS -> rows
    binding_rows: list[tuple[str, AuditRow]] = field(default_factory=list)  # the first few, to fix from chat


def _rows(db: Database, query: Any) -> list[Any]:
    with db.read_scope() as s:  # a digest only reads: on SQLite it holds no write lock
        return list(s.execute(query).all())


def _managers_above(db: Database) -> dict[int, list[int]]:
    """{employee id: every manager above them, nearest first}: the inverse of storage/members.py ``team``,
    built once from (id, manager_id) so each figure below stays one GROUP BY over everyone."""
    parent = {e: m for e, m in _rows(db, select(Employee.id, Employee.manager_id))}
    above: dict[int, list[int]] = {}
    for emp in parent:
        chain, seen, m = [], {emp}, parent.get(emp)
        while m is not None and m not in seen:  # a loop in the roster ends the chain
            chain.append(m)
            seen.add(m)
            m = parent.get(m)
        above[emp] = chain
    return above


def manager_digests(db: Database, now: datetime, month_start: datetime) -> dict[int, ManagerDigest]:
    """{manager id: their digest figures} for every active manager; a team is everyone below them."""
    week_ago, month_ago = now - timedelta(days=7), now - timedelta(days=30)
    out = {mid: ManagerDigest(name=name) for mid, name in _rows(db, select(Employee.id, Employee.name).where(
        Employee.role == "manager", Employee.status == "active").order_by(Employee.id))}
    above = _managers_above(db)

    def to_team(rows: list[Any], field_name: str) -> None:
        for emp, n in rows:
            for mid in above.get(emp, ()):
                if mid in out:
                    setattr(out[mid], field_name, getattr(out[mid], field_name) + int(n or 0))

    for mid, pts in _awarded(db, Txn.actor_id, week_ago, now).items():
        if mid in out:
            out[mid].awarded_by_me = pts
    to_team(list(_awarded(db, Txn.employee_id, week_ago, now).items()), "awarded_to_team")
    for mid, bal in _rows(db, select(Account.employee_id, Account.balance).where(Account.kind == AccountKind.BUDGET)):
        if mid in out:
            out[mid].budget_left = int(bal or 0)
    used = (select(Account.employee_id, func.sum(-Entry.amount)).join(Entry, Entry.account_id == Account.id)
            .join(Txn, Txn.id == Entry.txn_id)
            .where(Account.kind == AccountKind.BUDGET, Txn.kind == TxnKind.AWARD, Txn.created_at >= month_start)
            .group_by(Account.employee_id))
    for mid, pts in _rows(db, used):
        if mid in out:
            out[mid].budget_used = int(pts or 0)
    to_team(_rows(db, select(Appeal.employee_id, func.count(Appeal.id))
                  .where(Appeal.status == AppealStatus.OPEN, appeals.manager_decides()).group_by(Appeal.employee_id)),
            "open_appeals")
    to_team(_rows(db, select(Order.employee_id, func.count(Order.id)).where(Order.status == OrderStatus.AWAITING_FULFILMENT)
                  .group_by(Order.employee_id)), "team_orders")
    for emp, name in _quiet(db, month_ago):
        for mid in above.get(emp, ()):
            if mid in out:
                out[mid].quiet.append(name)
    return out


def _awarded(db: Database, by: Any, start: datetime, end: datetime, slices: int = 7) -> dict[int, int]:
    """Points awarded in [start, end) by ``by`` (the giver or the receiver), read a slice of the time at a time:
    a week of awards at once held a transaction 315 ms on PostgreSQL at 5,000,000 awards."""
    out: dict[int, int] = defaultdict(int)
    step = (end - start) / slices
    for i in range(slices):
        lo, hi = start + step * i, (end if i == slices - 1 else start + step * (i + 1))
        for key, pts in _rows(db, select(by, func.sum(Txn.amount)).where(
                Txn.kind == TxnKind.AWARD, Txn.created_at >= lo, Txn.created_at < hi).group_by(by)):
            if key is not None:
                out[int(key)] += int(pts or 0)
    return dict(out)


QUIET_PAGE = 10_000  # employee ids a read of the quiet ones covers: all at once held a transaction 560 ms at 100,000


def _quiet(db: Database, since: datetime) -> list[tuple[int, str]]:
    """(id, name) of active employees with a manager and no award since ``since``, in id order, read in pages."""
    recent = select(Txn.id).where(Txn.employee_id == Employee.id, Txn.kind == TxnKind.AWARD, Txn.created_at >= since)
    quiet = select(Employee.id, Employee.name).where(Employee.status == "active", Employee.manager_id.is_not(None),
                                                     ~recent.exists()).order_by(Employee.id)
    last = int(_rows(db, select(func.coalesce(func.max(Employee.id), 0)))[0][0])
    found: list[tuple[int, str]] = []
    for lo in range(0, last + 1, QUIET_PAGE):
        found += [(int(e), n) for e, n in _rows(db, quiet.where(Employee.id >= lo, Employee.id < lo + QUIET_PAGE))]
    return found


def _week_index(created: datetime, now: datetime) -> int:
    """0 = the oldest of the last four weeks, 3 = the last seven days."""
    return 3 - min(3, int((now - created).total_seconds() // (7 * 86400)))


def hr_digest(db: Database, now: datetime, next_month: tuple[datetime, datetime], label: str,
              this_month: str = "") -> HrDigest:
    """The figures; expiry covers the rest of this month (from ``now``) and the next (``next_month``)."""
    d = HrDigest(expiring_month=label, this_month=this_month)
    owner = aliased(Employee)
    waiting = _rows(db, select(Order.id, Order.item_name, Order.quantity, Order.created_at, owner.name)
                    .join(owner, owner.id == Order.employee_id).where(Order.status == OrderStatus.AWAITING_FULFILMENT)
                    .order_by(Order.created_at, Order.id).limit(20))
    d.orders_total = int(_rows(db, select(func.count(Order.id)).where(Order.status == OrderStatus.AWAITING_FULFILMENT))[0][0])
    d.orders = [WaitingOrder(oid, name, item, qty, max(0, (now - at).days)) for oid, item, qty, at, name in waiting]
    appeals = _rows(db, select(Appeal.id, owner.name, Appeal.created_at).join(owner, owner.id == Appeal.employee_id)
                    .where(Appeal.status == AppealStatus.OPEN).order_by(Appeal.created_at, Appeal.id).limit(20))
    d.appeals_total = int(_rows(db, select(func.count(Appeal.id)).where(Appeal.status == AppealStatus.OPEN))[0][0])
    d.appeals = [OpenAppeal(aid, name, max(0, (now - at).days)) for aid, name, at in appeals]
    leavers = (select(Employee.employee_no, Employee.name, Account.balance)
               .join(Account, and_(Account.employee_id == Employee.id, Account.kind == AccountKind.WALLET))
               .where(Employee.status == "left", Account.balance > 0))
    rows = _rows(db, leavers.order_by(Account.balance.desc()))
    d.leavers_total = len(rows)
    d.leavers = [LeaverPoints(no, name, int(bal)) for no, name, bal in rows]
    trend: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for item, qty, at in _rows(db, select(Order.item_name, Order.quantity, Order.created_at)
                               .where(Order.status.in_(REDEEMED), Order.created_at >= now - timedelta(days=28))):
        trend[item][_week_index(at, now)] += int(qty)
    d.trend = [ItemTrend(item, (w[0], w[1], w[2], w[3])) for item, w in
               sorted(trend.items(), key=lambda kv: (-sum(kv[1]), kv[0]))]
    d.expiring = [DepartmentExpiry(dept or "", pts) for dept, pts in expiring_by_department(db, *next_month)]
    d.expiring_now = [DepartmentExpiry(dept or "", pts) for dept, pts in expiring_by_department(db, now, next_month[0])]
    d.bindings, d.binding_rows = binding_audit_summary(db, now)
    return d


def expiring_by_department(db: Database, start: datetime, end: datetime) -> list[tuple[str, int]]:
    """Points of lots expiring in [start, end) per department, most first.

    The lots are summed per wallet in pages (storage/ledger/expiry.py), then the wallets' departments read in
    pages: one GROUP BY over a month of a ten-million-lot table held a transaction for over a second on PostgreSQL.
    """
    per_wallet = expiring_per_wallet(db, start, end)
    ids, totals = sorted(per_wallet), defaultdict(int)
    for i in range(0, len(ids), PAGE):
        with db.read_scope() as s:
            conn = s.connection()
            for account_id, dept in conn.execute(select(Account.id, Employee.department)
                                                 .join(Employee, Employee.id == Account.employee_id)
                                                 .where(among(Account.id, ids[i:i + PAGE], conn.dialect.name))):
                totals[dept or ""] += per_wallet[account_id]
    return sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))


def binding_audit_summary(db: Database, now: datetime, days: int = AUDIT_DAYS, limit: int = AUDIT_ROWS
                           ) -> tuple[dict[str, int], list[tuple[str, AuditRow]]]:
    """How many rows each section of the binding audit (storage/bindings.py) has, and the first ``limit``
    rows (leavers first, then shared accounts, then unused ones) for HR to clean up one by one."""
    with db.session_scope() as s:
        report = binding_audit(s, now=now, days=days)
    rows = [(kind, row) for kind, found in report.items() for row in found][:limit]
    return {kind: len(found) for kind, found in report.items()}, rows
