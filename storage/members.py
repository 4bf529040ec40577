"""Who is who: platform identities to employees, and people named in a command."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from datetime import datetime

from sqlalchemy import Select, bindparam, func, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.errors import InvalidState, UnknownEmployee
from storage.fastsql import Fast, as_persistent
from storage.models import AuditLog, Binding, Employee

CONSOLE = "console"  # the pseudo-platform of commands given in the HR console; its user id is the employee id
PLATFORM_COLUMNS = {"dingtalk": Employee.dingtalk_userid, "wecom": Employee.wecom_userid}


def audit(s: Session, action: str, *, now: datetime, actor_id: int | None = None, target_id: int | None = None,
          detail: str = "") -> None:
    s.add(AuditLog(at=now, action=action, actor_id=actor_id, target_id=target_id, detail=detail[:2000]))


ACTIVE, UNBOUND = "active", "unbound"  # Binding.status


def bind(s: Session, employee: Employee, platform: str, user_id: str, *, now: datetime, actor_id: int | None,
         how: str) -> Binding:
    """Bind a chat account: one active account per employee and platform, one employee per account.

    An unbound row of the account is taken over when a person acts (a code, HR re-linking it), never by
    the roster on its own (``how="roster"``): that is what makes an unbind stick. The employee's other
    active account on the platform is replaced (unbound, kept in the audit log).
    """
    existing = s.scalar(select(Binding).where(Binding.platform == platform, Binding.platform_user_id == user_id))
    if existing is not None and existing.status == ACTIVE:
        if existing.employee_id != employee.id:
            raise UnknownEmployee("this chat account is bound to another employee")
        return existing
    if existing is not None and how == "roster":
        raise InvalidState("account unbound", reason="binding_unbound")
    old = s.scalar(select(Binding).where(Binding.employee_id == employee.id, Binding.platform == platform,
                                         Binding.status == ACTIVE))
    if old is not None:
        _unbind(s, old, now=now, actor_id=actor_id, kind="replaced", why="replaced")
    if existing is not None:
        existing.employee_id, existing.status, existing.unbound_at, existing.unbound_why = employee.id, ACTIVE, None, ""
        existing.created_at = existing.last_used_at = now
        binding = existing
    else:
        binding = Binding(employee_id=employee.id, platform=platform, platform_user_id=user_id, created_at=now,
                          last_used_at=now, status=ACTIVE, unbound_why="")
        with s.begin_nested():
            s.add(binding)
            s.flush()
    audit(s, "bind", now=now, actor_id=actor_id, target_id=employee.id, detail=f"{platform}:{user_id} ({how})")
    s.flush()
    return binding


def _unbind(s: Session, b: Binding, *, now: datetime, actor_id: int | None, kind: str, why: str) -> None:
    b.status, b.unbound_at, b.unbound_why = UNBOUND, now, kind
    audit(s, "unbind", now=now, actor_id=actor_id, target_id=b.employee_id, detail=f"{b.platform}:{b.platform_user_id} ({why})")


def unbind_all(s: Session, employee_id: int, *, now: datetime, actor_id: int | None, why: str,
               platform: str = "", kind: str = "unbind") -> int:
    """Unbind the employee's active accounts (on one platform, or all); ``kind`` is kept on each row."""
    q = select(Binding).where(Binding.employee_id == employee_id, Binding.status == ACTIVE)
    if platform:
        q = q.where(Binding.platform == platform)
    rows = list(s.scalars(q))
    for b in rows:
        _unbind(s, b, now=now, actor_id=actor_id, kind=kind, why=why)
    s.flush()
    return len(rows)


_B, _E = Binding.__table__, Employee.__table__
_EMPLOYEE_COLUMNS = tuple(c.name for c in _E.c)
_BOUND = Fast(select(_B.c.id, _B.c.last_used_at, *_E.c).join(_E, _E.c.id == _B.c.employee_id)
              .where(_B.c.platform == bindparam("platform"), _B.c.platform_user_id == bindparam("user_id"),
                     _B.c.status == ACTIVE))
_TOUCH = Fast(_B.update().where(_B.c.id == bindparam("binding")).values(last_used_at=bindparam("at")))


@dataclass(frozen=True, slots=True)
class Member:
    """An employee's row as a query sees it: plain values, no ORM object. A read-only command writes nothing, so it
    needs no unit of work, and making an ORM object cost more than the lookup's query (``identify``)."""
    id: int
    employee_no: str
    name: str
    department: str
    manager_id: int | None
    role: str
    status: str
    left_at: datetime | None
    dingtalk_userid: str
    wecom_userid: str
    created_at: datetime


if tuple(f.name for f in fields(Member)) != _EMPLOYEE_COLUMNS:  # the prebuilt lookup fills it by position
    raise RuntimeError("storage.members.Member must list the employees table's columns in their order")


@dataclass(frozen=True)
class MemberUse:
    """What knowing a chat member writes: the binding a roster user's first message makes, or the
    stamp of a binding's last use (at most once an hour). Kept apart from the lookup so a read-only
    command can look the member up in a read transaction and write this with its answer."""
    platform: str
    user_id: str
    employee_id: int
    binding_id: int | None  # stamp this binding's last use; None: bind the account from the roster


def identify(s: Session, platform: str, user_id: str,
             now: datetime) -> tuple[Employee | Member | None, MemberUse | None]:
    """The employee a chat user is, and what using the bot writes for them (nothing is written here).

    Runs on every chat message, so the bound case is one prebuilt query (binding and employee), whose row comes
    back as a plain ``Member``; ``resolve_member`` makes it the session's ``Employee`` for a command that writes.
    """
    if not user_id:
        return None, None
    if platform == CONSOLE:  # the console acts for a member it authenticated itself (console/actions.py)
        emp = s.get(Employee, int(user_id)) if user_id.isdigit() else None
        return (emp if emp is not None and emp.status == "active" else None), None
    s.flush()  # the prebuilt query below reads what the ORM still holds (a binding made earlier in this session)
    rows = _BOUND.run(s.connection(), {"platform": platform, "user_id": user_id}).rows
    if rows:
        binding_id, last_used_at, *values = rows[0]
        member = Member(*values)
        stale = last_used_at is None or (now - last_used_at).total_seconds() > 3600
        return member, (MemberUse(platform, user_id, member.id, binding_id) if stale else None)
    column = PLATFORM_COLUMNS.get(platform)
    if column is None or s.scalar(select(Binding.id).where(Binding.platform == platform,
                                                           Binding.platform_user_id == user_id)) is not None:
        return None, None  # an unbound account: the roster does not re-bind it (``bind``)
    emp = s.scalar(select(Employee).where(column == user_id, Employee.status == "active"))
    return emp, (MemberUse(platform, user_id, emp.id, None) if emp is not None else None)


def record_use(s: Session, use: MemberUse, now: datetime) -> bool:
    """Write what ``identify`` found: False when the roster binding could not be made after all. (A read-only
    command leaves the stamp to ``stamp_uses`` in a batch, and writes only a first binding here.)"""
    if use.binding_id is not None:  # coarse: a chat message is not always a write
        _TOUCH.run(s.connection(), {"binding": use.binding_id, "at": now})
        return True
    emp = s.get(Employee, use.employee_id)
    assert emp is not None
    try:
        bind(s, emp, use.platform, use.user_id, now=now, actor_id=None, how="roster")
    except (UnknownEmployee, InvalidState, IntegrityError):  # bound or unbound since identify() read it
        return False
    return True


def stamp_uses(s: Session, stamps: dict[int, datetime]) -> None:
    """Bindings' last-use times, many at once (bot/core/stamps.py batches those read-only commands find due)."""
    if stamps:
        _TOUCH.run(s.connection(), [{"binding": b, "at": at} for b, at in sorted(stamps.items())])


def resolve_member(s: Session, platform: str, user_id: str, now: datetime) -> Employee | None:
    """``identify`` and ``record_use`` in one transaction: the member, or None.

    When the roster binding cannot be made (a concurrent first message of the same person bound the
    account just now, say), the member is whoever the account is bound to once that commits."""
    found, use = identify(s, platform, user_id, now)
    if use is not None and not record_use(s, use, now):
        return _bound_now(s, platform, user_id)
    return as_persistent(s, Employee, asdict(found)) if isinstance(found, Member) else found


def _bound_now(s: Session, platform: str, user_id: str) -> Employee | None:
    """The binding as committed this instant: a locking read, so a binding another transaction is
    still committing is waited for, not missed (under REPEATABLE READ it also reads past the snapshot)."""
    return s.scalar(select(Employee).join(Binding, Binding.employee_id == Employee.id)
                    .where(Binding.platform == platform, Binding.platform_user_id == user_id,
                           Binding.status == ACTIVE)
                    .with_for_update(read=True))


def bound_ids(s: Session, employee_id: int) -> dict[str, str]:
    """The active accounts of an employee, by platform: where notices go."""
    return {b.platform: b.platform_user_id for b in s.scalars(
        select(Binding).where(Binding.employee_id == employee_id, Binding.status == ACTIVE))}


_PREFIXED = re.compile(r"^([A-Za-z]+)(\d+)$")


def by_employee_no(s: Session, token: str) -> Employee | None:
    """The employee an employee number means: exactly, else case-insensitively, else with a leading letter
    prefix dropped or added ("E1030" for a roster that writes "1030", or the other way round) — the last
    two only when exactly one employee matches, so a guess never picks the wrong person."""
    token = token.strip()
    if not token:
        return None
    emp = s.scalar(select(Employee).where(Employee.employee_no == token))
    if emp is not None:
        return emp
    found = list(s.scalars(select(Employee).where(func.lower(Employee.employee_no) == token.lower()).limit(2)))
    if found:
        return found[0] if len(found) == 1 else None
    m = _PREFIXED.match(token)
    if m:  # "E1030": the roster may write "1030"
        found = list(s.scalars(select(Employee).where(Employee.employee_no == m.group(2)).limit(2)))
    elif token.isdigit():  # "1030": the roster may write "E1030"
        like = list(s.scalars(select(Employee).where(Employee.employee_no.like(f"%{token}")).limit(50)))
        found = [e for e in like if (p := _PREFIXED.match(e.employee_no)) is not None and p.group(2) == token]
    return found[0] if len(found) == 1 else None


def find_person(s: Session, token: str, platform: str, mentions: tuple[str, ...] = ()) -> Employee:
    """An employee number, a platform user id, an @mention or a unique name."""
    token = token.strip().lstrip("@")
    if not token and mentions:
        token = mentions[0]
    if not token:
        raise UnknownEmployee("no person given")
    emp = by_employee_no(s, token)
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


def team(manager_id: int) -> Select[tuple[int]]:
    """SQL: the ids of everyone below ``manager_id`` in the reporting tree, direct and indirect.

    The one definition of a manager's team: the award scope, who decides an appeal, 查询 and the manager
    digest all use it. UNION (not UNION ALL) ends the recursion even if the roster has a loop.
    """
    tree = select(Employee.id).where(Employee.manager_id == manager_id).cte("team", recursive=True)
    tree = tree.union(select(Employee.id).join(tree, Employee.manager_id == tree.c.id))
    return select(tree.c.id).where(tree.c.id != manager_id)


def in_team(s: Session, manager_id: int, employee_id: int) -> bool:
    return s.scalar(select(literal(True)).where(literal(employee_id).in_(team(manager_id)))) is not None


def binding_for(s: Session, platform: str, user_id: str) -> Binding | None:
    """The active binding of this chat account, if any (nothing written, unlike ``resolve_member``)."""
    return s.scalar(select(Binding).where(Binding.platform == platform, Binding.platform_user_id == user_id,
                                          Binding.status == ACTIVE))
