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
from typing import Callable, NamedTuple

from sqlalchemy import ColumnElement, Connection, String, bindparam, cast, func, insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.db import Database, count_txns
from storage.kinds import AccountKind, TxnKind
from storage.ledger import EXPIRED, Ledger
from storage.ledger.lots import LIVE
from storage.manyrows import among, insert_returning_ids, insert_rows, subtract_from
from storage.models import Account, Employee, Entry, Lot, LotAllocation, Txn
from storage import memos


MIN_BATCH, MAX_BATCH = 200, 20_000  # lots per transaction when the size adapts (expire_due's target_ms)
SPAN = 1_000  # account ids one search for due lots walks (_find)


@dataclass
class ExpiryResult:
    lots: int = 0
    points: int = 0
    batches: int = 0
    longest_batch_ms: float = 0.0
    per_employee: dict[int, int] = field(default_factory=dict)


_DUE = (Lot.expires_at <= bindparam("cutoff")) & (Lot.remaining > LIVE)
_NEXT_LOTS = select(Lot.account_id).where(Lot.account_id >= bindparam("after"), Lot.account_id < bindparam("until"),
                                          _DUE) \
    .order_by(Lot.account_id, Lot.expires_at, Lot.id).limit(bindparam("limit")).subquery()
_NEXT_ACCOUNTS = select(_NEXT_LOTS.c.account_id).distinct().order_by(_NEXT_LOTS.c.account_id)
_LAST_ACCOUNT = select(func.min(_NEXT_LOTS.c.account_id), func.max(_NEXT_LOTS.c.account_id))
# Per wallet, not per lot: a year-end expiry moves millions of lots, and every lot handled in Python (read,
# bound, written back) cost more than SQLite's own work on it. The lots stay in the database: their sums are
# read per wallet, and the allocations and the new remainders are written by the predicate that summed them.
_WALLETS = select(Lot.account_id, Account.employee_id, func.sum(Lot.remaining), func.count(Lot.id)) \
    .join(Account, Account.id == Lot.account_id).where(_DUE).group_by(Lot.account_id, Account.employee_id) \
    .order_by(Lot.account_id)


class Wallet(NamedTuple):
    account_id: int
    employee_id: int | None
    points: int
    lots: int


def _next_accounts(conn: Connection, after: int, until: int, cutoff: datetime, batch_size: int) -> list[int]:
    """Wallets in [after, until) holding the next ``batch_size`` due lots, in account order (on SQLite the
    first and the last: it expires the range).

    Account order, not expiry order: a batch then covers whole wallets (one transaction, two
    entries and one balance update per wallet instead of one per lot's wallet), and walks the
    live-lots FIFO index (account, expiry) from a cursor, so no batch rescans the ones before.
    """
    params = {"after": after, "until": until, "cutoff": cutoff, "limit": batch_size}
    if conn.dialect.name == "sqlite":
        return [a for a in conn.execute(_LAST_ACCOUNT, params).one() if a is not None]
    return list(conn.execute(_NEXT_ACCOUNTS, params).scalars())


def _find(db: Database, after: int, last: int, cutoff: datetime, batch_size: int) -> list[int] | None:
    """The next batch's wallets, searched ``SPAN`` account ids at a time in read transactions.

    On a day when few lots are due the walk passes every live lot: in one transaction it held
    SQLite's write lock for 700 ms at 5,000,000 live lots; in spans no read takes long, and the write
    transaction starts only once there is something to expire (it sums the lots again under its lock).
    """
    while after <= last:
        with db.read_scope() as s:
            accounts = _next_accounts(s.connection(), after, after + SPAN, cutoff, batch_size)
        if accounts:
            return accounts
        after += SPAN
    return None


def _of(accounts: list[int], dialect: str) -> ColumnElement[bool]:
    """The lots of these wallets: on SQLite (which holds the write lock already) the account range, one index walk."""
    if dialect == "sqlite":
        return Lot.account_id.between(accounts[0], accounts[-1])
    return among(Lot.account_id, accounts, dialect)


def _lock_and_sum(conn: Connection, accounts: list[int], cutoff: datetime) -> list[Wallet]:
    """Each of these wallets with its due lots' points and count.

    The wallets are locked first (account, then lots, like every other writer) and the lots read
    after the lock, since a hold may have consumed some meanwhile; no other writer can change a due
    lot of a locked wallet until this transaction ends, so the same predicate writes them after.
    """
    dialect = conn.dialect.name
    if dialect != "sqlite":  # SQLite holds the database's write lock already (BEGIN IMMEDIATE)
        conn.execute(select(Account.id).where(among(Account.id, accounts, dialect)).order_by(Account.id)
                     .with_for_update()).all()
    rows = conn.execute(_WALLETS.where(_of(accounts, dialect)), {"cutoff": cutoff})
    return [Wallet(a, e, int(points), int(n)) for a, e, points, n in rows]


def _expire_batch(db: Database, accounts: list[int], cutoff: datetime, now: datetime, result: ExpiryResult) -> None:
    """Expire the due lots of these wallets, in one transaction."""
    with db.session_scope() as s:
        wallets = _lock_and_sum(s.connection(), accounts, cutoff)
        if wallets:
            _write_expiry(s, wallets, accounts, cutoff, now, result)


def _write_expiry(s: Session, wallets: list[Wallet], accounts: list[int], cutoff: datetime, now: datetime,
                  result: ExpiryResult) -> None:
    expired_id = Ledger(s, lambda: now).account(EXPIRED).id
    conn = s.connection()
    # expire:<wallet>:<cutoff>:<allocation watermark> is unique per wallet and ledger state: a wallet is in one
    # batch of a run, every batch raises the watermark, and a lot restored after an earlier expiry (a refund)
    # can expire again at the same cutoff without a key clash; a concurrent run of the same batch clashes.
    mark = conn.execute(select(func.max(LotAllocation.id))).scalar() or 0
    stamp = f"{cutoff:%Y%m%dT%H%M%S}:{mark}"
    txn_ids = insert_returning_ids(conn, Txn.__table__, [
        {"idem_key": f"expire:{w.account_id}:{stamp}", "kind": TxnKind.EXPIRE,
         "employee_id": w.employee_id, "amount": -w.points, "actor_id": None, "reason": memos.EXPIRED,
         "category": "expiry", "created_at": now, "reverses_txn_id": None, "related_txn_id": None}
        for w in wallets], "idem_key")
    count_txns(s, TxnKind.EXPIRE, len(txn_ids))
    insert_rows(conn, Entry.__table__, [{"txn_id": txn, "account_id": account, "amount": amount}
                                        for txn, w in zip(txn_ids, wallets)
                                        for account, amount in ((w.account_id, -w.points), (expired_id, w.points))])
    due, lots = (_DUE, _of(accounts, conn.dialect.name)), sum(w.lots for w in wallets)
    # each lot finds its wallet's new transaction by the key (a CASE over the batch's wallets cost a comparison per
    # wallet for every lot: 10,000 lots x 100 wallets a batch)
    key = literal("expire:") + cast(Lot.account_id, String) + literal(f":{stamp}")
    slices = select(Txn.id, Lot.id, Lot.remaining).join(Txn, Txn.idem_key == key).where(*due)
    if conn.dialect.name == "postgresql":  # else it hashed every ledger transaction to find the batch's few
        slices = slices.where(among(Txn.id, txn_ids, "postgresql"))
    allocate = insert(LotAllocation).from_select(["txn_id", "lot_id", "amount"], slices)
    # an INSERT's row count is kept only when asked for
    allocated = conn.execute(allocate.execution_options(preserve_rowcount=True), {"cutoff": cutoff})
    emptied = conn.execute(Lot.__table__.update().where(*due).values(remaining=0), {"cutoff": cutoff})
    if allocated.rowcount != lots or emptied.rowcount != lots:  # not the lots summed: roll the batch back
        raise RuntimeError(f"expiry summed {lots} due lots but allocated {allocated.rowcount} "
                           f"and emptied {emptied.rowcount}")
    subtract_from(conn, Account.__table__, "balance", {w.account_id: w.points for w in wallets})
    for w in wallets:
        owner = w.employee_id or 0
        result.per_employee[owner] = result.per_employee.get(owner, 0) + w.points
    result.points += sum(w.points for w in wallets)
    result.lots += lots


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
    with db.read_scope() as s:
        last = s.connection().execute(select(func.max(Account.id))).scalar() or 0
    while (accounts := _find(db, after, last, cutoff, batch_size)) is not None:
        started, before = time.perf_counter(), result.lots
        try:
            _expire_batch(db, accounts, cutoff, now, result)
        except IntegrityError:
            if retried:  # a concurrent run's key twice in a row: not a race any more
                raise
            retried = True  # a concurrent run took these lots first; read them again (now empty)
            continue
        retried = False
        after = accounts[-1] + 1
        took_ms = (time.perf_counter() - started) * 1000
        result.longest_batch_ms = max(result.longest_batch_ms, took_ms)
        result.batches += 1
        if target_ms and result.lots > before:
            batch_size = _next_size(batch_size, result.lots - before, took_ms, target_ms)
        between_batches()
    return result


def _next_size(size: int, lots: int, took_ms: float, target_ms: float) -> int:
    """The batch size that would have taken ``target_ms``, growing at most ×1.5 and shrinking at most ÷2 a batch
    (a commit now and then takes three times its usual time: a batch grown fast would then be the longest)."""
    fits = int(lots * target_ms / max(took_ms, 0.1))
    return max(MIN_BATCH, min(MAX_BATCH, max(size // 2, min(size * 3 // 2, fits))))


# The notices' reads go in pages, each its own short read transaction: a year-end expiry leaves 100,000
# expiry transactions in one day, and one read of them all held a transaction for 400 ms (Speed: none over 250).
# A page reads its own table alone (joined, SQLite walked all employees first); who is active, and the wallet
# balances, are read for the page's people after.
PAGE = 5_000
_EXPIRED_PAGE = select(Txn.id, Txn.employee_id, -Txn.amount) \
    .where(Txn.id > bindparam("after"), Txn.kind == TxnKind.EXPIRE, Txn.created_at >= bindparam("start"),
           Txn.created_at < bindparam("end"), Txn.employee_id.is_not(None)).order_by(Txn.id).limit(bindparam("limit"))
_FIRST_TXN = select(func.min(Txn.id)).where(Txn.created_at >= bindparam("start"), Txn.created_at < bindparam("end"))
_AT, _LOT = bindparam("at"), bindparam("lot")
_EXPIRING_PAGE = select(Lot.expires_at, Lot.id, Lot.account_id, Lot.remaining) \
    .where(Lot.remaining > LIVE, Lot.expires_at >= _AT, Lot.expires_at < bindparam("end"),
           (Lot.expires_at > _AT) | (Lot.id > _LOT)).order_by(Lot.expires_at, Lot.id).limit(bindparam("limit"))
_ACTIVE_WALLETS = select(Account.id, Account.employee_id, Account.balance) \
    .join(Employee, Employee.id == Account.employee_id) \
    .where(Account.kind == AccountKind.WALLET, Employee.status == "active")


def _active_wallets(conn: Connection, column: ColumnElement[int], ids: set[int]) -> list[tuple[int, int, int]]:
    """(account id, employee id, balance) of the active employees' wallets among ``ids`` of ``column``."""
    rows = conn.execute(_ACTIVE_WALLETS.where(among(column, sorted(ids), conn.dialect.name)))
    return [(int(a), int(e), int(b)) for a, e, b in rows]


def expired_between(db: Database, start: datetime, end: datetime, page: int = PAGE) -> list[tuple[int, int, int]]:
    """(employee id, points expired in [start, end), wallet balance) of active employees: the expiry notices."""
    with db.read_scope() as s:
        first = s.connection().execute(_FIRST_TXN, {"start": start, "end": end}).scalar()
    points: dict[int, int] = defaultdict(int)
    balances: dict[int, int] = {}
    after = (first or 1) - 1
    while first is not None:
        with db.read_scope() as s:
            conn = s.connection()
            rows = conn.execute(_EXPIRED_PAGE, {"after": after, "start": start, "end": end, "limit": page}).all()
            if rows:
                balances |= {e: int(b) for _, e, b in _active_wallets(conn, Account.employee_id, {r[1] for r in rows})}
        for _, employee_id, expired in rows:
            if employee_id in balances:
                points[employee_id] += int(expired)
        if len(rows) < page:
            break
        after = rows[-1][0]
    return [(e, p, balances[e]) for e, p in sorted(points.items())]


def expiring_per_wallet(db: Database, start: datetime, end: datetime, page: int = PAGE) -> dict[int, int]:
    """Points of live lots expiring in [start, end) per wallet (account id), paged along the live lots' expiry
    index, so even a year-end date on which every lot expires reads in short transactions."""
    points: dict[int, int] = defaultdict(int)
    at, lot = start, 0
    while True:
        with db.read_scope() as s:
            rows = s.connection().execute(_EXPIRING_PAGE, {"at": at, "lot": lot, "end": end, "limit": page}).all()
        for _, _, account_id, remaining in rows:
            points[account_id] += int(remaining)
        if len(rows) < page:
            return dict(points)
        at, lot = rows[-1][0], rows[-1][1]


def expiring_between(db: Database, start: datetime, end: datetime, page: int = PAGE) -> list[tuple[int, int]]:
    """(employee id, points of live lots expiring in [start, end)) of active employees: the warnings."""
    per_wallet = expiring_per_wallet(db, start, end, page)
    ids, owners = sorted(per_wallet), {}
    for i in range(0, len(ids), page):
        with db.read_scope() as s:
            owners |= {a: e for a, e, _ in _active_wallets(s.connection(), Account.id, set(ids[i:i + page]))}
    points: dict[int, int] = defaultdict(int)
    for account_id, remaining in per_wallet.items():
        if account_id in owners:
            points[owners[account_id]] += remaining
    return sorted(points.items())
