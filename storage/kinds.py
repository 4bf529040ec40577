"""The statuses and kinds the tables store, as enums (docs/architecture.md §3, "Statuses and kinds are enums").

Each is a ``StrEnum``, stored as the same short string it always was (a ``VARCHAR`` of the old
length, no database enum type and no CHECK constraint), so no data changes. ``enum_column``
maps a column to its enum: rows read back as members, and a value outside the enum is refused
when it is written, so a misspelt status fails at once instead of waiting forever in a queue.
"""
from __future__ import annotations

from enum import StrEnum

from sqlalchemy import String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class TxnKind(StrEnum):
    AWARD = "award"
    DEDUCT = "deduct"
    HOLD = "hold"
    SETTLE = "settle"
    RELEASE = "release"
    REVERSE = "reverse"
    EXPIRE = "expire"
    TRANSFER = "transfer"
    BUDGET_GRANT = "budget_grant"
    BUDGET_RESET = "budget_reset"
    BUDGET_TOPUP = "budget_topup"  # HR adds to one manager's budget, once, with a reason


class AccountKind(StrEnum):
    WALLET = "wallet"
    BUDGET = "budget"
    SYSTEM = "system"
    CHARITY = "charity"  # a donation item's pool: what employees gave, by charity (storage/ledger/credit.py)


class OrderStatus(StrEnum):
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    AWAITING_FULFILMENT = "awaiting_fulfilment"
    FULFILLED = "fulfilled"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    LAPSED = "lapsed"
    REFUNDED = "refunded"  # fulfilled, then undone by HR (撤销 R<n>): the points came back


class ItemKind(StrEnum):
    """What a reward is, and so how HR hands it out (cards/messages.py words each; settings_rules.ITEM_KINDS)."""
    GOODS = "goods"
    GIFT_CARD = "gift_card"
    LEAVE = "leave"
    TRAINING = "training"
    SERVICE = "service"
    DONATION = "donation"


class AppealStatus(StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    DENIED = "denied"


class OutboxKind(StrEnum):
    NOTICE = "notice"  # a card to an employee, on every platform they are bound on
    PLATFORM_MESSAGE = "platform_message"  # a message to one account on one platform
    SESSION_REPLY = "session_reply"  # a reply through a DingTalk sessionWebhook
    GROUP = "group"  # a message to a group chat
    TASK = "task"  # work the bot does on its own after a commit (closing cards)


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


class JobRunStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class EnumText(TypeDecorator[StrEnum]):
    """A ``VARCHAR(length)`` holding the values of a ``StrEnum``.

    Writing a value outside the enum raises ``ValueError``; reading one (a row written by a newer
    version during a rolling upgrade, say) gives the plain string, so a reader that does not know
    it can pass it over or fail it as its own code decides, instead of crashing on the read.
    """

    impl = String
    cache_ok = True

    def __init__(self, kind: type[StrEnum], length: int) -> None:
        super().__init__(length)
        self.kind = kind

    def process_bind_param(self, value: object, dialect: Dialect) -> str | None:
        return None if value is None else self.kind(value).value

    def process_result_value(self, value: object, dialect: Dialect) -> StrEnum | str | None:
        if value is None:
            return None
        try:
            return self.kind(value)
        except ValueError:
            return str(value)


def enum_column(kind: type[StrEnum], length: int) -> EnumText:
    """The column type of ``kind``: a plain ``VARCHAR(length)`` holding the members' values."""
    return EnumText(kind, length)
