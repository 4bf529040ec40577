"""The local playground: a chat page that plays DingTalk and WeCom, and a fake platform API.

Why it exists: nobody can try pointsbot without a tenant and a public URL. With
``playground.enabled = true`` (only ``config.example.toml`` sets it) ``make run`` gives a newcomer
a working bot whose every message goes through the real, signed callback path, and whose outbound
messages (delivered by the scheduler's outbox) land in the fake API below instead of a platform.

When the setting is off nothing here is registered, so ``/playground`` and
``/playground/fake/...`` are plain 404s; ``settings.py`` also refuses a config without the
playground whose ``api_base`` keys still point at this app.
"""
from __future__ import annotations

from typing import Any

import click
from flask import Flask
from sqlalchemy import func, select

from playground.demo import load_demo
from playground.fake_api import MessageLog, fake_blueprints
from playground.views import playground_blueprint
from storage.models import Employee

__all__ = ["register_playground", "MessageLog"]


def register_playground(app: Flask, bot: Any) -> MessageLog | None:
    """The ``demo-data`` command always (``make run`` loads the demo company with it); with the
    setting on, the page, its API and the fake platform API. Returns the message log (tests read it)."""
    _register_demo_data(app, bot)
    if not bot.settings.playground["enabled"]:
        return None
    log = MessageLog()
    for bp in fake_blueprints(log, bot.settings):
        app.register_blueprint(bp)
    app.register_blueprint(playground_blueprint(app, bot, log))
    app.extensions["pointsbot_playground"] = log
    return log


def _register_demo_data(app: Flask, bot: Any) -> None:
    @app.cli.command("demo-data", help="Load the demo company into an empty database (does nothing otherwise).")
    def demo_data() -> None:
        with bot.db.session_scope() as s:
            if (s.scalar(select(func.count(Employee.id))) or 0) > 0:
                click.echo("database is not empty; demo data not loaded")
                return
        load_demo(bot.db, bot.settings)
        click.echo("demo company loaded")
