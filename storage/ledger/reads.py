"""The ledger's own reads: a transaction by its key, an account's balance.

Reports and statements read the ledger's tables elsewhere (storage/queries.py and the like);
these two are what the operations themselves need.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Account, Txn


def find(s: Session, idem_key: str) -> Txn | None:
    return s.scalar(select(Txn).where(Txn.idem_key == idem_key))


def balance(s: Session, account_id: int) -> int:
    """The cached balance of a wallet or budget (system accounts keep none: docs/reliability.md §1.3)."""
    return int(s.scalar(select(Account.balance).where(Account.id == account_id)) or 0)
