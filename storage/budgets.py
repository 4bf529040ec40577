"""Manager budgets: each manager's monthly amount and rollover, and HR's one-off top-ups (docs/rules.md).

A manager without a ``manager_budgets`` row gets ``[points] manager_monthly_budget`` and
``budget_rollover``; HR sets a manager's own in the console. Every point a budget receives is a ledger
transaction (the monthly grant, a top-up), so ``check-ledger`` verifies budgets like wallets.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.errors import InvalidAmount, UnknownEmployee
from storage.ledger import Ledger
from storage.ledger.books import MAX_POINTS
from storage.members import audit
from storage.models import Employee, ManagerBudget, Txn
from storage import memos

TOPUP_MAX = 1_000_000


@dataclass(frozen=True)
class Terms:
    monthly: int
    rollover: bool
    own: bool  # set for this manager (else the defaults)


def managers(s: Session) -> list[Employee]:
    return list(s.scalars(select(Employee).where(Employee.role == "manager", Employee.status == "active")
                          .order_by(Employee.department, Employee.employee_no)))


def manager(s: Session, employee_no: str) -> Employee:
    found = s.scalar(select(Employee).where(Employee.employee_no == employee_no, Employee.role == "manager"))
    if found is None:
        raise UnknownEmployee(f"no manager {employee_no}")
    return found


def terms(s: Session, points: Mapping[str, Any], manager_ids: list[int] | None = None) -> dict[int, Terms]:
    """Each manager's terms (all with a row, or the given ones, defaults filled in)."""
    q = select(ManagerBudget)
    if manager_ids is not None:
        q = q.where(ManagerBudget.employee_id.in_(manager_ids or [-1]))
    found = {b.employee_id: b for b in s.scalars(q)}
    ids = manager_ids if manager_ids is not None else list(found)
    return {m: Terms(found[m].monthly if m in found and found[m].monthly is not None else
                     points["manager_monthly_budget"],
                     found[m].rollover if m in found and found[m].rollover is not None else points["budget_rollover"],
                     m in found) for m in ids}


def set_terms(s: Session, manager: Employee, monthly: int | None, rollover: bool | None, *, now: datetime,
              actor_id: int | None) -> None:
    """A manager's own amount and rollover (None: back to the default), from the next monthly grant on."""
    if monthly is not None and (isinstance(monthly, bool) or not isinstance(monthly, int) or
                                not 0 <= monthly <= MAX_POINTS):
        raise InvalidAmount(f"monthly budget must be 0 to {MAX_POINTS}, got {monthly!r}")
    row = s.get(ManagerBudget, manager.id)
    if row is None:
        row = ManagerBudget(employee_id=manager.id)
        s.add(row)
    row.monthly, row.rollover, row.updated_at, row.updated_by = monthly, rollover, now, actor_id
    s.flush()
    audit(s, "budget_terms", now=now, actor_id=actor_id, target_id=manager.id,
          detail=f"monthly={'default' if monthly is None else monthly} "
                 f"rollover={'default' if rollover is None else str(rollover).lower()}")


def top_up(s: Session, ledger: Ledger, manager: Employee, points: int, reason: str, *, key: str, now: datetime,
           actor_id: int) -> Txn:
    """One-off points for one manager's budget, from issuance, with a reason; once per ``key``."""
    if manager.role != "manager":
        raise UnknownEmployee(f"{manager.employee_no} is not a manager", reason="budget_not_manager",
                              name=manager.name)
    if isinstance(points, bool) or not isinstance(points, int) or not 0 < points <= TOPUP_MAX:
        raise InvalidAmount(f"top-up must be 1 to {TOPUP_MAX}, got {points!r}", reason="topup_amount", max=TOPUP_MAX)
    txn = ledger.top_up_budget(manager.id, points, idem_key=key, actor_id=actor_id,
                               reason=memos.with_note(memos.BUDGET_TOPUP, reason)[:500])
    audit(s, "budget_topup", now=now, actor_id=actor_id, target_id=manager.id, detail=f"E{txn.id} {points}")
    return txn
