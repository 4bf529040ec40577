"""Stateful property test of the ledger (docs/reliability.md §8, target T2).

A Hypothesis ``RuleBasedStateMachine`` drives random awards (issuance and budget), deductions,
holds, settlements, releases, reversals, leaver moves, budget grants, freezes, expiry runs and
clock moves against a plain-Python model of lots. After every step the database must agree with
the model: invariants 1–6 (``check_invariants() == []``), every wallet balance and every lot's
remainder, the budget and the system accounts; each debit's allocations must be the model's FIFO
slices and each refund must restore exactly the slices it undoes.
"""
from __future__ import annotations

import gc
import os
import shutil
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, \
    run_state_machine_as_test
from sqlalchemy import func, select, text

from storage.db import Database
from storage.errors import (AlreadyReversed, BudgetExhausted, InsufficientPoints, NotReversible, UnknownTxn,
                            WalletFrozen)
from storage.ledger.expiry import expire_due
from storage.invariants import check_invariants
from storage.ledger import EXPIRED, HOLD, REDEEMED, Ledger
from storage.models import Account, Base, Entry, Lot, LotAllocation, Txn
from tests.conftest import FakeClock
from tests.storage.factories import make_employee
from tests.storage.ledger_model import VALIDITY_DAYS, Model, MTxn

EMPLOYEES = 3
SQLITE_EXAMPLES, PG_EXAMPLES, STEPS = int(os.environ.get("LEDGER_SM_EXAMPLES", 200)), 50, 50


# Built once: the invariant runs after every step, and building statements is a good part of its cost.
LOTS_Q = select(Lot.id, Lot.remaining)
ACCOUNTS_Q = select(Account.name, Account.kind, Account.balance,
                    select(func.coalesce(func.sum(Entry.amount), 0)).where(Entry.account_id == Account.id)
                    .scalar_subquery(),
                    select(func.count(Txn.id)).scalar_subquery())


def make_machine(open_db: Callable[[FakeClock], Database], close_db: Callable[[Database], None],
                 stats: dict[str, int]) -> type[RuleBasedStateMachine]:
    class LedgerMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.clock = FakeClock()
            self.db = open_db(self.clock)
            self.model = Model(self.clock())
            with self.db.session_scope() as s:
                self.emps = [make_employee(s, f"E{i}").id for i in range(EMPLOYEES)]
                self.manager = make_employee(s, "M", role="manager").id
                lg = self.ledger(s)
                for e in self.emps:
                    lg.wallet(e)
            self.lot_ids: list[int] = []  # model lot index -> database lot id
            self.txns: dict[int, MTxn] = {}
            self.award_calls: list[tuple[str, int, int, bool, int]] = []
            self.months = 0
            self.n = 0

        def teardown(self) -> None:
            close_db(self.db)
            if self.n >= STEPS:
                stats["examples"] += 1
            stats["steps"] += self.n

        # ---- helpers --------------------------------------------------------------------------
        def ledger(self, s) -> Ledger:  # type: ignore[no-untyped-def]
            return Ledger(s, self.clock, validity_days=VALIDITY_DAYS)

        def key(self, prefix: str) -> str:
            self.n += 1
            return f"{prefix}:{self.n}"

        def lot_of(self, s, txn_id: int) -> int:  # type: ignore[no-untyped-def]
            return s.scalar(select(Lot.id).where(Lot.txn_id == txn_id))

        @staticmethod
        def db_slices(s, txn_id: int) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
            """The allocations a txn wrote, read in the session that wrote them."""
            s.flush()
            rows = s.execute(select(LotAllocation.lot_id, LotAllocation.amount)
                             .where(LotAllocation.txn_id == txn_id).order_by(LotAllocation.id)).all()
            return [(int(a), int(b)) for a, b in rows]

        def as_db(self, slices: list[tuple[int, int]]) -> list[tuple[int, int]]:
            return [(self.lot_ids[i], pts) for i, pts in slices]

        def refused(self, exc: type[Exception], call: Callable[[Ledger], object]) -> None:
            """The call must raise ``exc``; the invariant then checks nothing was written."""
            with pytest.raises(exc):
                with self.db.session_scope() as s:
                    call(self.ledger(s))

        # ---- rules ----------------------------------------------------------------------------
        @rule(e=st.integers(0, EMPLOYEES - 1), points=st.integers(1, 30))
        def award_issuance(self, e: int, points: int) -> None:
            emp, key = self.emps[e], self.key("award")
            if emp in self.model.frozen:
                return self.refused(WalletFrozen, lambda lg: lg.award(emp, points, idem_key=key, reason="r"))
            with self.db.session_scope() as s:
                txn = self.ledger(s).award(emp, points, idem_key=key, reason="r")
                self.lot_ids.append(self.lot_of(s, txn.id))
            self.txns[txn.id] = MTxn("award", emp, points, lot=self.model.new_lot(emp, points))
            self.model.txns += 1
            self.award_calls.append((key, emp, points, False, txn.id))

        @rule(e=st.integers(0, EMPLOYEES - 1), points=st.integers(1, 30))
        def award_budget(self, e: int, points: int) -> None:
            emp, key, m = self.emps[e], self.key("award-b"), self.manager
            if emp in self.model.frozen:
                return self.refused(WalletFrozen, lambda lg: lg.award(emp, points, idem_key=key, reason="r",
                                                                      budget_of=m))
            if points > self.model.budget:
                return self.refused(BudgetExhausted, lambda lg: lg.award(emp, points, idem_key=key, reason="r",
                                                                         budget_of=m))
            with self.db.session_scope() as s:
                txn = self.ledger(s).award(emp, points, idem_key=key, reason="r", budget_of=m)
                self.lot_ids.append(self.lot_of(s, txn.id))
            self.model.budget -= points
            self.txns[txn.id] = MTxn("award", emp, points, lot=self.model.new_lot(emp, points), budget=True)
            self.model.txns += 1
            self.award_calls.append((key, emp, points, True, txn.id))

        @rule(amount=st.integers(1, 100), rollover=st.booleans(), repeat=st.booleans())
        def grant_budget(self, amount: int, rollover: bool, repeat: bool) -> None:
            self.key("grant")
            if repeat and self.months:  # the same month again: nothing changes
                with self.db.session_scope() as s:
                    self.ledger(s).grant_budget(self.manager, f"m{self.months}", amount, rollover=rollover)
                return
            self.months += 1
            with self.db.session_scope() as s:
                self.ledger(s).grant_budget(self.manager, f"m{self.months}", amount, rollover=rollover)
            self.model.txns += 1 if rollover or not self.model.budget else 2  # the reset of what was left
            self.model.budget = self.model.budget + amount if rollover else amount

        def _debit(self, kind: str, e: int, points: int) -> None:
            emp, key = self.emps[e], self.key(kind)

            def call(lg: Ledger):  # type: ignore[no-untyped-def]
                if kind == "hold":
                    return lg.hold(emp, points, idem_key=key)
                return lg.deduct(emp, points, idem_key=key, reason="r")
            if kind == "hold" and emp in self.model.frozen:
                return self.refused(WalletFrozen, call)
            if points > self.model.balance(emp):
                return self.refused(InsufficientPoints, call)
            with self.db.session_scope() as s:
                txn_id = call(self.ledger(s)).id
                got = self.db_slices(s, txn_id)
            slices = self.model.consume(emp, points)
            assert got == self.as_db(slices), "FIFO order"
            self.txns[txn_id] = MTxn(kind, emp, points, slices=slices)
            self.model.txns += 1
            if kind == "hold":
                self.model.held += points

        @rule(e=st.integers(0, EMPLOYEES - 1), points=st.integers(1, 40))
        def hold(self, e: int, points: int) -> None:
            self._debit("hold", e, points)

        @rule(e=st.integers(0, EMPLOYEES - 1), points=st.integers(1, 40))
        def deduct(self, e: int, points: int) -> None:
            self._debit("deduct", e, points)

        def _pick(self, data: st.DataObject, kinds: tuple[str, ...]) -> int | None:
            ids = sorted(t for t, m in self.txns.items() if m.kind in kinds)
            return data.draw(st.sampled_from(ids)) if ids else None

        @rule(data=st.data())
        def settle(self, data: st.DataObject) -> None:
            tid, key = self._pick(data, ("hold",)), self.key("settle")
            if tid is None:
                return
            h = self.txns[tid]
            if h.closed:
                return self.refused(AlreadyReversed, lambda lg: lg.settle(tid, idem_key=key))
            with self.db.session_scope() as s:
                self.ledger(s).settle(tid, idem_key=key)
            h.closed = True
            self.model.held -= h.amount
            self.model.redeemed += h.amount
            self.model.txns += 1

        @rule(data=st.data())
        def release(self, data: st.DataObject) -> None:
            tid, key = self._pick(data, ("hold",)), self.key("release")
            if tid is None:
                return
            h = self.txns[tid]
            if h.closed:
                return self.refused(AlreadyReversed, lambda lg: lg.release(tid, idem_key=key))
            with self.db.session_scope() as s:
                rid = self.ledger(s).release(tid, idem_key=key).id
                got = self.db_slices(s, rid)
            h.closed = True
            self.model.held -= h.amount
            self.model.txns += 1
            self.model.restore(h.slices)
            self._check_refund(got, h.slices)

        def _check_refund(self, got: list[tuple[int, int]], slices: list[tuple[int, int]]) -> None:
            """Exact refund: the refund's allocations are the negated slices of what it undoes."""
            merged: dict[int, int] = {}
            for i, pts in slices:
                merged[self.lot_ids[i]] = merged.get(self.lot_ids[i], 0) + pts
            assert sorted(got) == sorted((lot, -pts) for lot, pts in merged.items()), "exact refund"

        @rule(data=st.data(), partial=st.booleans())
        def reverse(self, data: st.DataObject, partial: bool) -> None:
            tid, key = self._pick(data, ("award", "deduct", "expire", "hold", "transfer")), self.key("reverse")
            if tid is None:
                return self.refused(UnknownTxn, lambda lg: lg.reverse(10**9, idem_key=key))
            t = self.txns[tid]
            if t.kind in ("hold", "transfer"):
                return self.refused(NotReversible, lambda lg: lg.reverse(tid, idem_key=key))
            if t.closed:
                return self.refused(AlreadyReversed, lambda lg: lg.reverse(tid, idem_key=key, allow_partial=partial))
            if t.kind == "award":
                have = self.model.balance(t.emp)
                if not partial and have < t.amount:
                    return self.refused(InsufficientPoints, lambda lg: lg.reverse(tid, idem_key=key))
                with self.db.session_scope() as s:
                    rtxn, shortfall = self.ledger(s).reverse(tid, idem_key=key, allow_partial=partial)
                    got = self.db_slices(s, rtxn.id)
                take = min(t.amount, have)
                assert shortfall == t.amount - take
                slices = self.model.consume(t.emp, take, prefer=t.lot) if take else []
                assert got == self.as_db(slices), "reversal takes the awarded lot first, then FIFO"
                if t.budget:
                    self.model.budget += take
            else:
                with self.db.session_scope() as s:
                    rtxn, shortfall = self.ledger(s).reverse(tid, idem_key=key, allow_partial=partial)
                    got = self.db_slices(s, rtxn.id)
                assert shortfall == 0
                live, new_lot = self.model.give_back(t.emp, t.slices)
                if t.kind == "expire":
                    self.model.expired -= t.amount
                self._check_refund(got, live)
                if new_lot is not None:
                    with self.db.session_scope() as s:
                        self.lot_ids.append(self.lot_of(s, rtxn.id))
            t.closed = True
            self.model.txns += 1

        @rule(e=st.integers(0, EMPLOYEES - 1), to=st.integers(-1, EMPLOYEES - 1))
        def move_all(self, e: int, to: int) -> None:
            emp, key = self.emps[e], self.key("move")
            if to == e:
                return
            target: str | int = "expired" if to < 0 else self.emps[to]
            points = self.model.balance(emp)
            with self.db.session_scope() as s:
                txn = self.ledger(s).move_all(emp, to=target, idem_key=key, reason="leaver")
                tid = txn.id if txn is not None else None
                new_lot = self.lot_of(s, tid) if tid is not None and target != "expired" else None
                got = self.db_slices(s, tid) if tid is not None else []
            if not points:
                assert tid is None
                return
            assert tid is not None
            slices = self.model.consume(emp, points)
            assert got == self.as_db(slices)
            if target == "expired":
                self.model.expired += points
            else:
                self.lot_ids.append(new_lot)  # type: ignore[arg-type]
                self.model.new_lot(int(target), points)
            self.txns[tid] = MTxn("expire" if target == "expired" else "transfer", emp, points, slices=slices)
            self.model.txns += 1

        @rule(e=st.integers(0, EMPLOYEES - 1))
        def toggle_frozen(self, e: int) -> None:
            emp = self.emps[e]
            self.key("freeze")
            frozen = emp not in self.model.frozen
            with self.db.session_scope() as s:
                self.ledger(s).set_frozen(emp, frozen)
            (self.model.frozen.add if frozen else self.model.frozen.discard)(emp)

        @rule(batch=st.sampled_from([1, 2, 1000]))
        def expire(self, batch: int) -> None:
            self.key("expire")
            res = expire_due(self.db, self.clock(), batch_size=batch)
            assert res.points == self.model.expire()

        @rule(days=st.integers(0, 6))
        def advance(self, days: int) -> None:
            self.key("clock")
            self.clock.advance(days=days)
            self.model.now = self.clock()

        @precondition(lambda self: bool(self.award_calls))
        @rule(data=st.data())
        def retry_award(self, data: st.DataObject) -> None:
            key, emp, points, budget, tid = data.draw(st.sampled_from(self.award_calls))
            self.key("retry")
            with self.db.session_scope() as s:
                got = self.ledger(s).award(emp, points, idem_key=key, reason="again",
                                           budget_of=self.manager if budget else None).id
            assert got == tid  # and the invariant checks that no row was added

        # ---- invariants -----------------------------------------------------------------------
        @invariant()
        def database_matches_model(self) -> None:
            m = self.model
            with self.db.session_scope() as s:
                assert check_invariants(s) == []
                lots = dict(s.connection().execute(LOTS_Q).all())
                accounts = s.connection().execute(ACCOUNTS_Q).all()
            assert lots == {self.lot_ids[i]: l.remaining for i, l in enumerate(m.lots)}, "lot remainders"
            cached = {name: int(bal) for name, kind, bal, _, _ in accounts if kind != "system"}
            summed = {name: int(total) for name, _, _, total, _ in accounts}
            assert cached == {**{f"wallet:{e}": m.balance(e) for e in self.emps},
                              **({f"budget:{self.manager}": m.budget} if self.months else {})}, "balances"
            assert [summed.get(n, 0) for n in (HOLD, EXPIRED, REDEEMED)] == [m.held, m.expired, m.redeemed]
            assert int(accounts[0][4]) == m.txns, "ledger transactions written"
            assert all(0 <= l.remaining <= l.amount for l in m.lots)

    return LedgerMachine


def run(machine: type[RuleBasedStateMachine], examples: int) -> None:
    # ``_min_steps``: every passing example runs the full STEPS (Hypothesis otherwise ends a few
    # early); a failing one still stops, and shrinks, at its failing step.
    gc.collect()
    gc.freeze()  # the long-lived objects of pytest and the imports need not be rescanned (~10% faster)
    try:
        run_state_machine_as_test(machine, _min_steps=STEPS - 1, settings=settings(
            max_examples=examples, stateful_step_count=STEPS, deadline=None, database=None, print_blob=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]))
    finally:
        gc.unfreeze()


def assert_enough(stats: dict[str, int], examples: int) -> None:
    assert stats["examples"] >= examples, stats
    assert stats["steps"] >= examples * STEPS, stats


def test_ledger_state_machine_sqlite(tmp_path) -> None:
    """A fresh SQLite file per example: a copy of an empty schema, under one engine (warm statement cache)."""
    template, path = tmp_path / "template.db", tmp_path / "ledger.db"
    seed = Database(f"sqlite:///{template}")
    seed.create_all()
    seed.dispose()  # the last connection to close checkpoints the WAL into the file
    assert not Path(f"{template}-wal").exists()
    db = Database(f"sqlite:///{path}", sqlite_synchronous="OFF")
    stats = {"examples": 0, "steps": 0}

    def open_db(clock: FakeClock) -> Database:
        db.engine.dispose()  # close every connection to the previous example's file
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(template, path)
        return db

    try:
        run(make_machine(open_db, lambda db: None, stats), SQLITE_EXAMPLES)
    finally:
        db.dispose()
    assert_enough(stats, SQLITE_EXAMPLES)


def test_ledger_state_machine_postgresql(server_databases: dict[str, str]) -> None:
    if "postgresql" not in server_databases:
        pytest.skip("TEST_DATABASE_URLS names no PostgreSQL server")
    shared = Database(server_databases["postgresql"])
    Base.metadata.drop_all(shared.engine)
    Base.metadata.create_all(shared.engine)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    stats = {"examples": 0, "steps": 0}

    def open_db(clock: FakeClock) -> Database:
        with shared.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        return shared  # one engine and pool for every example (the ledger gets the example's clock)

    try:
        run(make_machine(open_db, lambda db: None, stats), PG_EXAMPLES)
    finally:
        shared.dispose()
    assert_enough(stats, PG_EXAMPLES)
