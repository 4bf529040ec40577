"""The ledger's tables (insert-only but for lots.remaining and the cached accounts.balance, which change only with
their entries, in the ledger), the kept period totals, managers' budget terms and shortfalls."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from storage.kinds import AccountKind, TxnKind, enum_column
from storage.models.base import Base, Id


class Account(Base):
    """Wallets (per employee), budgets (per manager) and system accounts.

    Only wallets and budgets keep a cached ``balance`` (the gate against overdraft); system accounts
    are hot rows, so their balance is derived from entries when needed (docs/reliability.md §1.3).
    """

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("kind", "employee_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    kind: Mapped[AccountKind] = mapped_column(enum_column(AccountKind, 16))
    employee_id: Mapped[int | None] = mapped_column(ForeignKey("employees.id"), nullable=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    frozen: Mapped[bool] = mapped_column(Boolean, default=False)


class Txn(Base):
    """One business change (the ``E<n>`` users see); its entries sum to zero."""

    __tablename__ = "ledger_txns"
    __table_args__ = (
        Index("ix_ledger_txns_reverses_txn_id", "reverses_txn_id", sqlite_where=text("reverses_txn_id IS NOT NULL"),
              postgresql_where=text("reverses_txn_id IS NOT NULL")),
        Index("ix_ledger_txns_related_txn_id", "related_txn_id", sqlite_where=text("related_txn_id IS NOT NULL"),
              postgresql_where=text("related_txn_id IS NOT NULL")),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    idem_key: Mapped[str] = mapped_column(String(191), unique=True)
    kind: Mapped[TxnKind] = mapped_column(enum_column(TxnKind, 32))
    employee_id: Mapped[int | None] = mapped_column(ForeignKey("employees.id"), nullable=True, index=True)
    amount: Mapped[int] = mapped_column(BigInteger)  # signed effect on the subject's wallet/budget
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("employees.id"), nullable=True, index=True)
    reason: Mapped[str] = mapped_column(String(500), default="")
    category: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    reverses_txn_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_txns.id"), nullable=True)
    # settle/release point at the hold they close; expiry-on-release at the release
    related_txn_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_txns.id"), nullable=True)


class Entry(Base):
    __tablename__ = "ledger_entries"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    txn_id: Mapped[int] = mapped_column(ForeignKey("ledger_txns.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)


class Lot(Base):
    __tablename__ = "lots"
    __table_args__ = (
        # a wallet's live lots in FIFO order (partial where the engine allows): redemptions never
        # step over the spent lots a long-lived wallet piles up
        Index("ix_lots_fifo", "account_id", "expires_at", "id", sqlite_where=text("remaining > 0"),
              postgresql_where=text("remaining > 0")),
        # live lots by expiry date (partial on PostgreSQL/SQLite; on MariaDB the plain index, whose
        # entries do not move when ``remaining`` changes): notices and digests by date range
        Index("ix_lots_live", "expires_at", "id", sqlite_where=text("remaining > 0"),
              postgresql_where=text("remaining > 0")),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    txn_id: Mapped[int] = mapped_column(ForeignKey("ledger_txns.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    earned_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class LotAllocation(Base):
    """Which lots a debit consumed (positive) or a release restored (negative)."""

    __tablename__ = "lot_allocations"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    txn_id: Mapped[int] = mapped_column(ForeignKey("ledger_txns.id"), index=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)


class EarnedTotal(Base):
    """Points an employee earned in one local calendar period (storage/ledger/totals.py): a day, week, month,
    quarter or year, keyed ``d|w|m|q|y`` + the period's first local day. Kept by the ledger in the transaction of
    each award and reversal of an award, so a leaderboard or a rank reads one row per employee, not the period's
    transactions; ``check-ledger`` sums the transactions again and compares."""

    __tablename__ = "earned_totals"
    # a period's rows by points: ORDER BY points DESC … LIMIT reads the top of it (ties sorted incrementally),
    # and a rank counts the range above a member
    __table_args__ = (Index("ix_earned_totals_board", "period", "points", "employee_id"),)
    period: Mapped[str] = mapped_column(String(12), primary_key=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id"), primary_key=True, autoincrement=False)
    points: Mapped[int] = mapped_column(BigInteger, default=0)


class ManagerBudget(Base):
    """A manager's own monthly budget and rollover; a manager without a row gets ``[points]``'s defaults."""

    __tablename__ = "manager_budgets"
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id"), primary_key=True, autoincrement=False)
    monthly: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    rollover: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("employees.id"), nullable=True)


class Shortfall(Base):
    """Points that could not be taken back because they were already spent; HR decides."""

    __tablename__ = "shortfalls"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id"), index=True)
    txn_id: Mapped[int] = mapped_column(ForeignKey("ledger_txns.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    resolved: Mapped[bool] = mapped_column(Boolean, default=False)
