"""WeCom edge: verified, decrypted XML in; neutral event to the pipeline; passive reply out.

A passive reply can carry only text or an ``update_button`` (docs/protocols.md A.6), so a card with
buttons goes through the outbox as a ``template_card`` (written in the event's transaction).
"""
from __future__ import annotations

import logging
import secrets
from typing import Callable, Mapping

from sqlalchemy.orm import Session

from bot.clockutil import epoch_clock
from bot.crypto import CallbackCrypto
from bot.core.events import CardAction, Event, TextCommand, Unknown
from bot.core.pipeline import Answer, Pipeline
from bot.core.replies import CardReply, Failed, NoReply, Reply, Text, Unavailable
from bot.spool import UNAVAILABLE, Spooled, Spooler, replay_through
from bot.wecom import crypto as wc
from bot.wecom.parse import parse
from cards.render_wecom import passive_text
from cards.text import escape_wecom_text
from storage import outbox

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
        return Answer(200, wc.verify_url(params, self.crypto, self.now, self.window))

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

    def replay(self, item: Spooled) -> bool:
        """A spooled callback through the pipeline again; every reply goes out through the outbox."""
        return replay_through(self.pipeline, item, parse, self.render_later)

    def render_later(self, event: Event, reply: Reply, session: Session | None) -> Answer:
        """For a replayed event nobody waits on the HTTP answer: text and cards become messages."""
        if isinstance(reply, Unavailable):
            return Answer(UNAVAILABLE, "")
        assert session is not None
        if isinstance(reply, Failed):
            return self._failed(session, event, reply)
        if isinstance(reply, NoReply) or not isinstance(event, (TextCommand, CardAction)):
            return Answer(200, "")
        card = reply.card.to_dict() if isinstance(reply, CardReply) else {"title": reply.text, "lines": []}
        self._send_later(session, event.actor.platform_user_id, card)
        return Answer(200, "")

    def _send_later(self, session: Session, user: str, card: dict, idem_key: str | None = None) -> None:
        """A message to the user through the outbox, in the event's transaction."""
        outbox.enqueue(session, "platform_message", {"platform": "wecom", "user_id": user, "card": card},
                       now=self.clock(), idem_key=idem_key, platform="wecom", destination=f"wecom:user:{user}")

    def _passive(self, event: Event, inner_xml: str) -> Answer:
        ts, nonce = str(int(self.now())), str(secrets.randbelow(10**9))
        return Answer(200, wc.encrypt_reply(inner_xml, self.crypto, self.corp_id, ts, nonce), XML)

    def _failed(self, session: Session, event: Event, reply: Failed) -> Answer:
        """An empty 200 and the apology as a message of its own, sent once per event."""
        if isinstance(event, (TextCommand, CardAction)):
            self._send_later(session, event.actor.platform_user_id, {"title": reply.text, "lines": []},
                             idem_key=f"failed:wecom:{event.event_id}"[:191])
        return Answer(200, "")

    def render(self, event: Event, reply: Reply, session: Session | None) -> Answer:
        user, created = event.actor.platform_user_id, int(self.now())
        if isinstance(reply, Unavailable):
            return Answer(UNAVAILABLE, "")  # handle() spools it: WeCom retries only an answer it did not get
        assert session is not None
        if isinstance(reply, Failed):
            return self._failed(session, event, reply)
        if isinstance(reply, NoReply):
            return Answer(200, "")
        if isinstance(event, CardAction):
            # A click is answered by greying out the clicked button; the result goes as a new message.
            card = reply.card if isinstance(reply, CardReply) else None
            payload_card = card.to_dict() if card else {"title": reply.text, "lines": []}  # type: ignore[union-attr]
            self._send_later(session, user, payload_card)
            return self._passive(event, wc.update_button_reply_xml(user, self.corp_id, created, "已处理"))
        if isinstance(reply, Text):  # WeCom renders HTML tags in text: a reply may quote user text
            return self._passive(event, wc.text_reply_xml(user, self.corp_id, created, escape_wecom_text(reply.text)))
        if reply.card.buttons:
            self._send_later(session, user, reply.card.to_dict())
            return Answer(200, "")
        return self._passive(event, wc.text_reply_xml(user, self.corp_id, created, passive_text(reply.card)))
