"""Who is who: employees, their chat bindings, binding codes, console logins, cards sent, the audit log."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, Id


class Employee(Base):
    __tablename__ = "employees"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    employee_no: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    department: Mapped[str] = mapped_column(String(128), default="")
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("employees.id"), nullable=True)
    role: Mapped[str] = mapped_column(String(16), default="employee")  # employee|manager|hr|admin
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)  # active|left
    left_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    dingtalk_userid: Mapped[str] = mapped_column(String(128), default="")  # from the roster
    wecom_userid: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Binding(Base):
    """A chat account bound to an employee: the only map from an account to an employee for messages and
    notices (docs/commands.md, "Binding").

    An unbind does not delete the row: it turns ``unbound``, so the roster id the account came from cannot
    bind it again on its own (a new code or HR re-links it); ``unbound_why`` says which kind of unbind it
    was (``unbind``, ``force``, ``left``, ``replaced``), for the audit and the console.
    """

    __tablename__ = "bindings"
    __table_args__ = (UniqueConstraint("platform", "platform_user_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    platform_user_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    unbound_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    unbound_why: Mapped[str] = mapped_column(String(16), default="", server_default="")


class BindCode(Base):
    __tablename__ = "bind_codes"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class ConsoleLogin(Base):
    """A single-use console login link and, once used, the session it started (docs/console.md).

    Only a hash of the link's token is stored. The session cookie names this row, so a logout (``ended_at``)
    ends the session on the server, not only in the browser that logged out.
    """

    __tablename__ = "console_logins"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    used_from: Mapped[str] = mapped_column(String(64), default="", server_default="")
    ended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class SentCard(Base):
    """A card with buttons that went out, kept so a decision can show its outcome on every copy (bot/cards_closed.py).

    ``response_code`` is WeCom's single-use, 72-hour code for ``update_template_card`` (empty on DingTalk,
    whose markdown cards cannot be edited). ``closed_at`` is set once the card shows its outcome.
    """

    __tablename__ = "sent_cards"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(32), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(128))
    task_id: Mapped[str] = mapped_column(String(128), default="")
    response_code: Mapped[str] = mapped_column(String(256), default="")
    sent_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class UnbindRequest(Base):
    __tablename__ = "unbind_requests"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id"), index=True)
    platform: Mapped[str] = mapped_column(String(16))  # "" = all platforms
    requested_by: Mapped[int] = mapped_column(ForeignKey("employees.id"))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|done|cancelled
    created_at: Mapped[datetime] = mapped_column(DateTime)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class AuditLog(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("employees.id"), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[int | None] = mapped_column(ForeignKey("employees.id"), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
