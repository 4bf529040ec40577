"""Catalog stock: seeded once per sku, moved only by conditional updates."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from settings import CatalogItem
from storage import catalog
from storage.db import Database
from storage.errors import InvalidAmount, OutOfStock, UnknownItem
from storage.models import Item
from tests.storage.test_concurrency import _run

ITEMS = (CatalogItem("card100", "100元购物卡", 1000, 5), CatalogItem("mug", "马克杯", 200, None))


def stock(db: Database, sku: str) -> int | None:
    with db.session_scope() as s:
        return s.scalar(select(Item.stock).where(Item.sku == sku))


def test_sync_seeds_new_skus_once_and_never_overwrites(sqlite_db: Database) -> None:
    with sqlite_db.session_scope() as s:
        assert catalog.sync_catalog(s, ITEMS) == ["card100", "mug"]
    with sqlite_db.session_scope() as s:
        catalog.take_stock(s, "card100", 2)
    changed = (CatalogItem("card100", "100元购物卡", 1000, 50), CatalogItem("mug", "马克杯", 200, 9),
               CatalogItem("pen", "钢笔", 50, 7))
    with sqlite_db.session_scope() as s:
        assert catalog.sync_catalog(s, changed) == ["pen"]
        assert catalog.stocks(s) == {"card100": 3, "mug": None, "pen": 7}


def test_take_and_restore(sqlite_db: Database) -> None:
    with sqlite_db.session_scope() as s:
        catalog.sync_catalog(s, ITEMS)
        catalog.take_stock(s, "card100", 5)
        with pytest.raises(OutOfStock):
            catalog.take_stock(s, "card100", 1)
        catalog.restore_stock(s, "card100", 2)
        assert catalog.stock_of(s, "card100") == 2
    assert stock(sqlite_db, "card100") == 2


def test_unlimited_stock_stays_unlimited(sqlite_db: Database) -> None:
    with sqlite_db.session_scope() as s:
        catalog.sync_catalog(s, ITEMS)
        catalog.take_stock(s, "mug", 1000)
        catalog.restore_stock(s, "mug", 3)
        assert catalog.stock_of(s, "mug") is None


def test_bad_quantities_and_unknown_skus(sqlite_db: Database) -> None:
    with sqlite_db.session_scope() as s:
        catalog.sync_catalog(s, ITEMS)
        for qty in (0, -1, True, 1.5):
            with pytest.raises(InvalidAmount):
                catalog.take_stock(s, "card100", qty)  # type: ignore[arg-type]
        with pytest.raises(UnknownItem):
            catalog.take_stock(s, "nope", 1)
        with pytest.raises(UnknownItem):
            catalog.stock_of(s, "nope")
        catalog.restore_stock(s, "nope", 1)  # nothing to restore into: no error, no row
        assert catalog.stock_of(s, "card100") == 5


def test_set_stock_creates_or_overwrites(sqlite_db: Database) -> None:
    with sqlite_db.session_scope() as s:
        catalog.sync_catalog(s, ITEMS)
        catalog.set_stock(s, "card100", 40)
        catalog.set_stock(s, "card100", 40)  # same value again
        catalog.set_stock(s, "fresh", 3)
        catalog.set_stock(s, "mug", 0)
    assert (stock(sqlite_db, "card100"), stock(sqlite_db, "fresh"), stock(sqlite_db, "mug")) == (40, 3, 0)
    with sqlite_db.session_scope() as s:
        with pytest.raises(InvalidAmount):
            catalog.set_stock(s, "card100", -1)


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


def test_racing_takers_never_oversell(engine_db: Database) -> None:
    with engine_db.session_scope() as s:
        catalog.sync_catalog(s, ITEMS)
    results = _run(_take_one, [(engine_db.url, 5)] * 6)
    assert sum(results) == 5 and stock(engine_db, "card100") == 0
