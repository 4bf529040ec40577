"""Fast statements give the same rows, types and errors as SQLAlchemy's own execution, per engine."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import bindparam, func, insert, literal_column, select, text
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.fastsql import Fast
from storage.models import Account, Employee, Txn

_TXNS, _ACC = Txn.__table__, Account.__table__
INSERT = Fast(insert(_TXNS).values({c.name: bindparam(c.name) for c in _TXNS.c if c.name != "id"}))
BY_KIND = Fast(select(_ACC.c.id, _ACC.c.name).where(_ACC.c.kind == "wallet", _ACC.c.balance > literal_column("0"))
               .order_by(_ACC.c.id).limit(2))
BUMP = Fast(_ACC.update().where(_ACC.c.id == bindparam("id"), _ACC.c.balance >= bindparam("n"))
            .values(balance=_ACC.c.balance - bindparam("n")))


def _row(key: str, at: datetime) -> dict:
    return {"idem_key": key, "kind": "award", "employee_id": None, "amount": 5, "actor_id": None, "reason": "r",
            "category": "c", "created_at": at, "reverses_txn_id": None, "related_txn_id": None}


def test_a_datetime_is_stored_exactly_as_the_orm_stores_it(engine_db: Database) -> None:
    at = datetime(2026, 3, 10, 2, 0, 0)  # no microseconds: sqlite3's own adapter would drop ".000000"
    with engine_db.session_scope() as s:
        INSERT.run(s.connection(), _row("fast", at))
        s.add(Txn(**_row("orm", at)))
    with engine_db.session_scope() as s:
        got = dict(s.execute(select(Txn.idem_key, Txn.created_at)).all())
        assert got == {"fast": at, "orm": at}
        # the stored values are identical, so equality and range queries see both rows
        assert s.scalar(select(func.count()).select_from(_TXNS).where(_TXNS.c.created_at == at)) == 2
        assert len(s.execute(text("SELECT DISTINCT created_at FROM ledger_txns")).all()) == 1


def test_last_row_id_where_the_driver_has_one_and_unique_violations_as_integrity_error(engine_db: Database) -> None:
    at = datetime(2026, 3, 10)
    with engine_db.session_scope() as s:
        conn = s.connection()
        if engine_db.dialect != "postgresql":
            new_id = INSERT.run(conn, _row("k", at)).lastrowid
            assert s.scalar(select(Txn.idem_key).where(Txn.id == new_id)) == "k"
        else:
            INSERT.run(conn, _row("k", at))
    with pytest.raises(IntegrityError):
        with engine_db.session_scope() as s:
            INSERT.run(s.connection(), _row("k", at))
    with engine_db.session_scope() as s:
        assert s.scalar(select(literal_column("count(*)")).select_from(_TXNS)) == 1


def test_literals_bound_values_rowcount_and_many(engine_db: Database) -> None:
    with engine_db.session_scope() as s:
        s.add_all([Employee(employee_no=f"E{i}", name=f"n{i}", department="", role="employee", status="active",
                            created_at=datetime(2026, 1, 1)) for i in range(3)])
        s.flush()
        ids = list(s.scalars(select(Employee.id).order_by(Employee.id)))
        conn = s.connection()
        Fast(insert(_ACC).values(kind=bindparam("kind"), employee_id=bindparam("e"), name=bindparam("name"),
                                 balance=bindparam("b"), version=0, frozen=False)).run(conn, [
            {"kind": "wallet", "e": ids[0], "name": "w0", "b": 10},
            {"kind": "wallet", "e": ids[1], "name": "w1", "b": 0},
            {"kind": "budget", "e": ids[2], "name": "b2", "b": 7},
            {"kind": "wallet", "e": ids[2], "name": "w2", "b": 3}])
        rows = BY_KIND.run(conn, {}).rows
        assert [name for _, name in rows] == ["w0", "w2"]  # kind literal, balance > 0, LIMIT 2
        w0 = rows[0][0]
        assert BUMP.run(conn, {"id": w0, "n": 4}).rowcount == 1
        assert BUMP.run(conn, {"id": w0, "n": 7}).rowcount == 0  # the gate holds
        assert s.scalar(select(Account.balance).where(Account.id == w0)) == 6


def test_select_rows_come_back_typed_as_the_orm_reads_them(engine_db: Database) -> None:
    at = datetime(2026, 3, 10, 2, 0, 7)
    with engine_db.session_scope() as s:
        INSERT.run(s.connection(), _row("typed", at))
        s.add(Account(kind="system", employee_id=None, name="frozen-one", balance=0, version=0, frozen=True))
    read = Fast(select(_TXNS.c.created_at, _TXNS.c.amount).where(_TXNS.c.idem_key == bindparam("k")))
    flags = Fast(select(_ACC.c.frozen).where(_ACC.c.name == bindparam("n")))
    with engine_db.session_scope() as s:
        assert read.run(s.connection(), {"k": "typed"}).rows == [(at, 5)]
        (frozen,), = flags.run(s.connection(), {"n": "frozen-one"}).rows
        assert frozen is True or frozen == 1  # MariaDB's TINYINT comes back as 1 (no processor there)
        assert bool(frozen)
