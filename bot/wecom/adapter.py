"""WeCom edge: verified, decrypted XML in; neutral event to the pipeline; passive reply out.

A passive reply can carry only text or an ``update_button`` (protocols.md A.6), so a card with
buttons goes through the outbox as a ``template_card`` (written in the event's transaction).
"""
from __future__ import annotations

import logging
import secrets
from typing import Callable, Mapping

from sqlalchemy.orm import Session

from bot.clockutil import epoch_clock
from bot.crypto import CallbackCrypto
from bot.events import CardAction, Event, Unknown
from bot.pipeline import Answer, Pipeline
from bot.replies import CardReply, NoReply, Reply, Text
from bot.wecom import crypto as wc
from bot.wecom.parse import parse
from cards.render_wecom import passive_text
from storage import outbox

log = logging.getLogger(__name__)
XML = "application/xml; charset=utf-8"


class WeComAdapter:
    platform = "wecom"

    def __init__(self, *, token: str, aes_key: str, corp_id: str, window: int, pipeline: Pipeline,
                 clock: Callable, name: str = "wecom") -> None:
        self.crypto = CallbackCrypto(token, aes_key, [corp_id])
        self.corp_id, self.window, self.pipeline, self.name = corp_id, window, pipeline, name
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
        return self.pipeline.handle(event, self.render)

    def _passive(self, event: Event, inner_xml: str) -> Answer:
        ts, nonce = str(int(self.now())), str(secrets.randbelow(10**9))
        return Answer(200, wc.encrypt_reply(inner_xml, self.crypto, self.corp_id, ts, nonce), XML)

    def render(self, event: Event, reply: Reply, session: Session) -> Answer:
        user, created = event.actor.platform_user_id, int(self.now())
        if isinstance(reply, NoReply):
            return Answer(200, "")
        if isinstance(event, CardAction):
            # A click is answered by greying out the clicked button; the result goes as a new message.
            card = reply.card if isinstance(reply, CardReply) else None
            payload_card = card.to_dict() if card else {"title": reply.text, "lines": []}  # type: ignore[union-attr]
            outbox.enqueue(session, "platform_message", {"platform": "wecom", "user_id": user, "card": payload_card},
                           now=self.clock(), platform="wecom", destination=f"wecom:user:{user}")
            return self._passive(event, wc.update_button_reply_xml(user, self.corp_id, created, "已处理"))
        if isinstance(reply, Text):
            return self._passive(event, wc.text_reply_xml(user, self.corp_id, created, reply.text))
        if reply.card.buttons:
            outbox.enqueue(session, "platform_message", {"platform": "wecom", "user_id": user,
                                                         "card": reply.card.to_dict()},
                           now=self.clock(), platform="wecom", destination=f"wecom:user:{user}")
            return Answer(200, "")
        return self._passive(event, wc.text_reply_xml(user, self.corp_id, created, passive_text(reply.card)))
