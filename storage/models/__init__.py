"""SQLAlchemy 2.0 models, one module per area (base: the declarative base and shared column types). Money-like
tables (txns, entries, lots, allocations) are insert-only, except ``lots.remaining`` and the cached
``accounts.balance`` which change only together with their entries, inside the ledger service.

String keys that are indexed are at most 191 characters so that a utf8mb4 index fits MySQL's
767-byte limit on older row formats. Everything is importable from ``storage.models``.
"""
from storage.models.base import REASON_MAX, Base, Id
from storage.models.people import Employee, Binding, BindCode, ConsoleLogin, SentCard, UnbindRequest, AuditLog
from storage.models.ledger import Account, Txn, Entry, Lot, LotAllocation, EarnedTotal, ManagerBudget, Shortfall
from storage.models.shop import Item, RedemptionCount, GiftCode, Order
from storage.models.rules import Appeal, ApprovalInstance, RuleVersion, ApprovalSlot
from storage.models.operations import Heartbeat, ProcessedEvent, Outbox, RateBucket, JobRun

__all__ = ["Base", "Id", "REASON_MAX", "Employee", "Binding", "BindCode", "ConsoleLogin", "SentCard", "UnbindRequest", "AuditLog", "Account", "Txn", "Entry", "Lot", "LotAllocation", "EarnedTotal", "ManagerBudget", "Shortfall", "Item", "RedemptionCount", "GiftCode", "Order", "Appeal", "ApprovalInstance", "RuleVersion", "ApprovalSlot", "Heartbeat", "ProcessedEvent", "Outbox", "RateBucket", "JobRun"]
