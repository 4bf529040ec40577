"""What a handler gets besides its event: the member, the services and a way to notify people.

Neutral on purpose (no Flask, no platform): handlers are plain functions of (event, ctx).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime
from typing import Callable

from sqlalchemy.orm import Session

from cards.model import Card
from settings import Settings
from storage.ledger import Ledger
from storage.models import Employee
from storage import outbox
from storage.standings import Standings


@dataclass
class Context:
    session: Session
    settings: Settings
    clock: Callable[[], datetime]
    platform: str = ""
    member: Employee | None = None
    args: str = ""  # the command's argument text, normalised
    command: str = ""  # the canonical command name matched
    # the app's cache of everyone's period points; a bare Context computes them every time
    standings: Standings = field(default_factory=lambda: Standings(ttl_seconds=0))

    @cached_property
    def ledger(self) -> Ledger:
        """The writer of points, bound to this event's transaction (made on first use: most commands read)."""
        return Ledger(self.session, self.clock, self.settings.points["validity_days"])

    @property
    def me(self) -> Employee:
        """The member, on every route that is not ``open``: ResolveMember lets only bound, active members
        through, so a handler that needs one never checks (an open route reads ``member``, which may be None)."""
        if self.member is None:
            raise RuntimeError(f"route {self.command!r} was reached without a member")
        return self.member

    def now(self) -> datetime:
        return self.clock()

    def notify(self, employee_id: int, card: Card, *, key: str | None = None) -> None:
        """Queue a message to an employee on every platform they are bound on (resolved at send time).

        A keyed notice is about one event (its key names it), so its content is unique and WeCom may
        drop a duplicate of it (bot/delivery.py).
        """
        payload = {"employee_id": employee_id, "card": card.to_dict()} | ({"duplicate_check": True} if key else {})
        outbox.enqueue(self.session, "notice", payload, now=self.clock(), idem_key=key)
