"""Typed domain errors. The chat layer maps each to a friendly reply in one place.

An error says what went wrong as data: its class's ``code``, an optional finer ``reason`` and the
``params`` that reason's text needs. The words live in ``cards/messages.py`` (``domain_error``), so
the console and the chat say the same thing and storage holds no user-facing text; the message
passed to ``Exception`` is English, for logs only.
"""
from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a user or operator can cause; never a bug."""

    code = "domain_error"

    def __init__(self, message: str = "", *, reason: str = "", **params: Any) -> None:
        super().__init__(message or reason or self.code)
        self.reason, self.params = reason, params


class InvalidAmount(DomainError):
    code = "invalid_amount"


class InsufficientPoints(DomainError):
    code = "insufficient_points"

    def __init__(self, available: int, needed: int) -> None:
        super().__init__(f"insufficient points: available {available}, needed {needed}",
                         available=available, needed=needed)
        self.available, self.needed = available, needed


class BudgetExhausted(DomainError):
    code = "budget_exhausted"

    def __init__(self, available: int, needed: int) -> None:
        super().__init__(f"budget exhausted: available {available}, needed {needed}",
                         available=available, needed=needed)
        self.available, self.needed = available, needed


class UnknownEmployee(DomainError):
    code = "unknown_employee"


class UnknownTxn(DomainError):
    code = "unknown_txn"


class UnknownItem(DomainError):
    code = "unknown_item"


class UnknownOrder(DomainError):
    code = "unknown_order"


class UnknownAppeal(DomainError):
    code = "unknown_appeal"


class UnknownRule(DomainError):
    code = "unknown_rule"


class OutOfStock(DomainError):
    code = "out_of_stock"


class LimitReached(DomainError):
    """An item's per-employee limit for the period is used up (storage/catalog.py)."""

    code = "limit_reached"


class WalletFrozen(DomainError):
    code = "wallet_frozen"


class NotReversible(DomainError):
    code = "not_reversible"


class AlreadyReversed(DomainError):
    code = "already_reversed"


class InvalidState(DomainError):
    """The object is not in a state that allows this (e.g. fulfilling a cancelled order)."""

    code = "invalid_state"


class NotPermitted(DomainError):
    code = "not_permitted"


class InvalidCode(DomainError):
    code = "invalid_code"


class CodesKeyMissing(DomainError):
    """Gift-card codes cannot be stored or opened without ``gift_cards.codes_key`` (storage/gift_codes.py)."""

    code = "codes_key_missing"


class CodesUnreadable(Exception):
    """A stored gift-card code does not open with the configured key: an operator's problem, never shown."""

    code = "codes_unreadable"


class LedgerCorrupt(Exception):
    """An invariant is broken (a bug or a manual edit): stop, never guess."""
