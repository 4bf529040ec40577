"""After a decision, every card about it shows the outcome: the ``close_cards`` outbox task.

Why a task and not part of the decision: editing cards is a platform call, and a decision's transaction
must not wait on a platform (nor fail with it). The task runs from the outbox like any message, so it
is retried until it went through. WeCom copies whose single-use code is younger than 72 hours are edited
in place (``update_template_card``: the buttons become the outcome, disabled); any other copy — a
DingTalk markdown card, which cannot be edited, or a WeCom code that is used or too old — is answered
with the outcome as a message, except to the decider, who had the reply (docs/commands.md, "Cards").
"""
from __future__ import annotations

import logging
from typing import Any

from bot.clients import get_clients
from bot.errors import PlatformApiError
from storage import sent_cards
from storage.outbox import enqueue

log = logging.getLogger(__name__)


def close_cards(bot: Any, payload: dict[str, Any]) -> None:
    subject, button, message = payload["subject"], payload["button"], payload["message"]
    decider: dict[str, str] = payload.get("decider") or {}
    now = bot.db.clock()
    with bot.db.session_scope() as s:
        copies = [(c.id, c.platform, c.user_id, c.response_code, sent_cards.updatable(c, now))
                  for c in sent_cards.open_copies(s, subject)]
    by_code: dict[str, list[tuple[int, str, str]]] = {}
    answer = []
    for cid, platform, user, code, editable in copies:
        if editable:
            by_code.setdefault(code, []).append((cid, platform, user))
        else:
            answer.append((cid, platform, user))
    for code, rows in by_code.items():
        try:
            get_clients(bot)["wecom"].update_template_card_button([u for _, _, u in rows], code, button)
        except PlatformApiError as exc:
            if exc.retryable:
                raise  # the outbox tries the task again
            log.info("%s: a card could not be edited (%s); the outcome goes as a message", subject, exc.code)
            answer += rows
    with bot.db.session_scope() as s:
        for cid, platform, user in answer:
            if decider.get(platform) != user:
                enqueue(s, "platform_message", {"platform": platform, "user_id": user,
                                                "card": {"title": message, "lines": []}},
                        now=now, idem_key=f"card-closed:{cid}")
        sent_cards.close(s, [cid for cid, *_ in copies], now)
