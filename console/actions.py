"""What HR does in the console goes through the same pipeline as the chat: the same commands, checks and effects.

Why not call the services directly: a console award must be the same ledger transaction, with the same
notices, budget and scope checks, card updates and audit as the same award typed in chat — built once, it
cannot drift. So a form becomes a ``TextCommand`` of the pseudo-platform ``console`` (storage/members.py
``CONSOLE``), whose actor is the signed-in member, and its event id is the form's one-time token: a form
submitted twice acts once and shows the same answer (docs/console.md, "Acting from the console").
"""
from __future__ import annotations

import secrets
from typing import Any

from bot.core.events import Actor, TextCommand
from bot.core.pipeline import Answer
from bot.core.replies import CardReply, NoReply, Text, Unavailable
from cards import messages as msg
from cards.text import plain_text
from storage.members import CONSOLE


def form_token() -> str:
    """A fresh token for one form; the event id of what submitting it does."""
    return secrets.token_urlsafe(18)


def _render(event: Any, reply: Any) -> tuple[Answer, tuple]:
    if isinstance(reply, Unavailable):
        return Answer(503, msg.BUSY), ()
    if isinstance(reply, NoReply):
        return Answer(200, ""), ()
    text = reply.text if isinstance(reply, Text) else plain_text(reply.card) if isinstance(reply, CardReply) else ""
    return Answer(200, text), ()


def run(bot: Any, member_id: int, command: str, token: str) -> str:
    """Run ``command`` as the member, once per ``token``; the answer the chat would have given."""
    event = TextCommand(platform=CONSOLE, event_id=f"{member_id}:{token}"[:128], actor=Actor(str(member_id)),
                        text=command, received_at=bot.db.clock())
    return bot.pipeline.handle(event, _render).body
