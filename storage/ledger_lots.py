"""Lot bookkeeping for the ledger: which lots a debit consumes and a refund restores.

Split from ledger.py to keep each module to one responsibility; only ``Ledger`` uses it, always
after the account gate has been taken (so the account row serialises every writer of the lots).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import and_, func, or_, select, update

from storage.errors import LedgerCorrupt
from storage.models import Account, Lot, LotAllocation, Txn

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

LOT_CHUNK = 20
ISSUANCE, HOLD, REDEEMED, EXPIRED = "system:issuance", "system:redemption_hold", "system:redeemed", "system:expired"


@dataclass(frozen=True)
class Slice:
    lot_id: int
    amount: int


class LotsMixin:
    s: "Session"

    def _consume_lots(self, wallet: Account, amount: int, txn: Txn, prefer_lot: int | None = None) -> list[Slice]:
        """Take ``amount`` from the wallet's lots, earliest expiry first (after the gate).

        Lots are read a few at a time: a long-lived wallet has hundreds of spent or live lots, and
        reading them all on every redemption made the hot path slow.
        """
        slices: list[Slice] = []
        left = amount
        if prefer_lot is not None:
            row = self.s.execute(select(Lot.id, Lot.remaining).where(Lot.id == prefer_lot, Lot.account_id == wallet.id,
                                                                     Lot.remaining > 0).with_for_update()).first()
            if row is not None:
                left = self._take(row[0], min(left, int(row[1])), txn, slices, left)
        cursor: tuple[datetime, int] | None = None
        while left:
            q = select(Lot.id, Lot.remaining, Lot.expires_at).where(Lot.account_id == wallet.id, Lot.remaining > 0)
            if prefer_lot is not None:
                q = q.where(Lot.id != prefer_lot)
            if cursor is not None:
                q = q.where(or_(Lot.expires_at > cursor[0], and_(Lot.expires_at == cursor[0], Lot.id > cursor[1])))
            rows = self.s.execute(q.order_by(Lot.expires_at, Lot.id).limit(LOT_CHUNK).with_for_update()).all()
            if not rows:
                raise LedgerCorrupt(f"wallet {wallet.id} balance exceeds its lots by {left}")
            for lot_id, remaining, _ in rows:
                if not left:
                    break
                left = self._take(lot_id, min(left, int(remaining)), txn, slices, left)
            cursor = (rows[-1][2], rows[-1][0])
        return slices

    def _take(self, lot_id: int, take: int, txn: Txn, slices: list[Slice], left: int) -> int:
        res = self._update(update(Lot).where(Lot.id == lot_id, Lot.remaining >= take)
                             .values(remaining=Lot.remaining - take))
        if res.rowcount != 1:
            raise LedgerCorrupt(f"lot {lot_id} changed under the account lock")
        self.s.add(LotAllocation(txn_id=txn.id, lot_id=lot_id, amount=take))
        slices.append(Slice(lot_id, take))
        return left - take

    def _restore_lots(self, wallet: Account, slices: list[Slice], txn: Txn) -> list[Slice]:
        """Give slices back to the very lots they came from; returns slices whose lot is past expiry."""
        now, past = self.clock(), []
        for sl in slices:
            self._update(update(Lot).where(Lot.id == sl.lot_id).values(remaining=Lot.remaining + sl.amount))
            self.s.add(LotAllocation(txn_id=txn.id, lot_id=sl.lot_id, amount=-sl.amount))
            lot = self.s.get(Lot, sl.lot_id)
            if lot is not None and lot.expires_at <= now:
                past.append(sl)
        return past

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
        txn = self._new_txn(idem_key, "expire", wallet.employee_id, -total, reason="过期", related=related.id)
        self._gate_debit(wallet, total)
        for sl in slices:
            self._update(update(Lot).where(Lot.id == sl.lot_id).values(remaining=Lot.remaining - sl.amount))
            self.s.add(LotAllocation(txn_id=txn.id, lot_id=sl.lot_id, amount=sl.amount))
        self._entry(txn, wallet, -total)
        self._entry(txn, self.account(EXPIRED), total)
        return txn

