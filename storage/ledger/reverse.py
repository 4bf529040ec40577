"""Reversals: undoing an award, a deduction or an expiry with a new transaction (never an edit)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from storage.errors import AlreadyReversed, NotReversible, UnknownTxn
from storage.kinds import AccountKind, TxnKind
from storage.ledger import books, debit, lots, reads, totals
from storage.ledger.books import EXPIRED, ISSUANCE
from storage.models import Account, Entry, Lot, Txn
from storage import memos

if TYPE_CHECKING:
    from storage.ledger import Ledger

REVERSIBLE_KINDS = (TxnKind.AWARD, TxnKind.DEDUCT, TxnKind.EXPIRE)


def reverse(lg: Ledger, txn_id: int, *, idem_key: str, actor_id: int | None = None, reason: str = "",
            allow_partial: bool = False) -> tuple[Txn, int]:
    """Undo an award, a deduction or an expiry with a new transaction. Returns (txn, shortfall).

    An award whose points were already spent cannot be fully taken back: with ``allow_partial``
    we take what is there and return the rest as a shortfall for HR, because a wallet must never
    go negative. Undoing a debit never hurts the employee: the points come back to lots that are
    still valid, or into a new lot (docs/commands.md).
    """
    def op() -> tuple[Txn, int]:
        orig = lg.s.scalar(select(Txn).where(Txn.id == txn_id).with_for_update())  # one reverser at a time
        if orig is None:
            raise UnknownTxn(f"no change E{txn_id}")
        if orig.kind not in REVERSIBLE_KINDS:
            raise NotReversible(f"E{txn_id} is a {orig.kind} and cannot be reversed")
        done = lg.s.scalar(select(Txn.id).where(Txn.reverses_txn_id == orig.id))
        if done is not None:
            raise AlreadyReversed(f"E{txn_id} was already reversed by E{done}")
        if orig.kind == TxnKind.AWARD:
            return _reverse_award(lg, orig, idem_key, actor_id, reason, allow_partial)
        return _reverse_debit(lg, orig, idem_key, actor_id, reason), 0
    result = books.once(lg, idem_key, op)
    if isinstance(result, Txn):  # a retry: report the shortfall the first call reported
        orig = lg.s.get(Txn, result.reverses_txn_id) if result.reverses_txn_id is not None else None
        shortfall = orig.amount + result.amount if orig is not None and orig.kind == TxnKind.AWARD else 0
        return result, shortfall
    return result


def _reverse_award(lg: Ledger, orig: Txn, idem_key: str, actor_id: int | None, reason: str,
                   allow_partial: bool) -> tuple[Txn, int]:
    assert orig.employee_id is not None
    wallet = books.wallet(lg, orig.employee_id)
    source_id = lg.s.scalar(select(Entry.account_id).where(Entry.txn_id == orig.id, Entry.amount < 0))
    source = lg.s.get(Account, source_id)
    assert source is not None
    take = orig.amount
    if allow_partial:
        take = min(take, reads.balance(lg.s, wallet.id))
    txn = books.new_txn(lg, idem_key, TxnKind.REVERSE, orig.employee_id, -take, actor_id=actor_id,
                        reason=reason or memos.REVERSAL.format(txn=orig.id), reverses=orig.id, category=orig.category)
    if take:
        debit.gate(lg, wallet.id, take)
        lot_id = lg.s.scalar(select(Lot.id).where(Lot.txn_id == orig.id))
        lots.consume(lg, wallet.id, take, txn.id, prefer_lot=lot_id)
        if source.kind == AccountKind.BUDGET:
            books.credit(lg, source, take)
        books.entry(lg, txn, wallet, -take)
        books.entry(lg, txn, source, take)
        totals.add(lg, orig.employee_id, txn.created_at, -take)
    return txn, orig.amount - take


def _reverse_debit(lg: Ledger, orig: Txn, idem_key: str, actor_id: int | None, reason: str) -> Txn:
    """Give a deduction back to the lots it came from, or an expiry back as a new lot.

    Slices whose lots are past expiry by now go into one new lot valid ``validity_days``:
    restoring them into their old lots would expire them again at once (so an expiry by the job,
    whose lots are all past expiry, comes back as one new lot).
    """
    assert orig.employee_id is not None
    wallet, points = books.wallet(lg, orig.employee_id), -orig.amount
    source = books.account(lg, ISSUANCE if orig.kind == TxnKind.DEDUCT else EXPIRED)
    txn = books.new_txn(lg, idem_key, TxnKind.REVERSE, orig.employee_id, points, actor_id=actor_id,
                        reason=reason or memos.REVERSAL.format(txn=orig.id), reverses=orig.id, category=orig.category)
    _back_to_lots(lg, wallet, orig.id, txn)
    books.entry(lg, txn, source, -points)
    books.entry(lg, txn, wallet, points)
    return txn


def _back_to_lots(lg: Ledger, wallet: Account, debit_txn_id: int, txn: Txn) -> None:
    """The slices the debit took go back to their lots, or (past expiry by now) into one new lot."""
    live, past = lots.split_past(lg, lots.allocations(lg, debit_txn_id))
    if live:
        books.credit(lg, wallet, sum(sl.amount for sl in live))
        lots.restore(lg, live, txn)
    if past:
        lots.credit_new_lot(lg, wallet, sum(sl.amount for sl in past), txn)


def refund(lg: Ledger, hold_txn_id: int, *, idem_key: str, actor_id: int | None = None, reason: str = "") -> Txn:
    """Undo a settled redemption (HR, ``撤销 R<n>``): the points come back from where the settlement put them
    (spent, or a charity's pool) to the lots the hold took them from, as a reversal of the settlement."""
    def op() -> Txn:
        hold = lg.s.scalar(select(Txn).where(Txn.id == hold_txn_id).with_for_update())  # one refunder at a time
        settled = lg.s.scalar(select(Txn).where(Txn.related_txn_id == hold_txn_id, Txn.kind == TxnKind.SETTLE))
        if hold is None or settled is None:
            raise NotReversible(f"E{hold_txn_id} is not a settled redemption")
        done = lg.s.scalar(select(Txn.id).where(Txn.reverses_txn_id == settled.id))
        if done is not None:
            raise AlreadyReversed(f"E{settled.id} was already refunded by E{done}")
        assert hold.employee_id is not None
        source = lg.s.scalar(select(Account).join(Entry, Entry.account_id == Account.id)
                             .where(Entry.txn_id == settled.id, Entry.amount > 0))
        assert source is not None
        wallet, points = books.wallet(lg, hold.employee_id), -hold.amount
        txn = books.new_txn(lg, idem_key, TxnKind.REVERSE, hold.employee_id, points, actor_id=actor_id,
                            reason=reason or memos.REVERSAL.format(txn=settled.id), reverses=settled.id,
                            category=settled.category)
        _back_to_lots(lg, wallet, hold.id, txn)
        books.entry(lg, txn, source, -points)
        books.entry(lg, txn, wallet, points)
        return txn
    return books.once(lg, idem_key, op)  # type: ignore[return-value]
