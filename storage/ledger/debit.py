"""Debits: the gate against overdraft, and every operation that takes points out of a wallet.

Redemptions of one employee queue on the wallet row, and on SQLite every writer queues on the
database, so whatever runs between the gate and COMMIT is paid by everyone waiting. A hold or a
deduction reads all it needs in one query, writes the transaction row *before* taking the gate
(on PostgreSQL the unique key makes a concurrent twin wait there, not on the wallet), then runs
gate, lots and entries as prebuilt statements (storage/fastsql.py). ``bench/ledger.py`` measures it.

Like every ledger operation it runs in a savepoint (``books.once``'s strategy), here opened with prebuilt
statements: not enough points rolls the transaction row back with everything else the operation wrote.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple

from sqlalchemy import Connection, bindparam, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError

from storage.db import count_txns
from storage.errors import BudgetExhausted, InsufficientPoints, UnknownEmployee, WalletFrozen
from storage.fastsql import Fast, as_persistent
from storage.kinds import AccountKind, TxnKind
from storage.ledger import books, lots, reads
from storage.ledger.books import EXPIRED, HOLD, ISSUANCE
from storage.models import Account, Employee, Entry, Txn
from storage import memos

if TYPE_CHECKING:
    from storage.ledger import Ledger

_ACC, _TXNS, _EMP = Account.__table__, Txn.__table__, Employee.__table__
_target = _ACC.alias("target")
_PRELUDE = Fast(
    select(_EMP.c.status, _ACC.c.id, _ACC.c.frozen,
           select(_target.c.id).where(_target.c.name == bindparam("target")).scalar_subquery(),
           select(_TXNS.c.id).where(_TXNS.c.idem_key == bindparam("key")).scalar_subquery())
    .select_from(_EMP.outerjoin(_ACC, (_ACC.c.employee_id == _EMP.c.id) & (_ACC.c.kind == AccountKind.WALLET)))
    .where(_EMP.c.id == bindparam("emp")))
_GATE = Fast(_ACC.update().where(_ACC.c.id == bindparam("acc"), _ACC.c.balance >= bindparam("n"))
             .values(balance=_ACC.c.balance - bindparam("n"), version=_ACC.c.version + 1))
_ENTRIES = Fast(insert(Entry.__table__).values(txn_id=bindparam("txn_id"), account_id=bindparam("account_id"),
                                               amount=bindparam("amount")))
_TXN_VALUES = {c.name: bindparam(c.name) for c in _TXNS.c if c.name != "id"}
_INSERT_TXN = Fast(insert(_TXNS).values(_TXN_VALUES))
_INSERT_TXN_PG = Fast(pg_insert(_TXNS).values(_TXN_VALUES).on_conflict_do_nothing(index_elements=["idem_key"])
                      .returning(_TXNS.c.id))


_SAVEPOINT, _RELEASE, _ROLLBACK_TO = (Fast(text(f"{verb} ledger_debit")) for verb in
                                     ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT"))


@contextmanager
def _savepoint(conn: Connection) -> Iterator[None]:
    """``books.once``'s savepoint, as prebuilt statements: everything a debit writes is a prebuilt statement
    (no ORM object to forget on a rollback), and the ORM's savepoint cost a hold 0.4 ms under the lock."""
    _SAVEPOINT.run(conn, {})
    try:
        yield
    except BaseException:
        _ROLLBACK_TO.run(conn, {})
        _RELEASE.run(conn, {})
        raise
    _RELEASE.run(conn, {})


class Prelude(NamedTuple):
    status: str
    wallet_id: int | None
    frozen: bool
    target_id: int | None
    existing_id: int | None


def insert_txn_once(conn: Connection, row: dict[str, Any]) -> int | None:
    """Insert a transaction row; None when its key exists (a concurrent twin committed first).

    PostgreSQL aborts the whole transaction on a unique violation, so it asks ``ON CONFLICT DO
    NOTHING`` instead; SQLite and MariaDB roll back only the failed statement.
    """
    if conn.dialect.name == "postgresql":
        rows = _INSERT_TXN_PG.run(conn, row).rows
        return int(rows[0][0]) if rows else None
    try:
        return _INSERT_TXN.run(conn, row).lastrowid
    except IntegrityError:
        return None


def gate(lg: Ledger, account_id: int, amount: int, *, budget: bool = False) -> None:
    """Conditional UPDATE: the only overdraft check, atomic on every engine."""
    if _GATE.run(lg.s.connection(), {"acc": account_id, "n": amount}).rowcount != 1:
        raise (BudgetExhausted if budget else InsufficientPoints)(reads.balance(lg.s, account_id), amount)


def _prelude(conn: Connection, employee_id: int, target: str, idem_key: str) -> Prelude:
    rows = _PRELUDE.run(conn, {"emp": employee_id, "target": target, "key": idem_key}).rows
    if not rows:
        raise UnknownEmployee(f"no employee with id {employee_id}")
    return Prelude(*rows[0])


def debit_to(lg: Ledger, kind: TxnKind, employee_id: int, points: int, target: str, *, idem_key: str, reason: str,
             actor_id: int | None, require_active: bool, category: str = "") -> Txn:
    """Move ``points`` from the employee's wallet to ``target``, once per ``idem_key``."""
    books.check_amount(points)
    books.check_key(idem_key)
    lg.s.flush()  # the prebuilt statements below read what the ORM still holds (an award earlier in this session)
    conn = lg.s.connection()
    pre = _prelude(conn, employee_id, target, idem_key)
    if pre.existing_id is not None:
        return lg.s.get(Txn, pre.existing_id)  # type: ignore[return-value]
    if pre.wallet_id is None or pre.target_id is None:  # first debit ever: create the accounts once
        books.wallet(lg, employee_id)
        books.account(lg, target)
        pre = _prelude(conn, employee_id, target, idem_key)
    assert pre.wallet_id is not None and pre.target_id is not None
    if require_active and (pre.frozen or pre.status != "active"):
        raise WalletFrozen(f"wallet of employee {employee_id} is frozen")
    row = {"idem_key": idem_key, "kind": kind, "employee_id": employee_id, "amount": -points,
           "actor_id": actor_id, "reason": (reason or "")[:500], "category": (category or "")[:64],
           "created_at": lg.clock(), "reverses_txn_id": None, "related_txn_id": None}
    with _savepoint(conn):
        txn_id = insert_txn_once(conn, row)
        if txn_id is not None:
            gate(lg, pre.wallet_id, points)
            lots.consume(lg, pre.wallet_id, points, txn_id)
            _ENTRIES.run(conn, [{"txn_id": txn_id, "account_id": pre.wallet_id, "amount": -points},
                                {"txn_id": txn_id, "account_id": pre.target_id, "amount": points}])
    if txn_id is None:
        found = reads.find(lg.s, idem_key)
        assert found is not None
        return found
    count_txns(lg.s, kind)
    return as_persistent(lg.s, Txn, {"id": txn_id, **row})


def deduct(lg: Ledger, employee_id: int, points: int, *, idem_key: str, reason: str, actor_id: int | None = None,
           category: str = "deduct") -> Txn:
    """HR (or a rule's negative tier, ``category`` its own) takes points back; never below zero."""
    return debit_to(lg, TxnKind.DEDUCT, employee_id, points, ISSUANCE, idem_key=idem_key, reason=reason,
                    actor_id=actor_id, require_active=False, category=category)


def hold(lg: Ledger, employee_id: int, points: int, *, idem_key: str, reason: str = "") -> Txn:
    """Move points to the redemption hold while HR fulfils the order."""
    return debit_to(lg, TxnKind.HOLD, employee_id, points, HOLD, idem_key=idem_key, reason=reason,
                    actor_id=employee_id, require_active=True, category="redeem")


def move_all(lg: Ledger, employee_id: int, *, to: str | int, idem_key: str, reason: str) -> Txn | None:
    """Empty a (leaver's) wallet: expire it (``to="expired"``) or transfer to another employee."""
    def op() -> Txn | None:
        wallet = books.wallet(lg, employee_id)
        points = reads.balance(lg.s, wallet.id)
        if points <= 0:
            return None
        kind = TxnKind.EXPIRE if to == "expired" else TxnKind.TRANSFER
        txn = books.new_txn(lg, idem_key, kind, employee_id, -points, reason=reason, category="leaver")
        gate(lg, wallet.id, points)
        lots.consume(lg, wallet.id, points, txn.id)
        target = books.account(lg, EXPIRED) if to == "expired" else books.wallet(lg, int(to))
        if to != "expired":
            lots.credit_new_lot(lg, target, points, txn)
        books.entry(lg, txn, wallet, -points)
        books.entry(lg, txn, target, points)
        return txn
    return books.once(lg, idem_key, op)  # type: ignore[return-value]


def expire_past(lg: Ledger, wallet: Account, slices: list[lots.Slice], idem_key: str, related: Txn) -> Txn | None:
    """Expire at once what a refund gave back to lots already past their expiry."""
    total = sum(s.amount for s in slices)
    if not total:
        return None
    txn = books.new_txn(lg, idem_key, TxnKind.EXPIRE, wallet.employee_id, -total, reason=memos.EXPIRED_AFTER_REFUND,
                        related=related.id)
    gate(lg, wallet.id, total)
    lots.take_back(lg, slices, txn)
    books.entry(lg, txn, wallet, -total)
    books.entry(lg, txn, books.account(lg, EXPIRED), total)
    return txn
