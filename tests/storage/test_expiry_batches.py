"""Expiry batches sized by time, a batch that would expire other lots than it summed is refused, paged notices."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from storage.ledger import expiry
from storage.ledger.expiry import MAX_BATCH, MIN_BATCH, _next_size, expire_due
from storage.models import Lot, Txn
from tests.storage.ledger_helpers import assert_ok, award, balance_of


@pytest.mark.parametrize("size, lots, took_ms, want", [
    (1000, 1000, 50.0, 1500),     # half the target: more, and no more than half as many again
    (1000, 1000, 80.0, 1250),
    (1000, 1000, 200.0, 500),     # twice the target: half, and no less than half
    (1000, 1000, 1000.0, 500),
    (1000, 1000, 125.0, 800),
    (1000, 1000, 10.0, 1500),
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
    find = expiry._find
    monkeypatch.setattr(expiry, "MIN_BATCH", 1)
    monkeypatch.setattr(expiry, "_find", lambda db, after, last, cutoff, size:
                        sizes.append(size) or find(db, after, last, cutoff, size))
    res = expire_due(engine_db, clock(), batch_size=1, target_ms=1e-6)  # every batch over the target: size 1
    assert (res.lots, res.points) == (30, sum(range(1, 31)))
    assert set(sizes) == {1} and res.batches == 2  # one wallet a batch: a wallet is never split
    assert balance_of(engine_db, emps["a"]) == balance_of(engine_db, emps["b"]) == 0
    assert_ok(engine_db)


def test_the_search_for_due_lots_walks_spans_of_accounts(engine_db, emps, clock, monkeypatch) -> None:
    """Wallets far apart: the search steps over the empty spans between them (one account id a span here)."""
    award(engine_db, emps["a"], 5, "k1")
    award(engine_db, emps["c"], 7, "k2")
    clock.advance(days=366)
    monkeypatch.setattr(expiry, "SPAN", 1)
    res = expire_due(engine_db, clock())
    assert (res.lots, res.points, res.batches) == (2, 12, 2)
    assert expire_due(engine_db, clock()).lots == 0
    assert_ok(engine_db)


def test_a_batch_whose_update_would_touch_lots_it_did_not_read_is_rolled_back(engine_db, emps, clock,
                                                                                monkeypatch) -> None:
    award(engine_db, emps["a"], 5, "k1")
    award(engine_db, emps["a"], 7, "k2")
    clock.advance(days=366)
    summed = expiry._lock_and_sum
    monkeypatch.setattr(expiry, "_lock_and_sum", lambda conn, accounts, cutoff: [
        w._replace(lots=w.lots - 1) for w in summed(conn, accounts, cutoff)])  # as if a lot came after the sums
    with pytest.raises(RuntimeError, match="summed 1 due lots but allocated 2 and emptied 2"):
        expire_due(engine_db, clock())
    with engine_db.session_scope() as s:
        assert s.scalar(select(func.count(Txn.id)).where(Txn.kind == "expire")) == 0
        assert sorted(s.scalars(select(Lot.remaining))) == [5, 7]
    assert balance_of(engine_db, emps["a"]) == 12
    assert_ok(engine_db)


def test_the_notices_read_the_same_in_pages_of_one_as_in_one_page(engine_db, emps, clock) -> None:
    from datetime import timedelta

    from storage.ledger.expiry import expired_between, expiring_between

    start = clock()
    for i, who in enumerate(("a", "b", "a", "c", "b", "a")):  # lots expiring at the same instant and apart
        award(engine_db, emps[who], 10 + i, f"k{i}")
        if i % 2:
            clock.advance(hours=1)
    due_from, due_to = start + timedelta(days=365), clock() + timedelta(days=366)
    whole = expiring_between(engine_db, due_from, due_to)
    assert whole == sorted({emps["a"]: 10 + 12 + 15, emps["b"]: 11 + 14, emps["c"]: 13}.items())
    assert expiring_between(engine_db, due_from, due_to, page=1) == whole
    clock.advance(days=370)
    expired_at = clock()
    expire_due(engine_db, clock(), batch_size=1)  # one expiry transaction per wallet
    window = (expired_at, expired_at + timedelta(seconds=1))
    assert expired_between(engine_db, *window) == [(emps[w], p, 0) for w, p in (("a", 37), ("b", 25), ("c", 13))]
    assert expired_between(engine_db, *window, page=1) == expired_between(engine_db, *window)
    assert expired_between(engine_db, expired_at + timedelta(days=1), expired_at + timedelta(days=2)) == []
