"""Lots: which lots a debit consumes (earliest expiry first), a refund restores, an award creates.

Every function here runs after the account gate (storage/ledger/debit.py) has been taken, so the
account row serialises every writer of that wallet's lots and the lots need no lock order of
their own. The consuming path runs prebuilt statements (storage/fastsql.py) because it runs
while the wallet row (on SQLite the whole database) is locked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, bindparam, func, literal_column, select, update

from storage.errors import LedgerCorrupt
from storage.fastsql import Fast
from storage.ledger import books
from storage.models import Account, Lot, LotAllocation, Txn

if TYPE_CHECKING:
    from storage.ledger import Ledger

LOT_CHUNK = 20
_LOTS, _ALLOCS = Lot.__table__, LotAllocation.__table__
# A literal, not a bound parameter: only then can PostgreSQL and SQLite prove the query matches the
# partial index of live lots (``remaining > 0``) when they plan it.
LIVE = literal_column("0")
_TAKE = Fast(_LOTS.update().where(_LOTS.c.id == bindparam("lot"), _LOTS.c.remaining >= bindparam("take"))
             .values(remaining=_LOTS.c.remaining - bindparam("take")))
_FIFO = Fast(select(_LOTS.c.id, _LOTS.c.remaining).where(_LOTS.c.account_id == bindparam("acc"), _LOTS.c.remaining > LIVE)
             .order_by(_LOTS.c.expires_at, _LOTS.c.id).limit(LOT_CHUNK).with_for_update())
_PREFERRED = Fast(select(_LOTS.c.id, _LOTS.c.remaining).where(
    _LOTS.c.id == bindparam("lot"), _LOTS.c.account_id == bindparam("acc"), _LOTS.c.remaining > LIVE).with_for_update())
_INSERT_ALLOCS = Fast(_ALLOCS.insert().values(txn_id=bindparam("txn_id"), lot_id=bindparam("lot_id"),
                                              amount=bindparam("amount")))


@dataclass(frozen=True)
class Slice:
    lot_id: int
    amount: int


def consume(lg: Ledger, wallet_id: int, amount: int, txn_id: int, prefer_lot: int | None = None) -> list[Slice]:
    """Take ``amount`` from the wallet's lots, earliest expiry first (after the gate).

    Lots are read a few at a time through the live-lots index: a long-lived wallet has hundreds
    of spent lots.
    """
    conn = lg.s.connection()
    slices: list[Slice] = []
    left = amount
    if prefer_lot is not None:
        rows = _PREFERRED.run(conn, {"lot": prefer_lot, "acc": wallet_id}).rows
        if rows:
            left = _take(conn, rows[0][0], min(left, int(rows[0][1])), slices, left)
    while left:
        # Each pass empties every lot it reads but the last, and emptied lots leave the live
        # index, so the next pass simply reads the next chunk.
        rows = _FIFO.run(conn, {"acc": wallet_id}).rows
        if not rows:
            raise LedgerCorrupt(f"wallet {wallet_id} balance exceeds its lots by {left}")
        for lot_id, remaining in rows:
            if not left:
                break
            left = _take(conn, lot_id, min(left, int(remaining)), slices, left)
    _INSERT_ALLOCS.run(conn, [{"txn_id": txn_id, "lot_id": sl.lot_id, "amount": sl.amount} for sl in slices])
    return slices


def _take(conn: Connection, lot_id: int, take: int, slices: list[Slice], left: int) -> int:
    if _TAKE.run(conn, {"lot": lot_id, "take": take}).rowcount != 1:
        raise LedgerCorrupt(f"lot {lot_id} changed under the account lock")
    slices.append(Slice(lot_id, take))
    return left - take


def restore(lg: Ledger, slices: list[Slice], txn: Txn) -> None:
    """Give slices back to the very lots they came from (the caller credits the wallet)."""
    for sl in slices:
        lg.s.execute(update(Lot).where(Lot.id == sl.lot_id).values(remaining=Lot.remaining + sl.amount),
                     execution_options={"synchronize_session": False})
        lg.s.add(LotAllocation(txn_id=txn.id, lot_id=sl.lot_id, amount=-sl.amount))


def split_past(lg: Ledger, slices: list[Slice]) -> tuple[list[Slice], list[Slice]]:
    """(slices whose lot is still valid, slices whose lot is past expiry now)."""
    if not slices:
        return [], []
    now = lg.clock()
    expiry = dict(lg.s.execute(select(Lot.id, Lot.expires_at).where(Lot.id.in_([sl.lot_id for sl in slices]))).all())
    live = [sl for sl in slices if expiry[sl.lot_id] > now]
    return live, [sl for sl in slices if expiry[sl.lot_id] <= now]


def allocations(lg: Ledger, txn_id: int) -> list[Slice]:
    """What a transaction took from each lot, net of what was given back since."""
    rows = lg.s.execute(select(LotAllocation.lot_id, func.sum(LotAllocation.amount))
                        .where(LotAllocation.txn_id == txn_id).group_by(LotAllocation.lot_id)
                        .order_by(LotAllocation.lot_id)).all()
    return [Slice(lot_id, int(total)) for lot_id, total in rows if total]


def credit_new_lot(lg: Ledger, wallet: Account, amount: int, txn: Txn) -> Lot:
    """Credit a wallet with a new lot valid ``validity_days`` from now."""
    books.credit(lg, wallet, amount)
    now = lg.clock()
    lot = Lot(account_id=wallet.id, txn_id=txn.id, amount=amount, remaining=amount, earned_at=now,
              expires_at=now + lg.validity)
    lg.s.add(lot)
    return lot



def take_back(lg: Ledger, slices: list[Slice], txn: Txn) -> None:
    """Take slices out of their lots again (the caller has gated the wallet): expiring restored slices."""
    for sl in slices:
        lg.s.execute(update(Lot).where(Lot.id == sl.lot_id).values(remaining=Lot.remaining - sl.amount),
                     execution_options={"synchronize_session": False})
        lg.s.add(LotAllocation(txn_id=txn.id, lot_id=sl.lot_id, amount=sl.amount))
