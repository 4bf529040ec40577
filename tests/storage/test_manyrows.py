"""Many-row writes (storage.manyrows) give the same rows on every engine, PostgreSQL's unnest path included."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from storage.db import Database
from storage.kinds import AccountKind, TxnKind
from storage.manyrows import among, insert_returning_ids, insert_rows, subtract_from
from storage.models import Account, Entry, Txn

AT = datetime(2026, 3, 10, 2, 0, 7)  # whole seconds: MariaDB DATETIME keeps no fraction


def _txn(key: str, amount: int, employee_id: int | None = None) -> dict:
    return {"idem_key": key, "kind": TxnKind.EXPIRE, "employee_id": employee_id, "amount": amount, "actor_id": None,
            "reason": "积分到期", "category": "expiry", "created_at": AT, "reverses_txn_id": None,
            "related_txn_id": None}


def test_ids_come_back_in_the_order_of_the_rows_and_values_survive(engine_db: Database) -> None:
    rows = [_txn(f"k{i:03d}", -i) for i in (5, 1, 9, 3)]
    with engine_db.session_scope() as s:
        ids = insert_returning_ids(s.connection(), Txn.__table__, rows, "idem_key")
        assert insert_returning_ids(s.connection(), Txn.__table__, [], "idem_key") == []
    with engine_db.session_scope() as s:
        stored = {t.id: t for t in s.scalars(select(Txn))}
    assert [stored[i].idem_key for i in ids] == [r["idem_key"] for r in rows]
    assert [stored[i].amount for i in ids] == [-5, -1, -9, -3]
    assert {(t.kind, t.reason, t.created_at, t.actor_id) for t in stored.values()} == {(TxnKind.EXPIRE, "积分到期", AT, None)}


def test_insert_rows_subtract_and_among(engine_db: Database) -> None:
    with engine_db.session_scope() as s:
        conn = s.connection()
        insert_rows(conn, Account.__table__, [
            {"kind": AccountKind.SYSTEM, "employee_id": None, "name": f"a{i}", "balance": 100 * i, "version": 0,
             "frozen": False} for i in range(1, 5)])
        accounts = dict(s.execute(select(Account.name, Account.id)).all())
        (txn_id,) = insert_returning_ids(conn, Txn.__table__, [_txn("t", 0)], "idem_key")
        insert_rows(conn, Entry.__table__, [{"txn_id": txn_id, "account_id": accounts[f"a{i}"], "amount": i}
                                            for i in range(1, 5)])
        subtract_from(conn, Account.__table__, "balance", {accounts["a2"]: 50, accounts["a4"]: 400})
        subtract_from(conn, Account.__table__, "balance", {})
        picked = s.scalars(select(Account.name).where(among(Account.id, [accounts["a1"], accounts["a3"]],
                                                            engine_db.dialect)).order_by(Account.name)).all()
        assert picked == ["a1", "a3"]
    with engine_db.session_scope() as s:
        assert dict(s.execute(select(Account.name, Account.balance)).all()) == {"a1": 100, "a2": 150, "a3": 300,
                                                                               "a4": 0}
        assert sorted(s.scalars(select(Entry.amount).where(Entry.txn_id == txn_id))) == [1, 2, 3, 4]
