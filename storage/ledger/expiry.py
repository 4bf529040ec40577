"""Set-based, batched expiry of due lots (docs/reliability.md §2.3).

Each batch is its own short transaction (a 10 s transaction on SQLite would stall every webhook
behind it). Within a batch the touched wallets are locked first, then the lots re-read, so the
lock order matches every other writer (account, then lots) and nothing is expired twice: a lot's
``remaining > 0`` predicate plus the unique per-batch key make a rerun or a concurrent run a no-op.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from sqlalchemy import ColumnElement, Connection, bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.db import Database, count_txns
from storage.fastsql import Fast
from storage.kinds import AccountKind, TxnKind
from storage.ledger import EXPIRED, Ledger
from storage.ledger.lots import LIVE
from storage.manyrows import among, insert_returning_ids, insert_rows, subtract_from
from storage.models import Account, Employee, Entry, Lot, LotAllocation, Txn
from storage import memos


MIN_BATCH, MAX_BATCH = 200, 20_000  # lots per transaction when the size adapts (expire_due's target_ms)


@dataclass
class ExpiryResult:
    lots: int = 0
    points: int = 0
    batches: int = 0
    longest_batch_ms: float = 0.0
    per_employee: dict[int, int] = field(default_factory=dict)


_DUE = (Lot.expires_at <= bindparam("cutoff")) & (Lot.remaining > LIVE)
_NEXT_LOTS = select(Lot.account_id).where(Lot.account_id >= bindparam("after"), _DUE) \
    .order_by(Lot.account_id, Lot.expires_at, Lot.id).limit(bindparam("limit")).subquery()
_NEXT_ACCOUNTS = select(_NEXT_LOTS.c.account_id).distinct().order_by(_NEXT_LOTS.c.account_id)
_LAST_ACCOUNT = select(func.min(_NEXT_LOTS.c.account_id), func.max(_NEXT_LOTS.c.account_id))
_DUE_LOTS = select(Lot.id, Lot.account_id, Lot.remaining, Account.employee_id) \
    .join(Account, Account.id == Lot.account_id).where(_DUE)
_ORDER = (Lot.account_id, Lot.expires_at, Lot.id)
# A year-end expiry reads and allocates millions of lots: on SQLite and MariaDB these two run on the raw cursor
# (storage/fastsql.py), since SQLAlchemy's per-row work cost more than SQLite's; PostgreSQL sends arrays instead.
_DUE_IN_RANGE = Fast(_DUE_LOTS.where(Lot.account_id.between(bindparam("lo"), bindparam("hi"))).order_by(*_ORDER))
_ALLOCATE = Fast(insert(LotAllocation).values(txn_id=bindparam("txn"), lot_id=bindparam("lot"),
                                              amount=bindparam("amount")))


def _next_accounts(conn: Connection, after: int, cutoff: datetime, batch_size: int) -> list[int]:
    """Wallets holding the next ``batch_size`` due lots, in account order (on SQLite the first and the last:
    it expires the range, under the write lock it already holds).

    Account order, not expiry order: a batch then covers whole wallets (one transaction, two
    entries and one balance update per wallet instead of one per lot's wallet), and walks the
    live-lots FIFO index (account, expiry) from a cursor, so no batch rescans the ones before.
    """
    params = {"after": after, "cutoff": cutoff, "limit": batch_size}
    if conn.dialect.name == "sqlite":
        return [a for a in conn.execute(_LAST_ACCOUNT, params).one() if a is not None]
    return list(conn.execute(_NEXT_ACCOUNTS, params).scalars())


def _of(accounts: list[int], dialect: str) -> ColumnElement[bool]:
    """The lots of these wallets: on SQLite (which holds the write lock already) the account range, one index walk."""
    if dialect == "sqlite":
        return Lot.account_id.between(accounts[0], accounts[-1])
    return among(Lot.account_id, accounts, dialect)


def _lock_and_read(conn: Connection, accounts: list[int], cutoff: datetime) -> list[tuple[int, int, int, int | None]]:
    """(lot id, account id, remaining, employee id) of every due lot of these wallets.

    The wallets are locked first (account, then lots, like every other writer) and the lots read
    after the lock, since a hold may have consumed some meanwhile; no other writer can change a due
    lot of a locked wallet until this transaction ends, so the same predicate updates them after.
    """
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return _DUE_IN_RANGE.run(conn, {"cutoff": cutoff, "lo": accounts[0], "hi": accounts[-1]}).rows  # type: ignore
    conn.execute(select(Account.id).where(among(Account.id, accounts, dialect)).order_by(Account.id)
                 .with_for_update()).all()
    q = _DUE_LOTS.where(among(Lot.account_id, accounts, dialect)).order_by(*_ORDER)
    return [tuple(r) for r in conn.execute(q, {"cutoff": cutoff})]  # type: ignore[misc]


def _expire_batch(db: Database, after: int, cutoff: datetime, now: datetime, batch_size: int,
                  result: ExpiryResult) -> int | None:
    """Expire the due lots of the next wallets from account ``after`` on; the next cursor, or None at the end."""
    with db.session_scope() as s:
        conn = s.connection()
        accounts = _next_accounts(conn, after, cutoff, batch_size)
        if not accounts:
            return None
        lots = _lock_and_read(conn, accounts, cutoff)
        if lots:
            _write_expiry(s, lots, accounts, cutoff, now, result)
        return accounts[-1] + 1


def _write_expiry(s: Session, lots: list[tuple[int, int, int, int | None]], accounts: list[int], cutoff: datetime,
                  now: datetime, result: ExpiryResult) -> None:
    by_account: dict[int, list[tuple[int, int]]] = defaultdict(list)
    owners: dict[int, int | None] = {}
    for lot_id, account_id, remaining, employee_id in lots:
        by_account[account_id].append((lot_id, int(remaining)))
        owners[account_id] = employee_id
    expired_id = Ledger(s, lambda: now).account(EXPIRED).id
    conn = s.connection()
    # The allocation watermark makes the key unique per ledger state: a lot restored after an
    # earlier expiry (a refund) can expire again at the same cutoff without a key clash.
    mark = conn.execute(select(func.max(LotAllocation.id))).scalar() or 0
    stamp = f"{cutoff:%Y%m%dT%H%M%S}:{mark}"
    txn_rows = [{"idem_key": f"expire:{acc}:{stamp}:{rows[0][0]}", "kind": TxnKind.EXPIRE, "employee_id": owners[acc],
                 "amount": -sum(r for _, r in rows), "actor_id": None, "reason": memos.EXPIRED, "category": "expiry",
                 "created_at": now, "reverses_txn_id": None, "related_txn_id": None}
                for acc, rows in by_account.items()]
    txn_ids = insert_returning_ids(conn, Txn.__table__, txn_rows, "idem_key")
    count_txns(s, TxnKind.EXPIRE, len(txn_ids))
    entries: list[dict] = []
    allocations: list[dict] = []
    balances: dict[int, int] = {}
    for txn_id, (acc, rows) in zip(txn_ids, by_account.items()):
        total = sum(r for _, r in rows)
        entries += [{"txn_id": txn_id, "account_id": acc, "amount": -total},
                    {"txn_id": txn_id, "account_id": expired_id, "amount": total}]
        allocations += [{"txn": txn_id, "lot": lot_id, "amount": r} for lot_id, r in rows]
        balances[acc] = total
        owner = owners[acc] or 0
        result.per_employee[owner] = result.per_employee.get(owner, 0) + total
        result.points += total
    insert_rows(conn, Entry.__table__, entries)
    if conn.dialect.name == "postgresql":
        insert_rows(conn, LotAllocation.__table__, [{"txn_id": a["txn"], "lot_id": a["lot"], "amount": a["amount"]}
                                                    for a in allocations])
    else:
        _ALLOCATE.run(conn, allocations)
    # the lots just read, by the predicate that read them (no id list to send): the wallets are locked
    done = conn.execute(Lot.__table__.update().where(_DUE, _of(accounts, conn.dialect.name)).values(remaining=0),
                        {"cutoff": cutoff})
    if done.rowcount != len(lots):
        raise RuntimeError(f"expiry read {len(lots)} due lots but updated {done.rowcount}")
    subtract_from(conn, Account.__table__, "balance", balances)
    result.lots += len(lots)


def expire_due(db: Database, cutoff: datetime, *, now: datetime | None = None, batch_size: int = 1000,
               between_batches: Callable[[], None] = lambda: None, target_ms: float | None = None) -> ExpiryResult:
    """Expire every lot with ``expires_at <= cutoff``; safe to run twice or concurrently.

    Each wallet's due lots expire in one transaction of that run (a wallet is never split across
    batches), so a batch holds about ``batch_size`` lots, more only when its last wallet has more.
    With ``target_ms`` the size adapts: each batch is sized from the last one's time per lot to take
    about that long (a commit per 1,000 lots cost a third of a year-end expiry on SQLite).
    ``between_batches`` runs after each committed batch: the scheduler renews its claim there, and
    raises to stop at that boundary (a later run finishes the rest).
    """
    result, now, after, retried = ExpiryResult(), now or cutoff, 0, False
    while True:
        started, before = time.perf_counter(), result.lots
        try:
            cursor = _expire_batch(db, after, cutoff, now, batch_size, result)
        except IntegrityError:
            if retried:  # a concurrent run's key twice in a row: not a race any more
                raise
            retried = True  # a concurrent run took these lots first; re-read them (now empty)
            continue
        retried = False
        if cursor is None:
            return result
        after = cursor
        took_ms = (time.perf_counter() - started) * 1000
        result.longest_batch_ms = max(result.longest_batch_ms, took_ms)
        result.batches += 1
        if target_ms and result.lots > before:
            batch_size = _next_size(batch_size, result.lots - before, took_ms, target_ms)
        between_batches()


def _next_size(size: int, lots: int, took_ms: float, target_ms: float) -> int:
    """The batch size that would have taken ``target_ms``, moving at most ×2 or ÷2 a batch."""
    fits = int(lots * target_ms / max(took_ms, 0.1))
    return max(MIN_BATCH, min(MAX_BATCH, max(size // 2, min(size * 2, fits))))


def expired_between(db: Database, start: datetime, end: datetime) -> list[tuple[int, int, int]]:
    """(employee id, points expired in [start, end), wallet balance) of active employees: the expiry notices."""
    with db.session_scope() as s:
        rows = s.execute(select(Txn.employee_id, func.sum(-Txn.amount), Account.balance)
                         .join(Employee, Employee.id == Txn.employee_id)
                         .join(Account, (Account.employee_id == Txn.employee_id) & (Account.kind == AccountKind.WALLET))
                         .where(Txn.kind == TxnKind.EXPIRE, Txn.created_at >= start, Txn.created_at < end,
                                Employee.status == "active")
                         .group_by(Txn.employee_id, Account.balance)).all()
    return [(int(e), int(p or 0), int(b)) for e, p, b in rows]


def expiring_between(db: Database, start: datetime, end: datetime) -> list[tuple[int, int]]:
    """(employee id, points of live lots expiring in [start, end)) of active employees: the warnings."""
    with db.session_scope() as s:
        return [(int(e), int(p)) for e, p in s.execute(
            select(Account.employee_id, func.sum(Lot.remaining)).join(Account, Account.id == Lot.account_id)
            .join(Employee, Employee.id == Account.employee_id)
            .where(Lot.expires_at >= start, Lot.expires_at < end, Lot.remaining > 0, Account.kind == AccountKind.WALLET,
                   Employee.status == "active").group_by(Account.employee_id)).all()]
