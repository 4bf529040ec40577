"""The order service: states, keys, lapse, and one effect per order under races."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, select, update

from settings import build_settings
from storage import catalog, orders
from storage.db import Database
from storage.errors import (InsufficientPoints, InvalidAmount, InvalidState, NotPermitted, OutOfStock, UnknownItem,
                            UnknownOrder)
from storage.invariants import check_invariants
from storage.ledger import Ledger
from storage.models import Account, Employee, Item, Order, Txn
from tests.storage.factories import make_employee
from tests.storage.test_concurrency import _run

SETTINGS = build_settings({"catalog": [{"sku": "card100", "name": "100元购物卡", "cost": 1000, "stock": 3},
                                       {"sku": "mug", "name": "马克杯", "cost": 200}]})
T0 = datetime(2026, 3, 10, 2, 0, 0)
TZ = SETTINGS.tz


def fixed_clock() -> datetime:
    return T0


@pytest.fixture
def people(sqlite_db: Database, clock) -> dict[str, int]:
    return seed(sqlite_db, clock)


def seed(db: Database, clock, funds: int = 2500) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with db.session_scope() as s:
        ids = {no: make_employee(s, no, role=role).id
               for no, role in (("E1", "employee"), ("E2", "employee"), ("H1", "hr"), ("H2", "hr"))}
        Ledger(s, clock).award(ids["E1"], funds, idem_key="seed", reason="初始")
        catalog.seed_from_config(s, SETTINGS.catalog, now=clock())
    return ids


def emp(s, ids: dict[str, int], no: str) -> Employee:  # type: ignore[no-untyped-def]
    e = s.get(Employee, ids[no])
    assert e is not None
    return e


def new_order(db: Database, clock, ids: dict[str, int], token: str = "1", qty: int = 1,  # type: ignore[no-untyped-def]
              confirm: bool = True) -> int:
    with db.session_scope() as s:
        order = orders.start(s, emp(s, ids, "E1"), token, qty, clock(), TZ)
        if confirm:
            orders.confirm(s, Ledger(s, clock), emp(s, ids, "E1"), order.id, clock(), TZ)
        return order.id


def count(db: Database, model, *where) -> int:  # type: ignore[no-untyped-def]
    with db.session_scope() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def status(db: Database, order_id: int) -> str:
    with db.session_scope() as s:
        return s.scalar(select(Order.status).where(Order.id == order_id))  # type: ignore[return-value]


def balance(db: Database, employee_id: int) -> int:
    with db.session_scope() as s:
        return int(s.scalar(select(Account.balance).where(Account.kind == "wallet", Account.employee_id == employee_id)))


@pytest.mark.parametrize("token, ok", [("R12", 12), ("r7", 7), (" R3 ", 3), ("R", None), ("Rabc", None), ("12", None),
                                       ("R-1", None), ("E12", None), ("R1x", None), ("", None)])
def test_parse_ref(token: str, ok: int | None) -> None:
    assert orders.parse_ref(token) == ok


def test_resolve_item(sqlite_db: Database, clock, people) -> None:
    with sqlite_db.session_scope() as s:
        assert catalog.resolve(s, "2").sku == "mug"
        assert catalog.resolve(s, "MUG").sku == "mug"
        assert catalog.resolve(s, "100元购物卡").sku == "card100"
        for bad in ("0", "3", "-1", "100元", "", "２"):
            with pytest.raises(UnknownItem):
                catalog.resolve(s, bad)


def test_start_checks_everything_and_moves_nothing(sqlite_db: Database, clock, people) -> None:
    with sqlite_db.session_scope() as s:
        e1 = emp(s, people, "E1")
        order = orders.start(s, e1, "card100", 2, clock(), TZ)
        assert (order.status, order.cost, order.item_name) == ("awaiting_confirmation", 2000, "100元购物卡")
        with pytest.raises(OutOfStock):
            orders.start(s, e1, "1", 4, clock(), TZ)
        with pytest.raises(InsufficientPoints):
            orders.start(s, e1, "1", 3, clock(), TZ)
        for qty in (0, -1, 100, True):
            with pytest.raises(InvalidAmount):
                orders.start(s, e1, "1", qty, clock(), TZ)
    assert count(sqlite_db, Txn) == 1 and balance(sqlite_db, people["E1"]) == 2500


def test_confirm_holds_once_with_the_order_key(sqlite_db: Database, clock, people) -> None:
    oid = new_order(sqlite_db, clock, people, qty=2)
    with sqlite_db.session_scope() as s:
        again = orders.confirm(s, Ledger(s, clock), emp(s, people, "E1"), f"R{oid}", clock(), TZ)
        assert again.status == "awaiting_fulfilment"
        hold = Ledger(s, clock).find(f"order:{oid}:hold")
        assert hold is not None and hold.id == again.hold_txn_id and hold.amount == -2000
    assert count(sqlite_db, Txn, Txn.kind == "hold") == 1
    assert balance(sqlite_db, people["E1"]) == 500
    with sqlite_db.session_scope() as s:
        assert catalog.stock_of(s, "card100") == 1
        assert [o.id for o in orders.pending_fulfilment(s)] == [oid]
        assert check_invariants(s) == []


def test_only_owner_confirms_and_cancels(sqlite_db: Database, clock, people) -> None:
    oid = new_order(sqlite_db, clock, people, confirm=False)
    with sqlite_db.session_scope() as s:
        with pytest.raises(NotPermitted):
            orders.confirm(s, Ledger(s, clock), emp(s, people, "E2"), oid, clock(), TZ)
        with pytest.raises(NotPermitted):
            orders.cancel(s, Ledger(s, clock), emp(s, people, "E2"), oid, clock())
    with sqlite_db.session_scope() as s:
        with pytest.raises(UnknownOrder):
            orders.confirm(s, Ledger(s, clock), emp(s, people, "E1"), "R999", clock(), TZ)
        with pytest.raises(UnknownOrder):
            orders.confirm(s, Ledger(s, clock), emp(s, people, "E1"), "Rabc", clock(), TZ)
    assert status(sqlite_db, oid) == "awaiting_confirmation"


def test_fulfil_settles_with_its_key_and_only_hr(sqlite_db: Database, clock, people) -> None:
    oid = new_order(sqlite_db, clock, people)
    with sqlite_db.session_scope() as s:
        with pytest.raises(NotPermitted):
            orders.fulfil(s, Ledger(s, clock), emp(s, people, "E2"), oid, clock())
    with sqlite_db.session_scope() as s:
        order = orders.fulfil(s, Ledger(s, clock), emp(s, people, "H1"), oid, clock(), note="前台自取")
        assert (order.status, order.note, order.decided_by) == ("fulfilled", "前台自取", people["H1"])
        assert Ledger(s, clock).find(f"order:{oid}:settle") is not None
    with sqlite_db.session_scope() as s:
        for action in (orders.fulfil, orders.reject):
            with pytest.raises(InvalidState, match="order fulfilled"):
                action(s, Ledger(s, clock), emp(s, people, "H2"), oid, clock())
        with pytest.raises(InvalidState, match="order fulfilled"):
            orders.cancel(s, Ledger(s, clock), emp(s, people, "E1"), oid, clock())
    assert count(sqlite_db, Txn, Txn.kind == "settle") == 1 and count(sqlite_db, Txn, Txn.kind == "release") == 0


def test_a_stale_read_is_caught_by_the_conditional_update(sqlite_db: Database, clock, people) -> None:
    """Another HR member fulfils between our read and our update: we must not settle again."""
    oid = new_order(sqlite_db, clock, people)
    with sqlite_db.session_scope() as s:
        order = s.get(Order, oid)
        assert order is not None and order.status == "awaiting_fulfilment"  # our (soon stale) read
        s.execute(update(Order).where(Order.id == oid).values(status="fulfilled")
                  .execution_options(synchronize_session=False))  # the other writer
        assert order.status == "awaiting_fulfilment"
        with pytest.raises(InvalidState, match="order fulfilled"):
            orders.fulfil(s, Ledger(s, clock), emp(s, people, "H1"), oid, clock())
        with pytest.raises(InvalidState):
            orders.reject(s, Ledger(s, clock), emp(s, people, "H1"), oid, clock())
        assert count_in(s, Txn.kind == "settle") == 0 and count_in(s, Txn.kind == "release") == 0


def count_in(s, *where) -> int:  # type: ignore[no-untyped-def]
    return int(s.scalar(select(func.count()).select_from(Txn).where(*where)) or 0)


def test_reject_and_cancel_release_to_the_same_lots(sqlite_db: Database, clock, people) -> None:
    with sqlite_db.session_scope() as s:
        Ledger(s, clock).award(people["E1"], 700, idem_key="second", reason="第二批")
    before = lots(sqlite_db)
    first, second = new_order(sqlite_db, clock, people, qty=2), new_order(sqlite_db, clock, people, "mug", 3)
    with sqlite_db.session_scope() as s:
        orders.reject(s, Ledger(s, clock), emp(s, people, "H1"), first, clock(), note="停产")
        orders.cancel(s, Ledger(s, clock), emp(s, people, "E1"), second, clock())
        again = orders.cancel(s, Ledger(s, clock), emp(s, people, "E1"), second, clock())
        assert again.status == "cancelled"
        assert Ledger(s, clock).find(f"order:{first}:release") is not None
        assert Ledger(s, clock).find(f"order:{second}:release") is not None
        assert catalog.stock_of(s, "card100") == 3 and check_invariants(s) == []
    assert lots(sqlite_db) == before and balance(sqlite_db, people["E1"]) == 3200
    assert (status(sqlite_db, first), status(sqlite_db, second)) == ("rejected", "cancelled")
    assert count(sqlite_db, Txn, Txn.kind == "release") == 2


def lots(db: Database) -> list[tuple[int, int]]:
    from storage.models import Lot

    with db.session_scope() as s:
        return [tuple(r) for r in s.execute(select(Lot.id, Lot.remaining).order_by(Lot.id))]


def test_reject_after_the_lot_expired_expires_the_refund(sqlite_db: Database, clock, people) -> None:
    oid = new_order(sqlite_db, clock, people)
    clock.advance(days=366)
    with sqlite_db.session_scope() as s:
        orders.reject(s, Ledger(s, clock), emp(s, people, "H1"), oid, clock())
        assert check_invariants(s) == []
    assert count(sqlite_db, Txn, Txn.kind == "expire") == 1 and status(sqlite_db, oid) == "rejected"


def test_lapse_after_24_hours(sqlite_db: Database, clock, people) -> None:
    unconfirmed = new_order(sqlite_db, clock, people, confirm=False)
    confirmed = new_order(sqlite_db, clock, people, "mug")
    clock.advance(hours=23, minutes=59, seconds=59)
    with sqlite_db.session_scope() as s:
        assert orders.lapse_due(s, clock()) == 0
    clock.advance(seconds=1)
    with sqlite_db.session_scope() as s:
        assert orders.lapse_due(s, clock()) == 1
        assert orders.lapse_due(s, clock()) == 0
    assert (status(sqlite_db, unconfirmed), status(sqlite_db, confirmed)) == ("lapsed", "awaiting_fulfilment")
    with sqlite_db.session_scope() as s:
        with pytest.raises(InvalidState, match="order lapsed"):
            orders.confirm(s, Ledger(s, clock), emp(s, people, "E1"), unconfirmed, clock(), TZ)
        with pytest.raises(InvalidState, match="order lapsed"):
            orders.cancel(s, Ledger(s, clock), emp(s, people, "E1"), unconfirmed, clock())


def test_lapse_is_applied_when_an_order_is_looked_at(sqlite_db: Database, clock, people) -> None:
    oid = new_order(sqlite_db, clock, people, confirm=False)
    clock.advance(hours=24)
    with sqlite_db.session_scope() as s:
        assert orders.get(s, oid, clock()).status == "lapsed"
    other = new_order(sqlite_db, clock, people, "mug", confirm=False)
    clock.advance(hours=24)
    with sqlite_db.session_scope() as s:
        assert [o.status for o in orders.list_for(s, emp(s, people, "E1"), clock())] == ["lapsed", "lapsed"]
    assert status(sqlite_db, other) == "lapsed"


def _fulfil(barrier, url: str, order_id: int, hr_id: int) -> str:  # type: ignore[no-untyped-def]
    db = Database(url)
    barrier.wait()
    try:
        with db.session_scope() as s:
            orders.fulfil(s, Ledger(s, fixed_clock), s.get(Employee, hr_id), order_id, fixed_clock())
        return "ok"
    except InvalidState:
        return "refused"
    finally:
        db.dispose()


def _confirm(barrier, url: str, order_id: int, emp_id: int) -> str:  # type: ignore[no-untyped-def]
    db = Database(url)
    barrier.wait()
    try:
        with db.session_scope() as s:
            orders.confirm(s, Ledger(s, fixed_clock), s.get(Employee, emp_id), order_id, fixed_clock(), TZ)
        return "ok"
    finally:
        db.dispose()


def test_racing_confirms_and_fulfils_give_one_effect(engine_db: Database) -> None:
    ids = seed(engine_db, fixed_clock)
    oid = new_order(engine_db, fixed_clock, ids, confirm=False)
    assert _run(_confirm, [(engine_db.url, oid, ids["E1"])] * 4) == ["ok"] * 4
    assert count(engine_db, Txn, Txn.kind == "hold") == 1
    results = _run(_fulfil, [(engine_db.url, oid, ids["H1" if i % 2 else "H2"]) for i in range(6)])
    assert sorted(results) == ["ok"] + ["refused"] * 5
    assert count(engine_db, Txn, Txn.kind == "settle") == 1 and status(engine_db, oid) == "fulfilled"
    with engine_db.session_scope() as s:
        assert check_invariants(s) == [] and s.scalar(select(Item.stock).where(Item.sku == "card100")) == 2
