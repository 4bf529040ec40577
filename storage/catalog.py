"""Stock of the reward catalog.

The configuration owns each item's name and price; the database owns how many are left, because
stock changes with every order and ``restock`` and must survive a restart (``[[catalog]]`` in config.example.toml). A
sku's stock is seeded once, when it first appears, and never overwritten by a later sync, so
editing the config cannot silently refill (or empty) a shelf. ``NULL`` stock means unlimited.

Stock moves only by conditional ``UPDATE``s (``… WHERE stock >= :qty``), the same gate the ledger
uses for wallets, so two employees confirming the last item at once cannot both get it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.errors import InvalidAmount, OutOfStock, UnknownItem
from storage.models import Item

if TYPE_CHECKING:  # settings is a leaf; imported for the type only
    from settings import CatalogItem


def _insert(s: Session, sku: str, stock: int | None) -> bool:
    """Insert a row for ``sku`` unless one exists (a concurrent twin wins quietly)."""
    if s.get(Item, sku) is not None:
        return False
    try:
        with s.begin_nested():
            s.add(Item(sku=sku, stock=stock))
            s.flush()
    except IntegrityError:
        return False
    return True


def sync_catalog(s: Session, catalog_items: Iterable["CatalogItem"]) -> list[str]:
    """Seed the stock of skus seen for the first time; returns those skus. Existing stock is kept."""
    return [item.sku for item in catalog_items if _insert(s, item.sku, item.stock)]


def ensure_item(s: Session, item: "CatalogItem") -> None:
    """Lazily seed one item, for a sku added to the config since the last sync."""
    _insert(s, item.sku, item.stock)


def stock_of(s: Session, sku: str) -> int | None:
    """Remaining stock (None = unlimited); raises UnknownItem when the sku was never seeded."""
    row = s.execute(select(Item.stock).where(Item.sku == sku)).first()
    if row is None:
        raise UnknownItem(f"no stock row for sku {sku}")
    return row[0]


def stocks(s: Session) -> dict[str, int | None]:
    """Every seeded sku's stock, for the shop list (one query, not one per item)."""
    return {sku: stock for sku, stock in s.execute(select(Item.sku, Item.stock))}


def set_stock(s: Session, sku: str, n: int | None) -> None:
    """``restock``: set the remaining stock outright (None = unlimited), creating the row if needed."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise InvalidAmount(f"stock must be a whole number >= 0, got {n!r}")
    res = s.execute(update(Item).where(Item.sku == sku).values(stock=n).execution_options(synchronize_session=False))
    if res.rowcount == 0 and not _insert(s, sku, n):
        s.execute(update(Item).where(Item.sku == sku).values(stock=n).execution_options(synchronize_session=False))


def _check_qty(qty: int) -> None:
    if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
        raise InvalidAmount(f"quantity must be a positive whole number, got {qty!r}")


def take_stock(s: Session, sku: str, qty: int) -> None:
    """Take ``qty`` atomically, or raise OutOfStock; unlimited (NULL) stock always succeeds.

    ``NULL - qty`` is ``NULL`` in SQL, so one statement serves both kinds of item.
    """
    _check_qty(qty)
    res = s.execute(update(Item).where(Item.sku == sku, or_(Item.stock.is_(None), Item.stock >= qty))
                    .values(stock=Item.stock - qty).execution_options(synchronize_session=False))
    if res.rowcount != 1:
        stock_of(s, sku)  # UnknownItem when the row is missing altogether
        raise OutOfStock(f"sku {sku}: fewer than {qty} left")


def restore_stock(s: Session, sku: str, qty: int) -> None:
    """Put ``qty`` back (a cancelled or rejected order); a row removed by hand is left alone."""
    _check_qty(qty)
    s.execute(update(Item).where(Item.sku == sku).values(stock=Item.stock + qty)
              .execution_options(synchronize_session=False))
