"""Who is who: platform identities to employees, and people named in a command."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.errors import UnknownEmployee
from storage.fastsql import Fast, as_persistent
from storage.models import AuditLog, Binding, Employee

PLATFORM_COLUMNS = {"dingtalk": Employee.dingtalk_userid, "wecom": Employee.wecom_userid}


def audit(s: Session, action: str, *, now: datetime, actor_id: int | None = None, target_id: int | None = None,
          detail: str = "") -> None:
    s.add(AuditLog(at=now, action=action, actor_id=actor_id, target_id=target_id, detail=detail[:2000]))


def bind(s: Session, employee: Employee, platform: str, user_id: str, *, now: datetime, actor_id: int | None,
         how: str) -> Binding:
    """Bind a chat account; one account per employee per platform, one employee per account."""
    existing = s.scalar(select(Binding).where(Binding.platform == platform, Binding.platform_user_id == user_id))
    if existing is not None:
        if existing.employee_id != employee.id:
            raise UnknownEmployee("this chat account is bound to another employee")
        return existing
    old = s.scalar(select(Binding).where(Binding.employee_id == employee.id, Binding.platform == platform))
    if old is not None and old.platform_user_id == user_id:  # bound a moment ago by a concurrent first message
        return old
    if old is not None:
        s.delete(old)
        audit(s, "unbind", now=now, actor_id=actor_id, target_id=employee.id,
              detail=f"{platform}:{old.platform_user_id} replaced")
        s.flush()
    binding = Binding(employee_id=employee.id, platform=platform, platform_user_id=user_id, created_at=now,
                      last_used_at=now)
    with s.begin_nested():
        s.add(binding)
        s.flush()
    audit(s, "bind", now=now, actor_id=actor_id, target_id=employee.id, detail=f"{platform}:{user_id} ({how})")
    return binding


def unbind_all(s: Session, employee_id: int, *, now: datetime, actor_id: int | None, why: str,
               platform: str = "") -> int:
    q = select(Binding).where(Binding.employee_id == employee_id)
    if platform:
        q = q.where(Binding.platform == platform)
    rows = list(s.scalars(q))
    for b in rows:
        s.delete(b)
        audit(s, "unbind", now=now, actor_id=actor_id, target_id=employee_id, detail=f"{b.platform}:{b.platform_user_id} ({why})")
    s.flush()
    return len(rows)


_B, _E = Binding.__table__, Employee.__table__
_EMPLOYEE_COLUMNS = tuple(c.name for c in _E.c)
_BOUND = Fast(select(_B.c.id, _B.c.last_used_at, *_E.c).join(_E, _E.c.id == _B.c.employee_id)
              .where(_B.c.platform == bindparam("platform"), _B.c.platform_user_id == bindparam("user_id")))
_TOUCH = Fast(_B.update().where(_B.c.id == bindparam("binding")).values(last_used_at=bindparam("at")))


def resolve_member(s: Session, platform: str, user_id: str, now: datetime) -> Employee | None:
    """The employee a chat user is, and the writes that go with knowing it: a roster user's first message
    binds them (``bind``, how="roster"), and a binding's last use is stamped (at most once an hour).

    Runs on every chat message, so the bound case is one prebuilt query (binding and employee).
    """
    if not user_id:
        return None
    s.flush()
    conn = s.connection()
    rows = _BOUND.run(conn, {"platform": platform, "user_id": user_id}).rows
    if rows:
        binding_id, last_used_at, *values = rows[0]
        if last_used_at is None or (now - last_used_at).total_seconds() > 3600:
            _TOUCH.run(conn, {"binding": binding_id, "at": now})  # coarse: a chat message is not always a write
        return as_persistent(s, Employee, dict(zip(_EMPLOYEE_COLUMNS, values)))
    column = PLATFORM_COLUMNS.get(platform)
    if column is None:
        return None
    emp = s.scalar(select(Employee).where(column == user_id, Employee.status == "active"))
    if emp is None:
        return None
    try:
        bind(s, emp, platform, user_id, now=now, actor_id=None, how="roster")
    except UnknownEmployee:
        return None
    except IntegrityError:  # a concurrent first message of the same person bound the account just now
        return _bound_now(s, platform, user_id)
    return emp


def _bound_now(s: Session, platform: str, user_id: str) -> Employee | None:
    """The binding as committed this instant: a locking read, so a binding another transaction is
    still committing is waited for, not missed (under REPEATABLE READ it also reads past the snapshot)."""
    return s.scalar(select(Employee).join(Binding, Binding.employee_id == Employee.id)
                    .where(Binding.platform == platform, Binding.platform_user_id == user_id)
                    .with_for_update(read=True))


def bound_ids(s: Session, employee_id: int) -> dict[str, str]:
    return {b.platform: b.platform_user_id for b in s.scalars(select(Binding).where(Binding.employee_id == employee_id))}


def find_person(s: Session, token: str, platform: str, mentions: tuple[str, ...] = ()) -> Employee:
    """An employee number, a platform user id, an @mention or a unique name."""
    token = token.strip().lstrip("@")
    if not token and mentions:
        token = mentions[0]
    if not token:
        raise UnknownEmployee("no person given")
    emp = s.scalar(select(Employee).where(Employee.employee_no == token))
    if emp is None:  # people type "e3" for "E3"
        emp = s.scalar(select(Employee).where(func.lower(Employee.employee_no) == token.lower()).limit(1))
    if emp is not None:
        return emp
    binding = s.scalar(select(Binding).where(Binding.platform == platform, Binding.platform_user_id == token))
    if binding is not None:
        return s.get(Employee, binding.employee_id)  # type: ignore[return-value]
    column = PLATFORM_COLUMNS.get(platform)
    if column is not None:
        emp = s.scalar(select(Employee).where(column == token))
        if emp is not None:
            return emp
    named = list(s.scalars(select(Employee).where(or_(Employee.name == token)).limit(2)))
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise UnknownEmployee(f"more than one employee is called {token}; use the employee number")
    raise UnknownEmployee(f"no employee {token}")


def binding_for(s: Session, platform: str, user_id: str) -> Binding | None:
    """The binding of this chat account, if any (nothing written, unlike ``resolve_member``)."""
    return s.scalar(select(Binding).where(Binding.platform == platform, Binding.platform_user_id == user_id))
