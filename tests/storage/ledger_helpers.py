"""Helpers for the ledger tests: one short transaction per call, read-back of every money-like row."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from typing import Iterator

from sqlalchemy import func, select

from storage.db import Database
from storage.invariants import check_invariants
from storage.ledger import Ledger
from storage.models import Account, Entry, Lot, LotAllocation, Txn
from tests.storage.factories import make_employee


@contextmanager
def ledger(db: Database) -> Iterator[Ledger]:
    with db.session_scope() as s:
        yield Ledger(s, db.clock)


def people(db: Database, *specs: tuple[str, dict]) -> list[int]:
    with db.session_scope() as s:
        return [make_employee(s, no, **kw).id for no, kw in specs]


def snapshot(db: Database) -> tuple:
    """Everything money-like: row counts and every cached balance and lot remainder."""
    with db.session_scope() as s:
        return (s.scalar(select(func.count(Txn.id))), s.scalar(select(func.count(Entry.id))),
                s.scalar(select(func.count(Lot.id))), s.scalar(select(func.count(LotAllocation.id))),
                tuple(s.execute(select(Account.name, Account.balance, Account.frozen).order_by(Account.name)).all()),
                tuple(s.execute(select(Lot.id, Lot.remaining).order_by(Lot.id)).all()))


def assert_ok(db: Database) -> None:
    with db.session_scope() as s:
        assert check_invariants(s) == []


def balance_of(db: Database, emp: int, kind: str = "wallet") -> int:
    with db.session_scope() as s:
        return int(s.scalar(select(Account.balance).where(Account.kind == kind, Account.employee_id == emp)) or 0)


def system_balance(db: Database, name: str) -> int:
    with db.session_scope() as s:
        return int(s.scalar(select(func.coalesce(func.sum(Entry.amount), 0)).join(Account, Account.id == Entry.account_id)
                            .where(Account.name == name)) or 0)


def lots_of(db: Database, emp: int) -> list[tuple[int, int, int, datetime]]:
    """(id, amount, remaining, expires_at) in FIFO order."""
    with db.session_scope() as s:
        return [tuple(r) for r in s.execute(
            select(Lot.id, Lot.amount, Lot.remaining, Lot.expires_at).join(Account, Account.id == Lot.account_id)
            .where(Account.kind == "wallet", Account.employee_id == emp).order_by(Lot.expires_at, Lot.id)).all()]


def allocations(db: Database, txn_id: int) -> list[tuple[int, int]]:
    with db.session_scope() as s:
        return [tuple(r) for r in s.execute(select(LotAllocation.lot_id, LotAllocation.amount)
                                            .where(LotAllocation.txn_id == txn_id).order_by(LotAllocation.id)).all()]


def award(db: Database, emp: int, points: int, key: str, **kw) -> int:
    with ledger(db) as lg:
        return lg.award(emp, points, idem_key=key, reason="test", **kw).id


def hold(db: Database, emp: int, points: int, key: str) -> int:
    with ledger(db) as lg:
        return lg.hold(emp, points, idem_key=key).id
