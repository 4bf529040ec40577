"""Neutral replies a handler returns; adapters render them per platform."""
from __future__ import annotations

from dataclasses import dataclass

from cards.model import Card


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class CardReply:
    card: Card


@dataclass(frozen=True, slots=True)
class NoReply:
    """Nothing to say (e.g. an approval event): the platform gets its bare acknowledgement."""


Reply = Text | CardReply | NoReply
