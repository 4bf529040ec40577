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

from flask import Flask

from playground.fake_api import MessageLog, fake_blueprints
from playground.views import playground_blueprint

__all__ = ["register_playground", "MessageLog"]


def register_playground(app: Flask, bot: Any) -> MessageLog | None:
    """Register the page, its API and the fake platform API; return the message log (tests read it)."""
    if not bot.settings.playground["enabled"]:
        return None
    log = MessageLog()
    for bp in fake_blueprints(log, bot.settings):
        app.register_blueprint(bp)
    app.register_blueprint(playground_blueprint(app, bot, log))
    app.extensions["pointsbot_playground"] = log
    return log
