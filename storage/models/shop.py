"""The catalog, redemption counts, gift-card codes and orders."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column

from storage.kinds import ItemKind, OrderStatus, enum_column
from storage.models.base import Base, Id


class Item(Base):
    """A reward of the catalog, edited by HR (docs/catalog.md); ``[[catalog]]`` only seeds an empty catalog."""

    __tablename__ = "items"
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    stock: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None = unlimited
    name: Mapped[str] = mapped_column(String(128), default="", server_default="")
    kind: Mapped[ItemKind] = mapped_column(enum_column(ItemKind, 16), default=ItemKind.GOODS, server_default="goods")
    description: Mapped[str] = mapped_column(String(500), default="", server_default="")
    cost: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    limit_count: Mapped[int | None] = mapped_column(Integer, nullable=True)  # per employee per limit_period
    limit_period: Mapped[str] = mapped_column(String(16), default="", server_default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    sort: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    leave_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    charity: Mapped[str] = mapped_column(String(64), default="", server_default="")  # donation items only
    updated_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class RedemptionCount(Base):
    """How many of an item an employee has confirmed in one limit period: the gate of per-employee limits.

    Moved only by a conditional ``UPDATE … WHERE count + :n <= :limit`` (the ledger's gate pattern), so
    two confirmations at once cannot both pass the last one; a cancelled or rejected order gives its
    quantity back to the period it was counted in (``Order.limit_key``).
    """

    __tablename__ = "redemption_counts"
    __table_args__ = (UniqueConstraint("employee_id", "sku", "period"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id"))
    sku: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(16))  # e.g. 2026-Q4, 2026-12, 2026-W49, 2026
    count: Mapped[int] = mapped_column(Integer, default=0)


class GiftCode(Base):
    """One gift-card code of an item's pool, encrypted at rest (storage/gift_codes.py; docs/catalog.md).

    ``order_id`` is NULL while the code is free; a confirmation takes free codes with a conditional
    ``UPDATE … WHERE order_id IS NULL`` and checks the row count, so no code is ever handed out twice.
    ``fingerprint`` (a keyed hash) refuses the same code uploaded twice without decrypting the pool.
    """

    __tablename__ = "gift_codes"
    __table_args__ = (UniqueConstraint("sku", "fingerprint"), Index("ix_gift_codes_free", "sku", "order_id", "id"))
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(String(64))
    secret: Mapped[str] = mapped_column(Text)  # a Fernet token: the code, encrypted and authenticated
    fingerprint: Mapped[str] = mapped_column(String(64))
    batch: Mapped[int] = mapped_column(Integer)  # the upload it came in (per sku: 1, 2, …)
    added_at: Mapped[datetime] = mapped_column(DateTime)
    added_by: Mapped[int | None] = mapped_column(ForeignKey("employees.id"), nullable=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), nullable=True)
    issued_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id"), index=True)
    sku: Mapped[str] = mapped_column(String(64))
    item_name: Mapped[str] = mapped_column(String(128))
    quantity: Mapped[int] = mapped_column(Integer)
    cost: Mapped[int] = mapped_column(BigInteger)  # total points
    status: Mapped[OrderStatus] = mapped_column(enum_column(OrderStatus, 32), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("employees.id"), nullable=True)
    note: Mapped[str] = mapped_column(String(500), default="")
    hold_txn_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_txns.id"), nullable=True)
    limit_key: Mapped[str] = mapped_column(String(16), default="", server_default="")  # RedemptionCount.period
