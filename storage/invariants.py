"""Ledger invariants of docs/reliability.md §1.2, checked by ``flask check-ledger`` and the tests."""
from __future__ import annotations

from datetime import tzinfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from storage.ledger import DEFAULT_TZ, totals

from storage.kinds import AccountKind, ItemKind, OrderStatus, TxnKind
from storage.models import Account, Entry, GiftCode, Item, Lot, LotAllocation, Order, Txn


def check_invariants(s: Session, tz: tzinfo = DEFAULT_TZ) -> list[str]:
    """Every violation found, in words; ``tz`` is the company's (the earned totals are kept by local period)."""
    problems: list[str] = []
    unbalanced = s.execute(select(Entry.txn_id, func.sum(Entry.amount)).group_by(Entry.txn_id)
                           .having(func.sum(Entry.amount) != 0)).all()
    problems += [f"E{t}: entries sum to {int(v)}, not 0" for t, v in unbalanced]
    empty = s.scalars(select(Txn.id).where(~select(Entry.id).where(Entry.txn_id == Txn.id).exists())
                      .where(Txn.amount != 0)).all()
    problems += [f"E{t}: a change of points with no entries" for t in empty]
    sums = dict(s.execute(select(Entry.account_id, func.sum(Entry.amount)).group_by(Entry.account_id)).all())
    for acc in s.scalars(select(Account).where(Account.kind.in_(("wallet", "budget")))):
        if int(sums.get(acc.id, 0) or 0) != acc.balance:
            problems.append(f"{acc.name}: cached balance {acc.balance} != entries {int(sums.get(acc.id, 0) or 0)}")
        if acc.balance < 0:
            problems.append(f"{acc.name}: negative balance {acc.balance}")
    lot_sums = dict(s.execute(select(Lot.account_id, func.sum(Lot.remaining)).group_by(Lot.account_id)).all())
    for acc in s.scalars(select(Account).where(Account.kind == AccountKind.WALLET)):
        if int(lot_sums.get(acc.id, 0) or 0) != acc.balance:
            problems.append(f"{acc.name}: balance {acc.balance} != lots remaining {int(lot_sums.get(acc.id, 0) or 0)}")
    bad_lots = s.scalars(select(Lot.id).where((Lot.remaining < 0) | (Lot.remaining > Lot.amount))).all()
    problems += [f"lot {i}: remaining outside 0..amount" for i in bad_lots]
    alloc = dict(s.execute(select(LotAllocation.lot_id, func.sum(LotAllocation.amount))
                           .group_by(LotAllocation.lot_id)).all())
    for lot_id, amount, remaining in s.execute(select(Lot.id, Lot.amount, Lot.remaining)):
        if amount - int(alloc.get(lot_id, 0) or 0) != remaining:
            problems.append(f"lot {lot_id}: amount - allocations != remaining")
    total = s.scalar(select(func.coalesce(func.sum(Entry.amount), 0)))
    if int(total or 0) != 0:
        problems.append(f"all entries sum to {int(total)}, not 0")
    return problems + _check_donations(s, sums) + _check_codes(s) + totals.differences(s, tz)


def _check_donations(s: Session, sums: dict[int, int]) -> list[str]:
    """A charity's pool never goes below zero, and every fulfilled or refunded donation order put exactly its cost
    into a charity's pool (its settlement's credit)."""
    pools = s.execute(select(Account.id, Account.name).where(Account.kind == AccountKind.CHARITY)).all()
    if not pools:  # no donation was ever made: nothing to check (the common case, and one cheap query)
        return []
    problems = [f"{name}: negative balance {int(sums.get(acc_id, 0) or 0)}" for acc_id, name in pools
                if (sums.get(acc_id, 0) or 0) < 0]
    settle = aliased(Txn)
    credited = (select(func.coalesce(func.sum(Entry.amount), 0)).join(Account, Account.id == Entry.account_id)
                .where(Entry.txn_id == settle.id, Entry.amount > 0, Account.kind == AccountKind.CHARITY)
                .scalar_subquery())
    rows = s.execute(select(Order.id, Order.cost, credited).join(Item, Item.sku == Order.sku)
                     .join(settle, (settle.related_txn_id == Order.hold_txn_id) & (settle.kind == TxnKind.SETTLE))
                     .where(Item.kind == ItemKind.DONATION, settle.category == "donation"))
    problems += [f"R{o}: donation of {cost} put {int(got)} into a charity's pool" for o, cost, got in rows if got != cost]
    return problems


def _check_codes(s: Session) -> list[str]:
    """Each order that got gift-card codes got one per unit, and only a handed-out (or refunded) order has any."""
    if s.scalar(select(GiftCode.id).where(GiftCode.order_id.is_not(None)).limit(1)) is None:
        return []
    rows = s.execute(select(GiftCode.order_id, func.count(GiftCode.id), Order.quantity, Order.status)
                     .join(Order, Order.id == GiftCode.order_id).group_by(GiftCode.order_id, Order.quantity, Order.status))
    return [f"R{o}: {n} gift-card code(s) for {qty} ordered ({status})" for o, n, qty, status in rows
            if n != qty or status not in (OrderStatus.FULFILLED, OrderStatus.REFUNDED)]
