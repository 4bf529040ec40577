"""Placeholder until this action is implemented (registers nothing)."""
from bot.router import Router


def register(router: Router) -> None:
    return None
