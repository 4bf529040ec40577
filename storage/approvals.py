"""Approval instances → awards: the decision logic, shared by the live event, the detail fetch and reconcile.

Why one function for every path: the platforms deliver approval events at least once, out of order
(a finish before its start, a withdrawal before the approval) and sometimes never (reconcile finds
those later). Every path therefore ends here with the same idempotency keys
(``approval:{platform}:{instance_id}`` for the award, ``approval-reverse:…`` for its reversal) and
the same ``ApprovalInstance`` row, so whichever arrives first acts and the others change nothing.

No chat or platform imports: the caller turns the returned :class:`Notice` values into cards.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from settings import Rule, Settings
from storage import approval_slots as slots, rules
from storage.errors import AlreadyReversed, DomainError, WalletFrozen
from storage.ledger import Ledger
from storage.members import PLATFORM_COLUMNS, resolve_member
from storage.models import ApprovalInstance, Employee, Shortfall
from storage import memos

log = logging.getLogger(__name__)

# ApprovalInstance.status values. Final ones never change again except approved → revoked.
APPROVED, REVOKED, SKIPPED, PENDING_DETAIL, UNKNOWN = "approved", "revoked", "skipped", "pending_detail", "unknown"
FINAL = (APPROVED, REVOKED, SKIPPED)
STAFF_ROLES = ("hr", "admin")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def award_key(platform: str, instance_id: str) -> str:
    return f"approval:{platform}:{instance_id}"


def reverse_key(platform: str, instance_id: str) -> str:
    return f"approval-reverse:{platform}:{instance_id}"


@dataclass(frozen=True)
class Notice:
    """Something to tell one employee; ``kind`` picks the card, ``key`` makes the notice once-only."""

    employee_id: int
    kind: str  # awarded | reversed | capped | shortfall | unknown_applicant | no_field | frozen
    key: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Decision:
    """What happened to one approval change; ``fetch_detail`` asks the caller to queue a detail fetch."""

    action: str  # ignored | awarded | already | reversed | recorded | skipped | pending_detail | unknown
    rule: Rule | None = None
    notices: list[Notice] = field(default_factory=list)
    fetch_detail: bool = False
    points: int = 0
    detail: str = ""


def staff_ids(s: Session) -> list[int]:
    """Every active HR person and admin: they decide what the bot cannot."""
    return list(s.scalars(select(Employee.id).where(Employee.role.in_(STAFF_ROLES), Employee.status == "active")
                          .order_by(Employee.id)))


def parse_number(value: str | None) -> float | None:
    """The first number in a form value ("92", "92.5", "92分"); None when there is none."""
    if value is None:
        return None
    m = _NUMBER.search(value.replace(",", "").replace("，", ""))
    return float(m.group(0)) if m else None


def find_applicant(s: Session, platform: str, user_id: str, now: datetime) -> Employee | None:
    """By binding or roster id; a leaver (no bindings left) is still found by the roster column."""
    emp = resolve_member(s, platform, user_id, now)
    if emp is None and user_id and (column := PLATFORM_COLUMNS.get(platform)) is not None:
        emp = s.scalar(select(Employee).where(column == user_id).limit(1))
    return emp


def _row(s: Session, platform: str, instance_id: str, rule: Rule, now: datetime) -> tuple[ApprovalInstance, bool]:
    """Get or create the instance row; a concurrent twin's insert wins and we use its row."""
    q = select(ApprovalInstance).where(ApprovalInstance.platform == platform,
                                       ApprovalInstance.instance_id == instance_id[:128])
    row = s.scalar(q)
    if row is not None:
        return row, False
    try:
        with s.begin_nested():
            row = ApprovalInstance(platform=platform, instance_id=instance_id[:128], rule=rule.name[:128],
                                   rule_id=rule.id, rule_version=rule.version or None, status="new", title="", note="",
                                   updated_at=now)
            s.add(row)
            s.flush()
        return row, True
    except IntegrityError:
        found = s.scalar(q)
        assert found is not None
        return found, False


def rule_of(s: Session, row: ApprovalInstance | None, platform: str, template: str, finished: datetime) -> Rule | None:
    """The rule version an approval is decided under: the one it was first decided under, else the one in force
    when it finished (storage/rules.py), so a later change of the rule never changes an approval's award."""
    if row is not None and row.rule_id is not None:
        return rules.version(s, row.rule_id, row.rule_version) if row.rule_version else rules.get(s, row.rule_id)
    return rules.match(s, platform, template, finished)


def on_approval(s: Session, ledger: Ledger, settings: Settings, *, platform: str, instance_id: str, template: str,
                status: str, applicant_user_id: str, title: str, form: dict[str, str] | None,
                now: datetime, finished_at: datetime | None = None) -> Decision:
    """Apply one approval state change (see the module docstring for why it may arrive many times).

    ``finished_at`` is when the approval finished, as the platform says; a cap counts the award
    in that period (a 31 January approval reconciled on 1 February is January's).
    """
    existing = s.scalar(select(ApprovalInstance).where(ApprovalInstance.platform == platform,
                                                       ApprovalInstance.instance_id == instance_id[:128]))
    rule = rule_of(s, existing, platform, template, finished_at or (existing.finished_at if existing else None) or now)
    if rule is None:
        return Decision("ignored", detail="no rule for this template")
    if status == "revoked":
        return _revoke(s, ledger, rule, platform, instance_id, title, now)
    if status != "approved":  # running, rejected, withdrawn while running, deleted…: nothing to do
        return Decision("ignored", rule, detail=f"status {status}")
    return _approve(s, ledger, settings, rule, platform, instance_id, applicant_user_id, title, form, now,
                    finished_at)


def _approve(s: Session, ledger: Ledger, settings: Settings, rule: Rule, platform: str, instance_id: str,
             applicant: str, title: str, form: dict[str, str] | None, now: datetime,
             finished_at: datetime | None) -> Decision:
    row, _ = _row(s, platform, instance_id, rule, now)
    if row.status in FINAL:  # a redelivery, or a revoke that overtook this approval
        return Decision("already", rule, detail=f"instance already {row.status}")
    row.finished_at = row.finished_at or finished_at
    row.title = (title or row.title)[:255]
    title = row.title
    emp = find_applicant(s, platform, applicant, now)
    if emp is None:
        row.status, row.updated_at, row.note = UNKNOWN, now, memos.APPLICANT_UNKNOWN.format(applicant=applicant)[:255]
        notices = [Notice(hr, "unknown_applicant", f"approval-unknown:{platform}:{instance_id}:{hr}",
                          {"rule": rule.name, "title": title, "user_id": applicant, "platform": platform,
                           "instance_id": instance_id}) for hr in staff_ids(s)]
        return Decision("unknown", rule, notices, detail=row.note)
    row.employee_id = emp.id
    info = {"rule": rule.name, "title": title, "instance_id": instance_id, "platform": platform,
            "employee": emp.name, "employee_no": emp.employee_no}
    value: float | None = None
    if rule.points is None:
        if form is None:
            row.status, row.updated_at, row.note = PENDING_DETAIL, now, memos.AWAITING_FORM
            return Decision("pending_detail", rule, fetch_detail=True)
        value = parse_number(form.get(rule.field))
        if value is None:
            return _skip(s, row, rule, now, memos.FIELD_MISSING.format(field=rule.field), "no_field", info)
    points = rule.points_for(value)
    if points < 0:
        return _deduct(s, ledger, rule, row, emp, -points, info, now)
    if points == 0:
        row.status, row.updated_at, row.note = SKIPPED, now, memos.BELOW_LOWEST_TIER.format(field=rule.field, value=value)[:255]
        return Decision("skipped", rule, detail=row.note)
    if rule.max_count is not None and not slots.claim(s, settings, rule, emp.id, row, row.finished_at or now, now):
        note = memos.OVER_CAP.format(period=memos.PERIOD_NAMES[rule.max_period], count=rule.max_count)
        row.status, row.updated_at, row.note = SKIPPED, now, note
        return Decision("skipped", rule, [Notice(emp.id, "capped", f"approval-capped:{platform}:{instance_id}",
                                                {**info, "note": note})], detail=note)
    try:
        txn = ledger.award(emp.id, points, idem_key=award_key(platform, instance_id),
                           reason=memos.APPROVAL_AWARD.format(rule=rule.name, title=title)[:500] if title else rule.name, category=rule.category)
    except DomainError as exc:
        slots.release(s, row)
        if isinstance(exc, WalletFrozen):
            return _skip(s, row, rule, now, memos.LEAVER_NOT_AWARDED, "frozen", info)
        return _skip(s, row, rule, now, memos.NOT_AWARDED.format(error=type(exc).__name__), "frozen", info)
    row.status, row.award_txn_id, row.updated_at, row.note = APPROVED, txn.id, now, ""
    balance = ledger.balance(ledger.wallet(emp.id).id)
    notice = Notice(emp.id, "awarded", f"approval-awarded:{platform}:{instance_id}",
                    {**info, "points": points, "balance": balance, "txn_id": txn.id})
    return Decision("awarded", rule, [notice], points=points)


def _deduct(s: Session, ledger: Ledger, rule: Rule, row: ApprovalInstance, emp: Employee, points: int,
            info: dict[str, Any], now: datetime) -> Decision:
    """A negative tier: take what the wallet holds, up to ``points``, with the rule as its source; HR is told of
    the rest (a wallet never goes below zero)."""
    take = min(points, ledger.balance(ledger.wallet(emp.id).id))
    txn = None
    if take > 0:
        txn = ledger.deduct(emp.id, take, idem_key=award_key(row.platform, row.instance_id), category=rule.category,
                            reason=memos.APPROVAL_DEDUCTION.format(rule=rule.name, title=row.title)[:500])
    row.status, row.award_txn_id, row.updated_at = APPROVED, txn.id if txn else None, now
    row.note = memos.DEDUCTION_SHORT.format(points=points - take)[:255] if take < points else ""
    balance = ledger.balance(ledger.wallet(emp.id).id)
    notices = [Notice(emp.id, "deducted", f"approval-deducted:{row.platform}:{row.instance_id}",
                      {**info, "points": take, "balance": balance, "txn_id": txn.id if txn else None})] if take else []
    if take < points:
        if txn is not None:
            s.add(Shortfall(employee_id=emp.id, txn_id=txn.id, amount=points - take, created_at=now,
                            reason=memos.SHORTFALL.format(instance=row.instance_id)[:255]))
        notices += [Notice(hr, "deduction_short", f"approval-deduction-short:{row.platform}:{row.instance_id}:{hr}",
                           {**info, "points": take, "shortfall": points - take}) for hr in staff_ids(s)]
    return Decision("deducted", rule, notices, points=-take)


def _skip(s: Session, row: ApprovalInstance, rule: Rule, now: datetime, note: str, kind: str,
          info: dict[str, Any]) -> Decision:
    """No award, and HR is told why, because a person expected points here."""
    row.status, row.updated_at, row.note = SKIPPED, now, note[:255]
    notices = [Notice(hr, kind, f"approval-{kind}:{info['platform']}:{info['instance_id']}:{hr}", {**info, "note": note})
               for hr in staff_ids(s)]
    return Decision("skipped", rule, notices, detail=note)


def _revoke(s: Session, ledger: Ledger, rule: Rule, platform: str, instance_id: str, title: str,
            now: datetime) -> Decision:
    row, created = _row(s, platform, instance_id, rule, now)
    if title and not row.title:
        row.title = title[:255]
    if row.status == REVOKED:
        return Decision("already", rule, detail="already revoked")
    if row.status != APPROVED or row.award_txn_id is None:
        # Nothing was awarded (or the revoke overtook the approval): remember it so a late approval awards nothing.
        before = "new" if created else row.status
        row.status, row.updated_at = REVOKED, now
        row.note = (memos.REVOKE_BEFORE_APPROVAL if before == "new" else memos.REVOKED_FROM.format(before=before))[:255]
        return Decision("recorded", rule, detail=row.note)
    try:
        txn, shortfall = ledger.reverse(row.award_txn_id, idem_key=reverse_key(platform, instance_id),
                                        reason=memos.APPROVAL_REVOKED.format(rule=rule.name, title=row.title)[:500], allow_partial=True)
    except AlreadyReversed:  # HR reversed it by hand already: the wallet is right, just record the state
        slots.release(s, row)
        row.status, row.updated_at, row.note = REVOKED, now, memos.REVERSED_BY_HAND
        return Decision("already", rule, detail=row.note)
    row.status, row.reversal_txn_id, row.updated_at = REVOKED, txn.id, now
    slots.release(s, row)
    emp = s.get(Employee, row.employee_id) if row.employee_id is not None else None
    assert emp is not None
    taken = -txn.amount
    info = {"rule": rule.name, "title": row.title, "instance_id": instance_id, "platform": platform,
            "employee": emp.name, "employee_no": emp.employee_no, "points": taken, "shortfall": shortfall,
            "txn_id": txn.id, "balance": ledger.balance(ledger.wallet(emp.id).id)}
    notices = [Notice(emp.id, "reversed", f"approval-reversed:{platform}:{instance_id}", info)]
    if shortfall > 0:
        s.add(Shortfall(employee_id=emp.id, txn_id=txn.id, amount=shortfall, created_at=now,
                        reason=memos.SHORTFALL.format(instance=instance_id)[:255]))
        row.note = memos.SHORTFALL_OPEN.format(points=shortfall)
        notices += [Notice(hr, "shortfall", f"approval-shortfall:{platform}:{instance_id}:{hr}", info)
                    for hr in staff_ids(s)]
    return Decision("reversed", rule, notices, points=taken)
