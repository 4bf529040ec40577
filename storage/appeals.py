"""Appeals (``A<n>``): an employee objects to one of their changes, or to points that never came.

Deciders are HR and admins, and the employee's manager for appeals against a manager's change or
against points that never came; never the appellant. A decision is claimed
with a conditional ``UPDATE … WHERE status = 'open'``, so two reviewers (or one double click)
cannot both act; the money side is keyed per appeal as a second line of defence.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session, aliased

from storage.errors import InvalidState, NotPermitted, UnknownAppeal, UnknownTxn
from storage.ledger import Ledger
from storage.members import audit
from storage.models import REASON_MAX, Appeal, Employee, Txn

OPEN, APPROVED, DENIED = "open", "approved", "denied"
DECIDER_ROLES = ("hr", "admin")
STATUS_TEXT = {OPEN: "待处理", APPROVED: "通过", DENIED: "驳回"}


class Plan(str, Enum):
    """What approving an appeal does, by the kind of the appealed change (docs/commands.md)."""

    POINTS = "points"  # award, approval award, reversal, "-": the decider names the points to add
    UNDO = "undo"  # deduction, expiry: give the points back (ledger.reverse)
    NONE = "none"  # redemption holds/settlements/releases, transfers, leaver expiry, budgets


NOT_BY_APPROVAL = ("E{txn} 是兑换、转移或额度记录，不能通过申诉更正：订单请使用「发放」/「拒绝订单」处理，"
                   "其他情况请联系 HR。可以驳回这条申诉。")
NEEDS_POINTS = "E{txn} 是一笔发放，通过申诉需写明补发的积分: 通过申诉 A{appeal} <积分> [备注]"
NEEDS_POINTS_NO_TXN = "A{appeal} 没有关联积分记录，通过申诉需写明补发的积分: 通过申诉 A{appeal} <积分> [备注]"
STAFF_MATTER = "这条申诉针对 HR、管理员或系统（审批、过期、离职转移）做出的记录，需由 HR 或管理员处理。"
OVER_MAX_AWARD = "单次奖励最多 {max} 积分，申诉补发也一样。"


@dataclass(frozen=True)
class Decision:
    appeal: Appeal
    approved: bool
    txn: Txn | None  # the correction award or the undoing transaction, when approved
    plan: Plan | None = None  # how it was approved


def plan_for(txn: Txn | None) -> Plan:
    if txn is None or txn.kind in ("award", "reverse"):
        return Plan.POINTS
    if txn.kind == "deduct" or (txn.kind == "expire" and txn.category != "leaver"):
        return Plan.UNDO
    return Plan.NONE


def create(s: Session, employee: Employee, txn_id: int | None, reason: str, *, now: datetime) -> Appeal:
    """Only one's own change can be appealed, and only once while an appeal on it is open."""
    if txn_id is not None:
        txn = s.get(Txn, txn_id)
        if txn is None or txn.employee_id != employee.id:
            raise UnknownTxn(f"no change E{txn_id} of employee {employee.id}")
        pending = s.scalar(select(Appeal.id).where(Appeal.txn_id == txn_id, Appeal.status == OPEN))
        if pending is not None:
            raise InvalidState(f"E{txn_id} 已有待处理的申诉 A{pending}，请耐心等待处理。")
    appeal = Appeal(employee_id=employee.id, txn_id=txn_id, reason=reason[:REASON_MAX], status=OPEN, created_at=now)
    s.add(appeal)
    s.flush()
    audit(s, "appeal", now=now, actor_id=employee.id, target_id=employee.id,
          detail=f"A{appeal.id} on {'E%d' % txn_id if txn_id else '-'}")
    return appeal


def get(s: Session, appeal_id: int) -> Appeal:
    appeal = s.get(Appeal, appeal_id)
    if appeal is None:
        raise UnknownAppeal(f"no appeal A{appeal_id}")
    return appeal


def manager_decides() -> ColumnElement[bool]:
    """SQL: the appeal is one a manager may decide (against points that never came, or a manager's change).

    Appeals against a change made by HR, an admin or no human (approval, expiry, leaver transfer)
    are not: a manager may not overturn those, only HR and admins decide them.
    """
    actor = aliased(Employee)
    made_by_manager = (select(Txn.id).join(actor, actor.id == Txn.actor_id)
                       .where(Txn.id == Appeal.txn_id, actor.role.not_in(DECIDER_ROLES)).exists())
    return or_(Appeal.txn_id.is_(None), made_by_manager)


def staff_matter(s: Session, appeal: Appeal) -> bool:
    return s.scalar(select(Appeal.id).where(Appeal.id == appeal.id, manager_decides())) is None


def reviewers(s: Session, appeal: Appeal) -> list[Employee]:
    """Who is told about a new appeal: everyone who may decide it, never the appellant."""
    emp = s.get(Employee, appeal.employee_id)
    assert emp is not None
    who = Employee.role.in_(DECIDER_ROLES)
    if emp.manager_id and not staff_matter(s, appeal):
        who = or_(who, Employee.id == emp.manager_id)
    return list(s.scalars(select(Employee).where(Employee.status == "active", Employee.id != emp.id, who)
                          .order_by(Employee.id)))


def _manages(s: Session, appeal: Appeal, decider: Employee) -> bool:
    emp = s.get(Employee, appeal.employee_id)
    return decider.role == "manager" and emp is not None and emp.manager_id == decider.id


def may_decide(s: Session, appeal: Appeal, decider: Employee) -> bool:
    if decider.id == appeal.employee_id:
        return False
    if decider.role in DECIDER_ROLES:
        return True
    return _manages(s, appeal, decider) and not staff_matter(s, appeal)


def open_for(s: Session, decider: Employee) -> list[Appeal]:
    """Open appeals this person may decide, oldest first."""
    q = select(Appeal).where(Appeal.status == OPEN, Appeal.employee_id != decider.id)
    if decider.role not in DECIDER_ROLES:
        q = q.join(Employee, Employee.id == Appeal.employee_id).where(Employee.manager_id == decider.id,
                                                                      manager_decides())
    return list(s.scalars(q.order_by(Appeal.id)))


def _check_approvable(s: Session, appeal: Appeal, points: int | None, decider: Employee, max_award: int) -> Plan:
    """Say before anything is written why this approval cannot happen as asked."""
    txn = s.get(Txn, appeal.txn_id) if appeal.txn_id is not None else None
    plan = plan_for(txn)
    if plan is Plan.NONE:
        raise InvalidState(NOT_BY_APPROVAL.format(txn=appeal.txn_id))
    if points is None and plan is Plan.POINTS:
        text = NEEDS_POINTS.format(txn=txn.id, appeal=appeal.id) if txn is not None else \
            NEEDS_POINTS_NO_TXN.format(appeal=appeal.id)
        raise InvalidState(text)
    if points is not None and decider.role not in DECIDER_ROLES and points > max_award:
        raise NotPermitted(OVER_MAX_AWARD.format(max=max_award))
    return Plan.POINTS if points is not None else plan


def _claim(s: Session, appeal: Appeal, status: str, decider: Employee, points: int | None, note: str,
           now: datetime) -> None:
    res = s.execute(update(Appeal).where(Appeal.id == appeal.id, Appeal.status == OPEN)
                    .values(status=status, decided_at=now, decided_by=decider.id, points=points,
                            note=note[:REASON_MAX])
                    .execution_options(synchronize_session="fetch"))
    if res.rowcount != 1:
        s.refresh(appeal)
        raise InvalidState(f"申诉 A{appeal.id} 已{STATUS_TEXT.get(appeal.status, '处理')}，不能重复处理。")


def decide(s: Session, ledger: Ledger, appeal_id: int, decider: Employee, *, approve: bool, max_award: int,
           points: int | None = None, note: str = "", now: datetime) -> Decision:
    """Approve or deny once; an approval never leaves the appellant worse off.

    A manager's correction comes out of their own budget and obeys ``max_award``, exactly like
    an award they type, so an appeal is no way around either.
    """
    appeal = get(s, appeal_id)
    if not may_decide(s, appeal, decider):
        if _manages(s, appeal, decider):
            raise NotPermitted(STAFF_MATTER)
        raise NotPermitted("你不能处理这条申诉（只有申诉人的经理、HR 或管理员可以处理，且不能处理自己的申诉）。")
    if appeal.status != OPEN:
        raise InvalidState(f"申诉 A{appeal.id} 已{STATUS_TEXT.get(appeal.status, '处理')}，不能重复处理。")
    plan = _check_approvable(s, appeal, points, decider, max_award) if approve else None
    _claim(s, appeal, APPROVED if approve else DENIED, decider, points, note, now)
    txn = None
    if plan is Plan.POINTS:
        assert points is not None
        txn = ledger.award(appeal.employee_id, points, idem_key=f"appeal:{appeal.id}:award",
                           reason=f"申诉 A{appeal.id} 更正" + (f": {note}" if note else ""), category="appeal",
                           actor_id=decider.id, budget_of=None if decider.role in DECIDER_ROLES else decider.id)
    elif plan is Plan.UNDO:
        assert appeal.txn_id is not None
        txn, _ = ledger.reverse(appeal.txn_id, idem_key=f"appeal:{appeal.id}:reverse", actor_id=decider.id,
                                reason=f"申诉 A{appeal.id}: 撤销 E{appeal.txn_id}")
    if txn is not None:
        appeal.resolution_txn_id = txn.id
    audit(s, "appeal_" + ("approve" if approve else "deny"), now=now, actor_id=decider.id,
          target_id=appeal.employee_id, detail=f"A{appeal.id}" + (f" E{txn.id}" if txn is not None else ""))
    s.flush()
    return Decision(appeal=appeal, approved=approve, txn=txn, plan=plan)
