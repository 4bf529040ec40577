"""The neutral card: what a reply looks like, independent of DingTalk or WeCom.

A button carries the exact command it stands for, never state: clicking it runs the same command
as typing it, as the clicking user, with the same role checks (DingTalk dtmd links can only send
text, so this is also the only design that works on both platforms).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    command: str  # e.g. "确认兑换 R12"
    style: str = "primary"  # primary | default | danger


@dataclass(frozen=True, slots=True)
class Card:
    title: str
    lines: tuple[str, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()
    buttons: tuple[Button, ...] = ()
    footer: str = ""
    # A stable id for the card instance (WeCom task_id); empty when the card has no buttons.
    task_id: str = field(default="")
    # What the buttons decide (an order R12, an appeal A3, an unbind request U5): once it is decided, every
    # card sent about it shows the outcome (bot/cards_closed.py). Empty for a card that decides nothing.
    subject: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "lines": list(self.lines),
            "fields": [list(f) for f in self.fields],
            "buttons": [{"label": b.label, "command": b.command, "style": b.style} for b in self.buttons],
            "footer": self.footer,
            "task_id": self.task_id,
            "subject": self.subject,
        }

    def substituted(self, texts: Mapping[str, str]) -> "Card":
        """The card with each key of ``texts`` replaced by its value wherever people read text (title, lines,
        field values, footer): a gift-card code filled in at sending, or hidden before an answer is stored."""
        def sub(text: str) -> str:
            for old, new in texts.items():
                text = text.replace(old, new)
            return text
        return replace(self, title=sub(self.title), lines=tuple(sub(x) for x in self.lines),
                       fields=tuple((k, sub(v)) for k, v in self.fields), footer=sub(self.footer))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Card":
        return cls(
            title=data["title"],
            lines=tuple(data.get("lines", ())),
            fields=tuple((str(k), str(v)) for k, v in data.get("fields", ())),
            buttons=tuple(Button(b["label"], b["command"], b.get("style", "primary")) for b in data.get("buttons", ())),
            footer=data.get("footer", ""),
            task_id=data.get("task_id", ""),
            subject=data.get("subject", ""),
        )
