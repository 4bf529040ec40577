"""Flask blueprints per platform: a few lines each, no logic (bolt's SlackRequestHandler style).

Anything that cannot be verified or decrypted is 403 (413 over 64 KiB) before any database write.
"""
from __future__ import annotations

import hmac
import logging
from typing import Any, Callable

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import text
from werkzeug.exceptions import RequestEntityTooLarge

from bot.errors import CallbackRejected
from bot.core.pipeline import Answer
from storage.migrate import schema_is_current
from storage.status import status as storage_status

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "::1")


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


def probes_blueprint(bot: Any) -> Blueprint:
    """``/healthz``, ``/readyz`` and ``/status``: what load balancers and operators ask of a web process."""
    bp = Blueprint("probes", __name__)

    @bp.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        try:
            with bot.db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            return jsonify(status="unavailable"), 503
        return jsonify(status="ok")

    schema_ok: dict[str, bool] = {}

    @bp.get("/readyz")
    def readyz():  # type: ignore[no-untyped-def]
        """For load balancers: can this process take callbacks? Yes while the database answers and its
        schema is current, and also while the database is away but the spool has room (so an outage
        does not take every web host out of rotation at once)."""
        size, events = bot.spool.usage()
        spool_info = {"events": events, "bytes": size, "full": bot.spool.full()}
        try:  # once current, the schema stays current for this process (a probe a second would log each check)
            current = schema_ok.setdefault("current", False) or schema_is_current(bot.db)
            schema_ok["current"] = current
        except Exception:
            ready = not spool_info["full"]
            return jsonify(ready=ready, database="unavailable", spool=spool_info), 200 if ready else 503
        if not current:
            return jsonify(ready=False, database="migrations pending", spool=spool_info), 503
        return jsonify(ready=True, database="ok", spool=spool_info)

    @bp.get("/status")
    def status():  # type: ignore[no-untyped-def]
        """For operators: configuration errors, the outbox, each job's last success, heartbeats. Off (404)
        unless ``[server] status_token`` is set (then required as a bearer token) or asked from loopback."""
        token = bot.settings.server["status_token"]
        if token:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), token.encode()):
                return jsonify(error="a bearer token is required"), 401, {"WWW-Authenticate": "Bearer"}
        elif request.remote_addr not in LOOPBACK:
            return jsonify(error="not found"), 404
        try:
            return jsonify(storage_status(bot.db, bot.db.clock()))
        except Exception:
            return jsonify(error="database unavailable"), 503

    return bp
