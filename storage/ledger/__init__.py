"""The ledger: the only code that changes points (docs/reliability.md §1).

Double-entry and append-only: each business change is one ``Txn`` with a unique idempotency key
and entries that sum to zero. Wallets and budgets are gated by a conditional
``UPDATE … WHERE balance >= :n`` (correct on SQLite, PostgreSQL and MariaDB), taken *before* the
lots are read, so the account row serialises every writer of that employee. Every operation runs
in a savepoint, its one undo strategy (storage/ledger/books.py ``once``).

Plain modules, each a set of functions of the ledger below: ``books`` (accounts, the transaction
row and its entries), ``debit``, ``credit``, ``reverse``, ``lots``, ``expiry`` (the batched job)
and ``reads``. ``Ledger`` is what they share for one database transaction (the session, the
clock, the lots' validity and the accounts already looked up), with the public operations as its
methods so callers write ``ledger.award(...)``.
"""
from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Callable
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from storage.ledger import books, credit, debit, reads, reverse
from storage.ledger.books import EXPIRED, HOLD, ISSUANCE, MAX_POINTS, REDEEMED
from storage.models import Account, Txn

DEFAULT_TZ = ZoneInfo("Asia/Shanghai")  # settings.py's default server.timezone; the app always passes its own
__all__ = ["Ledger", "EXPIRED", "HOLD", "ISSUANCE", "MAX_POINTS", "REDEEMED"]


class Ledger:
    def __init__(self, session: Session, clock: Callable[[], datetime], validity_days: int = 365,
                 tz: tzinfo = DEFAULT_TZ) -> None:
        self.s = session
        self.clock = clock
        self.validity = timedelta(days=validity_days)
        self.tz = tz  # the company's: earned totals are kept by local period (storage/ledger/totals.py)
        self.accounts: dict[str, Account] = {}  # by name, for this transaction: ids and kinds never change

    award = credit.award
    grant_budget = credit.grant_budget
    top_up_budget = credit.top_up_budget
    settle = credit.settle
    release = credit.release
    hold = debit.hold
    deduct = debit.deduct
    move_all = debit.move_all
    refund = reverse.refund
    reverse = reverse.reverse
    account = books.account
    wallet = books.wallet
    budget = books.budget
    set_frozen = books.set_frozen

    def find(self, idem_key: str) -> Txn | None:
        return reads.find(self.s, idem_key)

    def balance(self, account_id: int) -> int:
        return reads.balance(self.s, account_id)
