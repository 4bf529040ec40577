"""One module per action; each exposes ``register(router)``. Importing registers nothing."""
from __future__ import annotations

from importlib import import_module

from bot.core.router import Router

MODULES = (
    # employee self-service and orders
    "handlers.query", "handlers.shop", "handlers.redeem", "handlers.orders_admin", "handlers.rank",
    "handlers.rules", "handlers.help",
    # people, awards, appeals, binding
    "handlers.award", "handlers.budget", "handlers.appeal", "handlers.todo", "handlers.lookup", "handlers.bind",
    "handlers.console_link", "handlers.reactivate", "handlers.reverse",
    # platform events: approvals and members joining or leaving
    "handlers.approvals", "handlers.members",
)


def register_all(router: Router) -> None:
    for name in MODULES:
        import_module(name).register(router)
