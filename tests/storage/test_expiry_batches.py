"""Expiry batches sized by time, and a batch that would expire other lots than it read is refused."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from storage.ledger import expiry
from storage.ledger.expiry import MAX_BATCH, MIN_BATCH, _next_size, expire_due
from storage.models import Lot, Txn
from tests.storage.ledger_helpers import assert_ok, award, balance_of


@pytest.mark.parametrize("size, lots, took_ms, want", [
    (1000, 1000, 50.0, 2000),     # half the target: twice as many, and no more than twice
    (1000, 1000, 10.0, 2000),
    (1000, 1000, 200.0, 500),     # twice the target: half, and no less than half
    (1000, 1000, 1000.0, 500),
    (1000, 1000, 125.0, 800),
    (300, 300, 500.0, MIN_BATCH),  # never below the floor, never above the ceiling
    (MAX_BATCH, MAX_BATCH, 1.0, MAX_BATCH),
])
def test_the_next_batch_is_sized_to_take_the_target(size: int, lots: int, took_ms: float, want: int) -> None:
    assert _next_size(size, lots, took_ms, 100.0) == want


def test_sized_batches_expire_what_fixed_ones_do(engine_db, emps, clock, monkeypatch) -> None:
    for i in range(30):
        award(engine_db, emps["a" if i % 2 else "b"], 1 + i, f"k{i}")
    clock.advance(days=366)
    sizes: list[int] = []
    seen = expiry._expire_batch
    monkeypatch.setattr(expiry, "MIN_BATCH", 1)
    monkeypatch.setattr(expiry, "_expire_batch", lambda db, after, cutoff, now, size, result:
                        sizes.append(size) or seen(db, after, cutoff, now, size, result))
    res = expire_due(engine_db, clock(), batch_size=1, target_ms=1e-6)  # every batch over the target: size 1
    assert (res.lots, res.points) == (30, sum(range(1, 31)))
    assert set(sizes) == {1} and res.batches == 2  # one wallet a batch: a wallet is never split
    assert balance_of(engine_db, emps["a"]) == balance_of(engine_db, emps["b"]) == 0
    assert_ok(engine_db)


def test_a_batch_whose_update_would_touch_lots_it_did_not_read_is_rolled_back(engine_db, emps, clock,
                                                                                monkeypatch) -> None:
    award(engine_db, emps["a"], 5, "k1")
    award(engine_db, emps["a"], 7, "k2")
    clock.advance(days=366)
    read = expiry._lock_and_read
    monkeypatch.setattr(expiry, "_lock_and_read", lambda conn, accounts, cutoff: read(conn, accounts, cutoff)[:1])
    with pytest.raises(RuntimeError, match="read 1 due lots but updated 2"):
        expire_due(engine_db, clock())
    with engine_db.session_scope() as s:
        assert s.scalar(select(func.count(Txn.id)).where(Txn.kind == "expire")) == 0
        assert sorted(s.scalars(select(Lot.remaining))) == [5, 7]
    assert balance_of(engine_db, emps["a"]) == 12
    assert_ok(engine_db)
