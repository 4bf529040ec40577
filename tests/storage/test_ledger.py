"""Unit tests of the ledger service on every engine (docs/reliability.md §1.2 invariants 1–6)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from storage.errors import (AlreadyReversed, BudgetExhausted, InsufficientPoints, InvalidAmount, NotReversible,
                            UnknownEmployee, UnknownTxn, WalletFrozen)
from storage.ledger.expiry import expire_due
from storage.ledger import EXPIRED, HOLD, ISSUANCE, REDEEMED, Ledger
from storage.models import Entry, Txn
from storage.queries import on_hold, statement
from tests.storage.ledger_helpers import (allocations, assert_ok, award, balance_of, hold, ledger, lots_of, people,
                                         snapshot, system_balance)


# ---- award ---------------------------------------------------------------------------------------

def test_award_from_issuance_creates_lot_and_both_legs(engine_db, emps, clock):
    tid = award(engine_db, emps["a"], 30, "k1", category="kudos", actor_id=emps["m"])
    assert balance_of(engine_db, emps["a"]) == 30
    assert system_balance(engine_db, ISSUANCE) == -30
    [(lot_id, amount, remaining, expires)] = lots_of(engine_db, emps["a"])
    assert (amount, remaining, expires) == (30, 30, clock() + timedelta(days=365))
    with engine_db.session_scope() as s:
        txn = s.get(Txn, tid)
        assert (txn.kind, txn.amount, txn.employee_id, txn.actor_id, txn.category) == ("award", 30, emps["a"],
                                                                                       emps["m"], "kudos")
        assert sorted(s.scalars(select(Entry.amount).where(Entry.txn_id == tid))) == [-30, 30]
    assert_ok(engine_db)


def test_award_from_budget_debits_budget_and_never_below_zero(engine_db, emps):
    with ledger(engine_db) as lg:
        lg.grant_budget(emps["m"], "2026-03", 50)
    award(engine_db, emps["a"], 20, "b1", budget_of=emps["m"])
    award(engine_db, emps["b"], 30, "b2", budget_of=emps["m"])
    assert balance_of(engine_db, emps["m"], "budget") == 0
    before = snapshot(engine_db)
    with pytest.raises(BudgetExhausted) as err, ledger(engine_db) as lg:
        lg.award(emps["c"], 1, idem_key="b3", reason="x", budget_of=emps["m"])
    assert (err.value.available, err.value.needed) == (0, 1)
    assert snapshot(engine_db) == before
    assert (balance_of(engine_db, emps["a"]), balance_of(engine_db, emps["b"])) == (20, 30)
    assert_ok(engine_db)


def test_budget_partial_overdraft_refused(engine_db, emps):
    with ledger(engine_db) as lg:
        lg.grant_budget(emps["m"], "2026-03", 10)
    before = snapshot(engine_db)
    with pytest.raises(BudgetExhausted) as err, ledger(engine_db) as lg:
        lg.award(emps["a"], 11, idem_key="over", reason="x", budget_of=emps["m"])
    assert (err.value.available, err.value.needed) == (10, 11)
    assert snapshot(engine_db) == before


def test_domain_error_leaves_callers_transaction_usable(engine_db, emps):
    with ledger(engine_db) as lg:
        lg.award(emps["a"], 5, idem_key="ok1", reason="x")
        with pytest.raises(InsufficientPoints):
            lg.hold(emps["a"], 6, idem_key="bad")
        lg.award(emps["a"], 7, idem_key="ok2", reason="x")
    assert balance_of(engine_db, emps["a"]) == 12
    with engine_db.session_scope() as s:
        assert s.scalar(select(Txn).where(Txn.idem_key == "bad")) is None
    assert_ok(engine_db)


# ---- deduct and FIFO -----------------------------------------------------------------------------

def test_deduct_never_below_zero_and_writes_nothing(engine_db, emps):
    award(engine_db, emps["a"], 10, "a1")
    before = snapshot(engine_db)
    with pytest.raises(InsufficientPoints) as err, ledger(engine_db) as lg:
        lg.deduct(emps["a"], 11, idem_key="d1", reason="x")
    assert (err.value.available, err.value.needed) == (10, 11)
    assert snapshot(engine_db) == before
    with ledger(engine_db) as lg:
        lg.deduct(emps["a"], 10, idem_key="d2", reason="x")
    assert balance_of(engine_db, emps["a"]) == 0
    with pytest.raises(InsufficientPoints), ledger(engine_db) as lg:
        lg.deduct(emps["a"], 1, idem_key="d3", reason="x")
    assert_ok(engine_db)


def test_fifo_consumption_by_expiry(engine_db, emps, clock):
    with ledger(engine_db) as lg:
        first = lg.award(emps["a"], 10, idem_key="l1", reason="x").id
    clock.advance(days=10)
    with ledger(engine_db) as lg:
        lg.award(emps["a"], 10, idem_key="l2", reason="x")
    # a lot with a shorter validity expires sooner although earned later: it must be spent first
    clock.advance(days=1)
    with engine_db.session_scope() as s:
        Ledger(s, clock, validity_days=30).award(emps["a"], 5, idem_key="l3", reason="x")
    lots = lots_of(engine_db, emps["a"])
    assert [l[1] for l in lots] == [5, 10, 10]  # FIFO order = (expires_at, id)
    short, old, new = (l[0] for l in lots)
    tid = hold(engine_db, emps["a"], 12, "h1")
    assert allocations(engine_db, tid) == [(short, 5), (old, 7)]
    assert [l[2] for l in lots_of(engine_db, emps["a"])] == [0, 3, 10]
    with ledger(engine_db) as lg:
        did = lg.deduct(emps["a"], 6, idem_key="d1", reason="x").id
    assert allocations(engine_db, did) == [(old, 3), (new, 3)]
    assert [l[2] for l in lots_of(engine_db, emps["a"])] == [0, 0, 7]
    assert first
    assert_ok(engine_db)


# ---- hold / settle / release ---------------------------------------------------------------------

def test_hold_settle_moves_points_to_redeemed(engine_db, emps, clock):
    award(engine_db, emps["a"], 40, "a1")
    hid = hold(engine_db, emps["a"], 25, "h1")
    assert balance_of(engine_db, emps["a"]) == 15
    assert system_balance(engine_db, HOLD) == 25
    with engine_db.session_scope() as s:
        assert on_hold(s, emps["a"]) == 25
    with ledger(engine_db) as lg:
        sid = lg.settle(hid, idem_key="s1").id
    assert system_balance(engine_db, HOLD) == 0
    assert system_balance(engine_db, REDEEMED) == 25
    with engine_db.session_scope() as s:
        assert on_hold(s, emps["a"]) == 0
        st = statement(s, emps["a"], clock())
        assert (st.available, st.on_hold, st.spent, st.lifetime_earned) == (15, 0, 25, 40)
    before = snapshot(engine_db)
    with pytest.raises(AlreadyReversed), ledger(engine_db) as lg:
        lg.release(hid, idem_key="r1")
    with pytest.raises(AlreadyReversed), ledger(engine_db) as lg:
        lg.settle(hid, idem_key="s2")
    with ledger(engine_db) as lg:
        assert lg.settle(hid, idem_key="s1").id == sid  # a retry of the same settle
    assert snapshot(engine_db) == before
    assert_ok(engine_db)


def test_release_restores_the_same_lots_with_their_expiry(engine_db, emps, clock):
    award(engine_db, emps["a"], 5, "a1")
    clock.advance(days=3)
    award(engine_db, emps["a"], 5, "a2")
    clock.advance(days=3)
    award(engine_db, emps["a"], 5, "a3")
    lots_before = lots_of(engine_db, emps["a"])
    hid = hold(engine_db, emps["a"], 8, "h1")
    assert [l[2] for l in lots_of(engine_db, emps["a"])] == [0, 2, 5]
    award(engine_db, emps["a"], 4, "a4")  # a newer lot must not receive the refund
    with ledger(engine_db) as lg:
        rid = lg.release(hid, idem_key="r1").id
    after = lots_of(engine_db, emps["a"])
    assert after[:3] == lots_before  # same ids, amounts, remainders and expiry
    assert after[3][2] == 4
    assert sorted(allocations(engine_db, rid)) == sorted((lot_id, -amt) for lot_id, amt in allocations(engine_db, hid))
    assert balance_of(engine_db, emps["a"]) == 19
    assert system_balance(engine_db, HOLD) == 0
    with pytest.raises(AlreadyReversed), ledger(engine_db) as lg:
        lg.release(hid, idem_key="r2")
    assert_ok(engine_db)


def test_release_of_lot_past_expiry_expires_in_same_transaction(engine_db, emps, clock):
    award(engine_db, emps["a"], 10, "a1")  # expires at day 365
    clock.advance(days=100)
    award(engine_db, emps["a"], 10, "a2")  # expires at day 465
    hid = hold(engine_db, emps["a"], 14, "h1")  # 10 from a1, 4 from a2
    clock.advance(days=300)  # a1 is past expiry; the job has not run yet
    with ledger(engine_db) as lg:
        rel = lg.release(hid, idem_key="r1")
        rid = rel.id
    assert balance_of(engine_db, emps["a"]) == 10  # 6 left + 4 restored to a2; a1's 10 expired at once
    with engine_db.session_scope() as s:
        exp = s.scalar(select(Txn).where(Txn.related_txn_id == rid, Txn.kind == "expire"))
        assert exp is not None and exp.amount == -10
        assert sorted(s.scalars(select(Entry.amount).where(Entry.txn_id == exp.id))) == [-10, 10]
    assert system_balance(engine_db, EXPIRED) == 10
    assert [l[2] for l in lots_of(engine_db, emps["a"])] == [0, 10]
    assert_ok(engine_db)
    # and the expiry job afterwards finds nothing more to expire on that lot
    res = expire_due(engine_db, clock())
    assert (res.lots, res.points) == (0, 0)
    assert_ok(engine_db)


def test_release_after_expiry_job_ran(engine_db, emps, clock):
    award(engine_db, emps["a"], 10, "a1")
    hid = hold(engine_db, emps["a"], 4, "h1")
    clock.advance(days=366)
    res = expire_due(engine_db, clock())
    assert (res.lots, res.points) == (1, 6)
    with ledger(engine_db) as lg:
        lg.release(hid, idem_key="r1")
    assert balance_of(engine_db, emps["a"]) == 0
    assert system_balance(engine_db, EXPIRED) == 10
    assert_ok(engine_db)


def test_settle_or_release_of_non_hold(engine_db, emps):
    aid = award(engine_db, emps["a"], 10, "a1")
    before = snapshot(engine_db)
    for call in (lambda lg: lg.settle(aid, idem_key="s"), lambda lg: lg.release(aid, idem_key="r"),
                 lambda lg: lg.release(99999, idem_key="r2")):
        with pytest.raises(UnknownTxn), ledger(engine_db) as lg:
            call(lg)
    assert snapshot(engine_db) == before


# ---- reverse -------------------------------------------------------------------------------------

def test_reverse_award_full(engine_db, emps):
    with ledger(engine_db) as lg:
        lg.grant_budget(emps["m"], "2026-03", 100)
    aid = award(engine_db, emps["a"], 30, "a1", budget_of=emps["m"])
    with ledger(engine_db) as lg:
        txn, shortfall = lg.reverse(aid, idem_key="rev1", reason="错发")
        assert (txn.kind, txn.amount, txn.reverses_txn_id, shortfall) == ("reverse", -30, aid, 0)
    assert balance_of(engine_db, emps["a"]) == 0
    assert balance_of(engine_db, emps["m"], "budget") == 100  # the budget gets its points back
    assert_ok(engine_db)


def test_reverse_award_partial_with_shortfall(engine_db, emps):
    aid = award(engine_db, emps["a"], 30, "a1")
    hold(engine_db, emps["a"], 25, "h1")
    before = snapshot(engine_db)
    with pytest.raises(InsufficientPoints), ledger(engine_db) as lg:
        lg.reverse(aid, idem_key="rev0")
    assert snapshot(engine_db) == before
    with ledger(engine_db) as lg:
        txn, shortfall = lg.reverse(aid, idem_key="rev1", allow_partial=True)
        assert (txn.amount, shortfall) == (-5, 25)
    assert balance_of(engine_db, emps["a"]) == 0
    assert system_balance(engine_db, ISSUANCE) == -25
    with ledger(engine_db) as lg:  # a retry reports the same shortfall
        txn2, shortfall2 = lg.reverse(aid, idem_key="rev1", allow_partial=True)
        assert (txn2.id, shortfall2) == (txn.id, 25)
    with pytest.raises(AlreadyReversed), ledger(engine_db) as lg:
        lg.reverse(aid, idem_key="rev2", allow_partial=True)
    assert_ok(engine_db)


def test_reverse_award_prefers_the_awarded_lot(engine_db, emps, clock):
    award(engine_db, emps["a"], 10, "a1")
    clock.advance(days=1)
    aid = award(engine_db, emps["a"], 10, "a2")
    with ledger(engine_db) as lg:
        rid = lg.reverse(aid, idem_key="rev")[0].id
    lots = lots_of(engine_db, emps["a"])
    assert [l[2] for l in lots] == [10, 0]
    assert allocations(engine_db, rid) == [(lots[1][0], 10)]
    assert_ok(engine_db)


def test_reverse_deduct_restores_lots(engine_db, emps, clock):
    award(engine_db, emps["a"], 10, "a1")
    clock.advance(days=1)
    award(engine_db, emps["a"], 10, "a2")
    lots_before = lots_of(engine_db, emps["a"])
    with ledger(engine_db) as lg:
        did = lg.deduct(emps["a"], 15, idem_key="d1", reason="x").id
    with ledger(engine_db) as lg:
        txn, shortfall = lg.reverse(did, idem_key="rd1")
        assert (txn.amount, txn.reverses_txn_id, shortfall) == (15, did, 0)
    assert lots_of(engine_db, emps["a"]) == lots_before
    assert balance_of(engine_db, emps["a"]) == 20
    assert system_balance(engine_db, ISSUANCE) == -20
    assert_ok(engine_db)


def test_reverse_deduct_of_expired_lot_comes_back_as_a_new_lot(engine_db, emps, clock):
    """Restoring into a lot past expiry would expire the points again at once: undoing never hurts."""
    award(engine_db, emps["a"], 10, "a1")
    clock.advance(days=200)
    award(engine_db, emps["a"], 10, "a2")
    with ledger(engine_db) as lg:
        did = lg.deduct(emps["a"], 14, idem_key="d1", reason="x").id  # 10 from a1, 4 from a2
    clock.advance(days=200)  # a1 is past expiry now, a2 is not
    with ledger(engine_db) as lg:
        rid = lg.reverse(did, idem_key="rd1")[0].id
    assert balance_of(engine_db, emps["a"]) == 20 and system_balance(engine_db, EXPIRED) == 0
    (a1, _, left1, _), (a2, _, left2, _), (new, amount, left, expires) = lots_of(engine_db, emps["a"])
    assert (left1, left2) == (0, 10)  # a2 got its 4 back; a1 stayed empty
    assert (amount, left, expires) == (10, 10, clock() + timedelta(days=365))
    assert sorted(allocations(engine_db, rid)) == [(a2, -4)]
    assert_ok(engine_db)


def test_reverse_expiry_restores_the_points_as_a_new_lot(engine_db, emps, clock):
    award(engine_db, emps["a"], 10, "a1")
    clock.advance(days=366)
    expire_due(engine_db, clock())
    with ledger(engine_db) as lg:
        exp = lg.s.scalar(select(Txn).where(Txn.kind == "expire"))
        txn, shortfall = lg.reverse(exp.id, idem_key="rx1", actor_id=emps["m"])
        assert (txn.kind, txn.amount, txn.reverses_txn_id, shortfall) == ("reverse", 10, exp.id, 0)
    assert balance_of(engine_db, emps["a"]) == 10 and system_balance(engine_db, EXPIRED) == 0
    assert [lot[2:] for lot in lots_of(engine_db, emps["a"])] == [(0, clock() - timedelta(days=1)),
                                                                  (10, clock() + timedelta(days=365))]
    expire_due(engine_db, clock())  # the restored lot is not due again
    assert balance_of(engine_db, emps["a"]) == 10
    with pytest.raises(AlreadyReversed), ledger(engine_db) as lg:
        lg.reverse(exp.id, idem_key="rx2")
    assert_ok(engine_db)


def test_reverse_errors(engine_db, emps):
    aid = award(engine_db, emps["a"], 10, "a1")
    hid = hold(engine_db, emps["a"], 3, "h1")
    with ledger(engine_db) as lg:
        rid = lg.reverse(aid, idem_key="rev1", allow_partial=True)[0].id
    before = snapshot(engine_db)
    cases = [(99999, UnknownTxn), (hid, NotReversible), (rid, NotReversible), (aid, AlreadyReversed)]
    for i, (tid, exc) in enumerate(cases):
        with pytest.raises(exc), ledger(engine_db) as lg:
            lg.reverse(tid, idem_key=f"bad{i}")
    assert snapshot(engine_db) == before


# ---- idempotency and bad input -------------------------------------------------------------------

def test_same_key_same_txn_no_new_rows(engine_db, emps):
    with ledger(engine_db) as lg:
        lg.grant_budget(emps["m"], "2026-03", 100)
    aid = award(engine_db, emps["a"], 10, "a1")
    bid = award(engine_db, emps["a"], 10, "b1", budget_of=emps["m"])
    hid = hold(engine_db, emps["a"], 3, "h1")
    with ledger(engine_db) as lg:
        did = lg.deduct(emps["a"], 2, idem_key="d1", reason="x").id
        rid = lg.reverse(bid, idem_key="r1", allow_partial=True)[0].id
        relid = lg.release(hid, idem_key="rel1").id
        mid = lg.move_all(emps["a"], to=emps["b"], idem_key="m1", reason="x").id
    before = snapshot(engine_db)
    with ledger(engine_db) as lg:
        assert lg.award(emps["a"], 10, idem_key="a1", reason="again").id == aid
        assert lg.award(emps["a"], 10, idem_key="b1", reason="again", budget_of=emps["m"]).id == bid
        assert lg.hold(emps["a"], 3, idem_key="h1").id == hid
        assert lg.deduct(emps["a"], 2, idem_key="d1", reason="x").id == did
        assert lg.reverse(bid, idem_key="r1", allow_partial=True)[0].id == rid
        assert lg.release(hid, idem_key="rel1").id == relid
        assert lg.move_all(emps["a"], to=emps["b"], idem_key="m1", reason="x").id == mid
    assert snapshot(engine_db) == before
    assert_ok(engine_db)


@pytest.mark.parametrize("points", [0, -5, 1.5, "10", True, False, None, 10_000_001])
def test_bad_points_are_refused_and_change_nothing(engine_db, emps, points):
    award(engine_db, emps["a"], 20, "seed")
    with ledger(engine_db) as lg:
        lg.grant_budget(emps["m"], "2026-03", 100)
    before = snapshot(engine_db)
    calls = [lambda lg: lg.award(emps["a"], points, idem_key="x1", reason="x"),
             lambda lg: lg.award(emps["a"], points, idem_key="x2", reason="x", budget_of=emps["m"]),
             lambda lg: lg.deduct(emps["a"], points, idem_key="x3", reason="x"),
             lambda lg: lg.hold(emps["a"], points, idem_key="x4"),
             lambda lg: lg.grant_budget(emps["m"], "2026-04", points)]
    for call in calls:
        with pytest.raises(InvalidAmount), ledger(engine_db) as lg:
            call(lg)
    assert snapshot(engine_db) == before


def test_unknown_employee_and_empty_key(engine_db, emps):
    award(engine_db, emps["a"], 20, "seed")
    before = snapshot(engine_db)
    for call in (lambda lg: lg.award(424242, 5, idem_key="u1", reason="x"),
                 lambda lg: lg.hold(424242, 5, idem_key="u2"),
                 lambda lg: lg.deduct(424242, 5, idem_key="u3", reason="x"),
                 lambda lg: lg.award(emps["a"], 5, idem_key="u4", reason="x", budget_of=424242)):
        with pytest.raises(UnknownEmployee), ledger(engine_db) as lg:
            call(lg)
    for call in (lambda lg: lg.award(emps["a"], 5, idem_key="", reason="x"),
                 lambda lg: lg.hold(emps["a"], 5, idem_key=""),
                 lambda lg: lg.deduct(emps["a"], 5, idem_key="", reason="x"),
                 lambda lg: lg.award(emps["a"], 5, idem_key="k" * 192, reason="x")):
        with pytest.raises(InvalidAmount), ledger(engine_db) as lg:
            call(lg)
    assert snapshot(engine_db) == before


def test_frozen_wallet_refuses_award_and_hold(engine_db, emps):
    award(engine_db, emps["a"], 20, "seed")
    with ledger(engine_db) as lg:
        lg.set_frozen(emps["a"], True)
    before = snapshot(engine_db)
    for call in (lambda lg: lg.award(emps["a"], 5, idem_key="f1", reason="x"),
                 lambda lg: lg.hold(emps["a"], 5, idem_key="f2")):
        with pytest.raises(WalletFrozen), ledger(engine_db) as lg:
            call(lg)
    assert snapshot(engine_db) == before
    with ledger(engine_db) as lg:  # HR may still take points from a frozen wallet
        lg.deduct(emps["a"], 5, idem_key="f3", reason="x")
        lg.set_frozen(emps["a"], False)
        lg.hold(emps["a"], 5, idem_key="f4")
    assert balance_of(engine_db, emps["a"]) == 10
    left = people(engine_db, ("L1", {"status": "left"}))[0]
    with pytest.raises(WalletFrozen), ledger(engine_db) as lg:
        lg.award(left, 5, idem_key="f5", reason="x")
    assert_ok(engine_db)
