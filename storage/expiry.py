"""Set-based, batched expiry of due lots (reliability.md §2.3).

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

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.db import Database
from storage.ledger import EXPIRED, Ledger
from storage.models import Account, Entry, Lot, LotAllocation, Txn


@dataclass
class ExpiryResult:
    lots: int = 0
    points: int = 0
    batches: int = 0
    longest_batch_ms: float = 0.0
    per_employee: dict[int, int] = field(default_factory=dict)


def _due_ids(db: Database, cutoff: datetime, batch_size: int) -> list[int]:
    """The next due lots. Expired lots drop out of ``remaining > 0`` (and out of the partial
    index ``ix_lots_live``), so no cursor is needed and each batch is an index range scan."""
    with db.session_scope() as s:
        return list(s.scalars(select(Lot.id).where(Lot.expires_at <= cutoff, Lot.remaining > 0)
                              .order_by(Lot.expires_at, Lot.id).limit(batch_size)))


def _lock_and_read(s: Session, ids: list[int], cutoff: datetime) -> list[tuple[int, int, int, int | None]]:
    """(lot id, account id, remaining, employee id) of the batch, locked in the house order.

    SQLite already holds the database write lock (BEGIN IMMEDIATE), so it reads the due lots in one
    indexed query. Elsewhere the wallets are locked first (account, then lots, like every other
    writer) and the lots re-read, since a hold may have consumed some meanwhile.
    """
    cols = (Lot.id, Lot.account_id, Lot.remaining, Account.employee_id)
    if s.get_bind().dialect.name == "sqlite":
        return [tuple(r) for r in s.execute(select(*cols).join(Account, Account.id == Lot.account_id)
                                            .where(Lot.expires_at <= cutoff, Lot.remaining > 0)
                                            .order_by(Lot.expires_at, Lot.id).limit(len(ids)))]
    accounts = sorted(set(s.scalars(select(Lot.account_id).where(Lot.id.in_(ids)))))
    s.execute(select(Account.id).where(Account.id.in_(accounts)).order_by(Account.id).with_for_update()).all()
    return [tuple(r) for r in s.execute(select(*cols).join(Account, Account.id == Lot.account_id)
                                        .where(Lot.id.in_(ids), Lot.remaining > 0, Lot.expires_at <= cutoff))]


def _new_txn_ids(s: Session, txn_rows: list[dict]) -> list[int]:
    """Insert the batch's transactions with one executemany and return their ids in order.

    On SQLite we hold the only write lock, so ids are assigned explicitly from max(id) (RETURNING
    would go row by row); other engines look the new rows up by their unique keys.
    """
    conn = s.connection()
    if s.get_bind().dialect.name == "sqlite":
        first = (s.scalar(select(func.max(Txn.id))) or 0) + 1
        for i, row in enumerate(txn_rows):
            row["id"] = first + i
        conn.execute(Txn.__table__.insert(), txn_rows)
        return [r["id"] for r in txn_rows]
    conn.execute(Txn.__table__.insert(), txn_rows)
    by_key = dict(s.execute(select(Txn.idem_key, Txn.id).where(Txn.idem_key.in_([r["idem_key"] for r in txn_rows]))).all())
    return [by_key[r["idem_key"]] for r in txn_rows]


def _expire_batch(db: Database, ids: list[int], cutoff: datetime, now: datetime, result: ExpiryResult) -> None:
    with db.session_scope() as s:
        lots = _lock_and_read(s, ids, cutoff)
        if not lots:
            return
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
        txn_rows = [{"idem_key": f"expire:{acc}:{stamp}:{rows[0][0]}", "kind": "expire", "employee_id": owners[acc],
                     "amount": -sum(r for _, r in rows), "actor_id": None, "reason": "积分到期", "category": "expiry",
                     "created_at": now, "reverses_txn_id": None, "related_txn_id": None}
                    for acc, rows in by_account.items()]
        txn_ids = _new_txn_ids(s, txn_rows)
        entries, allocations, balances = [], [], []
        for txn_id, (acc, rows) in zip(txn_ids, by_account.items()):
            total = sum(r for _, r in rows)
            entries += [{"txn_id": txn_id, "account_id": acc, "amount": -total},
                        {"txn_id": txn_id, "account_id": expired_id, "amount": total}]
            allocations += [{"txn_id": txn_id, "lot_id": lot_id, "amount": r} for lot_id, r in rows]
            balances.append({"acc": acc, "total": total})
            owner = owners[acc] or 0
            result.per_employee[owner] = result.per_employee.get(owner, 0) + total
            result.points += total
        conn = s.connection()
        conn.execute(Entry.__table__.insert(), entries)
        conn.execute(LotAllocation.__table__.insert(), allocations)
        conn.execute(Lot.__table__.update().where(Lot.__table__.c.id.in_([lot[0] for lot in lots])).values(remaining=0))
        conn.execute(update(Account.__table__).where(Account.__table__.c.id == bindparam("acc"))
                     .values(balance=Account.__table__.c.balance - bindparam("total")), balances)
        result.lots += len(lots)


def expire_due(db: Database, cutoff: datetime, *, now: datetime | None = None, batch_size: int = 1000) -> ExpiryResult:
    """Expire every lot with ``expires_at <= cutoff``; safe to run twice or concurrently."""
    result, now, previous = ExpiryResult(), now or cutoff, None
    while True:
        ids = _due_ids(db, cutoff, batch_size)
        if not ids or ids == previous:  # nothing left, or a batch that cannot make progress
            return result
        previous = ids
        started = time.perf_counter()
        try:
            _expire_batch(db, ids, cutoff, now, result)
        except IntegrityError:
            pass  # a concurrent run took this batch; its lots now have remaining = 0
        result.longest_batch_ms = max(result.longest_batch_ms, (time.perf_counter() - started) * 1000)
        result.batches += 1
