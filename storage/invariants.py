"""Ledger invariants of docs/reliability.md §1.2, checked by ``flask check-ledger`` and the tests."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.kinds import AccountKind
from storage.models import Account, Entry, Lot, LotAllocation, Txn


def check_invariants(s: Session) -> list[str]:
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
    return problems
