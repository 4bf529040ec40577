"""Debits from a wallet (hold, deduct) in SQLAlchemy Core: the hot path of every redemption.

Redemptions of one employee queue on the wallet row, and on SQLite every writer queues on the
database, so whatever runs between the gate and COMMIT is paid by everyone waiting. The ORM
version took about twelve statements and 6 ms of CPU per hold; this one reads all it needs in one
query, writes the transaction row *before* taking the gate (on PostgreSQL the unique key makes a
concurrent twin wait there, not on the wallet) and then runs gate, lots, entries and commit.
``bench/ledger.py`` measures it.

A domain error (not enough points) leaves nothing behind: the gate is the first write that can
fail, and the transaction row written before it is deleted again in the same database
transaction, so no one ever sees it (what a savepoint would do, at one statement on the rare path).
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from sqlalchemy import Connection, bindparam, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.db import count_txns
from storage.fastsql import Fast, as_persistent
from storage.errors import BudgetExhausted, InsufficientPoints, InvalidAmount, UnknownEmployee, WalletFrozen
from storage.models import Account, Employee, Entry, Txn

_ACC, _TXNS, _EMP = Account.__table__, Txn.__table__, Employee.__table__
_target = _ACC.alias("target")
_PRELUDE = Fast(
    select(_EMP.c.status, _ACC.c.id, _ACC.c.frozen,
           select(_target.c.id).where(_target.c.name == bindparam("target")).scalar_subquery(),
           select(_TXNS.c.id).where(_TXNS.c.idem_key == bindparam("key")).scalar_subquery())
    .select_from(_EMP.outerjoin(_ACC, (_ACC.c.employee_id == _EMP.c.id) & (_ACC.c.kind == "wallet")))
    .where(_EMP.c.id == bindparam("emp")))
_GATE = Fast(_ACC.update().where(_ACC.c.id == bindparam("acc"), _ACC.c.balance >= bindparam("n"))
             .values(balance=_ACC.c.balance - bindparam("n"), version=_ACC.c.version + 1))
_ENTRIES = Fast(insert(Entry.__table__).values(txn_id=bindparam("txn_id"), account_id=bindparam("account_id"),
                                               amount=bindparam("amount")))
_TXN_VALUES = {c.name: bindparam(c.name) for c in _TXNS.c if c.name != "id"}
_INSERT_TXN = Fast(insert(_TXNS).values(_TXN_VALUES))
_INSERT_TXN_PG = Fast(pg_insert(_TXNS).values(_TXN_VALUES).on_conflict_do_nothing(index_elements=["idem_key"])
                      .returning(_TXNS.c.id))
_DELETE_TXN = Fast(_TXNS.delete().where(_TXNS.c.id == bindparam("id")))
MAX_POINTS = 10_000_000


class Prelude(NamedTuple):
    status: str
    wallet_id: int | None
    frozen: bool
    target_id: int | None
    existing_id: int | None


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


class DebitMixin:
    s: Session
    clock: Callable[[], datetime]

    if TYPE_CHECKING:  # provided by Ledger
        def wallet(self, employee_id: int) -> Account: ...
        def account(self, name: str, kind: str = "system", employee_id: int | None = None) -> Account: ...
        def find(self, idem_key: str) -> Txn | None: ...
        def balance(self, account_id: int) -> int: ...
        def _consume_lots(self, wallet_id: int, amount: int, txn_id: int,
                          prefer_lot: int | None = None) -> Any: ...

    def _gate_debit(self, account_id: int, amount: int, *, budget: bool = False) -> None:
        """Conditional UPDATE: the only overdraft check, atomic on every engine."""
        if _GATE.run(self.s.connection(), {"acc": account_id, "n": amount}).rowcount != 1:
            available = self.balance(account_id)
            raise (BudgetExhausted if budget else InsufficientPoints)(available, amount)

    def _prelude(self, conn: Connection, employee_id: int, target: str, idem_key: str) -> Prelude:
        rows = _PRELUDE.run(conn, {"emp": employee_id, "target": target, "key": idem_key}).rows
        if not rows:
            raise UnknownEmployee(f"no employee with id {employee_id}")
        return Prelude(*rows[0])

    def _debit_to(self, kind: str, employee_id: int, points: int, target: str, *, idem_key: str, reason: str,
                  actor_id: int | None, require_active: bool, category: str = "") -> Txn:
        check_amount(points)
        check_key(idem_key)
        self.s.flush()  # Core below must see what the ORM still holds (an award earlier in this session)
        conn = self.s.connection()
        pre = self._prelude(conn, employee_id, target, idem_key)
        if pre.existing_id is not None:
            return self.s.get(Txn, pre.existing_id)  # type: ignore[return-value]
        if pre.wallet_id is None or pre.target_id is None:  # first debit ever: create the accounts once
            self.wallet(employee_id)
            self.account(target)
            self.s.flush()
            pre = self._prelude(conn, employee_id, target, idem_key)
        assert pre.wallet_id is not None and pre.target_id is not None
        if require_active and (pre.frozen or pre.status != "active"):
            raise WalletFrozen(f"wallet of employee {employee_id} is frozen")
        row = {"idem_key": idem_key, "kind": kind, "employee_id": employee_id, "amount": -points,
               "actor_id": actor_id, "reason": (reason or "")[:500], "category": (category or "")[:64],
               "created_at": self.clock(), "reverses_txn_id": None, "related_txn_id": None}
        txn_id = insert_txn_once(conn, row)
        if txn_id is None:
            found = self.find(idem_key)
            assert found is not None
            return found
        try:
            self._gate_debit(pre.wallet_id, points)
        except InsufficientPoints:
            _DELETE_TXN.run(conn, {"id": txn_id})
            raise
        self._consume_lots(pre.wallet_id, points, txn_id)
        _ENTRIES.run(conn, [{"txn_id": txn_id, "account_id": pre.wallet_id, "amount": -points},
                                {"txn_id": txn_id, "account_id": pre.target_id, "amount": points}])
        count_txns(self.s, kind)
        return as_persistent(self.s, Txn, {"id": txn_id, **row})
