"""Cards with buttons that went out, by what they decide, so a decision shows on every copy.

The outbox records a card here when it sends it (bot/delivery.py); a decision queues a ``close_cards``
task (bot/cards_closed.py) that reads the open copies, updates or answers them, and closes them here.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.models import SentCard
from storage.outbox import enqueue

CODE_LIFETIME = timedelta(hours=72)  # WeCom's response_code (docs/protocols.md A.8.3)


def record_sent(s: Session, card: dict[str, Any], receipts: list[tuple[str, str, str]], now: datetime) -> None:
    subject = str(card.get("subject") or "")
    if not subject:
        return
    s.add_all(SentCard(subject=subject[:32], platform=platform, user_id=user[:128],
                       task_id=str(card.get("task_id") or "")[:128], response_code=code[:256], sent_at=now)
              for platform, user, code in receipts)


def open_copies(s: Session, subject: str) -> list[SentCard]:
    return list(s.scalars(select(SentCard).where(SentCard.subject == subject, SentCard.closed_at.is_(None))
                          .order_by(SentCard.id)))


def close(s: Session, ids: list[int], now: datetime) -> None:
    if ids:
        s.execute(update(SentCard).where(SentCard.id.in_(ids), SentCard.closed_at.is_(None)).values(closed_at=now))


def updatable(card: SentCard, now: datetime) -> bool:
    """A WeCom copy whose code is still good can be edited in place; any other copy is answered by a message."""
    return card.platform == "wecom" and bool(card.response_code) and card.sent_at > now - CODE_LIFETIME


def queue_close(s: Session, subject: str, button: str, message: str, decider_ids: dict[str, str], key: str,
                now: datetime) -> None:
    """After a decision on ``subject``: every open copy shows ``button`` in place of its buttons, or is answered
    with ``message``; ``decider_ids`` ({platform: user}) are the decider's own accounts, which get no message
    (they had the reply)."""
    enqueue(s, "task", {"task": "close_cards", "subject": subject, "button": button, "message": message,
                        "decider": decider_ids}, now=now, idem_key=key)
