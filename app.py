"""Application factory (Flask tutorial style): configuration in, wired app out, nothing at import.

``gunicorn 'app:create_app()'`` serves the callbacks; ``flask --app app scheduler`` runs the jobs and
the outbox in a process of its own (never inside a web worker, see docs/reliability.md §5.1).
"""
from __future__ import annotations

import hmac
import logging
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping

from flask import Flask, jsonify, request
from sqlalchemy import text

from bot import approvals_sync
from bot.core.router import Router
from bot.delivery import DeliveryStats, drain
from settings import ConfigError, Settings, build_settings, load_settings
from storage.db import Database, utcnow
from storage.migrate import schema_is_current
from storage.status import status as storage_status

MAX_BODY = 64 * 1024
LOOPBACK = ("127.0.0.1", "::1")


@dataclass
class PointsBot:
    """The shared objects of one app, kept in ``app.extensions['pointsbot']``.

    Its methods are the wiring the layers below cannot do themselves: the scheduler runs jobs that
    need the platform clients (delivery, reconcile) and the outbox runs tasks, without importing
    ``bot/`` (tests/test_layering.py).
    """

    settings: Settings
    db: Database
    router: Router
    pipeline: Any
    clients: dict[str, Any] = field(default_factory=dict)
    adapters: dict[str, Any] = field(default_factory=dict)
    spool: Any = None  # bot.spool.Spool: callbacks kept while the database is unreachable
    clock: Callable[[], float] | None = None
    tasks: dict[str, Any] = field(default_factory=lambda: {"approval_detail": approvals_sync.fetch_detail_task})

    def deliver(self, **kw: Any) -> DeliveryStats:
        """Send what the outbox holds (the ``deliver-outbox`` job and the scheduler's loop)."""
        return drain(self, **kw)

    def reconcile(self, now: datetime) -> int:
        """Award what approval callbacks missed (the ``reconcile-approvals`` job)."""
        return approvals_sync.reconcile(self, now)


def _settings(config: Mapping[str, Any] | Settings | None) -> Settings:
    if isinstance(config, Settings):
        return config
    if config is not None:
        return build_settings(dict(config))
    try:
        return load_settings()
    except ConfigError as exc:  # an operator reads this at start-up: the key, not a traceback
        print(f"pointsbot: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def build_router() -> Router:
    import handlers
    from bot.core.middleware import default_chain

    router = Router()
    router.middleware = default_chain()
    handlers.register_all(router)
    return router


def create_app(config: Mapping[str, Any] | Settings | None = None, *, db: Database | None = None,
               clock: Callable[[], Any] | None = None) -> Flask:
    settings = _settings(config)
    logging.basicConfig(level=settings.server["log_level"], format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from bot.core.pipeline import Pipeline
    from bot.spool import Spool
    from bot.web import register_platforms

    from bot.http import install_log_scrubber

    install_log_scrubber("werkzeug", "gunicorn.access")  # access logs would show ?access_token=… otherwise
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    database = db or Database(settings.database["url"], sqlite_synchronous=settings.database["sqlite_synchronous"],
                              clock=clock or utcnow)
    router = build_router()
    spool = Spool(settings.spool["dir"], max_bytes=settings.spool["max_mb"] * 2**20,
                  max_events=settings.spool["max_events"])
    bot = PointsBot(settings=settings, db=database, router=router, pipeline=Pipeline(database, settings, router),
                    spool=spool)
    app.extensions["pointsbot"] = bot
    register_platforms(app, bot)

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        try:
            with database.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            return jsonify(status="unavailable"), 503
        return jsonify(status="ok")

    schema_ok: dict[str, bool] = {}

    @app.get("/readyz")
    def readyz():  # type: ignore[no-untyped-def]
        """For load balancers: can this process take callbacks? Yes while the database answers and its
        schema is current, and also while the database is away but the spool has room (so an outage
        does not take every web host out of rotation at once)."""
        size, events = spool.usage()
        spool_info = {"events": events, "bytes": size, "full": spool.full()}
        try:  # once current, the schema stays current for this process (a probe a second would log each check)
            current = schema_ok.setdefault("current", False) or schema_is_current(database)
            schema_ok["current"] = current
        except Exception:
            ready = not spool_info["full"]
            return jsonify(ready=ready, database="unavailable", spool=spool_info), 200 if ready else 503
        if not current:
            return jsonify(ready=False, database="migrations pending", spool=spool_info), 503
        return jsonify(ready=True, database="ok", spool=spool_info)

    @app.get("/status")
    def status():  # type: ignore[no-untyped-def]
        """For operators: configuration errors, the outbox, each job's last success, heartbeats. Off (404)
        unless ``[server] status_token`` is set (then required as a bearer token) or asked from loopback."""
        token = settings.server["status_token"]
        if token:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), token.encode()):
                return jsonify(error="a bearer token is required"), 401, {"WWW-Authenticate": "Bearer"}
        elif request.remote_addr not in LOOPBACK:
            return jsonify(error="not found"), 404
        try:
            return jsonify(storage_status(database, database.clock()))
        except Exception:
            return jsonify(error="database unavailable"), 503

    from cli import register_cli

    register_cli(app)
    from playground import register_playground; register_playground(app, bot)  # noqa: E702
    return app
