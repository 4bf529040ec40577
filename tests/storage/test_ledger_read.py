"""Ledger operations on whole accounts and the read side: budget grants, move_all, batched expiry, statements,
history, leaderboards."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from storage.ledger.expiry import expire_due
from storage.ledger import EXPIRED, ISSUANCE
from storage.models import Txn
from storage.queries import history, leaderboard, statement
from storage.standings import Standings
from tests.storage.ledger_helpers import (assert_ok, award, balance_of, hold, ledger, lots_of, snapshot, system_balance)


# ---- budgets -------------------------------------------------------------------------------------

def test_grant_budget_idempotent_per_month_and_resets(engine_db, emps):
    with ledger(engine_db) as lg:
        g1 = lg.grant_budget(emps["m"], "2026-03", 100).id
    award(engine_db, emps["a"], 30, "a1", budget_of=emps["m"])
    before = snapshot(engine_db)
    with ledger(engine_db) as lg:
        assert lg.grant_budget(emps["m"], "2026-03", 100).id == g1
        assert lg.grant_budget(emps["m"], "2026-03", 500).id == g1  # one grant per month, whatever the amount
    assert snapshot(engine_db) == before
    with ledger(engine_db) as lg:
        lg.grant_budget(emps["m"], "2026-04", 100)  # without rollover the 70 left go back first
    assert balance_of(engine_db, emps["m"], "budget") == 100
    with engine_db.session_scope() as s:
        reset = s.scalar(select(Txn).where(Txn.idem_key == f"budget-reset:{emps['m']}:2026-04"))
        assert (reset.kind, reset.amount) == ("budget_reset", -70)
    award(engine_db, emps["a"], 40, "a2", budget_of=emps["m"])
    with ledger(engine_db) as lg:
        lg.grant_budget(emps["m"], "2026-05", 100, rollover=True)
    assert balance_of(engine_db, emps["m"], "budget") == 160
    with engine_db.session_scope() as s:
        assert s.scalar(select(Txn).where(Txn.idem_key == f"budget-reset:{emps['m']}:2026-05")) is None
    assert system_balance(engine_db, ISSUANCE) == -(160 + 70)  # budgets + awarded wallet points
    assert_ok(engine_db)


# ---- move_all ------------------------------------------------------------------------------------

def test_move_all_to_expired(engine_db, emps, clock):
    award(engine_db, emps["a"], 10, "a1")
    award(engine_db, emps["a"], 15, "a2")
    hold(engine_db, emps["a"], 5, "h1")
    with ledger(engine_db) as lg:
        txn = lg.move_all(emps["a"], to="expired", idem_key="leave", reason="离职")
        assert (txn.kind, txn.amount) == ("expire", -20)
    assert balance_of(engine_db, emps["a"]) == 0
    assert [l[2] for l in lots_of(engine_db, emps["a"])] == [0, 0]
    assert system_balance(engine_db, EXPIRED) == 20
    with ledger(engine_db) as lg:
        assert lg.move_all(emps["a"], to="expired", idem_key="leave2", reason="x") is None
    assert_ok(engine_db)


def test_move_all_to_another_employee(engine_db, emps, clock):
    award(engine_db, emps["a"], 10, "a1")
    award(engine_db, emps["b"], 1, "b1")
    clock.advance(days=2)
    with ledger(engine_db) as lg:
        txn = lg.move_all(emps["a"], to=emps["b"], idem_key="move", reason="交接")
        assert (txn.kind, txn.amount) == ("transfer", -10)
    assert (balance_of(engine_db, emps["a"]), balance_of(engine_db, emps["b"])) == (0, 11)
    new_lot = lots_of(engine_db, emps["b"])[-1]
    assert new_lot[1:] == (10, 10, clock() + timedelta(days=365))
    assert_ok(engine_db)


# ---- expiry basics -------------------------------------------------------------------------------

def test_expire_due_expires_only_due_lots_once(engine_db, emps, clock):
    award(engine_db, emps["a"], 10, "a1")
    award(engine_db, emps["b"], 7, "b1")
    clock.advance(days=200)
    award(engine_db, emps["a"], 5, "a2")
    hold(engine_db, emps["a"], 3, "h1")
    clock.advance(days=170)
    res = expire_due(engine_db, clock(), batch_size=1)
    assert (res.lots, res.points, res.per_employee) == (2, 14, {emps["a"]: 7, emps["b"]: 7})
    assert (balance_of(engine_db, emps["a"]), balance_of(engine_db, emps["b"])) == (5, 0)
    before = snapshot(engine_db)
    again = expire_due(engine_db, clock())
    assert (again.lots, again.points) == (0, 0)
    assert snapshot(engine_db) == before
    assert_ok(engine_db)


# ---- queries -------------------------------------------------------------------------------------

def test_statement_values(engine_db, emps, clock):
    start = clock()
    award(engine_db, emps["a"], 10, "a1")
    clock.advance(days=20)
    award(engine_db, emps["a"], 20, "a2")
    aid = award(engine_db, emps["a"], 3, "a3")
    h1 = hold(engine_db, emps["a"], 4, "h1")
    hold(engine_db, emps["a"], 2, "h2")
    with ledger(engine_db) as lg:
        lg.settle(h1, idem_key="s1")
        lg.reverse(aid, idem_key="r1")
    with engine_db.session_scope() as s:
        st = statement(s, emps["a"], start + timedelta(days=340), days=30)
    # lot a1 (10, 6 left after holds of 4+2 FIFO) expires at day 365, inside 340+30; a2/a3 at 385, outside
    assert st.available == 10 + 20 + 3 - 6 - 3
    assert st.on_hold == 2
    assert st.spent == 4
    assert st.lifetime_earned == 30
    assert st.expiring == ((start + timedelta(days=365), 4),)
    with engine_db.session_scope() as s:
        empty = statement(s, emps["c"], start)
    assert (empty.available, empty.on_hold, empty.expiring, empty.lifetime_earned, empty.spent) == (0, 0, (), 0, 0)


def test_history_one_entry_per_txn_newest_first_paged(engine_db, emps, clock):
    with ledger(engine_db) as lg:
        lg.grant_budget(emps["a"], "2026-03", 50)  # budget txns are not wallet history
    ids = []
    for i in range(12):
        clock.advance(minutes=1)
        ids.append(award(engine_db, emps["a"], i + 1, f"a{i}"))
    ids.append(hold(engine_db, emps["a"], 5, "h"))
    award(engine_db, emps["b"], 1, "other")
    with engine_db.session_scope() as s:
        p1 = history(s, emps["a"], page=1, per_page=5)
        p3 = history(s, emps["a"], page=3, per_page=5)
        p9 = history(s, emps["a"], page=9, per_page=5)
        p0 = history(s, emps["a"], page=0, per_page=5)
        got = [t.id for page in (1, 2, 3) for t in history(s, emps["a"], page=page, per_page=5).items]
    assert (p1.total, p1.pages, p1.page) == (13, 3, 1)
    assert [t.id for t in p1.items] == ids[::-1][:5]
    assert [t.id for t in p3.items] == ids[::-1][10:]
    assert p9.page == 3 and [t.id for t in p9.items] == [t.id for t in p3.items]
    assert p0.page == 1
    assert got == ids[::-1] and len(set(got)) == 13


def test_leaderboard_period_department_and_reversals(engine_db, emps, clock):
    d0 = clock()
    award(engine_db, emps["a"], 50, "old")  # before the period
    clock.advance(days=1)
    p_start = clock()
    award(engine_db, emps["a"], 30, "a1")
    award(engine_db, emps["b"], 40, "b1")
    cid = award(engine_db, emps["c"], 45, "c1")
    award(engine_db, emps["c"], 5, "c2")
    with ledger(engine_db) as lg:
        lg.reverse(cid, idem_key="rc")  # 50 - 45 = 5
        did = lg.deduct(emps["b"], 10, idem_key="db", reason="x").id
        lg.reverse(did, idem_key="rdb")  # giving a deduction back is not "earned"
        lg.move_all(emps["a"], to=emps["b"], idem_key="mv", reason="x")  # transfers do not count either
    clock.advance(days=1)
    p_end = clock()
    award(engine_db, emps["c"], 100, "later")  # after the period
    with engine_db.session_scope() as s:
        board = leaderboard(s, p_start, p_end)
        rd = leaderboard(s, p_start, p_end, department="研发部")
        mk = leaderboard(s, p_start, p_end, department="市场部")
        top1 = leaderboard(s, p_start, p_end, top_n=1)
        all_time = leaderboard(s, d0, clock() + timedelta(days=1))
        assert Standings(ttl_seconds=0).rank_of(s, emps["c"], p_start, p_end) == (3, 5)
        assert Standings(ttl_seconds=0).rank_of(s, emps["m"], p_start, p_end) == (None, 0)
    assert [(r.rank, r.employee_id, r.points) for r in board] == [(1, emps["b"], 40), (2, emps["a"], 30),
                                                                  (3, emps["c"], 5)]
    assert [(r.rank, r.employee_id, r.points) for r in rd] == [(1, emps["a"], 30), (2, emps["c"], 5)]
    assert [(r.employee_id, r.department) for r in mk] == [(emps["b"], "市场部")]
    assert [r.employee_id for r in top1] == [emps["b"]]
    assert [(r.employee_id, r.points) for r in all_time] == [(emps["c"], 105), (emps["a"], 80), (emps["b"], 40)]
