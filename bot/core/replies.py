"""Neutral replies a handler returns; adapters render them per platform."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cards.messages import CODES_HIDDEN
from cards.model import Card


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Refused(Text):
    """The action did not happen (not permitted, not enough points, already decided…): a card whose button was
    clicked must stay as it was, so the person can see it is still open and try again."""


@dataclass(frozen=True, slots=True)
class Failed(Text):
    """A bug stopped the handler: the user is told; nothing was applied and nothing is recorded."""


@dataclass(frozen=True, slots=True)
class Unavailable(Text):
    """The database could not be reached in time: the platform is asked to deliver again later."""


@dataclass(frozen=True, slots=True)
class CardReply:
    card: Card
    # Texts the card shows that must not be kept (a gift-card code in 我的订单): the stored answer and any
    # message queued for this reply carry the card with them hidden (bot/core/pipeline.py).
    secrets: tuple[str, ...] = ()

    def hidden(self) -> "CardReply":
        return CardReply(self.card.substituted({s: CODES_HIDDEN for s in self.secrets if s}))


@dataclass(frozen=True, slots=True)
class NoReply:
    """Nothing to say (e.g. an approval event): the platform gets its bare acknowledgement.
    ``note`` is for whoever sent the event without a user (approval reconcile counts awards by it)."""

    note: str = ""


Reply = Text | CardReply | NoReply


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message an adapter's render wants sent once the event commits (a card a passive reply cannot
    carry, say). The pipeline writes it to the outbox in the event's transaction, so the edge writes
    no storage and the message goes out exactly when the event's effects do."""

    kind: str  # an outbox kind: platform_message | session_reply | notice | group | task
    payload: dict[str, Any] = field(default_factory=dict)
    idem_key: str | None = None
    platform: str = ""
    destination: str = ""
