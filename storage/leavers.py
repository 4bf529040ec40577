"""Leavers: a member-left event marks the employee as left, and the leaver policy settles their points.

Why pending orders are kept and not cancelled: the item may already be on its way; HR decides
per order (fulfil or reject, which releases the points into the frozen wallet). Why the policy
waits ``leavers.grace_days``: people are re-hired or leave by mistake in the platform, and a
reactivation within the grace period must find their points untouched.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from settings import Settings
from storage.approvals import staff_ids
from storage.db import Database
from storage.employees import mark_left
from storage.ledger import Ledger
from storage.members import PLATFORM_COLUMNS
from storage.models import Binding, Employee, Order
from storage import memos

log = logging.getLogger(__name__)
PENDING_ORDER_STATUSES = ("awaiting_confirmation", "awaiting_fulfilment")


@dataclass
class LeaverReport:
    """What HR needs to decide about one leaver."""

    employee_id: int
    employee_no: str
    name: str
    balance: int
    pending_orders: list[tuple[int, str, int]] = field(default_factory=list)  # (order id, item, points)
    changed: bool = True  # False when the employee had already left (a redelivered event)
    staff_ids: list[int] = field(default_factory=list)  # who to tell


def find_by_platform_id(s: Session, platform: str, user_id: str) -> Employee | None:
    """By binding first (the account really used), then by the roster's platform id column."""
    binding = s.scalar(select(Binding).where(Binding.platform == platform, Binding.platform_user_id == user_id))
    if binding is not None:
        return s.get(Employee, binding.employee_id)
    column = PLATFORM_COLUMNS.get(platform)
    if column is None or not user_id:
        return None
    return s.scalar(select(Employee).where(column == user_id).order_by(Employee.id).limit(1))


def report_for(s: Session, ledger: Ledger, emp: Employee, changed: bool = True) -> LeaverReport:
    orders = [(o.id, o.item_name, o.cost) for o in s.scalars(
        select(Order).where(Order.employee_id == emp.id, Order.status.in_(PENDING_ORDER_STATUSES)).order_by(Order.id))]
    return LeaverReport(employee_id=emp.id, employee_no=emp.employee_no, name=emp.name,
                        balance=ledger.balance(ledger.wallet(emp.id).id), pending_orders=orders, changed=changed,
                        staff_ids=[i for i in staff_ids(s) if i != emp.id])


def member_left(s: Session, ledger: Ledger, platform: str, user_id: str, *, now: datetime) -> LeaverReport | None:
    """Mark the employee behind ``user_id`` as left (unbind all, freeze); None when nobody matches."""
    emp = find_by_platform_id(s, platform, user_id)
    if emp is None:
        log.info("member left on %s: %s is not a known employee", platform, user_id)
        return None
    changed = mark_left(s, ledger, emp, now=now, actor_id=None, why=f"{platform} member left ({user_id})")
    return report_for(s, ledger, emp, changed)


def apply_leaver_policy(db: Database, settings: Settings, now: datetime) -> int:
    """After the grace period: ``freeze`` keeps points, ``expire`` expires them, ``transfer`` moves them to the pool.

    Returns how many leavers' points were moved this run. Each leaver is its own transaction and
    its own idempotency key, so a rerun (or a second scheduler) moves nothing twice.
    """
    policy = settings.leavers["policy"]
    if policy == "freeze":
        return 0
    cutoff = now - timedelta(days=settings.leavers["grace_days"])
    with db.session_scope() as s:
        ids = list(s.scalars(select(Employee.id).where(Employee.status == "left", Employee.left_at.is_not(None),
                                                       Employee.left_at <= cutoff).order_by(Employee.id)))
        pool_id: int | None = None
        if policy == "transfer":
            pool_id = s.scalar(select(Employee.id).where(Employee.employee_no == settings.leavers["pool_employee_no"]))
            if pool_id is None:
                log.error("leaver-policy: pool employee %s not found; nothing transferred",
                          settings.leavers["pool_employee_no"])
                return 0
    moved = 0
    for emp_id in ids:
        if emp_id == pool_id:
            continue
        key = f"leaver:{emp_id}:{policy}"
        with db.session_scope() as s:
            ledger = Ledger(s, db.clock, settings.points["validity_days"], settings.tz)
            if ledger.find(key) is not None:
                continue
            to: str | int = "expired" if policy == "expire" else int(pool_id)  # type: ignore[arg-type]
            reason = memos.LEAVER_EXPIRED if policy == "expire" else memos.LEAVER_TO_POOL
            if ledger.move_all(emp_id, to=to, idem_key=key, reason=reason) is not None:
                moved += 1
    return moved
