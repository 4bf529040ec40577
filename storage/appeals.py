"""Appeals (``A<n>``): an employee objects to one of their changes, or to points that never came.

Deciders are the employee's manager, HR and admins, never the appellant. A decision is claimed
with a conditional ``UPDATE … WHERE status = 'open'``, so two reviewers (or one double click)
cannot both act; the money side is keyed per appeal as a second line of defence.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from storage.errors import InvalidState, NotPermitted, UnknownAppeal, UnknownTxn
from storage.ledger import Ledger
from storage.members import audit
from storage.models import Appeal, Employee, Shortfall, Txn

OPEN, APPROVED, DENIED = "open", "approved", "denied"
DECIDER_ROLES = ("hr", "admin")
REVERSIBLE_KINDS = ("award", "deduct")
STATUS_TEXT = {OPEN: "待处理", APPROVED: "通过", DENIED: "驳回"}


@dataclass(frozen=True)
class Decision:
    appeal: Appeal
    approved: bool
    txn: Txn | None  # the correction award or the reversal, when approved
    shortfall: int = 0  # points of a reversed award that were already spent


def create(s: Session, employee: Employee, txn_id: int | None, reason: str, *, now: datetime) -> Appeal:
    """Only one's own change can be appealed, and only once while an appeal on it is open."""
    if txn_id is not None:
        txn = s.get(Txn, txn_id)
        if txn is None or txn.employee_id != employee.id:
            raise UnknownTxn(f"no change E{txn_id} of employee {employee.id}")
        pending = s.scalar(select(Appeal.id).where(Appeal.txn_id == txn_id, Appeal.status == OPEN))
        if pending is not None:
            raise InvalidState(f"E{txn_id} 已有待处理的申诉 A{pending}，请耐心等待处理。")
    appeal = Appeal(employee_id=employee.id, txn_id=txn_id, reason=reason[:500], status=OPEN, created_at=now)
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


def reviewers(s: Session, appeal: Appeal) -> list[Employee]:
    """Who is told about a new appeal: the manager and every HR/admin, never the appellant."""
    emp = s.get(Employee, appeal.employee_id)
    assert emp is not None
    who = or_(Employee.role.in_(DECIDER_ROLES), Employee.id == emp.manager_id) if emp.manager_id else \
        Employee.role.in_(DECIDER_ROLES)
    return list(s.scalars(select(Employee).where(Employee.status == "active", Employee.id != emp.id, who)
                          .order_by(Employee.id)))


def may_decide(s: Session, appeal: Appeal, decider: Employee) -> bool:
    if decider.id == appeal.employee_id:
        return False
    if decider.role in DECIDER_ROLES:
        return True
    emp = s.get(Employee, appeal.employee_id)
    return emp is not None and emp.manager_id == decider.id


def open_for(s: Session, decider: Employee) -> list[Appeal]:
    """Open appeals this person may decide, oldest first."""
    q = select(Appeal).where(Appeal.status == OPEN, Appeal.employee_id != decider.id)
    if decider.role not in DECIDER_ROLES:
        q = q.join(Employee, Employee.id == Appeal.employee_id).where(Employee.manager_id == decider.id)
    return list(s.scalars(q.order_by(Appeal.id)))


def _check_reversible(s: Session, appeal: Appeal) -> None:
    """Approving without points means "undo the change"; say early when that cannot work."""
    if appeal.txn_id is None:
        raise InvalidState(f"A{appeal.id} 没有关联积分记录，请写明补发积分: 通过申诉 A{appeal.id} <积分> [备注]")
    txn = s.get(Txn, appeal.txn_id)
    if txn is None or txn.kind not in REVERSIBLE_KINDS:
        raise InvalidState(f"E{appeal.txn_id} 不能撤销，请写明补发积分: 通过申诉 A{appeal.id} <积分> [备注]")


def _claim(s: Session, appeal: Appeal, status: str, decider: Employee, points: int | None, note: str,
           now: datetime) -> None:
    res = s.execute(update(Appeal).where(Appeal.id == appeal.id, Appeal.status == OPEN)
                    .values(status=status, decided_at=now, decided_by=decider.id, points=points, note=note[:500])
                    .execution_options(synchronize_session="fetch"))
    if res.rowcount != 1:
        s.refresh(appeal)
        raise InvalidState(f"申诉 A{appeal.id} 已{STATUS_TEXT.get(appeal.status, '处理')}，不能重复处理。")


def decide(s: Session, ledger: Ledger, appeal_id: int, decider: Employee, *, approve: bool,
           points: int | None = None, note: str = "", now: datetime) -> Decision:
    """Approve (award ``points`` from issuance, or reverse the appealed change) or deny, once."""
    appeal = get(s, appeal_id)
    if not may_decide(s, appeal, decider):
        raise NotPermitted("你不能处理这条申诉（只有申诉人的经理、HR 或管理员可以处理，且不能处理自己的申诉）。")
    if appeal.status != OPEN:
        raise InvalidState(f"申诉 A{appeal.id} 已{STATUS_TEXT.get(appeal.status, '处理')}，不能重复处理。")
    if approve and points is None:
        _check_reversible(s, appeal)
    _claim(s, appeal, APPROVED if approve else DENIED, decider, points, note, now)
    txn, shortfall = None, 0
    if approve and points is not None:
        txn = ledger.award(appeal.employee_id, points, idem_key=f"appeal:{appeal.id}:award",
                           reason=f"申诉 A{appeal.id} 更正" + (f": {note}" if note else ""), category="appeal",
                           actor_id=decider.id)
    elif approve:
        assert appeal.txn_id is not None
        txn, shortfall = ledger.reverse(appeal.txn_id, idem_key=f"appeal:{appeal.id}:reverse", actor_id=decider.id,
                                        reason=f"申诉 A{appeal.id}: 撤销 E{appeal.txn_id}", allow_partial=True)
        if shortfall:
            s.add(Shortfall(employee_id=appeal.employee_id, txn_id=txn.id, amount=shortfall,
                            reason=f"申诉 A{appeal.id}: E{appeal.txn_id} 的积分已被使用", created_at=now))
    if txn is not None:
        appeal.resolution_txn_id = txn.id
    audit(s, "appeal_" + ("approve" if approve else "deny"), now=now, actor_id=decider.id,
          target_id=appeal.employee_id, detail=f"A{appeal.id}" + (f" E{txn.id}" if txn is not None else ""))
    s.flush()
    return Decision(appeal=appeal, approved=approve, txn=txn, shortfall=shortfall)
