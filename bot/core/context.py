"""What a handler gets besides its event: the member, the services and a way to notify people.

Neutral on purpose (no Flask, no platform): handlers are plain functions of (event, ctx). The services
(storage/services.py) are the same ones a job or the HR console calls, bound to the event's transaction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Callable

from sqlalchemy.orm import Session

from cards import messages as msg
from cards.model import Card
from settings import Settings
from storage.ledger import Ledger
from storage.members import Member, MemberUse
from storage.models import Employee
from storage.services import (Appeals, Approvals, Bindings, Budgets, Catalog, Members, Orders, Queries, Rules,
                              Services)
from storage.standings import Standings


@dataclass
class Context:
    session: Session
    settings: Settings
    clock: Callable[[], datetime]
    platform: str = ""
    member: Employee | Member | None = None  # a plain Member on read-only routes (storage/members.py identify)
    args: str = ""  # the command's argument text, normalised
    command: str = ""  # the canonical command name matched
    # what knowing the member writes, left for the transaction that records the answer (read-only routes)
    member_use: MemberUse | None = None
    # the app's cache of everyone's period points; a bare Context computes them every time
    standings: Standings = field(default_factory=lambda: Standings(ttl_seconds=0))

    @cached_property
    def services(self) -> Services:
        return Services(self.session, self.settings, self.clock)

    @property
    def ledger(self) -> Ledger:
        return self.services.ledger

    @property
    def orders(self) -> Orders:
        return self.services.orders

    @property
    def members(self) -> Members:
        return self.services.members

    @property
    def catalog(self) -> Catalog:
        return self.services.catalog

    @property
    def rules(self) -> Rules:
        return self.services.rules

    @property
    def budgets(self) -> Budgets:
        return self.services.budgets

    @property
    def queries(self) -> Queries:
        return self.services.queries

    @property
    def appeals(self) -> Appeals:
        return self.services.appeals

    @property
    def bindings(self) -> Bindings:
        return self.services.bindings

    @property
    def approvals(self) -> Approvals:
        return self.services.approvals

    @property
    def me(self) -> Employee | Member:
        """The member, on every route that is not ``open``: ResolveMember lets only bound, active members
        through, so a handler that needs one never checks (an open route reads ``member``, which may be None)."""
        if self.member is None:
            raise RuntimeError(f"route {self.command!r} was reached without a member")
        return self.member

    def now(self) -> datetime:
        return self.clock()

    def notify(self, employee_id: int, card: Card, *, key: str | None = None, codes_of: int | None = None) -> None:
        """Queue a message to an employee on every platform they are bound on (storage/services.py); with
        ``codes_of`` (an order id), the card's ``CODES_FIELD`` gets that order's gift-card codes when sent."""
        self.services.notify(employee_id, card.to_dict(), key=key, codes_of=codes_of)

    def close_cards(self, subject: str, outcome: str, decider: Employee) -> None:
        """``subject`` (R12, A3, U5, R12:confirm) is decided: every card sent about it shows ``outcome`` (a key of
        cards/messages.py ``CLOSED``), whoever decided and however (button or typed). Once per subject."""
        button, message = msg.card_closed(subject, outcome, decider.name)
        self.services.cards.close(subject, button, message, decider.id, key=f"{subject}:closed")
