"""Application factory (Flask tutorial style): configuration in, wired app out, nothing at import.

``gunicorn 'app:create_app()'`` serves the callbacks; ``flask --app app scheduler`` runs the jobs and
the outbox in a process of its own (never inside a web worker, see docs/reliability.md §5.1).
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

import handlers
from bot import approvals_sync, cards_closed
from bot.core.middleware import default_chain
from bot.core.pipeline import Pipeline
from bot.core.router import Router
from bot.delivery import DeliveryStats, drain
from bot.dingtalk.adapter import DingTalkAdapter
from bot.http import install_log_scrubber
from bot.spool import Spool, Spooler
from bot.web import dingtalk_blueprint, probes_blueprint, wecom_blueprint
from bot.wecom.adapter import WeComAdapter
from cli import register_cli
from console import register_console
from playground import register_playground
from settings import ConfigError, Settings, build_settings, load_settings
from storage import gift_codes, rules
from storage.ledger import totals
from storage.catalog import differs_from_config, seed_from_config
from storage.db import Database, utcnow
from telemetry import configure_logging

MAX_BODY = 64 * 1024


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
    tasks: dict[str, Any] = field(default_factory=lambda: {"approval_detail": approvals_sync.fetch_detail_task,
                                                           "close_cards": cards_closed.close_cards})

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
    """The one place handlers meet the router (importing a handler module registers nothing)."""
    router = Router()
    router.middleware = default_chain()
    handlers.register_all(router)
    return router


def register_platforms(app: Flask, bot: PointsBot) -> None:
    """One adapter per enabled platform (and WeCom's contacts app), its blueprint, and the spool's replay."""
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


def create_app(config: Mapping[str, Any] | Settings | None = None, *, db: Database | None = None,
               clock: Callable[[], Any] | None = None) -> Flask:
    settings = _settings(config)
    configure_logging(settings.server["log_level"], settings.server["log_format"])
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
    app.register_blueprint(probes_blueprint(bot))
    register_cli(app)
    register_playground(app, bot)
    register_console(app, bot)
    _seed_at_start(bot, "catalog", bot.settings.catalog, seed_from_config, differs_from_config, "Reward catalog")
    _seed_at_start(bot, "rules", bot.settings.rules, rules.seed_from_config, rules.differs_from_config, "Earning rules")
    _codes_key_at_start(bot)
    _totals_at_start(bot)
    return app


def _totals_at_start(bot: PointsBot) -> None:
    """Leaderboards read the kept totals: say loudly when a database holds points but no totals yet."""
    try:
        with bot.db.read_scope() as s:
            empty = totals.missing(s)
    except SQLAlchemyError:  # no schema yet (before db upgrade) or the database is down
        return
    if empty:
        logging.getLogger("pointsbot").error("earned totals are empty while the ledger holds awards: leaderboards "
                                             "and ranks show nothing until `flask --app app db upgrade` or "
                                             "`flask --app app rebuild-totals` fills them")


def _codes_key_at_start(bot: PointsBot) -> None:
    """Stored gift-card codes cannot be sent without their key: refuse to start rather than fail each order."""
    if bot.settings.gift_cards["codes_key"]:
        return
    try:
        with bot.db.read_scope() as s:
            stored = gift_codes.exist(s)
    except SQLAlchemyError:  # no schema yet (before db upgrade) or the database is down
        return
    if stored:
        raise ConfigError(f"gift_cards.codes_key: required, {stored} gift-card codes are stored encrypted with it "
                          "(or set POINTSBOT_GIFT_CARDS__CODES_KEY)")


def _seed_at_start(bot: PointsBot, section: str, configured: Any, seed: Any, differs_from: Any, readme: str) -> None:
    """Load the configuration's ``[[catalog]]`` or ``[[rules]]`` into a database that never had any (as ``db
    upgrade`` does), or say when they differ from what HR keeps in the database, which is what is used."""
    if not configured:
        return
    try:
        with bot.db.session_scope() as s:
            if seed(s, configured, now=bot.db.clock()):
                return
            differs = differs_from(s, configured)
    except SQLAlchemyError:  # no schema yet (before db upgrade), the database is down, or a twin loaded it
        return
    if differs:
        logging.getLogger("pointsbot").warning(
            "[[%s]] in the configuration differs from the database for %s; the database is used (README, %s)",
            section, ", ".join(differs[:20]), readme)


