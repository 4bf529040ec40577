"""The ledger service: the only code that changes points.

Double-entry and append-only (docs/reliability.md §1.2): each business change is one ``Txn`` with a
unique idempotency key and entries that sum to zero. Wallets and budgets are gated by a
conditional ``UPDATE … WHERE balance >= :n`` (correct on SQLite, PostgreSQL and MariaDB), taken
*before* the lots are read, so the account row serialises every writer of that employee and the
lots need no lock order of their own. Every account UPDATE also comes before the entry INSERTs
that reference the account: on MariaDB an INSERT takes a shared lock on the row its foreign key
names, and two transactions that each held one and then asked for the exclusive lock deadlocked
(docs/reliability.md). Each public operation runs in a savepoint:
a domain error undoes exactly that operation and leaves the caller's transaction usable.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable, TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.db import count_txns
from storage.errors import AlreadyReversed, NotReversible, UnknownEmployee, UnknownTxn, WalletFrozen
from storage.ledger_debit import MAX_POINTS, DebitMixin, check_amount, check_key  # noqa: F401 (re-exported)
from storage.ledger_lots import EXPIRED, HOLD, ISSUANCE, REDEEMED, LotsMixin, Slice  # noqa: F401 (re-exported)
from storage.models import Account, Employee, Entry, Lot, Txn
from storage import memos

SYSTEM_ACCOUNTS = (ISSUANCE, HOLD, REDEEMED, EXPIRED)
REVERSIBLE_KINDS = ("award", "deduct", "expire")
T = TypeVar("T")


class Ledger(DebitMixin, LotsMixin):
    def __init__(self, session: Session, clock: Callable[[], datetime], validity_days: int = 365) -> None:
        self.s = session
        self.clock = clock
        self.validity = timedelta(days=validity_days)
        self._accounts: dict[str, Account] = {}  # per transaction: ids and kinds never change

    # ---- accounts -------------------------------------------------------------------------
    def account(self, name: str, kind: str = "system", employee_id: int | None = None) -> Account:
        cached = self._accounts.get(name)
        if cached is not None:
            return cached
        acc = self.s.scalar(select(Account).where(Account.name == name))
        if acc is not None:
            self._accounts[name] = acc
            return acc
        try:
            with self.s.begin_nested():
                acc = Account(name=name, kind=kind, employee_id=employee_id, balance=0, version=0)
                self.s.add(acc)
                self.s.flush()
        except IntegrityError:  # created concurrently
            acc = self.s.scalar(select(Account).where(Account.name == name))
        assert acc is not None
        self._accounts[name] = acc
        return acc

    def employee(self, employee_id: int) -> Employee:
        emp = self.s.get(Employee, employee_id)
        if emp is None:
            raise UnknownEmployee(f"no employee with id {employee_id}")
        return emp

    def wallet(self, employee_id: int) -> Account:
        name = f"wallet:{employee_id}"
        if name not in self._accounts:
            self.employee(employee_id)
        return self.account(name, "wallet", employee_id)

    def budget(self, employee_id: int) -> Account:
        name = f"budget:{employee_id}"
        if name not in self._accounts:
            self.employee(employee_id)
        return self.account(name, "budget", employee_id)

    def _update(self, stmt):  # type: ignore[no-untyped-def]
        """Plain UPDATE: the ledger never reads in-memory state after it, so skip session syncing."""
        return self.s.execute(stmt, execution_options={"synchronize_session": False})

    def balance(self, account_id: int) -> int:
        return int(self.s.scalar(select(Account.balance).where(Account.id == account_id)
                                 .execution_options(populate_existing=True)) or 0)

    # ---- primitives -----------------------------------------------------------------------
    def find(self, idem_key: str) -> Txn | None:
        return self.s.scalar(select(Txn).where(Txn.idem_key == idem_key))

    def _once(self, idem_key: str, op: Callable[[], T]) -> T | Txn:
        """Run ``op`` in a savepoint once per key; a repeat (or a concurrent twin) gets the first txn."""
        if (found := self.find(idem_key)) is not None:
            return found
        try:
            with self.s.begin_nested():
                return op()
        except IntegrityError:
            found = self.find(idem_key)
            if found is None:
                raise
            return found

    def _new_txn(self, idem_key: str, kind: str, employee_id: int | None, amount: int, *, actor_id: int | None = None,
                 reason: str = "", category: str = "", reverses: int | None = None, related: int | None = None) -> Txn:
        check_key(idem_key)
        txn = Txn(idem_key=idem_key, kind=kind, employee_id=employee_id, amount=amount, actor_id=actor_id,
                  reason=(reason or "")[:500], category=(category or "")[:64], created_at=self.clock(),
                  reverses_txn_id=reverses, related_txn_id=related)
        self.s.add(txn)
        self.s.flush()  # a duplicate key raises here, inside the operation's savepoint
        count_txns(self.s, kind)
        return txn

    def _entry(self, txn: Txn, account: Account, amount: int) -> None:
        self.s.add(Entry(txn_id=txn.id, account_id=account.id, amount=amount))

    def _credit(self, account: Account, amount: int) -> None:
        self._update(update(Account).where(Account.id == account.id)
                       .values(balance=Account.balance + amount, version=Account.version + 1))

    def _active_wallet(self, employee_id: int) -> Account:
        wallet = self.wallet(employee_id)
        if wallet.frozen or self.employee(employee_id).status != "active":
            raise WalletFrozen(f"wallet of employee {employee_id} is frozen")
        return wallet

    # ---- operations -----------------------------------------------------------------------
    def award(self, employee_id: int, points: int, *, idem_key: str, reason: str, category: str = "manual",
              actor_id: int | None = None, budget_of: int | None = None) -> Txn:
        """Credit a wallet from a manager's budget (``budget_of``) or from issuance."""
        check_amount(points)

        def op() -> Txn:
            wallet = self._active_wallet(employee_id)
            source = self.budget(budget_of) if budget_of is not None else self.account(ISSUANCE)
            txn = self._new_txn(idem_key, "award", employee_id, points, actor_id=actor_id, reason=reason,
                                category=category)
            if source.kind == "budget":
                self._gate_debit(source.id, points, budget=True)
            self._credit_wallet_new_lot(wallet, points, txn)
            self._entry(txn, source, -points)
            self._entry(txn, wallet, points)
            return txn
        return self._once(idem_key, op)  # type: ignore[return-value]

    def deduct(self, employee_id: int, points: int, *, idem_key: str, reason: str, actor_id: int | None = None) -> Txn:
        """HR takes points back; never below zero."""
        return self._debit_to("deduct", employee_id, points, ISSUANCE, idem_key=idem_key, reason=reason,
                              actor_id=actor_id, require_active=False, category="deduct")

    def hold(self, employee_id: int, points: int, *, idem_key: str, reason: str = "") -> Txn:
        """Move points to the redemption hold while HR fulfils the order."""
        return self._debit_to("hold", employee_id, points, HOLD, idem_key=idem_key, reason=reason,
                              actor_id=employee_id, require_active=True, category="redeem")

    def _hold_txn(self, hold_txn_id: int) -> Txn:
        # Lock the hold row first so two closers (different keys) cannot both pass the check below.
        hold = self.s.scalar(select(Txn).where(Txn.id == hold_txn_id).with_for_update()
                             .execution_options(populate_existing=True))
        if hold is None or hold.kind != "hold":
            raise UnknownTxn(f"no hold E{hold_txn_id}")
        closed = self.s.scalar(select(Txn).where(Txn.related_txn_id == hold.id, Txn.kind.in_(("settle", "release"))))
        if closed is not None:
            raise AlreadyReversed(f"hold E{hold.id} already closed by E{closed.id}")
        return hold

    def settle(self, hold_txn_id: int, *, idem_key: str, actor_id: int | None = None) -> Txn:
        def op() -> Txn:
            hold = self._hold_txn(hold_txn_id)
            points = -hold.amount
            txn = self._new_txn(idem_key, "settle", hold.employee_id, 0, actor_id=actor_id, reason=hold.reason,
                                related=hold.id, category="redeem")
            self._entry(txn, self.account(HOLD), -points)
            self._entry(txn, self.account(REDEEMED), points)
            return txn
        return self._once(idem_key, op)  # type: ignore[return-value]

    def release(self, hold_txn_id: int, *, idem_key: str, actor_id: int | None = None, reason: str = "") -> Txn:
        """Give held points back to the same lots; slices of lots already past expiry expire at once."""
        def op() -> Txn:
            hold = self._hold_txn(hold_txn_id)
            assert hold.employee_id is not None
            points, wallet = -hold.amount, self.wallet(hold.employee_id)
            txn = self._new_txn(idem_key, "release", hold.employee_id, points, actor_id=actor_id,
                                reason=reason or hold.reason, related=hold.id, category="redeem")
            self._credit(wallet, points)
            self._entry(txn, self.account(HOLD), -points)
            self._entry(txn, wallet, points)
            slices = self._allocations(hold.id)
            self._restore_lots(slices, txn)
            past = self._split_past(slices)[1]
            self._expire_slices(wallet, past, f"expire-on-release:{txn.id}", txn)
            return txn
        return self._once(idem_key, op)  # type: ignore[return-value]

    def reverse(self, txn_id: int, *, idem_key: str, actor_id: int | None = None, reason: str = "",
                allow_partial: bool = False) -> tuple[Txn, int]:
        """Undo an award, a deduction or an expiry with a new transaction. Returns (txn, shortfall).

        An award whose points were already spent cannot be fully taken back: with
        ``allow_partial`` we take what is there and return the rest as a shortfall for HR,
        because a wallet must never go negative. Undoing a debit never hurts the employee: the
        points come back to lots that are still valid, or into a new lot (docs/commands.md).
        """
        def op() -> tuple[Txn, int]:
            orig = self.s.scalar(select(Txn).where(Txn.id == txn_id).with_for_update()
                                 .execution_options(populate_existing=True))  # one reverser at a time
            if orig is None:
                raise UnknownTxn(f"no change E{txn_id}")
            if orig.kind not in REVERSIBLE_KINDS:
                raise NotReversible(f"E{txn_id} is a {orig.kind} and cannot be reversed")
            done = self.s.scalar(select(Txn.id).where(Txn.reverses_txn_id == orig.id))
            if done is not None:
                raise AlreadyReversed(f"E{txn_id} was already reversed by E{done}")
            if orig.kind == "award":
                return self._reverse_award(orig, idem_key, actor_id, reason, allow_partial)
            return self._reverse_debit(orig, idem_key, actor_id, reason), 0
        result = self._once(idem_key, op)
        if isinstance(result, Txn):  # a retry: report the shortfall the first call reported
            orig = self.s.get(Txn, result.reverses_txn_id) if result.reverses_txn_id is not None else None
            shortfall = orig.amount + result.amount if orig is not None and orig.kind == "award" else 0
            return result, shortfall
        return result

    def _reverse_award(self, orig: Txn, idem_key: str, actor_id: int | None, reason: str,
                       allow_partial: bool) -> tuple[Txn, int]:
        assert orig.employee_id is not None
        wallet = self.wallet(orig.employee_id)
        source_id = self.s.scalar(select(Entry.account_id).where(Entry.txn_id == orig.id, Entry.amount < 0))
        source = self.s.get(Account, source_id)
        take = orig.amount
        if allow_partial:
            take = min(take, self.balance(wallet.id))
        txn = self._new_txn(idem_key, "reverse", orig.employee_id, -take, actor_id=actor_id,
                            reason=reason or memos.REVERSAL.format(txn=orig.id), reverses=orig.id, category=orig.category)
        if take:
            self._gate_debit(wallet.id, take)
            lot_id = self.s.scalar(select(Lot.id).where(Lot.txn_id == orig.id))
            self._consume_lots(wallet.id, take, txn.id, prefer_lot=lot_id)
            if source is not None and source.kind == "budget":
                self._credit(source, take)
            self._entry(txn, wallet, -take)
            self._entry(txn, source, take)  # type: ignore[arg-type]
        return txn, orig.amount - take

    def _reverse_debit(self, orig: Txn, idem_key: str, actor_id: int | None, reason: str) -> Txn:
        """Give a deduction back to the lots it came from, or an expiry back as a new lot.

        Slices whose lots are past expiry by now go into one new lot valid ``validity_days``:
        restoring them into their old lots would expire them again at once (so an expiry by the
        job, whose lots are all past expiry, comes back as one new lot).
        """
        assert orig.employee_id is not None
        wallet, points = self.wallet(orig.employee_id), -orig.amount
        source = self.account(ISSUANCE if orig.kind == "deduct" else EXPIRED)
        txn = self._new_txn(idem_key, "reverse", orig.employee_id, points, actor_id=actor_id,
                            reason=reason or memos.REVERSAL.format(txn=orig.id), reverses=orig.id, category=orig.category)
        live, past = self._split_past(self._allocations(orig.id))
        if live:
            self._credit(wallet, sum(sl.amount for sl in live))
            self._restore_lots(live, txn)
        if past:
            self._credit_wallet_new_lot(wallet, sum(sl.amount for sl in past), txn)
        self._entry(txn, source, -points)
        self._entry(txn, wallet, points)
        return txn

    def move_all(self, employee_id: int, *, to: str | int, idem_key: str, reason: str) -> Txn | None:
        """Empty a (leaver's) wallet: expire it (``to="expired"``) or transfer to another employee."""
        def op() -> Txn | None:
            wallet = self.wallet(employee_id)
            points = self.balance(wallet.id)
            if points <= 0:
                return None
            kind = "expire" if to == "expired" else "transfer"
            txn = self._new_txn(idem_key, kind, employee_id, -points, reason=reason, category="leaver")
            self._gate_debit(wallet.id, points)
            self._consume_lots(wallet.id, points, txn.id)
            target = self.account(EXPIRED) if to == "expired" else self.wallet(int(to))
            if to != "expired":
                self._credit_wallet_new_lot(target, points, txn)
            self._entry(txn, wallet, -points)
            self._entry(txn, target, points)
            return txn
        return self._once(idem_key, op)  # type: ignore[return-value]

    def grant_budget(self, manager_id: int, month: str, amount: int, *, rollover: bool = False) -> Txn:
        """The monthly budget; without rollover, what is left of last month goes back first."""
        check_amount(amount)
        key = f"budget-grant:{manager_id}:{month}"
        def op() -> Txn:
            budget, issuance = self.budget(manager_id), self.account(ISSUANCE)
            left = self.balance(budget.id)
            if left > 0 and not rollover:
                reset = self._new_txn(f"budget-reset:{manager_id}:{month}", "budget_reset", manager_id, -left,
                                      reason=memos.BUDGET_RESET.format(month=month), category="budget")
                self._gate_debit(budget.id, left, budget=True)
                self._entry(reset, budget, -left)
                self._entry(reset, issuance, left)
            txn = self._new_txn(key, "budget_grant", manager_id, amount, reason=memos.BUDGET_GRANT.format(month=month), category="budget")
            self._credit(budget, amount)
            self._entry(txn, issuance, -amount)
            self._entry(txn, budget, amount)
            return txn
        return self._once(key, op)  # type: ignore[return-value]

    def set_frozen(self, employee_id: int, frozen: bool) -> None:
        wallet = self.wallet(employee_id)
        self._update(update(Account).where(Account.id == wallet.id).values(frozen=frozen))
        wallet.frozen = frozen
