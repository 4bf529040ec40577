"""WeCom edge: verified, decrypted XML in; neutral event to the pipeline; passive reply out.

A passive reply can carry only text or an ``update_button`` (docs/protocols.md A.6), so a card with
buttons is rendered as a message the pipeline queues in the outbox (in the event's transaction).
"""
from __future__ import annotations

import logging
import secrets
from typing import Callable, Mapping

from bot.clockutil import epoch_clock
from bot.crypto import CallbackCrypto
from bot.core.events import CardAction, Event, TextCommand, Unknown
from bot.core.pipeline import Answer, Pipeline, Rendered
from bot.core.replies import CardReply, Failed, NoReply, Outgoing, Refused, Reply, Text, Unavailable
from bot.spool import FAILED, UNAVAILABLE, Replayed, Spooled, Spooler, replay_through
from bot.wecom import crypto as wc
from bot.wecom.parse import parse
from cards import messages as msg
from cards.render_wecom import passive_text
from cards.text import escape_wecom_text

log = logging.getLogger(__name__)
XML = "application/xml; charset=utf-8"


class WeComAdapter:
    platform = "wecom"

    def __init__(self, *, token: str, aes_key: str, corp_id: str, window: int, pipeline: Pipeline,
                 clock: Callable, spooler: Spooler, name: str = "wecom") -> None:
        self.crypto = CallbackCrypto(token, aes_key, [corp_id])
        self.corp_id, self.window, self.pipeline, self.name = corp_id, window, pipeline, name
        self.spooler = spooler
        self.clock = clock
        self.now = epoch_clock(clock)

    def verify_url(self, params: Mapping[str, str]) -> Answer:
        return Answer(200, wc.verify_url(params, self.crypto, self.now, self.window), kind="UrlCheck",
                      outcome="verified")

    def handle(self, params: Mapping[str, str], body: bytes) -> Answer:
        plaintext = wc.decrypt_post(params, body, self.crypto, self.now, self.window)  # raises → 403
        try:
            event = parse(plaintext, self.clock())
        except Exception as exc:  # verified but not understood: 200 so WeCom stops retrying
            log.warning("%s: unparseable decrypted message (%s)", self.name, type(exc).__name__)
            return Answer(200, "")
        if isinstance(event, Unknown):
            log.info("%s: ignored event kind=%s id=%s", self.name, event.kind, event.event_id)
            return Answer(200, "")
        answer = self.pipeline.handle(event, self.render)
        if answer.status == UNAVAILABLE:
            return self.spooler.keep(self.name, plaintext, event, Answer(200, ""))
        self.spooler.kick()  # the database answered: replay what waits, if anything
        return answer

    def replay(self, item: Spooled) -> Replayed:
        """A spooled callback through the pipeline again; every reply goes out through the outbox."""
        return replay_through(self.pipeline, item, parse, self.render_later)

    def render_later(self, event: Event, reply: Reply) -> Rendered:
        """For a replayed event nobody waits on the HTTP answer: text and cards become messages."""
        if isinstance(reply, Unavailable):
            return Answer(UNAVAILABLE, ""), ()
        if isinstance(reply, Failed):
            return self._failed(event, reply)
        if isinstance(reply, NoReply) or not isinstance(event, (TextCommand, CardAction)):
            return Answer(200, ""), ()
        return Answer(200, ""), (self._message(event.actor.platform_user_id, _card(reply)),)

    def _message(self, user: str, card: dict, idem_key: str | None = None) -> Outgoing:
        """A message to the user, queued by the pipeline in the event's transaction."""
        return Outgoing("platform_message", {"platform": "wecom", "user_id": user, "card": card}, idem_key=idem_key,
                        platform="wecom", destination=f"wecom:user:{user}")

    def _passive(self, event: Event, inner_xml: str) -> Answer:
        ts, nonce = str(int(self.now())), str(secrets.randbelow(10**9))
        return Answer(200, wc.encrypt_reply(inner_xml, self.crypto, self.corp_id, ts, nonce), XML)

    def _failed(self, event: Event, reply: Failed) -> Rendered:
        """To a person: an empty 200 and the apology as a message of its own, sent once per event. A platform
        event (approval, leaver) is not acknowledged, so WeCom sends it again."""
        if not isinstance(event, (TextCommand, CardAction)):
            return Answer(FAILED, ""), ()
        return Answer(200, ""), (self._message(event.actor.platform_user_id, _card(reply),
                                               idem_key=f"failed:wecom:{event.event_id}"[:191]),)

    def render(self, event: Event, reply: Reply) -> Rendered:
        user, created = event.actor.platform_user_id, int(self.now())
        if isinstance(reply, Unavailable):
            return Answer(UNAVAILABLE, ""), ()  # handle() spools it: WeCom retries only an answer it did not get
        if isinstance(reply, Failed):
            return self._failed(event, reply)
        if isinstance(reply, NoReply):
            return Answer(200, ""), ()
        if isinstance(event, CardAction) and isinstance(reply, Refused):
            # Nothing happened: the card stays clickable, and why goes as a message of its own.
            return Answer(200, ""), (self._message(user, _card(reply)),)
        if isinstance(event, CardAction):
            # A click that acted greys out the clicked button; the result goes as a new message.
            return (self._passive(event, wc.update_button_reply_xml(user, self.corp_id, created, msg.BUTTON_DONE)),
                    (self._message(user, _card(reply)),))
        if isinstance(reply, Text):  # WeCom renders HTML tags in text: a reply may quote user text
            return self._passive(event, wc.text_reply_xml(user, self.corp_id, created, escape_wecom_text(reply.text))), ()
        if reply.card.buttons:
            return Answer(200, ""), (self._message(user, reply.card.to_dict()),)
        return self._passive(event, wc.text_reply_xml(user, self.corp_id, created, passive_text(reply.card))), ()


def _card(reply: Text | CardReply) -> dict:
    """The card a message carries: the reply's own, or a title-only card for a text."""
    return reply.card.to_dict() if isinstance(reply, CardReply) else {"title": reply.text, "lines": []}
