"""A rule's cap (``max_per``) as unique slots: (employee, rule, period, n) for n in 1..count.

Why slots and not a count: concurrent approvals of one employee each counted the awards before
inserting their own, saw none, and all paid (3 awards of a once-a-month rule on PostgreSQL, 2 on
MariaDB). A unique row is taken once whatever the isolation level: the second insert of the same
slot waits for the first transaction and fails when it commits. docs/commands.md has the rules.

The rule is named by its stable id (``rule:<id>``, storage/rules.py; migration 0011 rewrote the older
``platform:template`` keys), so a new version of a rule keeps counting the same cap. The period is the
one the approval *finished* in, in the organisation's time zone.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from settings import Rule, Settings
from storage.models import ApprovalInstance, ApprovalSlot

APPROVED = "approved"  # storage.approvals.APPROVED (that module imports this one)


def rule_key(rule: Rule) -> str:
    return f"rule:{rule.id}"


def period_of(settings: Settings, when: datetime, period: str) -> str:
    """``2026-01``, ``2026-Q1`` or ``2026`` for a naive UTC time, in the organisation's zone."""
    local = when.replace(tzinfo=timezone.utc).astimezone(settings.tz)
    if period == "month":
        return f"{local.year}-{local.month:02d}"
    if period == "quarter":
        return f"{local.year}-Q{(local.month - 1) // 3 + 1}"
    return str(local.year)


def _period_start(settings: Settings, when: datetime, period: str) -> datetime:
    local = when.replace(tzinfo=timezone.utc).astimezone(settings.tz)
    month = {"month": local.month, "quarter": (local.month - 1) // 3 * 3 + 1, "year": 1}[period]
    start = local.replace(month=month, day=1, hour=0, minute=0, second=0, microsecond=0)
    return start.astimezone(timezone.utc).replace(tzinfo=None)


def _legacy(s: Session, settings: Settings, rule: Rule, employee_id: int, finished: datetime) -> int:
    """Awards made before slots existed (no slot row): they fill the first slots of their period."""
    return int(s.scalar(select(func.count(ApprovalInstance.id)).where(
        ApprovalInstance.rule_id == rule.id, ApprovalInstance.employee_id == employee_id,
        ApprovalInstance.status == APPROVED, ApprovalInstance.updated_at >= _period_start(settings, finished,
                                                                                          rule.max_period),
        ~select(ApprovalSlot.id).where(ApprovalSlot.instance_id == ApprovalInstance.id).exists())) or 0)


def claim(s: Session, settings: Settings, rule: Rule, employee_id: int, row: ApprovalInstance,
          finished: datetime, now: datetime) -> bool:
    """Take a free slot for this approval; False when the cap is reached."""
    assert rule.max_count is not None
    period = period_of(settings, finished, rule.max_period)
    for n in range(_legacy(s, settings, rule, employee_id, finished) + 1, rule.max_count + 1):
        try:
            with s.begin_nested():
                s.add(ApprovalSlot(employee_id=employee_id, rule_key=rule_key(rule), period=period, n=n,
                                   instance_id=row.id, created_at=now))
                s.flush()
            return True
        except IntegrityError:  # taken, perhaps by a concurrent approval that just committed
            continue
    return False


def release(s: Session, row: ApprovalInstance) -> None:
    """A revoked (or unpaid) approval gives its slot back."""
    s.execute(delete(ApprovalSlot).where(ApprovalSlot.instance_id == row.id))
