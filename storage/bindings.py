"""Binding codes, unbind requests and the binding audit.

A code is 8 random digits, shown once and stored only as a salted SHA-256 (``salt$digest``,
base64url, fits the 64-character column), valid 24 h, one use; five wrong tries lock it. Issuing a
new code ends the older ones, so a code handed out by mistake is cancelled by issuing another.
Unbinding is a request (``U<n>``) the account's owner confirms: nobody can silently take away
someone else's notices, and a leaver's accounts go at once.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from storage.errors import InvalidCode, InvalidState, NotPermitted, UnknownEmployee
from storage.members import ACTIVE, PLATFORM_COLUMNS, audit, by_employee_no, unbind_all
from storage.models import BindCode, Binding, Employee, UnbindRequest

CODE_DIGITS = 8
CODE_VALIDITY = timedelta(hours=24)
MAX_TRIES = 5
REQUEST_VALIDITY = timedelta(hours=24)
PENDING, DONE, CANCELLED = "pending", "done", "cancelled"
ADMIN_ROLES = ("hr", "admin")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def hash_code(code: str, salt: str) -> str:
    return f"{salt}${_b64(hashlib.sha256(f'{salt}:{code}'.encode()).digest())}"


def _matches(code: str, stored: str) -> bool:
    salt, _, _ = stored.partition("$")
    return hmac.compare_digest(hash_code(code, salt), stored)


def issue_code(s: Session, employee: Employee, now: datetime) -> str:
    """A fresh one-time code for ``employee``; every older unused code stops working."""
    s.execute(update(BindCode).where(BindCode.employee_id == employee.id, BindCode.used_at.is_(None),
                                     BindCode.expires_at > now).values(expires_at=now))
    code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
    s.add(BindCode(employee_id=employee.id, code_hash=hash_code(code, _b64(secrets.token_bytes(12))),
                   expires_at=now + CODE_VALIDITY, failed_attempts=0))
    audit(s, "bind_code", now=now, target_id=employee.id, detail="issued")  # never the code itself
    s.flush()
    return code


def redeem_code(s: Session, employee_no: str, code: str, now: datetime) -> Employee:
    """The employee the code belongs to, marking it used; raises InvalidCode otherwise.

    A wrong try is counted before raising: the caller must not roll the count back (the chat
    handler catches InvalidCode and answers normally instead of letting it abort the savepoint).
    """
    emp = by_employee_no(s, employee_no)
    emp = emp if emp is not None and emp.status == "active" else None
    row = None if emp is None else s.scalar(
        select(BindCode).where(BindCode.employee_id == emp.id, BindCode.used_at.is_(None), BindCode.expires_at > now)
        .order_by(BindCode.id.desc()).limit(1))
    if emp is None or row is None:
        raise InvalidCode("no usable code")
    if row.failed_attempts >= MAX_TRIES:
        raise InvalidCode("code locked", reason="code_locked")
    if not _matches(code.strip(), row.code_hash):
        s.execute(update(BindCode).where(BindCode.id == row.id)
                  .values(failed_attempts=BindCode.failed_attempts + 1))
        audit(s, "bind_code", now=now, target_id=emp.id, detail="wrong code")
        raise InvalidCode("wrong code")
    used = s.execute(update(BindCode).where(BindCode.id == row.id, BindCode.used_at.is_(None))
                     .values(used_at=now))
    if used.rowcount != 1:  # redeemed concurrently
        raise InvalidCode("code already used")
    return emp


def _pending(s: Session, employee_id: int, platform: str, now: datetime) -> UnbindRequest | None:
    return s.scalar(select(UnbindRequest).where(UnbindRequest.employee_id == employee_id,
                                                UnbindRequest.platform == platform,
                                                UnbindRequest.status == PENDING,
                                                UnbindRequest.created_at > now - REQUEST_VALIDITY)
                    .order_by(UnbindRequest.id.desc()).limit(1))


def request_unbind(s: Session, target: Employee, by: Employee, platform: str, now: datetime) -> UnbindRequest:
    """An open request for ``target`` (reused if one is pending); a leaver's is completed at once."""
    if target.id != by.id and by.role not in ADMIN_ROLES:
        raise NotPermitted("unbind of another", reason="unbind_hr_only")
    req = _pending(s, target.id, platform, now)
    if req is None:
        req = UnbindRequest(employee_id=target.id, platform=platform, requested_by=by.id, status=PENDING,
                            created_at=now)
        s.add(req)
        s.flush()
        audit(s, "unbind_request", now=now, actor_id=by.id, target_id=target.id, detail=f"U{req.id} {platform or '*'}")
    if target.status != "active":
        complete_unbind(s, req, by, now)
    return req


def force_unbind(s: Session, target: Employee, by: Employee, platform: str, reason: str, now: datetime) -> int:
    """HR or an admin removes bindings at once, when the employee cannot confirm (left, lost the account)."""
    if by.role not in ADMIN_ROLES:
        raise NotPermitted("force unbind", reason="force_unbind_hr_only")
    count = unbind_all(s, target.id, now=now, actor_id=by.id, why=f"force: {reason}", platform=platform,
                       kind="force")
    audit(s, "force_unbind", now=now, actor_id=by.id, target_id=target.id,
          detail=f"{platform or '*'} {count}: {reason}")
    return count


def complete_unbind(s: Session, req: UnbindRequest, by: Employee, now: datetime) -> int:
    """Remove the bindings, once: the target confirms, or HR/admin for someone who has left."""
    target = s.get(Employee, req.employee_id)
    if target is None:
        raise UnknownEmployee(f"no employee {req.employee_id}")
    allowed = by.id == target.id or (by.role in ADMIN_ROLES and target.status != "active")
    if not allowed:
        raise NotPermitted("not the unbound employee", reason="unbind_not_yours")
    if req.status != PENDING or req.created_at <= now - REQUEST_VALIDITY:
        raise InvalidState("unbind request closed", reason="unbind_closed_or_expired", request=req.id)
    res = s.execute(update(UnbindRequest).where(UnbindRequest.id == req.id, UnbindRequest.status == PENDING)
                    .values(status=DONE, decided_at=now).execution_options(synchronize_session="fetch"))
    if res.rowcount != 1:
        raise InvalidState("unbind request closed", reason="unbind_closed", request=req.id)
    return unbind_all(s, target.id, now=now, actor_id=by.id, why=f"U{req.id}", platform=req.platform)


class AuditRow(NamedTuple):
    """One binding HR should look at; ``roster_no`` is whom the roster names for the account instead."""

    employee_no: str
    name: str
    platform: str
    platform_user_id: str
    roster_no: str | None = None
    last_used: datetime | None = None


AUDIT_KINDS = ("leavers", "shared", "unused")


def binding_audit(s: Session, now: datetime, days: int = 90) -> dict[str, list[AuditRow]]:
    """Three lists for HR, by AUDIT_KINDS: leavers' bindings, accounts on two employees, bindings unused
    for ``days``. Data only: cards/messages.py words the titles."""
    return {"leavers": _leaver_bindings(s), "shared": _shared_accounts(s),
            "unused": _unused(s, now - timedelta(days=days))}


def _row(emp: Employee | None, b: Binding, roster_no: str | None = None, last_used: datetime | None = None
         ) -> AuditRow:
    no, name = (emp.employee_no, emp.name) if emp else (f"#{b.employee_id}", "")
    return AuditRow(no, name, b.platform, b.platform_user_id, roster_no, last_used)


def _leaver_bindings(s: Session) -> list[AuditRow]:
    rows = s.execute(select(Employee, Binding).join(Binding, Binding.employee_id == Employee.id)
                     .where(Employee.status != "active", Binding.status == ACTIVE)
                     .order_by(Employee.employee_no, Binding.platform)).all()
    return [_row(emp, b) for emp, b in rows]


def _shared_accounts(s: Session) -> list[AuditRow]:
    """Defensive: a unique constraint forbids it, but a manual edit or a migration might not."""
    dup = (select(Binding.platform, Binding.platform_user_id).group_by(Binding.platform, Binding.platform_user_id)
           .having(func.count(func.distinct(Binding.employee_id)) > 1))
    out = []
    for platform, user_id in s.execute(dup).all():
        bs = s.scalars(select(Binding).where(Binding.platform == platform, Binding.platform_user_id == user_id))
        out += [_row(s.get(Employee, b.employee_id), b) for b in bs]
    for platform, column in PLATFORM_COLUMNS.items():  # the roster names someone else for this account
        rows = s.execute(select(Binding, Employee).join(Employee, column == Binding.platform_user_id)
                         .where(Binding.platform == platform, Binding.status == ACTIVE,
                                Employee.id != Binding.employee_id, Employee.status == "active")).all()
        out += [_row(s.get(Employee, b.employee_id), b, roster_no=other.employee_no) for b, other in rows]
    return out


def _unused(s: Session, cutoff: datetime) -> list[AuditRow]:
    last = func.coalesce(Binding.last_used_at, Binding.created_at)
    rows = s.execute(select(Employee, Binding).join(Binding, Binding.employee_id == Employee.id)
                     .where(Employee.status == "active", Binding.status == ACTIVE, last < cutoff).order_by(last)).all()
    return [_row(emp, b, last_used=b.last_used_at or b.created_at) for emp, b in rows]


def unbind_request(s: Session, request_id: int) -> UnbindRequest | None:
    return s.get(UnbindRequest, request_id)
