"""What every ledger operation shares: the accounts, the transaction row, its entries, and ``once``.

``once`` is the ledger's one undo strategy (docs/reliability.md, "One undo strategy"): every
operation runs inside a savepoint, so a domain error (not enough points, a frozen wallet, a hold
already closed) rolls back exactly what that operation wrote, and the caller's transaction stays
usable; and every operation has an idempotency key, so a repeat, or a concurrent twin that
committed first, gets the first transaction instead of a second one.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from storage.db import count_txns
from storage.errors import InvalidAmount, UnknownEmployee, WalletFrozen
from storage.kinds import AccountKind, TxnKind
from storage.ledger import reads
from storage.models import Account, Employee, Entry, Txn

if TYPE_CHECKING:
    from storage.ledger import Ledger

ISSUANCE, HOLD, REDEEMED, EXPIRED = "system:issuance", "system:redemption_hold", "system:redeemed", "system:expired"
CHARITY_PREFIX = "charity:"  # + the charity's name: a donation item's pool (credit.charity_account)
MAX_POINTS = 10_000_000
T = TypeVar("T")


def check_amount(points: object) -> int:
    if isinstance(points, bool) or not isinstance(points, int):
        raise InvalidAmount(f"points must be a whole number, got {points!r}")
    if points <= 0:
        raise InvalidAmount(f"points must be positive, got {points}")
    if points > MAX_POINTS:
        raise InvalidAmount(f"points must be at most {MAX_POINTS}")
    return points


def check_key(idem_key: str) -> str:
    if not idem_key or len(idem_key) > 191:
        raise InvalidAmount("idempotency key must be 1 to 191 characters")
    return idem_key


def once(lg: Ledger, idem_key: str, op: Callable[[], T]) -> T | Txn:
    """Run ``op`` in a savepoint once per key; a repeat (or a concurrent twin) gets the first txn."""
    check_key(idem_key)
    if (found := reads.find(lg.s, idem_key)) is not None:
        return found
    try:
        with lg.s.begin_nested():
            return op()
    except IntegrityError:
        found = reads.find(lg.s, idem_key)
        if found is None:
            raise
        return found


# ---- accounts ------------------------------------------------------------------------------
def account(lg: Ledger, name: str, kind: AccountKind = AccountKind.SYSTEM, employee_id: int | None = None) -> Account:
    """The account called ``name``, created on first use (ids and kinds never change, so cached)."""
    cached = lg.accounts.get(name)
    if cached is not None:
        return cached
    acc = lg.s.scalar(select(Account).where(Account.name == name))
    if acc is None:
        try:
            with lg.s.begin_nested():
                acc = Account(name=name, kind=kind, employee_id=employee_id, balance=0, version=0)
                lg.s.add(acc)
        except IntegrityError:  # created concurrently
            acc = lg.s.scalar(select(Account).where(Account.name == name))
    assert acc is not None
    lg.accounts[name] = acc
    return acc


def employee(lg: Ledger, employee_id: int) -> Employee:
    emp = lg.s.get(Employee, employee_id)
    if emp is None:
        raise UnknownEmployee(f"no employee with id {employee_id}")
    return emp


def wallet(lg: Ledger, employee_id: int) -> Account:
    name = f"wallet:{employee_id}"
    if name not in lg.accounts:
        employee(lg, employee_id)
    return account(lg, name, AccountKind.WALLET, employee_id)


def budget(lg: Ledger, employee_id: int) -> Account:
    name = f"budget:{employee_id}"
    if name not in lg.accounts:
        employee(lg, employee_id)
    return account(lg, name, AccountKind.BUDGET, employee_id)


def active_wallet(lg: Ledger, employee_id: int) -> Account:
    acc = wallet(lg, employee_id)
    if acc.frozen or employee(lg, employee_id).status != "active":
        raise WalletFrozen(f"wallet of employee {employee_id} is frozen")
    return acc


def credit(lg: Ledger, acc: Account, amount: int) -> None:
    """Add to a wallet's or budget's cached balance (a plain UPDATE: nothing reads the ORM copy after)."""
    lg.s.execute(update(Account).where(Account.id == acc.id)
                 .values(balance=Account.balance + amount, version=Account.version + 1),
                 execution_options={"synchronize_session": False})


def set_frozen(lg: Ledger, employee_id: int, frozen: bool) -> None:
    acc = wallet(lg, employee_id)
    lg.s.execute(update(Account).where(Account.id == acc.id).values(frozen=frozen),
                 execution_options={"synchronize_session": False})
    acc.frozen = frozen


# ---- transactions and entries --------------------------------------------------------------
def new_txn(lg: Ledger, idem_key: str, kind: TxnKind, employee_id: int | None, amount: int, *,
            actor_id: int | None = None, reason: str = "", category: str = "", reverses: int | None = None,
            related: int | None = None) -> Txn:
    """The transaction row, written at once: a duplicate key raises inside the operation's savepoint."""
    check_key(idem_key)
    txn = Txn(idem_key=idem_key, kind=kind, employee_id=employee_id, amount=amount, actor_id=actor_id,
              reason=(reason or "")[:500], category=(category or "")[:64], created_at=lg.clock(),
              reverses_txn_id=reverses, related_txn_id=related)
    lg.s.add(txn)
    lg.s.flush()  # the id, for the entries and lot allocations that name it
    count_txns(lg.s, kind)
    return txn


def entry(lg: Ledger, txn: Txn, acc: Account, amount: int) -> None:
    lg.s.add(Entry(txn_id=txn.id, account_id=acc.id, amount=amount))
