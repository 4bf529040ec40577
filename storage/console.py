"""What the HR console reads and the logins it keeps: single-use links, sessions, who may see whom.

Why links and not passwords: everyone who may use the console is already someone the chat platform
authenticated, and the bot can reach them one-to-one. A link is good once, for minutes, and only its
hash is stored; the session it starts is a row here, so a logout or a role change ends it on the
server (docs/console.md).
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.orm import Session

from storage import appeals
from storage.errors import InvalidCode, NotPermitted
from storage.members import ACTIVE, audit, team
from storage.models import Appeal, AuditLog, Binding, ConsoleLogin, Employee, Item, Order

CONSOLE_ROLES = ("manager", "hr", "admin")
STAFF_ROLES = ("hr", "admin")  # see everyone and the audit log


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def may_use(employee: Employee | None) -> bool:
    return employee is not None and employee.status == "active" and employee.role in CONSOLE_ROLES


def issue_link(s: Session, employee: Employee, now: datetime, minutes: int, via: str) -> str:
    """A fresh single-use token for ``employee``; older unused links of theirs keep working until they expire."""
    if not may_use(employee):
        raise NotPermitted("no console access", reason="console_not_allowed")
    token = secrets.token_urlsafe(32)
    s.add(ConsoleLogin(employee_id=employee.id, token_hash=_hash(token), created_at=now,
                       expires_at=now + timedelta(minutes=minutes), used_from=""))
    audit(s, "console_link", now=now, actor_id=employee.id, target_id=employee.id, detail=f"via {via}")
    s.flush()
    return token


def redeem_link(s: Session, token: str, now: datetime, ip: str) -> ConsoleLogin:
    """Use a link once: one conditional UPDATE, so two requests with the same token cannot both log in."""
    row = s.scalar(select(ConsoleLogin).where(ConsoleLogin.token_hash == _hash(token)))
    if row is None:
        raise InvalidCode("no such link", reason="console_link_unknown")
    used = s.execute(update(ConsoleLogin).where(ConsoleLogin.id == row.id, ConsoleLogin.used_at.is_(None),
                                                ConsoleLogin.expires_at > now)
                     .values(used_at=now, used_from=ip[:64]).execution_options(synchronize_session="fetch"))
    if used.rowcount != 1:
        raise InvalidCode("link used or expired", reason="console_link_spent")
    if not may_use(s.get(Employee, row.employee_id)):
        raise NotPermitted("no console access", reason="console_not_allowed")
    audit(s, "console_login", now=now, actor_id=row.employee_id, target_id=row.employee_id, detail=f"from {ip}")
    return row


def session_member(s: Session, login_id: int, employee_id: int, role: str, now: datetime,
                   hours: int) -> Employee | None:
    """The member a session cookie stands for, or None once it has ended: logged out, too old, or the
    person left or changed role since (read on every request, so it ends at once)."""
    login = s.get(ConsoleLogin, login_id)
    if login is None or login.employee_id != employee_id or login.used_at is None or login.ended_at is not None:
        return None
    if login.used_at + timedelta(hours=hours) <= now:
        return None
    emp = s.get(Employee, employee_id)
    return emp if may_use(emp) and emp is not None and emp.role == role else None


def end_session(s: Session, login_id: int, now: datetime, ip: str) -> None:
    login = s.get(ConsoleLogin, login_id)
    if login is not None and login.ended_at is None:
        login.ended_at = now
        audit(s, "console_logout", now=now, actor_id=login.employee_id, target_id=login.employee_id,
              detail=f"from {ip}")


# ---- who may see whom ----------------------------------------------------------------------------
def visible(viewer: Employee) -> Select[tuple[Employee]]:
    """Everyone for HR and admins; for a manager their team (storage/members.py ``team``) and themselves."""
    q = select(Employee)
    if viewer.role not in STAFF_ROLES:
        q = q.where(or_(Employee.id == viewer.id, Employee.id.in_(team(viewer.id))))
    return q


def may_see(s: Session, viewer: Employee, employee_id: int) -> bool:
    return s.scalar(visible(viewer).with_only_columns(Employee.id).where(Employee.id == employee_id)) is not None


def search(s: Session, viewer: Employee, q: str, limit: int = 50) -> tuple[list[Employee], int]:
    """By employee number, name or department (substring, any case); how many match in all."""
    query = visible(viewer)
    q = q.strip()
    if q:
        like = "%" + q.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"
        query = query.where(or_(*(func.lower(c).like(like, escape="!")
                                  for c in (Employee.employee_no, Employee.name, Employee.department))))
    total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = list(s.scalars(query.order_by(Employee.status, Employee.employee_no).limit(limit)))
    return rows, int(total)


@dataclass(frozen=True)
class Person:
    """One employee's record beside the statement: orders, appeals and chat accounts."""

    orders: list[Order]
    appeals: list[Appeal]
    bindings: list[Binding]
    manager: Employee | None


def person(s: Session, employee: Employee) -> Person:
    return Person(
        orders=list(s.scalars(select(Order).where(Order.employee_id == employee.id).order_by(Order.id.desc()).limit(20))),
        appeals=list(s.scalars(select(Appeal).where(Appeal.employee_id == employee.id)
                               .order_by(Appeal.id.desc()).limit(20))),
        bindings=list(s.scalars(select(Binding).where(Binding.employee_id == employee.id)
                                .order_by(Binding.status != ACTIVE, Binding.platform, Binding.id))),
        manager=s.get(Employee, employee.manager_id) if employee.manager_id else None)


# ---- queues ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OrderFilter:
    status: str = "awaiting_fulfilment"
    item: str = ""
    department: str = ""
    min_days: int = 0  # waiting at least this many days


def orders_queue(s: Session, viewer: Employee, f: OrderFilter, now: datetime, limit: int = 200
                 ) -> list[tuple[Order, Employee, Item | None]]:
    """Orders HR and admins may act on, oldest first, with their requester and the item as it is now
    (its kind says how to hand it out; None for an item no longer in the catalog)."""
    if viewer.role not in STAFF_ROLES:
        raise NotPermitted("orders queue", reason="console_staff_only")
    q = (select(Order, Employee, Item).join(Employee, Employee.id == Order.employee_id)
         .outerjoin(Item, Item.sku == Order.sku))
    if f.status:
        q = q.where(Order.status == f.status)
    if f.item:
        q = q.where(or_(Order.sku == f.item, Order.item_name == f.item))
    if f.department:
        q = q.where(Employee.department == f.department)
    if f.min_days > 0:
        q = q.where(Order.created_at <= now - timedelta(days=f.min_days))
    return [(o, e, i) for o, e, i in s.execute(q.order_by(Order.created_at, Order.id).limit(limit)).all()]


def appeals_queue(s: Session, viewer: Employee) -> list[tuple[Appeal, Employee]]:
    """The open appeals this person may decide (storage/appeals.py ``open_for``: the chat's rules)."""
    found = appeals.open_for(s, viewer)
    people = {e.id: e for e in s.scalars(select(Employee).where(Employee.id.in_({a.employee_id for a in found})))}
    return [(a, people[a.employee_id]) for a in found]


# ---- the audit log ------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditFilter:
    actor: str = ""  # an employee number
    action: str = ""
    employee: str = ""  # the target's employee number
    start: datetime | None = None
    end: datetime | None = None


def audit_page(s: Session, viewer: Employee, f: AuditFilter, page: int, per_page: int = 50
               ) -> tuple[list[tuple[AuditLog, str, str]], int]:
    """(entry, actor name, target name) newest first, and the total; HR and admins only."""
    if viewer.role not in STAFF_ROLES:
        raise NotPermitted("audit log", reason="console_staff_only")
    actor, target = Employee.__table__.alias("actor"), Employee.__table__.alias("target")
    q = (select(AuditLog, func.coalesce(actor.c.name, ""), func.coalesce(target.c.name, ""))
         .outerjoin(actor, actor.c.id == AuditLog.actor_id).outerjoin(target, target.c.id == AuditLog.target_id))
    if f.actor:
        q = q.where(actor.c.employee_no == f.actor)
    if f.employee:
        q = q.where(target.c.employee_no == f.employee)
    if f.action:
        q = q.where(AuditLog.action == f.action)
    if f.start is not None:
        q = q.where(AuditLog.at >= f.start)
    if f.end is not None:
        q = q.where(AuditLog.at < f.end)
    total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = s.execute(q.order_by(AuditLog.id.desc()).limit(per_page).offset((page - 1) * per_page)).all()
    return [(r[0], r[1], r[2]) for r in rows], int(total)


def audit_actions(s: Session) -> list[str]:
    return list(s.scalars(select(AuditLog.action).distinct().order_by(AuditLog.action)))
