"""Credits: awards, budget grants, and closing a redemption hold (settled, or released back).

An award takes the manager's budget through the same gate as a debit (storage/ledger/debit.py):
the account UPDATE comes before the entry INSERTs that name the account, because on MariaDB an
INSERT takes a shared lock on the row its foreign key names, and two transactions that each held
one and then asked for the exclusive lock deadlocked (docs/reliability.md).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from storage.errors import AlreadyReversed, UnknownTxn
from storage.kinds import AccountKind, TxnKind
from storage.ledger import books, debit, lots, reads, totals
from storage.ledger.books import CHARITY_PREFIX, HOLD, ISSUANCE, REDEEMED
from storage.models import Account, Txn
from storage import memos

if TYPE_CHECKING:
    from storage.ledger import Ledger


def award(lg: Ledger, employee_id: int, points: int, *, idem_key: str, reason: str, category: str = "manual",
          actor_id: int | None = None, budget_of: int | None = None) -> Txn:
    """Credit a wallet from a manager's budget (``budget_of``) or from issuance."""
    books.check_amount(points)

    def op() -> Txn:
        wallet = books.active_wallet(lg, employee_id)
        source = books.budget(lg, budget_of) if budget_of is not None else books.account(lg, ISSUANCE)
        txn = books.new_txn(lg, idem_key, TxnKind.AWARD, employee_id, points, actor_id=actor_id, reason=reason,
                            category=category)
        if source.kind == AccountKind.BUDGET:
            debit.gate(lg, source.id, points, budget=True)
        lots.credit_new_lot(lg, wallet, points, txn)
        books.entry(lg, txn, source, -points)
        books.entry(lg, txn, wallet, points)
        totals.add(lg, employee_id, txn.created_at, points)
        return txn
    return books.once(lg, idem_key, op)  # type: ignore[return-value]


def grant_budget(lg: Ledger, manager_id: int, month: str, amount: int, *, rollover: bool = False) -> Txn:
    """The monthly budget; without rollover, what is left of last month goes back first."""
    books.check_amount(amount)
    key = f"budget-grant:{manager_id}:{month}"

    def op() -> Txn:
        budget, issuance = books.budget(lg, manager_id), books.account(lg, ISSUANCE)
        left = reads.balance(lg.s, budget.id)
        if left > 0 and not rollover:
            reset = books.new_txn(lg, f"budget-reset:{manager_id}:{month}", TxnKind.BUDGET_RESET, manager_id, -left,
                                  reason=memos.BUDGET_RESET.format(month=month), category="budget")
            debit.gate(lg, budget.id, left, budget=True)
            books.entry(lg, reset, budget, -left)
            books.entry(lg, reset, issuance, left)
        txn = books.new_txn(lg, key, TxnKind.BUDGET_GRANT, manager_id, amount,
                            reason=memos.BUDGET_GRANT.format(month=month), category="budget")
        books.credit(lg, budget, amount)
        books.entry(lg, txn, issuance, -amount)
        books.entry(lg, txn, budget, amount)
        return txn
    return books.once(lg, key, op)  # type: ignore[return-value]


def top_up_budget(lg: Ledger, manager_id: int, amount: int, *, idem_key: str, reason: str,
                  actor_id: int | None = None) -> Txn:
    """HR adds to one manager's budget (storage/budgets.py), from issuance, once per key."""
    books.check_amount(amount)

    def op() -> Txn:
        budget, issuance = books.budget(lg, manager_id), books.account(lg, ISSUANCE)
        txn = books.new_txn(lg, idem_key, TxnKind.BUDGET_TOPUP, manager_id, amount, actor_id=actor_id, reason=reason,
                            category="budget")
        books.credit(lg, budget, amount)
        books.entry(lg, txn, issuance, -amount)
        books.entry(lg, txn, budget, amount)
        return txn
    return books.once(lg, idem_key, op)  # type: ignore[return-value]


def _open_hold(lg: Ledger, hold_txn_id: int) -> Txn:
    """The hold, locked first so two closers (different keys) cannot both pass the check below."""
    hold = lg.s.scalar(select(Txn).where(Txn.id == hold_txn_id).with_for_update())
    if hold is None or hold.kind != TxnKind.HOLD:
        raise UnknownTxn(f"no hold E{hold_txn_id}")
    closed = lg.s.scalar(select(Txn).where(Txn.related_txn_id == hold.id,
                                           Txn.kind.in_((TxnKind.SETTLE, TxnKind.RELEASE))))
    if closed is not None:
        raise AlreadyReversed(f"hold E{hold.id} already closed by E{closed.id}")
    return hold


def charity_account(lg: Ledger, charity: str) -> Account:
    """A charity's pool: what employees donated to it (donation items), one account per charity name."""
    return books.account(lg, f"{CHARITY_PREFIX}{charity}", AccountKind.CHARITY)


def settle(lg: Ledger, hold_txn_id: int, *, idem_key: str, actor_id: int | None = None, charity: str = "") -> Txn:
    """The order is fulfilled: the held points are spent, or given to ``charity``'s pool (a donation)."""
    def op() -> Txn:
        hold = _open_hold(lg, hold_txn_id)
        points = -hold.amount
        txn = books.new_txn(lg, idem_key, TxnKind.SETTLE, hold.employee_id, 0, actor_id=actor_id, reason=hold.reason,
                            related=hold.id, category="donation" if charity else "redeem")
        books.entry(lg, txn, books.account(lg, HOLD), -points)
        books.entry(lg, txn, charity_account(lg, charity) if charity else books.account(lg, REDEEMED), points)
        return txn
    return books.once(lg, idem_key, op)  # type: ignore[return-value]


def release(lg: Ledger, hold_txn_id: int, *, idem_key: str, actor_id: int | None = None, reason: str = "") -> Txn:
    """Give held points back to the same lots; slices of lots already past expiry expire at once."""
    def op() -> Txn:
        hold = _open_hold(lg, hold_txn_id)
        assert hold.employee_id is not None
        points, wallet = -hold.amount, books.wallet(lg, hold.employee_id)
        txn = books.new_txn(lg, idem_key, TxnKind.RELEASE, hold.employee_id, points, actor_id=actor_id,
                            reason=reason or hold.reason, related=hold.id, category="redeem")
        books.credit(lg, wallet, points)
        books.entry(lg, txn, books.account(lg, HOLD), -points)
        books.entry(lg, txn, wallet, points)
        slices = lots.allocations(lg, hold.id)
        lots.restore(lg, slices, txn)
        debit.expire_past(lg, wallet, lots.split_past(lg, slices)[1], f"expire-on-release:{txn.id}", txn)
        return txn
    return books.once(lg, idem_key, op)  # type: ignore[return-value]
