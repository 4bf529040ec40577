"""Factory helpers (CTFd's gen_* style)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from storage.models import Employee


def make_employee(s: Session, no: str, *, role: str = "employee", name: str | None = None, department: str = "研发部",
                  manager_id: int | None = None, status: str = "active", dingtalk: str = "", wecom: str = "") -> Employee:
    emp = Employee(employee_no=no, name=name or f"员工{no}", department=department, role=role, status=status,
                   manager_id=manager_id, dingtalk_userid=dingtalk, wecom_userid=wecom, created_at=datetime(2026, 1, 1))
    s.add(emp)
    s.flush()
    return emp
