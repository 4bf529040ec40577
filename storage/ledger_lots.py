"""Lot bookkeeping for the ledger: which lots a debit consumes and a refund restores.

Split from ledger.py to keep each module to one responsibility; only ``Ledger`` uses it, always
after the account gate has been taken (so the account row serialises every writer of the lots).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, func, literal_column, select, update

from storage.errors import LedgerCorrupt
from storage.fastsql import Fast
from storage.models import Account, Lot, LotAllocation, Txn
from storage import memos

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

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
ISSUANCE, HOLD, REDEEMED, EXPIRED = "system:issuance", "system:redemption_hold", "system:redeemed", "system:expired"


@dataclass(frozen=True)
class Slice:
    lot_id: int
    amount: int


class LotsMixin:
    s: "Session"

    def _consume_lots(self, wallet_id: int, amount: int, txn_id: int, prefer_lot: int | None = None) -> list[Slice]:
        """Take ``amount`` from the wallet's lots, earliest expiry first (after the gate).

        Core statements on the session's connection: this runs while the wallet row (on SQLite the
        whole database) is locked, so every statement here delays the next writer. Lots are read a
        few at a time through the live-lots index: a long-lived wallet has hundreds of spent lots.
        """
        conn = self.s.connection()
        slices: list[Slice] = []
        left = amount
        if prefer_lot is not None:
            rows = _PREFERRED.run(conn, {"lot": prefer_lot, "acc": wallet_id}).rows
            if rows:
                left = self._take(conn, rows[0][0], min(left, int(rows[0][1])), slices, left)
        while left:
            # Each pass empties every lot it reads but the last, and emptied lots leave the live
            # index, so the next pass simply reads the next chunk.
            rows = _FIFO.run(conn, {"acc": wallet_id}).rows
            if not rows:
                raise LedgerCorrupt(f"wallet {wallet_id} balance exceeds its lots by {left}")
            for lot_id, remaining in rows:
                if not left:
                    break
                left = self._take(conn, lot_id, min(left, int(remaining)), slices, left)
        _INSERT_ALLOCS.run(conn, [{"txn_id": txn_id, "lot_id": sl.lot_id, "amount": sl.amount} for sl in slices])
        return slices

    @staticmethod
    def _take(conn: "Connection", lot_id: int, take: int, slices: list[Slice], left: int) -> int:
        if _TAKE.run(conn, {"lot": lot_id, "take": take}).rowcount != 1:
            raise LedgerCorrupt(f"lot {lot_id} changed under the account lock")
        slices.append(Slice(lot_id, take))
        return left - take

    def _restore_lots(self, slices: list[Slice], txn: Txn) -> None:
        """Give slices back to the very lots they came from (the caller credits the wallet)."""
        for sl in slices:
            self._update(update(Lot).where(Lot.id == sl.lot_id).values(remaining=Lot.remaining + sl.amount))
            self.s.add(LotAllocation(txn_id=txn.id, lot_id=sl.lot_id, amount=-sl.amount))

    def _split_past(self, slices: list[Slice]) -> tuple[list[Slice], list[Slice]]:
        """(slices whose lot is still valid, slices whose lot is past expiry now)."""
        if not slices:
            return [], []
        now = self.clock()
        expiry = dict(self.s.execute(select(Lot.id, Lot.expires_at).where(Lot.id.in_([sl.lot_id for sl in slices]))).all())
        live = [sl for sl in slices if expiry[sl.lot_id] > now]
        return live, [sl for sl in slices if expiry[sl.lot_id] <= now]

    def _allocations(self, txn_id: int) -> list[Slice]:
        rows = self.s.execute(select(LotAllocation.lot_id, func.sum(LotAllocation.amount))
                              .where(LotAllocation.txn_id == txn_id).group_by(LotAllocation.lot_id)
                              .order_by(LotAllocation.lot_id)).all()
        return [Slice(lot_id, int(total)) for lot_id, total in rows if total]

    def _credit_wallet_new_lot(self, wallet: Account, amount: int, txn: Txn) -> Lot:
        self._credit(wallet, amount)
        now = self.clock()
        lot = Lot(account_id=wallet.id, txn_id=txn.id, amount=amount, remaining=amount, earned_at=now,
                  expires_at=now + self.validity)
        self.s.add(lot)
        return lot

    def _expire_slices(self, wallet: Account, slices: list[Slice], idem_key: str, related: Txn) -> Txn | None:
        total = sum(s.amount for s in slices)
        if not total:
            return None
        txn = self._new_txn(idem_key, "expire", wallet.employee_id, -total, reason=memos.EXPIRED_AFTER_REFUND, related=related.id)
        self._gate_debit(wallet.id, total)
        for sl in slices:
            self._update(update(Lot).where(Lot.id == sl.lot_id).values(remaining=Lot.remaining - sl.amount))
            self.s.add(LotAllocation(txn_id=txn.id, lot_id=sl.lot_id, amount=sl.amount))
        self._entry(txn, wallet, -total)
        self._entry(txn, self.account(EXPIRED), total)
        return txn

