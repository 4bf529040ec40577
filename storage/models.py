"""SQLAlchemy 2.0 models. Money-like tables (txns, entries, lots, allocations) are insert-only,
except ``lots.remaining`` and the cached ``accounts.balance`` which change only together with
their entries, inside the ledger service.

String keys that are indexed are at most 191 characters so that a utf8mb4 index fits MySQL's
767-byte limit on older row formats.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint, text, true)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.kinds import (AccountKind, AppealStatus, ItemKind, JobRunStatus, OrderStatus, OutboxKind, OutboxStatus,
                           TxnKind, enum_column)

Id = BigInteger().with_variant(Integer(), "sqlite")  # INTEGER PRIMARY KEY is SQLite's rowid
REASON_MAX = 200  # characters of a reason or note a person types (longer ones broke paged replies' limits)


class Base(DeclarativeBase):
    pass


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


class ManagerBudget(Base):
    """A manager's own monthly budget and rollover; a manager without a row gets ``[points]``'s defaults."""

    __tablename__ = "manager_budgets"
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id"), primary_key=True, autoincrement=False)
    monthly: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    rollover: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("employees.id"), nullable=True)


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


class Heartbeat(Base):
    """A long-running process saying it is alive (the scheduler every 30 s); stale after 90 s."""

    __tablename__ = "heartbeats"
    __table_args__ = (UniqueConstraint("kind", "instance", name="uq_heartbeats"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))  # scheduler | stream
    instance: Mapped[str] = mapped_column(String(128))
    host: Mapped[str] = mapped_column(String(128))
    pid: Mapped[int] = mapped_column(Integer)
    beat_at: Mapped[datetime] = mapped_column(DateTime)


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


class ProcessedEvent(Base):
    """Inbox: one row per delivered platform event, with the answer given (for redeliveries)."""

    __tablename__ = "processed_events"
    __table_args__ = (UniqueConstraint("platform", "event_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    response_status: Mapped[int] = mapped_column(Integer, default=200)
    response_body: Mapped[str] = mapped_column(Text, default="")
    response_type: Mapped[str] = mapped_column(String(64), default="text/plain")


class Outbox(Base):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    idem_key: Mapped[str | None] = mapped_column(String(191), unique=True, nullable=True)
    kind: Mapped[OutboxKind] = mapped_column(enum_column(OutboxKind, 32))
    platform: Mapped[str] = mapped_column(String(16), default="")
    destination: Mapped[str] = mapped_column(String(191), default="")  # rate-limit bucket
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[OutboxStatus] = mapped_column(enum_column(OutboxStatus, 16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    locked_by: Mapped[str] = mapped_column(String(64), default="")
    last_error: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class RateBucket(Base):
    """Sends per destination per minute window, shared by every delivery worker."""

    __tablename__ = "rate_buckets"
    __table_args__ = (UniqueConstraint("destination", "window"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    destination: Mapped[str] = mapped_column(String(191))
    window: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(Integer, default=0)


class JobRun(Base):
    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job", "period"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(64))
    status: Mapped[JobRunStatus] = mapped_column(enum_column(JobRunStatus, 16))
    owner: Mapped[str] = mapped_column(String(128), default="")
    started_at: Mapped[datetime] = mapped_column(DateTime)
    lease_until: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
