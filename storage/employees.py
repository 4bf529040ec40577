"""Roster import and lifecycle (promotion, leaving, coming back)."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.db import Database
from storage.ledger import Ledger
from storage.errors import InvalidState, UnknownEmployee
from storage.members import audit, bind, bound_ids, unbind_all
from storage.models import Employee

ROLES = ("employee", "manager", "hr", "admin")
COLUMNS = ("employee_no", "name", "department", "manager_no", "role", "dingtalk_userid", "wecom_userid")
BUDGET_ROLES = ("manager",)


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    left: list[int] = field(default_factory=list)  # employee ids newly marked as left
    bound: list[str] = field(default_factory=list)  # "E1 wecom:zhangsan": roster ids bound by this import
    kept_unbound: list[str] = field(default_factory=list)  # roster ids an unbind keeps unbound (HR re-links them)
    conflicts: list[str] = field(default_factory=list)  # roster ids bound to another employee


def month_key(now: datetime, tz: tzinfo | None = None) -> str:
    """The budget month in the company's time zone (``now`` is naive UTC), as the budget-grant job keys it."""
    if tz is not None:
        now = now.replace(tzinfo=timezone.utc).astimezone(tz)
    return f"{now:%Y-%m}"


def grant_current_budget(ledger: Ledger, emp: Employee, now: datetime, amount: int, rollover: bool,
                         tz: tzinfo | None = None) -> None:
    """A manager gets this month's budget at once (idempotent per manager and month)."""
    if emp.role in BUDGET_ROLES and emp.status == "active":
        ledger.grant_budget(emp.id, month_key(now, tz), amount, rollover=rollover)


def _validate(row: dict[str, str]) -> str | None:
    if not row.get("employee_no"):
        return "employee_no is empty"
    if len(row["employee_no"]) > 64:
        return "employee_no is longer than 64 characters"
    if not row.get("name"):
        return "name is empty"
    if row.get("role", "employee") not in ROLES:
        return f"role {row.get('role')!r} is not one of {', '.join(ROLES)}"
    if row.get("status", "active") not in ("active", "left"):
        return f"status {row.get('status')!r} is not active or left"
    return None


def read_roster(text: str) -> tuple[list[tuple[int, dict[str, str]]], str | None]:
    """Parse CSV text into (line number, row) pairs; returns an error when the header is unusable."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [c for c in ("employee_no", "name") if c not in (reader.fieldnames or [])]
    if missing:
        return [], f"missing column(s): {', '.join(missing)}"
    rows = []
    for row in reader:
        clean = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        clean["role"] = clean.get("role") or "employee"
        clean["status"] = clean.get("status") or "active"
        rows.append((reader.line_num, clean))
    return rows, None


def import_roster(s: Session, rows: list[tuple[int, dict[str, str]]], ledger: Ledger, *, now: datetime,
                  budget: int, rollover: bool, tz: tzinfo | None = None) -> ImportReport:
    """Create or update employees; a bad row is rejected with its line and never stops the good ones."""
    report = ImportReport()
    by_no: dict[str, Employee] = {}
    for line, row in rows:
        if (reason := _validate(row)) is not None:
            report.rejected.append((line, reason))
            continue
        try:
            with s.begin_nested():
                emp, created = _upsert(s, row, now)
                by_no[emp.employee_no] = emp
        except Exception as exc:  # a database constraint on one row must not abort the rest
            report.rejected.append((line, f"could not be saved: {type(exc).__name__}"))
            continue
        (report.created if created else report.updated).append(emp.employee_no)
    for line, row in rows:  # second pass: managers may be defined later in the file
        emp = by_no.get(row.get("employee_no", ""))
        if emp is None:
            continue
        if row.get("manager_no"):
            manager = s.scalar(select(Employee).where(Employee.employee_no == row["manager_no"]))
            if manager is None or manager.id == emp.id:
                report.rejected.append((line, f"manager_no {row['manager_no']!r} is not a known employee"))
            else:
                emp.manager_id = manager.id
        ledger.wallet(emp.id)
        if row["status"] == "left" and emp.left_at is None:
            mark_left(s, ledger, emp, now=now, actor_id=None, why="roster")
            report.left.append(emp.id)
        if emp.status == "active":
            _bind_roster_ids(s, emp, now, report)
        grant_current_budget(ledger, emp, now, budget, rollover, tz)
    return report


def _upsert(s: Session, row: dict[str, str], now: datetime) -> tuple[Employee, bool]:
    emp = s.scalar(select(Employee).where(Employee.employee_no == row["employee_no"]))
    created = emp is None
    if emp is None:
        emp = Employee(employee_no=row["employee_no"], created_at=now)
        s.add(emp)
    emp.name = row["name"][:128]
    emp.department = row.get("department", "")[:128]
    emp.role = row["role"]
    emp.dingtalk_userid = row.get("dingtalk_userid", "")[:128]
    emp.wecom_userid = row.get("wecom_userid", "")[:128]
    if row["status"] == "active" and emp.status == "left":
        emp.status, emp.left_at = "active", None
    s.flush()
    return emp, created


def _bind_roster_ids(s: Session, emp: Employee, now: datetime, report: ImportReport) -> None:
    """A roster id is an active binding from the import on, so notices reach people who never wrote; an
    account an unbind left unbound, or one bound to someone else, is reported instead."""
    for platform, uid in (("dingtalk", emp.dingtalk_userid), ("wecom", emp.wecom_userid)):
        if not uid or bound_ids(s, emp.id).get(platform) == uid:
            continue
        label = f"{emp.employee_no} {platform}:{uid}"
        try:
            with s.begin_nested():
                bind(s, emp, platform, uid, now=now, actor_id=None, how="roster")
            report.bound.append(label)
        except InvalidState:
            report.kept_unbound.append(label)
        except (UnknownEmployee, IntegrityError):
            report.conflicts.append(label)


def mark_left(s: Session, ledger: Ledger, emp: Employee, *, now: datetime, actor_id: int | None, why: str) -> bool:
    """Unbind every chat account and freeze the wallet; pending orders stay for HR."""
    if emp.status == "left" and emp.left_at is not None:
        return False
    emp.status, emp.left_at = "left", now
    unbind_all(s, emp.id, now=now, actor_id=actor_id, why=f"left: {why}", kind="left")
    ledger.set_frozen(emp.id, True)
    audit(s, "left", now=now, actor_id=actor_id, target_id=emp.id, detail=why)
    return True


def reactivate(s: Session, ledger: Ledger, emp: Employee, *, now: datetime, actor_id: int | None) -> bool:
    if emp.status == "active":
        return False
    emp.status, emp.left_at = "active", None
    ledger.set_frozen(emp.id, False)
    audit(s, "reactivate", now=now, actor_id=actor_id, target_id=emp.id)
    return True


def active_ids(db: Database, role: str) -> list[int]:
    """Ids of the active employees with ``role``, in id order (the jobs' recipients)."""
    with db.session_scope() as s:
        return list(s.scalars(select(Employee.id).where(Employee.role == role, Employee.status == "active")
                              .order_by(Employee.id)))
