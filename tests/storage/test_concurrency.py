"""Concurrency with teeth (docs/reliability.md §1.3, target T1): real OS processes racing on one engine.

Naive read-compute-write code gives 400 successes out of 400 here on every engine (§1.3); the
ledger must give exactly 100, a zero balance and clean invariants.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from storage.db import Database
from storage.errors import BudgetExhausted, InsufficientPoints
from storage.ledger.expiry import expire_due
from storage.invariants import check_invariants
from storage.ledger import EXPIRED, Ledger
from storage.models import Account, Entry, Lot, LotAllocation, Txn
from storage.transient import is_transient
from tests.storage.factories import make_employee

PROCS, PER_PROC, FUNDS = 8, 50, 100
T0 = datetime(2026, 3, 10, 2, 0, 0)
CTX = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


def fixed_clock() -> datetime:
    return T0


def _run(target, args_per_proc: list[tuple], timeout: float = 240) -> list:  # type: ignore[no-untyped-def]
    """Start one process per args tuple, all released together by a barrier; return their results."""
    barrier, queue = CTX.Barrier(len(args_per_proc)), CTX.Queue()
    procs = [CTX.Process(target=_child, args=(target, barrier, queue, args)) for args in args_per_proc]
    for p in procs:
        p.start()
    results = [queue.get(timeout=timeout) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    errors = [r[1] for r in results if r[0] == "error"]
    assert not errors, errors[0]
    return [r[1] for r in results]


def _child(target, barrier, queue, args) -> None:  # type: ignore[no-untyped-def]
    try:
        queue.put(("ok", target(barrier, *args)))
    except BaseException:  # noqa: BLE001 - reported to the parent
        queue.put(("error", traceback.format_exc()))


# ---- workers (module level so that spawn can import them) ------------------------------------------

def _holds(barrier, url: str, emp: int, n: int) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    db = Database(url)
    ok = refused = 0
    barrier.wait()
    for i in range(n):
        try:
            with db.session_scope() as s:
                Ledger(s, fixed_clock).hold(emp, 1, idem_key=f"hold:{os.getpid()}:{i}")
            ok += 1
        except InsufficientPoints:
            refused += 1
    db.dispose()
    return ok, refused


def _budget_awards(barrier, url: str, manager: int, emps: list[int], n: int) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    db = Database(url)
    ok = refused = 0
    barrier.wait()
    for i in range(n):
        try:
            with db.session_scope() as s:
                Ledger(s, fixed_clock).award(emps[i % len(emps)], 1, idem_key=f"award:{os.getpid()}:{i}",
                                             reason="race", budget_of=manager)
            ok += 1
        except BudgetExhausted:
            refused += 1
    db.dispose()
    return ok, refused


def _credits_to_one(barrier, url: str, emp: int, manager: int, rounds: int) -> int:  # type: ignore[no-untyped-def]
    """Every kind of credit to one wallet at once (award, budget award, refund, undone deduction);
    returns the transient errors met, which a right lock order makes zero."""
    db = Database(url)
    transient = 0
    for i in range(rounds):
        barrier.wait()
        key = f"{os.getpid()}:{i}"
        try:
            with db.session_scope() as s:
                lg = Ledger(s, fixed_clock)
                if i % 3 == 0:
                    lg.award(emp, 2, idem_key=f"credit:{key}", reason="race")
                elif i % 3 == 1:
                    lg.award(emp, 1, idem_key=f"credit:{key}", reason="race", budget_of=manager)
                else:
                    lg.release(lg.hold(emp, 1, idem_key=f"hold:{key}").id, idem_key=f"release:{key}")
        except Exception as exc:  # noqa: BLE001 - counted, the parent asserts there were none
            if not is_transient(exc):
                raise
            transient += 1
    db.dispose()
    return transient


def _same_keys(barrier, url: str, emp: int, rounds: int) -> list[int]:  # type: ignore[no-untyped-def]
    db = Database(url)
    ids = []
    for i in range(rounds):
        barrier.wait()  # every process sends key i at the same moment
        with db.session_scope() as s:
            lg = Ledger(s, fixed_clock)
            if i % 2:
                ids.append(lg.hold(emp, 1, idem_key=f"twin-hold:{i}").id)
            else:
                ids.append(lg.award(emp, 3, idem_key=f"twin-award:{i}", reason="twin").id)
    db.dispose()
    return ids


def _expire(barrier, url: str, cutoff: datetime, batch: int) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    db = Database(url)
    barrier.wait()
    res = expire_due(db, cutoff, batch_size=batch)
    db.dispose()
    return res.lots, res.points


# ---- helpers ---------------------------------------------------------------------------------------

def invariants(db: Database) -> list[str]:
    with db.session_scope() as s:
        return check_invariants(s)


def wallet_balance(db: Database, emp: int) -> int:
    with db.session_scope() as s:
        return int(s.scalar(select(Account.balance).where(Account.kind == "wallet", Account.employee_id == emp)))


# ---- tests -----------------------------------------------------------------------------------------

def test_concurrent_credits_to_one_wallet_never_deadlock(engine_db, engine_url):
    """Account UPDATEs come before the entry INSERTs that lock them for their foreign keys (docs/reliability.md):
    twelve awards to one employee deadlocked on MariaDB when the order was the other way round."""
    with engine_db.session_scope() as s:
        emp, manager = make_employee(s, "E1").id, make_employee(s, "M1", role="manager").id
        lg = Ledger(s, fixed_clock)
        lg.award(emp, 100, idem_key="seed", reason="seed")
        lg.grant_budget(manager, "2026-03", 1000)
    engine_db.dispose()
    rounds = 12
    assert _run(_credits_to_one, [(engine_url, emp, manager, rounds)] * PROCS) == [0] * PROCS
    awards, budget_awards = PROCS * len(range(0, rounds, 3)) * 2, PROCS * len(range(1, rounds, 3))
    assert wallet_balance(engine_db, emp) == 100 + awards + budget_awards
    assert invariants(engine_db) == []


def test_concurrent_holds_never_overdraw(engine_db, engine_url):
    with engine_db.session_scope() as s:
        emp = make_employee(s, "E1").id
        lg = Ledger(s, fixed_clock)
        for i in range(10):  # ten lots, so the holds also race over lot remainders
            lg.award(emp, FUNDS // 10, idem_key=f"seed:{i}", reason="seed")
    engine_db.dispose()
    results = _run(_holds, [(engine_url, emp, PER_PROC)] * PROCS)
    assert sum(ok for ok, _ in results) == FUNDS
    assert sum(refused for _, refused in results) == PROCS * PER_PROC - FUNDS
    assert wallet_balance(engine_db, emp) == 0
    with engine_db.session_scope() as s:
        assert s.scalar(select(func.count(Txn.id)).where(Txn.kind == "hold")) == FUNDS
        assert s.scalar(select(func.sum(Lot.remaining))) == 0
        assert s.scalar(select(func.sum(LotAllocation.amount))) == FUNDS
    assert invariants(engine_db) == []


def test_concurrent_budget_awards_never_overdraw(engine_db, engine_url):
    with engine_db.session_scope() as s:
        manager = make_employee(s, "M1", role="manager").id
        emps = [make_employee(s, f"E{i}").id for i in range(4)]
        lg = Ledger(s, fixed_clock)
        for e in emps:
            lg.wallet(e)
        lg.grant_budget(manager, "2026-03", FUNDS)
    engine_db.dispose()
    results = _run(_budget_awards, [(engine_url, manager, emps, PER_PROC)] * PROCS)
    assert sum(ok for ok, _ in results) == FUNDS
    assert sum(refused for _, refused in results) == PROCS * PER_PROC - FUNDS
    with engine_db.session_scope() as s:
        budget = s.scalar(select(Account.balance).where(Account.kind == "budget", Account.employee_id == manager))
        wallets = s.scalar(select(func.sum(Account.balance)).where(Account.kind == "wallet"))
        assert (budget, wallets) == (0, FUNDS)
        assert s.scalar(select(func.count(Txn.id)).where(Txn.kind == "award")) == FUNDS
    assert invariants(engine_db) == []


def test_concurrent_identical_keys_make_one_txn(engine_db, engine_url):
    rounds = 20
    with engine_db.session_scope() as s:
        emp = make_employee(s, "E1").id
        Ledger(s, fixed_clock).award(emp, 100, idem_key="seed", reason="seed")
    engine_db.dispose()
    results = _run(_same_keys, [(engine_url, emp, rounds)] * 4)
    for i in range(rounds):
        assert len({ids[i] for ids in results}) == 1, f"round {i}: {[ids[i] for ids in results]}"
    with engine_db.session_scope() as s:
        assert s.scalar(select(func.count(Txn.id)).where(Txn.kind == "award")) == 1 + rounds // 2
        assert s.scalar(select(func.count(Txn.id)).where(Txn.kind == "hold")) == rounds // 2
    assert wallet_balance(engine_db, emp) == 100 + 3 * (rounds // 2) - rounds // 2
    assert invariants(engine_db) == []


def test_concurrent_expiry_runs_expire_each_lot_once(engine_db, engine_url):
    employees, lots_each = 40, 10
    with engine_db.session_scope() as s:
        emps = [make_employee(s, f"E{i}").id for i in range(employees)]
    clock = [T0]
    for half in range(2):  # the first half of each wallet's lots is earned 100 days before the second
        with engine_db.session_scope() as s:
            lg = Ledger(s, lambda: clock[0])
            for e in emps:
                for j in range(lots_each // 2):
                    lg.award(e, j + 1, idem_key=f"seed:{half}:{e}:{j}", reason="seed")
        clock[0] += timedelta(days=100)
    with engine_db.session_scope() as s:  # spend a little so that some due lots are partly used
        lg = Ledger(s, lambda: clock[0])
        for e in emps[::3]:
            lg.hold(e, 4, idem_key=f"spend:{e}")
    cutoff = T0 + timedelta(days=365, hours=1)
    with engine_db.session_scope() as s:
        due_lots = s.scalar(select(func.count(Lot.id)).where(Lot.expires_at <= cutoff, Lot.remaining > 0))
        due_points = int(s.scalar(select(func.sum(Lot.remaining)).where(Lot.expires_at <= cutoff)))
        total_before = int(s.scalar(select(func.sum(Account.balance)).where(Account.kind == "wallet")))
    assert 0 < due_lots < employees * lots_each // 2  # some due lots were spent entirely
    engine_db.dispose()
    results = _run(_expire, [(engine_url, cutoff, 7), (engine_url, cutoff, 7)])
    assert sum(lots for lots, _ in results) == due_lots
    assert sum(points for _, points in results) == due_points
    with engine_db.session_scope() as s:
        assert s.scalar(select(func.count(Lot.id)).where(Lot.expires_at <= cutoff, Lot.remaining > 0)) == 0
        expired_allocs = s.execute(select(LotAllocation.lot_id, func.count(LotAllocation.id))
                                   .join(Txn, Txn.id == LotAllocation.txn_id).where(Txn.kind == "expire")
                                   .group_by(LotAllocation.lot_id)).all()
        assert len(expired_allocs) == due_lots and all(n == 1 for _, n in expired_allocs)
        expired = s.scalar(select(func.sum(Entry.amount)).join(Account, Account.id == Entry.account_id)
                           .where(Account.name == EXPIRED))
        assert int(expired) == due_points
        after = int(s.scalar(select(func.sum(Account.balance)).where(Account.kind == "wallet")))
        assert after == total_before - due_points
    assert invariants(engine_db) == []
    again = expire_due(engine_db, cutoff)
    assert (again.lots, again.points) == (0, 0)
