"""Ledger invariants of docs/reliability.md §1.2, checked by ``flask check-ledger`` and the tests."""
from __future__ import annotations

from datetime import tzinfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from storage.ledger import DEFAULT_TZ, totals

from storage.kinds import AccountKind, ItemKind, OrderStatus, TxnKind
from storage.models import Account, Entry, GiftCode, Item, Lot, LotAllocation, Order, Txn


# Built once, and each compares in SQL so only problems come back: ``check-ledger`` runs them over millions of
# rows, and the stateful ledger test after every step (tests/storage/test_ledger_stateful.py).
_BY_ACCOUNT = select(Entry.account_id, func.sum(Entry.amount).label("total")).group_by(Entry.account_id).subquery()
_BY_LOT = select(LotAllocation.lot_id, func.sum(LotAllocation.amount).label("total")) \
    .group_by(LotAllocation.lot_id).subquery()
_LOTS_OF = select(Lot.account_id, func.sum(Lot.remaining).label("total")).group_by(Lot.account_id).subquery()
_SUMMED = func.coalesce(_BY_ACCOUNT.c.total, 0)
_UNBALANCED = select(Entry.txn_id, func.sum(Entry.amount)).group_by(Entry.txn_id).having(func.sum(Entry.amount) != 0)
_EMPTY = select(Txn.id).where(~select(Entry.id).where(Entry.txn_id == Txn.id).exists()).where(Txn.amount != 0)
_CACHED = select(Account.name, Account.balance, _SUMMED) \
    .outerjoin(_BY_ACCOUNT, _BY_ACCOUNT.c.account_id == Account.id) \
    .where(Account.kind.in_((AccountKind.WALLET, AccountKind.BUDGET)),
           (Account.balance != _SUMMED) | (Account.balance < 0)).order_by(Account.id)
_IN_LOTS = func.coalesce(_LOTS_OF.c.total, 0)
_WALLET_LOTS = select(Account.name, Account.balance, _IN_LOTS) \
    .outerjoin(_LOTS_OF, _LOTS_OF.c.account_id == Account.id) \
    .where(Account.kind == AccountKind.WALLET, Account.balance != _IN_LOTS).order_by(Account.id)
_BAD_LOTS = select(Lot.id).where((Lot.remaining < 0) | (Lot.remaining > Lot.amount))
_ALLOCATED = select(Lot.id).outerjoin(_BY_LOT, _BY_LOT.c.lot_id == Lot.id) \
    .where(Lot.amount - func.coalesce(_BY_LOT.c.total, 0) != Lot.remaining).order_by(Lot.id)
_TOTAL = select(func.coalesce(func.sum(Entry.amount), 0))
_POOLS = select(Account.name, _SUMMED).outerjoin(_BY_ACCOUNT, _BY_ACCOUNT.c.account_id == Account.id) \
    .where(Account.kind == AccountKind.CHARITY)


def check_invariants(s: Session, tz: tzinfo = DEFAULT_TZ) -> list[str]:
    """Every violation found, in words; ``tz`` is the company's (the earned totals are kept by local period)."""
    conn = s.connection()
    problems = [f"E{t}: entries sum to {int(v)}, not 0" for t, v in conn.execute(_UNBALANCED)]
    problems += [f"E{t}: a change of points with no entries" for t in conn.execute(_EMPTY).scalars()]
    for name, balance, summed in conn.execute(_CACHED):
        if int(summed) != balance:
            problems.append(f"{name}: cached balance {balance} != entries {int(summed)}")
        if balance < 0:
            problems.append(f"{name}: negative balance {balance}")
    problems += [f"{name}: balance {balance} != lots remaining {int(held)}"
                 for name, balance, held in conn.execute(_WALLET_LOTS)]
    problems += [f"lot {i}: remaining outside 0..amount" for i in conn.execute(_BAD_LOTS).scalars()]
    problems += [f"lot {i}: amount - allocations != remaining" for i in conn.execute(_ALLOCATED).scalars()]
    total = int(conn.execute(_TOTAL).scalar() or 0)
    if total != 0:
        problems.append(f"all entries sum to {total}, not 0")
    return problems + _check_donations(s) + _check_codes(s) + totals.differences(s, tz)


def _check_donations(s: Session) -> list[str]:
    """A charity's pool never goes below zero, and every fulfilled or refunded donation order put exactly its cost
    into a charity's pool (its settlement's credit)."""
    pools = s.connection().execute(_POOLS).all()
    if not pools:  # no donation was ever made: nothing to check (the common case, and one cheap query)
        return []
    problems = [f"{name}: negative balance {int(total)}" for name, total in pools if total < 0]
    settle = aliased(Txn)
    credited = (select(func.coalesce(func.sum(Entry.amount), 0)).join(Account, Account.id == Entry.account_id)
                .where(Entry.txn_id == settle.id, Entry.amount > 0, Account.kind == AccountKind.CHARITY)
                .scalar_subquery())
    rows = s.execute(select(Order.id, Order.cost, credited).join(Item, Item.sku == Order.sku)
                     .join(settle, (settle.related_txn_id == Order.hold_txn_id) & (settle.kind == TxnKind.SETTLE))
                     .where(Item.kind == ItemKind.DONATION, settle.category == "donation"))
    problems += [f"R{o}: donation of {cost} put {int(got)} into a charity's pool" for o, cost, got in rows if got != cost]
    return problems


_CODES_GIVEN = select(GiftCode.id).where(GiftCode.order_id.is_not(None)).limit(1)
_CODES_PER_ORDER = select(GiftCode.order_id, func.count(GiftCode.id), Order.quantity, Order.status) \
    .join(Order, Order.id == GiftCode.order_id).group_by(GiftCode.order_id, Order.quantity, Order.status)


def _check_codes(s: Session) -> list[str]:
    """Each order that got gift-card codes got one per unit, and only a handed-out (or refunded) order has any."""
    conn = s.connection()
    if conn.execute(_CODES_GIVEN).first() is None:
        return []
    return [f"R{o}: {n} gift-card code(s) for {qty} ordered ({status})"
            for o, n, qty, status in conn.execute(_CODES_PER_ORDER)
            if n != qty or status not in (OrderStatus.FULFILLED, OrderStatus.REFUNDED)]
