"""Two closers of one hold (or two reversers of one award) with different keys: exactly one wins."""
from __future__ import annotations

import threading

from sqlalchemy import func, select

from storage.errors import AlreadyReversed
from storage.invariants import check_invariants
from storage.ledger import Ledger
from storage.models import Txn
from tests.storage.factories import make_employee


def _race(db, clock, fn_name: str, target: int) -> list[str]:  # type: ignore[no-untyped-def]
    barrier, results = threading.Barrier(2), []

    def run(key: str) -> None:
        barrier.wait()
        try:
            with db.session_scope() as s:
                getattr(Ledger(s, clock), fn_name)(target, idem_key=key)
            results.append("ok")
        except AlreadyReversed:
            results.append("refused")

    threads = [threading.Thread(target=run, args=(f"{fn_name}-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(results)


def test_two_releases_of_one_hold_refund_once(engine_db, clock) -> None:
    with engine_db.session_scope() as s:
        emp = make_employee(s, "E1")
        ledger = Ledger(s, clock)
        ledger.award(emp.id, 100, idem_key="a", reason="x")
        hold_id, emp_id = ledger.hold(emp.id, 60, idem_key="h").id, emp.id
    assert _race(engine_db, clock, "release", hold_id) == ["ok", "refused"]
    with engine_db.session_scope() as s:
        assert Ledger(s, clock).balance(Ledger(s, clock).wallet(emp_id).id) == 100
        assert s.scalar(select(func.count(Txn.id)).where(Txn.kind == "release")) == 1
        assert check_invariants(s) == []


def test_two_reversals_of_one_award_reverse_once(engine_db, clock) -> None:
    with engine_db.session_scope() as s:
        emp = make_employee(s, "E1")
        award_id, emp_id = Ledger(s, clock).award(emp.id, 100, idem_key="a", reason="x").id, emp.id
    assert _race(engine_db, clock, "reverse", award_id) == ["ok", "refused"]
    with engine_db.session_scope() as s:
        assert Ledger(s, clock).balance(Ledger(s, clock).wallet(emp_id).id) == 0
        assert check_invariants(s) == []
