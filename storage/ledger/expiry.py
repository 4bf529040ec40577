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

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.db import Database, count_txns
from storage.kinds import AccountKind, TxnKind
from storage.ledger import EXPIRED, Ledger
from storage.ledger.lots import LIVE
from storage.manyrows import among, insert_returning_ids, insert_rows, subtract_from
from storage.models import Account, Employee, Entry, Lot, LotAllocation, Txn
from storage import memos


@dataclass
class ExpiryResult:
    lots: int = 0
    points: int = 0
    batches: int = 0
    longest_batch_ms: float = 0.0
    per_employee: dict[int, int] = field(default_factory=dict)


def _next_accounts(s: Session, after: int, cutoff: datetime, batch_size: int) -> list[int]:
    """Wallets holding the next ``batch_size`` due lots, in account order.

    Account order, not expiry order: a batch then covers whole wallets (one transaction, two
    entries and one balance update per wallet instead of one per lot's wallet), and walks the
    live-lots FIFO index (account, expiry) from a cursor, so no batch rescans the ones before.
    """
    rows = s.execute(select(Lot.account_id).where(Lot.account_id >= after, Lot.expires_at <= cutoff,
                                                  Lot.remaining > LIVE)
                     .order_by(Lot.account_id, Lot.expires_at, Lot.id).limit(batch_size)).scalars()
    return sorted(set(rows))


def _lock_and_read(s: Session, accounts: list[int], cutoff: datetime) -> list[tuple[int, int, int, int | None]]:
    """(lot id, account id, remaining, employee id) of every due lot of these wallets.

    The wallets are locked first (account, then lots, like every other writer) and the lots read
    after the lock, since a hold may have consumed some meanwhile. SQLite holds the database write
    lock already (BEGIN IMMEDIATE) and reads the whole account range in one indexed query.
    """
    cols = (Lot.id, Lot.account_id, Lot.remaining, Account.employee_id)
    q = select(*cols).join(Account, Account.id == Lot.account_id).where(Lot.expires_at <= cutoff, Lot.remaining > LIVE)
    dialect = s.get_bind().dialect.name
    if dialect == "sqlite":
        q = q.where(Lot.account_id.between(accounts[0], accounts[-1]))
    else:
        s.execute(select(Account.id).where(among(Account.id, accounts, dialect)).order_by(Account.id)
                  .with_for_update()).all()
        q = q.where(among(Lot.account_id, accounts, dialect))
    return [tuple(r) for r in s.execute(q.order_by(Lot.account_id, Lot.expires_at, Lot.id))]  # type: ignore[misc]


def _expire_batch(db: Database, after: int, cutoff: datetime, now: datetime, batch_size: int,
                  result: ExpiryResult) -> int | None:
    """Expire the due lots of the next wallets from account ``after`` on; the next cursor, or None at the end."""
    with db.session_scope() as s:
        accounts = _next_accounts(s, after, cutoff, batch_size)
        if not accounts:
            return None
        lots = _lock_and_read(s, accounts, cutoff)
        if lots:
            _write_expiry(s, lots, cutoff, now, result)
        return accounts[-1] + 1


def _write_expiry(s: Session, lots: list[tuple[int, int, int, int | None]], cutoff: datetime, now: datetime,
                  result: ExpiryResult) -> None:
    by_account: dict[int, list[tuple[int, int]]] = defaultdict(list)
    owners: dict[int, int | None] = {}
    for lot_id, account_id, remaining, employee_id in lots:
        by_account[account_id].append((lot_id, int(remaining)))
        owners[account_id] = employee_id
    expired_id = Ledger(s, lambda: now).account(EXPIRED).id
    # The allocation watermark makes the key unique per ledger state: a lot restored after an
    # earlier expiry (a refund) can expire again at the same cutoff without a key clash.
    mark = s.scalar(select(func.max(LotAllocation.id))) or 0
    stamp = f"{cutoff:%Y%m%dT%H%M%S}:{mark}"
    txn_rows = [{"idem_key": f"expire:{acc}:{stamp}:{rows[0][0]}", "kind": TxnKind.EXPIRE, "employee_id": owners[acc],
                 "amount": -sum(r for _, r in rows), "actor_id": None, "reason": memos.EXPIRED, "category": "expiry",
                 "created_at": now, "reverses_txn_id": None, "related_txn_id": None}
                for acc, rows in by_account.items()]
    conn = s.connection()
    txn_ids = insert_returning_ids(conn, Txn.__table__, txn_rows, "idem_key")
    count_txns(s, TxnKind.EXPIRE, len(txn_ids))
    entries: list[dict] = []
    allocations: list[dict] = []
    balances: dict[int, int] = {}
    for txn_id, (acc, rows) in zip(txn_ids, by_account.items()):
        total = sum(r for _, r in rows)
        entries += [{"txn_id": txn_id, "account_id": acc, "amount": -total},
                    {"txn_id": txn_id, "account_id": expired_id, "amount": total}]
        allocations += [{"txn_id": txn_id, "lot_id": lot_id, "amount": r} for lot_id, r in rows]
        balances[acc] = total
        owner = owners[acc] or 0
        result.per_employee[owner] = result.per_employee.get(owner, 0) + total
        result.points += total
    insert_rows(conn, Entry.__table__, entries)
    insert_rows(conn, LotAllocation.__table__, allocations)
    conn.execute(Lot.__table__.update().where(among(Lot.__table__.c.id, [lot[0] for lot in lots], conn.dialect.name))
                 .values(remaining=0))
    subtract_from(conn, Account.__table__, "balance", balances)
    result.lots += len(lots)


def expire_due(db: Database, cutoff: datetime, *, now: datetime | None = None, batch_size: int = 1000,
               between_batches: Callable[[], None] = lambda: None) -> ExpiryResult:
    """Expire every lot with ``expires_at <= cutoff``; safe to run twice or concurrently.

    Each wallet's due lots expire in one transaction of that run (a wallet is never split across
    batches), so a batch holds about ``batch_size`` lots, more only when its last wallet has more.
    ``between_batches`` runs after each committed batch: the scheduler renews its claim there, and
    raises to stop at that boundary (a later run finishes the rest).
    """
    result, now, after, retried = ExpiryResult(), now or cutoff, 0, False
    while True:
        started = time.perf_counter()
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
        result.longest_batch_ms = max(result.longest_batch_ms, (time.perf_counter() - started) * 1000)
        result.batches += 1
        between_batches()


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
