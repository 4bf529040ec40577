"""The HR console: a server-rendered back office at ``/console`` over the same services as the chat.

An edge like the callbacks: it knows HTTP, sessions and HTML; what it shows and changes comes from
``storage/services.py``, so a change made here is the same ledger transaction, with its actor, as the
same change made in chat. Who gets in and how is in docs/console.md.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from console.views import console_blueprint

__all__ = ["register_console"]


def register_console(app: Flask, bot: Any) -> None:
    """With ``[console] enabled``: the signed session cookie (its key from the settings, the same on every
    process), CSRF protection for the console's forms, and the pages. Off: nothing is registered (404)."""
    conf = bot.settings.console
    if not conf["enabled"]:
        return
    secure = str(bot.settings.server.get("public_url", "")).startswith("https://")
    app.config.update(SECRET_KEY=conf["secret_key"], SESSION_COOKIE_NAME="pointsbot_console",
                      SESSION_COOKIE_PATH="/console", SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=secure, PERMANENT_SESSION_LIFETIME=timedelta(hours=conf["session_hours"]),
                      WTF_CSRF_CHECK_DEFAULT=False)  # only the console's forms: the callbacks are signed instead
    csrf = CSRFProtect(app)
    app.register_blueprint(console_blueprint(bot, csrf))
