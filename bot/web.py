"""Flask blueprints per platform: a few lines each, no logic (bolt's SlackRequestHandler style).

Anything that cannot be verified or decrypted is 403 (413 over 64 KiB) before any database write.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from flask import Blueprint, Flask, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from bot.errors import CallbackRejected
from bot.core.pipeline import Answer
from bot.spool import Spooler

log = logging.getLogger(__name__)


def _respond(platform: str, action: Callable[[], Answer]) -> Response:
    try:
        answer = action()
    except RequestEntityTooLarge:
        return Response("request body too large", 413)
    except CallbackRejected as exc:
        log.warning("%s: rejected callback (%s) from %s", platform, type(exc).__name__, request.remote_addr)
        return Response("forbidden", 403)
    except Exception:  # a bug at the edge: not acknowledged (the platform may deliver it again), never a 500
        log.exception("%s: callback failed before it could be handled", platform)
        return Response("unavailable", 503)
    return Response(answer.body, answer.status, content_type=answer.content_type)


def _body() -> bytes:
    if (request.content_length or 0) > 64 * 1024:
        raise RequestEntityTooLarge()
    return request.get_data(cache=False)


def wecom_blueprint(name: str, path: str, adapter: Any) -> Blueprint:
    bp = Blueprint(name, __name__)

    @bp.get(path)
    def verify() -> Response:
        return _respond(name, lambda: adapter.verify_url(request.args))

    @bp.post(path)
    def callback() -> Response:
        return _respond(name, lambda: adapter.handle(request.args, _body()))

    return bp


def dingtalk_blueprint(adapter: Any, cards_enabled: bool) -> Blueprint:
    bp = Blueprint("dingtalk", __name__)

    @bp.post("/callback/dingtalk")
    def events() -> Response:
        return _respond("dingtalk", lambda: adapter.handle_event(request.args, _body()))

    @bp.post("/callback/dingtalk/robot")
    def robot() -> Response:
        return _respond("dingtalk", lambda: adapter.handle_robot(request.headers, _body()))

    if cards_enabled:
        @bp.post("/callback/dingtalk/card")
        def card() -> Response:
            return _respond("dingtalk", lambda: adapter.handle_card(request.headers, _body()))

    return bp


def register_platforms(app: Flask, bot: Any) -> None:
    from bot.dingtalk.adapter import DingTalkAdapter
    from bot.wecom.adapter import WeComAdapter

    s, window, clock = bot.settings, bot.settings.server["signature_window_seconds"], bot.db.clock
    spooler = Spooler(bot.spool, bot.adapters)
    if s.wecom["enabled"]:
        wecom = WeComAdapter(token=s.wecom["token"], aes_key=s.wecom["encoding_aes_key"], corp_id=s.wecom["corp_id"],
                             window=window, pipeline=bot.pipeline, clock=clock, spooler=spooler)
        app.register_blueprint(wecom_blueprint("wecom", "/callback/wecom", wecom))
        bot.adapters["wecom"] = wecom
        if s.wecom["contacts_token"] and s.wecom["contacts_encoding_aes_key"]:
            contacts = WeComAdapter(token=s.wecom["contacts_token"], aes_key=s.wecom["contacts_encoding_aes_key"],
                                    corp_id=s.wecom["corp_id"], window=window, pipeline=bot.pipeline, clock=clock,
                                    spooler=spooler, name="wecom_contacts")
            app.register_blueprint(wecom_blueprint("wecom_contacts", "/callback/wecom/contacts", contacts))
            bot.adapters["wecom_contacts"] = contacts
    if s.dingtalk["enabled"]:
        dingtalk = DingTalkAdapter(settings=s.dingtalk, window=window, pipeline=bot.pipeline, clock=clock,
                                   spooler=spooler)
        cards = bool(s.dingtalk["card_template_id"] and s.dingtalk["card_api_secret"])
        app.register_blueprint(dingtalk_blueprint(dingtalk, cards))
        bot.adapters["dingtalk"] = dingtalk
    spooler.kick()  # events left in the spool by a process that stopped before replaying them
