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
from storage.kinds import AppealStatus, TxnKind
from storage.ledger import Ledger
from storage.members import audit, in_team, team
from storage.models import REASON_MAX, Appeal, Employee, Txn
from storage import memos

OPEN, APPROVED, DENIED = AppealStatus.OPEN, AppealStatus.APPROVED, AppealStatus.DENIED
DECIDER_ROLES = ("hr", "admin")


class Plan(str, Enum):
    """What approving an appeal does, by the kind of the appealed change (docs/commands.md)."""

    POINTS = "points"  # award, approval award, reversal, "-": the decider names the points to add
    UNDO = "undo"  # deduction, expiry: give the points back (ledger.reverse)
    NONE = "none"  # redemption holds/settlements/releases, transfers, leaver expiry, budgets


@dataclass(frozen=True)
class Decision:
    appeal: Appeal
    approved: bool
    txn: Txn | None  # the correction award or the undoing transaction, when approved
    plan: Plan | None = None  # how it was approved


def plan_for(txn: Txn | None) -> Plan:
    if txn is None or txn.kind in ("award", "reverse"):
        return Plan.POINTS
    if txn.kind == TxnKind.DEDUCT or (txn.kind == TxnKind.EXPIRE and txn.category != "leaver"):
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
            raise InvalidState("change already appealed", reason="appeal_pending", txn=txn_id, appeal=pending)
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
    """The appellant is in the decider's team (storage/members.py ``team``: direct and indirect reports)."""
    return decider.role == "manager" and in_team(s, decider.id, appeal.employee_id)


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
        q = q.where(Appeal.employee_id.in_(team(decider.id)), manager_decides())
    return list(s.scalars(q.order_by(Appeal.id)))


def _check_approvable(s: Session, appeal: Appeal, points: int | None, decider: Employee, max_award: int) -> Plan:
    """Say before anything is written why this approval cannot happen as asked."""
    txn = s.get(Txn, appeal.txn_id) if appeal.txn_id is not None else None
    plan = plan_for(txn)
    if plan is Plan.NONE:
        raise InvalidState("not correctable by approval", reason="appeal_not_by_approval", txn=appeal.txn_id)
    if points is None and plan is Plan.POINTS:
        if txn is None:
            raise InvalidState("points needed", reason="appeal_needs_points_no_txn", appeal=appeal.id)
        raise InvalidState("points needed", reason="appeal_needs_points", txn=txn.id, appeal=appeal.id)
    if points is not None and decider.role not in DECIDER_ROLES and points > max_award:
        raise NotPermitted("over max award", reason="appeal_over_max_award", max=max_award)
    return Plan.POINTS if points is not None else plan


def _decided(appeal: Appeal) -> InvalidState:
    return InvalidState(f"appeal {appeal.status}", reason=f"appeal_{appeal.status}", appeal=appeal.id)


def _claim(s: Session, appeal: Appeal, status: str, decider: Employee, points: int | None, note: str,
           now: datetime) -> None:
    res = s.execute(update(Appeal).where(Appeal.id == appeal.id, Appeal.status == OPEN)
                    .values(status=status, decided_at=now, decided_by=decider.id, points=points,
                            note=note[:REASON_MAX])
                    .execution_options(synchronize_session="fetch"))
    if res.rowcount != 1:
        s.refresh(appeal)
        raise _decided(appeal)


def decide(s: Session, ledger: Ledger, appeal_id: int, decider: Employee, *, approve: bool, max_award: int,
           points: int | None = None, note: str = "", now: datetime) -> Decision:
    """Approve or deny once; an approval never leaves the appellant worse off.

    A manager's correction comes out of their own budget and obeys ``max_award``, exactly like
    an award they type, so an appeal is no way around either.
    """
    appeal = get(s, appeal_id)
    if not may_decide(s, appeal, decider):
        if _manages(s, appeal, decider):
            raise NotPermitted("a staff matter", reason="appeal_staff_matter")
        raise NotPermitted("not this decider's appeal", reason="appeal_not_yours")
    if appeal.status != OPEN:
        raise _decided(appeal)
    plan = _check_approvable(s, appeal, points, decider, max_award) if approve else None
    _claim(s, appeal, APPROVED if approve else DENIED, decider, points, note, now)
    txn = None
    if plan is Plan.POINTS:
        assert points is not None
        txn = ledger.award(appeal.employee_id, points, idem_key=f"appeal:{appeal.id}:award",
                           reason=memos.with_note(memos.APPEAL_CORRECTION.format(appeal=appeal.id), note), category="appeal",
                           actor_id=decider.id, budget_of=None if decider.role in DECIDER_ROLES else decider.id)
    elif plan is Plan.UNDO:
        assert appeal.txn_id is not None
        txn, _ = ledger.reverse(appeal.txn_id, idem_key=f"appeal:{appeal.id}:reverse", actor_id=decider.id,
                                reason=memos.APPEAL_REVERSAL.format(appeal=appeal.id, txn=appeal.txn_id))
    if txn is not None:
        appeal.resolution_txn_id = txn.id
    audit(s, "appeal_" + ("approve" if approve else "deny"), now=now, actor_id=decider.id,
          target_id=appeal.employee_id, detail=f"A{appeal.id}" + (f" E{txn.id}" if txn is not None else ""))
    s.flush()
    return Decision(appeal=appeal, approved=approve, txn=txn, plan=plan)
