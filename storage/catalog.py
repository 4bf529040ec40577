"""The reward catalog: items HR edits, their stock, and per-employee limits (docs/catalog.md).

The database is the source of truth. The configuration's ``[[catalog]]`` only seeds a catalog that has
never been loaded (``seed_from_config``); afterwards HR edits items in the console or with a CSV, and
every process reads them on each message (a few dozen rows), so a change shows on the next message
with no restart and no cache to expire.

Stock and per-employee counts move only by conditional ``UPDATE``s (``… WHERE stock >= :qty``, ``…
WHERE count + :qty <= :limit``), the gate the ledger uses for wallets, so two confirmations at once
cannot both get the last item or both pass a limit.
"""
from __future__ import annotations

from dataclasses import asdict, replace
from datetime import datetime, tzinfo
from typing import Iterable

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from settings_rules import CatalogItem
from storage import gift_codes
from storage.errors import InvalidAmount, InvalidState, LimitReached, OutOfStock, UnknownItem
from storage.members import audit
from storage.models import Item, RedemptionCount
from storage.periods import calendar_period


# ---- reading ------------------------------------------------------------------------------------
def items(s: Session, *, active_only: bool = False) -> list[Item]:
    """The catalog in shop order (sort, then sku): the numbers of ``商城`` count the active ones."""
    q = select(Item).where(Item.name != "").order_by(Item.sort, Item.sku)
    return list(s.scalars(q.where(Item.active.is_(True)) if active_only else q))


def get(s: Session, sku: str) -> Item | None:
    item = s.get(Item, sku)
    return item if item is not None and item.name else None


def resolve(s: Session, token: str) -> Item:
    """Its number in the ``商城`` list (1-based), its sku, or its exact name; only active items."""
    token = (token or "").strip()
    shelf = items(s, active_only=True)
    if token.isdigit() and token.isascii() and 1 <= int(token) <= len(shelf):
        return shelf[int(token) - 1]
    for item in shelf:
        if item.sku.casefold() == token.casefold() or item.name == token:
            return item
    raise UnknownItem(f"no catalog item {token!r}")


def values_of(item: Item) -> CatalogItem:
    return CatalogItem(sku=item.sku, name=item.name, cost=item.cost, stock=item.stock, kind=str(item.kind),
                       description=item.description, active=item.active, limit=item.limit_count,
                       limit_period=item.limit_period, sort=item.sort, leave_days=item.leave_days,
                       charity=item.charity)


# ---- editing ------------------------------------------------------------------------------------
def save(s: Session, new: CatalogItem, *, now: datetime, actor_id: int | None) -> str:
    """Create or update an item by sku, audited; ``created``, ``updated`` or ``unchanged``.

    The stock written is the one given: HR sets what is on the shelf (``restock`` too), except for an item
    with a gift-card code pool, whose stock is its free codes (storage/gift_codes.py).
    """
    item = s.get(Item, new.sku)
    old = values_of(item) if item is not None and item.name else None
    if item is not None and gift_codes.pooled(s, new.sku):
        new = replace(new, stock=item.stock)
    if old == new:
        return "unchanged"
    if item is None:
        item = Item(sku=new.sku)
        s.add(item)
    item.name, item.kind, item.cost, item.stock = new.name, new.kind, new.cost, new.stock
    item.description, item.active, item.sort, item.leave_days = new.description, new.active, new.sort, new.leave_days
    item.limit_count, item.limit_period, item.charity, item.updated_at = new.limit, new.limit_period, new.charity, now
    changed = [k for k, v in asdict(new).items() if old is None or getattr(old, k) != v]
    audit(s, "catalog_create" if old is None else "catalog_update", now=now, actor_id=actor_id,
          detail=f"{new.sku}: {', '.join(changed)}")
    s.flush()
    return "created" if old is None else "updated"


def seed_from_config(s: Session, configured: Iterable[CatalogItem], *, now: datetime) -> list[str]:
    """Load the configuration's items into a catalog that was never loaded; the skus loaded.

    "Never loaded" is "no item has a name": the rows an older version kept held only a sku's stock,
    and that stock is kept. Once any item has a name, the configuration is not read again.
    """
    if s.scalar(select(Item.sku).where(Item.name != "").limit(1)) is not None:
        return []
    loaded = []
    for position, cfg in enumerate(configured, start=1):
        existing = s.get(Item, cfg.sku)
        stock = existing.stock if existing is not None else cfg.stock
        sort = cfg.sort or position * 10  # the shop keeps the configuration's order, with room between
        save(s, CatalogItem(**{**asdict(cfg), "stock": stock, "sort": sort}), now=now, actor_id=None)
        loaded.append(cfg.sku)
    return loaded


def differs_from_config(s: Session, configured: Iterable[CatalogItem]) -> list[str]:
    """The skus whose configured item is not what the catalog holds (stock aside: it moves with orders; and the
    order of the shop, unless the configuration gives a ``sort``)."""
    held = {i.sku: asdict(values_of(i)) for i in items(s)}

    def same(c: CatalogItem) -> bool:
        ignored = {"stock": None} if c.sort else {"stock": None, "sort": None}
        return held[c.sku] | ignored == asdict(c) | ignored
    return [c.sku for c in configured if c.sku not in held or not same(c)]


# ---- stock --------------------------------------------------------------------------------------
def stock_of(s: Session, sku: str) -> int | None:
    """Remaining stock (None = unlimited)."""
    row = s.execute(select(Item.stock).where(Item.sku == sku)).first()
    if row is None:
        raise UnknownItem(f"no item {sku}")
    return row[0]


def set_stock(s: Session, sku: str, n: int | None, *, now: datetime, actor_id: int | None) -> None:
    """``restock``: set the remaining stock outright (None = unlimited), audited like any edit."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise InvalidAmount(f"stock must be a whole number >= 0, got {n!r}")
    item = get(s, sku)
    if item is None:
        raise UnknownItem(f"no item {sku}")
    if gift_codes.pooled(s, sku):
        raise InvalidState(f"{sku}: stock follows its code pool", reason="stock_follows_codes", item=item.name)
    s.execute(update(Item).where(Item.sku == sku).values(stock=n).execution_options(synchronize_session="fetch"))
    audit(s, "catalog_restock", now=now, actor_id=actor_id, detail=f"{sku}: stock {'unlimited' if n is None else n}")


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
    """Put ``qty`` back (a cancelled or rejected order); an item with a code pool is recounted instead."""
    _check_qty(qty)
    if gift_codes.pooled(s, sku):
        gift_codes.recount(s, sku)
        return
    s.execute(update(Item).where(Item.sku == sku).values(stock=Item.stock + qty)
              .execution_options(synchronize_session=False))


# ---- per-employee limits ------------------------------------------------------------------------
def limit_key(item: Item, now: datetime, tz: tzinfo) -> str:
    """The limit period ``now`` falls in, in the company's time zone ("" for an item without a limit)."""
    if item.limit_count is None or not item.limit_period:
        return ""
    first = calendar_period(item.limit_period, now, tz).first
    if item.limit_period == "week":
        year, week, _ = first.isocalendar()
        return f"{year}-W{week:02d}"
    if item.limit_period == "quarter":
        return f"{first.year}-Q{(first.month - 1) // 3 + 1}"
    return f"{first:%Y-%m}" if item.limit_period == "month" else f"{first.year}"


def counted(s: Session, employee_id: int, sku: str, key: str) -> int:
    return int(s.scalar(select(RedemptionCount.count).where(
        RedemptionCount.employee_id == employee_id, RedemptionCount.sku == sku, RedemptionCount.period == key)) or 0)


def check_limit(s: Session, employee_id: int, item: Item, qty: int, key: str) -> None:
    """Refuse early (``兑换``) what the limit would refuse at confirmation; nothing is reserved here."""
    if key and counted(s, employee_id, item.sku, key) + qty > item.limit_count:  # type: ignore[operator]
        _limit_reached(s, employee_id, item, key)


def count_redemption(s: Session, employee_id: int, item: Item, qty: int, key: str) -> None:
    """Count ``qty`` against the employee's limit for ``key``, or raise LimitReached (under concurrency too)."""
    if not key:
        return
    where = (RedemptionCount.employee_id == employee_id, RedemptionCount.sku == item.sku,
             RedemptionCount.period == key)
    if s.scalar(select(RedemptionCount.id).where(*where)) is None:
        try:
            with s.begin_nested():
                s.add(RedemptionCount(employee_id=employee_id, sku=item.sku, period=key, count=0))
        except IntegrityError:  # a concurrent first redemption of the period made the row
            pass
    res = s.execute(update(RedemptionCount).where(*where, RedemptionCount.count + qty <= item.limit_count)
                    .values(count=RedemptionCount.count + qty).execution_options(synchronize_session=False))
    if res.rowcount != 1:
        _limit_reached(s, employee_id, item, key)


def uncount_redemption(s: Session, employee_id: int, sku: str, qty: int, key: str) -> None:
    """Give a cancelled or rejected order's quantity back to the period it was counted in."""
    if key:
        s.execute(update(RedemptionCount).where(
            RedemptionCount.employee_id == employee_id, RedemptionCount.sku == sku, RedemptionCount.period == key,
            RedemptionCount.count >= qty).values(count=RedemptionCount.count - qty)
            .execution_options(synchronize_session=False))


def _limit_reached(s: Session, employee_id: int, item: Item, key: str) -> None:
    raise LimitReached(f"{item.sku}: limit {item.limit_count} per {item.limit_period}",
                       reason=f"item_limit_{item.limit_period}", item=item.name, limit=item.limit_count,
                       used=counted(s, employee_id, item.sku, key))
