"""Statuses and kinds as enums, stored as the strings they always were (storage/kinds.py)."""
from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import StatementError

from storage.kinds import JobRunStatus, OrderStatus, OutboxKind, OutboxStatus, TxnKind
from storage.models import Order, Outbox, Txn
from storage.outbox import enqueue
from tests.storage.ledger_helpers import ledger, people


def test_rows_read_back_as_members_stored_as_the_old_strings(engine_db, clock) -> None:
    (emp,) = people(engine_db, ("E1", {}))
    with ledger(engine_db) as lg:
        lg.award(emp, 5, idem_key="a", reason="r")
    with engine_db.session_scope() as s:
        enqueue(s, OutboxKind.NOTICE, {"x": 1}, now=clock(), idem_key="k")
    with engine_db.session_scope() as s:
        kind = s.scalar(select(Txn.kind))
        assert kind is TxnKind.AWARD and kind == "award"
        row = s.scalar(select(Outbox))
        assert (row.kind, row.status) == (OutboxKind.NOTICE, OutboxStatus.PENDING)
        raw = s.execute(text("SELECT kind, status FROM outbox")).one()
        assert tuple(raw) == ("notice", "pending")  # the very strings of before: no data migration


def test_a_misspelt_status_is_refused_when_written(engine_db, clock) -> None:
    with pytest.raises(StatementError, match="awaiting_fulfillment"), engine_db.session_scope() as s:
        enqueue(s, OutboxKind.TASK, {}, now=clock(), idem_key="t")
        s.flush()
        s.execute(Order.__table__.update().values(status="awaiting_fulfillment"))  # the American spelling


def test_a_value_this_version_does_not_know_reads_as_a_plain_string(engine_db, clock) -> None:
    with engine_db.session_scope() as s:
        enqueue(s, OutboxKind.TASK, {}, now=clock(), idem_key="t")
        s.execute(text("UPDATE outbox SET status = 'parked'"))  # written by a newer version, say
    with engine_db.session_scope() as s:
        status = s.scalar(select(Outbox.status))
        assert status == "parked" and not isinstance(status, OutboxStatus)


def test_every_enum_fits_its_column() -> None:
    for column, kind in ((Txn.__table__.c.kind, TxnKind), (Order.__table__.c.status, OrderStatus),
                         (Outbox.__table__.c.kind, OutboxKind), (Outbox.__table__.c.status, OutboxStatus)):
        assert max(len(m.value) for m in kind) <= column.type.impl.length, column
    assert {m.value for m in JobRunStatus} == {"running", "done", "failed"}
