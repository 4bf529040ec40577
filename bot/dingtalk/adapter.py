"""DingTalk edge: encrypted event subscription, robot messages (HTTP mode) and card callbacks.

Robot replies travel in the HTTP response body (text, or markdown whose buttons are ``dtmd``
links that send the typed command as the clicking user, docs/protocols.md B.6.3); events are
acknowledged with the encrypted ``success`` once applied, or once kept in the local spool when the
database cannot take them (bot/spool.py, docs/reliability.md).
"""
from __future__ import annotations

import json
import logging
import secrets
from dataclasses import replace
from typing import Callable, Mapping

from bot.clockutil import epoch_clock
from bot.crypto import CallbackCrypto
from bot.dingtalk import crypto as dc
from bot.dingtalk.parse import parse_card_callback, parse_event, parse_robot
from bot.errors import MalformedPayload
from bot.core.events import Event, Unknown, UrlCheck
from bot.core.pipeline import Answer, Pipeline, Rendered
from bot.spool import FAILED, UNAVAILABLE, Replayed, Spooled, Spooler, replay_through
from bot.core.replies import CardReply, Failed, NoReply, Reply, Text, Unavailable
from cards.render_dingtalk import render_markdown, render_text

log = logging.getLogger(__name__)
JSON = "application/json; charset=utf-8"


def _json(data: object) -> Answer:
    return Answer(200, json.dumps(data, ensure_ascii=False), JSON)


def _acknowledge(reply: Reply, ack: Answer) -> Rendered:
    """``success`` once applied; a bug is not acknowledged, so DingTalk retries, then lists it for reconcile."""
    if isinstance(reply, Unavailable):
        return Answer(UNAVAILABLE, ""), ()
    return (Answer(FAILED, "") if isinstance(reply, Failed) else ack), ()


class DingTalkAdapter:
    platform = "dingtalk"

    def __init__(self, *, settings: Mapping, window: int, pipeline: Pipeline, clock: Callable,
                 spooler: Spooler) -> None:
        ids = [i for i in (settings["app_key"], settings["corp_id"]) if i]
        self.crypto = CallbackCrypto(settings["token"], settings["aes_key"], ids)
        self.app_secret, self.card_secret = settings["app_secret"], settings["card_api_secret"]
        self.window, self.pipeline, self.clock, self.spooler = window, pipeline, clock, spooler
        self.now = epoch_clock(clock)

    # ---- event subscription ---------------------------------------------------------------
    def handle_event(self, params: Mapping[str, str], body: bytes) -> Answer:
        plaintext, receive_id = dc.decrypt_event(params, body, self.crypto, self.now, self.window)
        ack = _json(dc.success_reply(self.crypto, receive_id, str(int(self.now() * 1000)),
                                     secrets.token_urlsafe(6)))
        try:
            event = parse_event(plaintext, self.clock())
        except Exception as exc:
            log.warning("dingtalk: unparseable decrypted event (%s)", type(exc).__name__)
            return ack
        if isinstance(event, UrlCheck):
            return replace(ack, kind="UrlCheck", outcome="verified")
        if isinstance(event, Unknown):
            log.info("dingtalk: ignored event kind=%s id=%s", event.kind, event.event_id)
            return ack
        answer = self.pipeline.handle(event, lambda e, r: _acknowledge(r, ack))
        if answer.status == UNAVAILABLE:
            return self.spooler.keep("dingtalk", plaintext, event, ack)
        self.spooler.kick()  # the database answered: replay what waits, if anything
        return answer

    def replay(self, item: Spooled) -> Replayed:
        """A spooled event through the pipeline again (events have no reply to send)."""
        ack = Answer(200, "")
        return replay_through(self.pipeline, item, parse_event, lambda e, r: _acknowledge(r, ack),
                              skip=(Unknown, UrlCheck))

    # ---- robot messages ---------------------------------------------------------------------
    def handle_robot(self, headers: Mapping[str, str], body: bytes) -> Answer:
        dc.verify_robot_sign(headers.get("timestamp"), headers.get("sign"), self.app_secret, self.now, self.window)
        try:
            data = json.loads(body)
        except (ValueError, UnicodeError):
            raise MalformedPayload("robot body is not JSON") from None
        if not isinstance(data, dict):
            raise MalformedPayload("robot body is not a JSON object")
        event = parse_robot(data, self.clock())
        if isinstance(event, Unknown):
            log.info("dingtalk robot: ignored message kind=%s", event.kind)
            return _json({"msgtype": "empty"})
        return self.pipeline.handle(event, self.render_robot)

    def render_robot(self, event: Event, reply: Reply) -> Rendered:
        if isinstance(reply, NoReply):
            return _json({"msgtype": "empty"}), ()
        if isinstance(reply, Text):
            return _json({"msgtype": "text", "text": {"content": reply.text}}), ()
        if isinstance(reply, CardReply) and not reply.card.buttons and not reply.card.fields and len(reply.card.lines) <= 1:
            return _json(render_text(reply.card)), ()
        return _json(render_markdown(reply.card)), ()

    # ---- interactive-card clicks ------------------------------------------------------------
    def handle_card(self, headers: Mapping[str, str], body: bytes) -> Answer:
        dc.verify_card_signature(headers.get("x-ddpaas-signature-timestamp"), headers.get("x-ddpaas-signature"),
                                 self.card_secret, self.now, self.window)
        try:
            data = json.loads(body)
        except (ValueError, UnicodeError):
            raise MalformedPayload("card body is not JSON") from None
        event = parse_card_callback(data if isinstance(data, dict) else {}, self.clock())
        if isinstance(event, Unknown):
            return _json({})
        return self.pipeline.handle(event, self.render_card)

    def render_card(self, event: Event, reply: Reply) -> Rendered:
        status = reply.text if isinstance(reply, Text) else (reply.card.title if isinstance(reply, CardReply) else "")
        return _json({"cardUpdateOptions": {"updateCardDataByKey": True, "updatePrivateDataByKey": True},
                      "cardData": {"cardParamMap": {"status": status[:200]}}}), ()
