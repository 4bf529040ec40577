"""The catalog in the database: seeding once, edits, stock, per-employee limits under races, the CSV round trip."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from settings import CatalogItem
from settings_rules import ITEM_KINDS, check_item
from storage import catalog, catalog_csv, orders
from storage.db import Database
from storage.errors import InvalidAmount, LimitReached, OutOfStock, UnknownItem
from storage.kinds import ItemKind
from storage.ledger import Ledger
from storage.models import AuditLog, Employee, Item
from tests.storage.factories import make_employee
from tests.storage.test_concurrency import _run

ITEMS = (CatalogItem("card100", "100元购物卡", 1000, 5, kind="gift_card"), CatalogItem("mug", "马克杯", 200, None),
         CatalogItem("leave1", "1天年假", 500, None, kind="leave", leave_days=1, limit=1, limit_period="quarter"))
TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 10, 2, 0, 0)


@pytest.fixture
def shelf(engine_db: Database) -> Database:
    with engine_db.session_scope() as s:
        catalog.seed_from_config(s, ITEMS, now=NOW)
    return engine_db


def stock(db: Database, sku: str) -> int | None:
    with db.session_scope() as s:
        return s.scalar(select(Item.stock).where(Item.sku == sku))


def test_the_item_kinds_are_the_enum() -> None:
    assert tuple(ItemKind) == ITEM_KINDS


def test_seeding_loads_the_configuration_once_and_keeps_older_stock(sqlite_db: Database) -> None:
    with sqlite_db.session_scope() as s:
        s.add(Item(sku="card100", stock=2))  # a row of the stock-only table of before
    with sqlite_db.session_scope() as s:
        assert catalog.seed_from_config(s, ITEMS, now=NOW) == ["card100", "mug", "leave1"]
    changed = (CatalogItem("card100", "购物卡", 1, 50), CatalogItem("pen", "钢笔", 50, 7))
    with sqlite_db.session_scope() as s:
        assert catalog.seed_from_config(s, changed, now=NOW) == []  # loaded before: the configuration is not read
        assert [(i.sku, i.name, i.stock, i.sort) for i in catalog.items(s)] == [  # in the configuration's order
            ("card100", "100元购物卡", 2, 10), ("mug", "马克杯", None, 20), ("leave1", "1天年假", None, 30)]
        assert catalog.differs_from_config(s, changed) == ["card100", "pen"]
        assert catalog.differs_from_config(s, ITEMS) == []  # stock aside: it moves with every order


def test_an_edit_is_audited_and_an_inactive_item_leaves_the_shelf(shelf: Database) -> None:
    with shelf.session_scope() as s:
        hr = make_employee(s, "H1", role="hr")
        assert catalog.save(s, CatalogItem("mug", "马克杯（大）", 250, 9, sort=-1), now=NOW, actor_id=hr.id) == "updated"
        assert catalog.save(s, CatalogItem("mug", "马克杯（大）", 250, 9, sort=-1), now=NOW, actor_id=hr.id) == "unchanged"
        assert catalog.resolve(s, "1").sku == "mug"  # sort -1 puts it first
        catalog.save(s, CatalogItem("card100", "100元购物卡", 1000, 5, kind="gift_card", active=False, sort=10),
                     now=NOW, actor_id=hr.id)
        assert [i.sku for i in catalog.items(s, active_only=True)] == ["mug", "leave1"]
        with pytest.raises(UnknownItem):
            catalog.resolve(s, "card100")
        details = list(s.scalars(select(AuditLog.detail).where(AuditLog.action == "catalog_update")))
        assert details == ["mug: name, cost, stock, sort", "card100: active"]


@pytest.mark.parametrize("values, field", [
    ({"sku": "a b", "name": "A", "cost": 1}, "sku"), ({"sku": "a", "name": "", "cost": 1}, "name"),
    ({"sku": "a", "name": "A", "cost": 0}, "cost"), ({"sku": "a", "name": "A", "cost": 1, "stock": -1}, "stock"),
    ({"sku": "a", "name": "A", "cost": 1, "kind": "car"}, "kind"),
    ({"sku": "a", "name": "A", "cost": 1, "limit": 1}, "limit_period"),
    ({"sku": "a", "name": "A", "cost": 1, "limit": 1, "limit_period": "decade"}, "limit_period"),
    ({"sku": "a", "name": "A", "cost": 1, "kind": "leave"}, "leave_days"),
    ({"sku": "a", "name": "A", "cost": 1, "leave_days": 2}, "leave_days"),
])
def test_one_rule_set_refuses_bad_items(values: dict, field: str) -> None:
    item, problems = check_item(values)
    assert item is None and problems[0][0] == field


def test_take_and_restore_stock(shelf: Database) -> None:
    with shelf.session_scope() as s:
        catalog.take_stock(s, "card100", 5)
        with pytest.raises(OutOfStock):
            catalog.take_stock(s, "card100", 1)
        catalog.restore_stock(s, "card100", 2)
        catalog.take_stock(s, "mug", 1000)  # unlimited stays unlimited
        for qty in (0, -1, True, 1.5):
            with pytest.raises(InvalidAmount):
                catalog.take_stock(s, "card100", qty)  # type: ignore[arg-type]
        with pytest.raises(UnknownItem):
            catalog.take_stock(s, "nope", 1)
        with pytest.raises(UnknownItem):
            catalog.set_stock(s, "nope", 3, now=NOW, actor_id=None)
        catalog.set_stock(s, "mug", 4, now=NOW, actor_id=None)
    assert (stock(shelf, "card100"), stock(shelf, "mug")) == (2, 4)
    with shelf.session_scope() as s:
        assert s.scalar(select(AuditLog.detail).where(AuditLog.action == "catalog_restock")) == "mug: stock 4"


def _take_one(barrier, url: str, tries: int) -> int:  # type: ignore[no-untyped-def]
    db = Database(url)
    got = 0
    barrier.wait()
    for _ in range(tries):
        try:
            with db.session_scope() as s:
                catalog.take_stock(s, "card100", 1)
            got += 1
        except OutOfStock:
            pass
    db.dispose()
    return got


def test_racing_takers_never_oversell(shelf: Database) -> None:
    results = _run(_take_one, [(shelf.url, 5)] * 6)
    assert sum(results) == 5 and stock(shelf, "card100") == 0


def test_limit_keys_follow_the_company_calendar() -> None:
    item = Item(sku="x", limit_count=1, limit_period="quarter")
    assert catalog.limit_key(item, datetime(2026, 3, 31, 16, 30), TZ) == "2026-Q2"  # 00:30 on 1 April in Shanghai
    assert catalog.limit_key(item, datetime(2026, 3, 31, 15, 30), TZ) == "2026-Q1"
    for period, key in (("week", "2026-W11"), ("month", "2026-03"), ("year", "2026")):
        assert catalog.limit_key(Item(sku="x", limit_count=1, limit_period=period), NOW, TZ) == key
    assert catalog.limit_key(Item(sku="x", limit_count=None, limit_period=""), NOW, TZ) == ""


def _redeem_leave(barrier, url: str, emp_id: int) -> str:  # type: ignore[no-untyped-def]
    """Order and confirm one day of leave; what became of it."""
    db = Database(url, clock=lambda: NOW)
    with db.session_scope() as s:
        order_id = orders.start(s, s.get(Employee, emp_id), "leave1", 1, NOW, TZ).id
    barrier.wait()
    try:
        with db.session_scope() as s:
            orders.confirm(s, Ledger(s, lambda: NOW), s.get(Employee, emp_id), order_id, NOW, TZ)
        return "confirmed"
    except LimitReached:
        return "limit"
    finally:
        db.dispose()


def test_a_per_employee_limit_holds_under_concurrent_confirmations(shelf: Database) -> None:
    with shelf.session_scope() as s:
        emp_id = make_employee(s, "E1").id
        Ledger(s, lambda: NOW).award(emp_id, 5000, idem_key="seed", reason="r")
    results = _run(_redeem_leave, [(shelf.url, emp_id)] * 4)
    assert sorted(results) == ["confirmed", "limit", "limit", "limit"]
    with shelf.session_scope() as s:
        assert catalog.counted(s, emp_id, "leave1", "2026-Q1") == 1
        with pytest.raises(LimitReached) as refused:  # and 兑换 says so before anyone confirms
            orders.start(s, s.get(Employee, emp_id), "leave1", 1, NOW, TZ)
        assert (refused.value.reason, refused.value.params) == ("item_limit_quarter",
                                                                {"item": "1天年假", "limit": 1, "used": 1})


def test_a_cancelled_order_gives_its_quantity_back_to_the_limit(shelf: Database) -> None:
    with shelf.session_scope() as s:
        e1 = make_employee(s, "E1")
        lg = Ledger(s, lambda: NOW)
        lg.award(e1.id, 5000, idem_key="seed", reason="r")
        first = orders.start(s, e1, "leave1", 1, NOW, TZ)
        orders.confirm(s, lg, e1, first.id, NOW, TZ)
        orders.cancel(s, lg, e1, first.id, NOW)
        second = orders.start(s, e1, "leave1", 1, NOW, TZ)
        assert orders.confirm(s, lg, e1, second.id, NOW, TZ).limit_key == "2026-Q1"
        assert catalog.counted(s, e1.id, "leave1", "2026-Q1") == 1


CSV = """\ufeffsku,name,kind,cost,stock,limit,limit_period,leave_days,active
mug,马克杯,goods,180,,,,,true
leave2,2天年假,leave,900,,1,year,2,true
pen,钢笔,goods,-5,,,,,true
bad,坏,car,10,,,,,true
book,=HYPERLINK("x"),goods,50,3,,,,false
"""


def test_csv_import_reports_bad_rows_and_keeps_good_ones_and_round_trips(shelf: Database) -> None:
    rows, problem = catalog_csv.read(CSV)
    assert problem == ""
    with shelf.session_scope() as s:
        report = catalog_csv.import_rows(s, rows, now=NOW, actor_id=None)
    assert (report.created, report.updated) == (["leave2", "book"], ["mug"])
    assert report.rejected == [(4, "cost", "cost"), (5, "kind", "kind")]
    with shelf.session_scope() as s:
        mug, book = catalog.get(s, "mug"), catalog.get(s, "book")
        assert (mug.cost, mug.stock, mug.kind) == (180, None, "goods")
        assert (book.name, book.active) == ('=HYPERLINK("x")', False)
        exported = catalog_csv.export_text(s)
    assert "'=HYPERLINK" in exported  # a spreadsheet shows it as text, not a formula
    rows, _ = catalog_csv.read(exported)
    with shelf.session_scope() as s:
        again = catalog_csv.import_rows(s, rows, now=NOW, actor_id=None)
    assert (again.created, again.updated, again.rejected) == ([], [], [])  # the round trip changes nothing
    assert catalog_csv.read("name,cost\nx,1\n")[1] == "missing column(s): sku"


def test_a_csv_without_a_column_keeps_the_items_value(shelf: Database) -> None:
    rows, _ = catalog_csv.read("sku,name,cost\ncard100,新购物卡,1200\n")
    with shelf.session_scope() as s:
        assert catalog_csv.import_rows(s, rows, now=NOW, actor_id=None).updated == ["card100"]
        card = catalog.get(s, "card100")
        assert (card.name, card.cost, card.stock, card.kind) == ("新购物卡", 1200, 5, "gift_card")
