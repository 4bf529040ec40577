"""Neutral replies a handler returns; adapters render them per platform."""
from __future__ import annotations

from dataclasses import dataclass

from cards.model import Card


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Failed(Text):
    """A bug stopped the handler: the user is told; nothing was applied and nothing is recorded."""


@dataclass(frozen=True, slots=True)
class Unavailable(Text):
    """The database could not be reached in time: the platform is asked to deliver again later."""


@dataclass(frozen=True, slots=True)
class CardReply:
    card: Card


@dataclass(frozen=True, slots=True)
class NoReply:
    """Nothing to say (e.g. an approval event): the platform gets its bare acknowledgement."""


Reply = Text | CardReply | NoReply
