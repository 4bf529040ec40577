"""Appeals, approval instances, rule versions and the approvals' cap slots."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.kinds import AppealStatus, enum_column
from storage.models.base import Base, Id


class Appeal(Base):
    __tablename__ = "appeals"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id"), index=True)
    txn_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_txns.id"), nullable=True)
    reason: Mapped[str] = mapped_column(String(500))
    status: Mapped[AppealStatus] = mapped_column(enum_column(AppealStatus, 16), default=AppealStatus.OPEN, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("employees.id"), nullable=True)
    points: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    note: Mapped[str] = mapped_column(String(500), default="")
    resolution_txn_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_txns.id"), nullable=True)


class ApprovalInstance(Base):
    """What we know of one approval instance, so out-of-order events act once."""

    __tablename__ = "approval_instances"
    __table_args__ = (UniqueConstraint("platform", "instance_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    instance_id: Mapped[str] = mapped_column(String(128))
    rule: Mapped[str] = mapped_column(String(128))  # the rule's name when it was seen (for people)
    rule_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # RuleVersion.rule_id
    rule_version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the version it was decided under
    employee_id: Mapped[int | None] = mapped_column(ForeignKey("employees.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # approved|revoked|pending_detail|skipped
    title: Mapped[str] = mapped_column(String(255), default="")
    award_txn_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_txns.id"), nullable=True)
    reversal_txn_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_txns.id"), nullable=True)
    note: Mapped[str] = mapped_column(String(255), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # when the approval finished


class RuleVersion(Base):
    """One version of an earning rule (storage/rules.py): ``rule_id`` is the rule's stable id, and an approval is
    awarded under the version in force when it finished (the latest ``valid_from`` not after it). A change is a
    new row; no row is ever edited, so an award can always be traced to the terms it was made under."""

    __tablename__ = "rule_versions"
    __table_args__ = (UniqueConstraint("rule_id", "version"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(Integer, index=True)
    version: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[datetime] = mapped_column(DateTime)
    name: Mapped[str] = mapped_column(String(128))
    platform: Mapped[str] = mapped_column(String(16))
    template: Mapped[str] = mapped_column(String(128))
    points: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    base_points: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tiers: Mapped[str] = mapped_column(String(500), default="")  # 90:110%;80:100%;0:0% (settings_rules.parse_tiers)
    field: Mapped[str] = mapped_column(String(128), default="")
    category: Mapped[str] = mapped_column(String(32), default="approval")
    max_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_period: Mapped[str] = mapped_column(String(16), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    changed_by: Mapped[int | None] = mapped_column(ForeignKey("employees.id"), nullable=True)
    changed_at: Mapped[datetime] = mapped_column(DateTime)


class ApprovalSlot(Base):
    """One use of a rule's cap (``max_per``): slot ``n`` of ``count`` for an employee, rule and period.

    A count read before the award lets concurrent approvals all pass it; a unique row can be
    taken only once, whatever the isolation level. A revoked approval deletes its slot.
    """

    __tablename__ = "approval_slots"
    __table_args__ = (UniqueConstraint("employee_id", "rule_key", "period", "n", name="uq_approval_slots"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id"))
    rule_key: Mapped[str] = mapped_column(String(160))  # "rule:<id>" (storage/approval_slots.py rule_key)
    period: Mapped[str] = mapped_column(String(16))  # 2026-01 | 2026-Q1 | 2026, in the organisation's zone
    n: Mapped[int] = mapped_column(Integer)
    instance_id: Mapped[int] = mapped_column(ForeignKey("approval_instances.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
