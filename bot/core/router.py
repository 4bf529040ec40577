"""Router: handlers register on an object they are given (Bolt style), never at import time.

Matching is pure and cheap: the text is normalised (full-width → half-width, spaces collapsed,
English keywords case-folded), then the longest alias that starts the text wins. Chinese
commands may be glued to their argument (``兑换2``); English ones need a space.
"""
from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass, field
from typing import Callable, Iterable

from bot.core.context import Context
from bot.core.events import CardAction, Event, TextCommand
from bot.core.replies import NoReply, Reply, Text
from cards import messages as msg

log = logging.getLogger(__name__)
MATCH_CACHE = 4096  # texts whose route is remembered (Router.match); forgotten all at once when full
_UNSEEN = object()
Handler = Callable[[Event, Context], Reply]


@dataclass(frozen=True)
class Route:
    name: str
    aliases: tuple[str, ...]
    handler: Handler
    roles: frozenset[str] | None = None  # None = every bound member
    open: bool = False  # usable before binding
    reads_only: bool = False  # writes nothing: SQLite runs it outside the write lock (bot/core/pipeline.py)
    system: bool = False  # a platform event (approval, member change): nobody in chat to resolve
    usage: str = ""
    example: str = ""
    summary: str = ""


def normalise(text: str) -> str:
    """NFKC folds full-width letters, digits, spaces and punctuation to their ASCII forms."""
    text = unicodedata.normalize("NFKC", text or "")
    text = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text)
    return " ".join(text.split())


def _is_cjk(s: str) -> bool:
    return any(ord(ch) > 0x2E80 for ch in s)


@dataclass
class Router:
    routes: list[Route] = field(default_factory=list)
    event_routes: dict[type, Route] = field(default_factory=dict)
    fallback: Handler | None = None
    middleware: list = field(default_factory=list)
    _matched: dict[str, tuple[Route, str] | None] = field(default_factory=dict, repr=False)

    def command(self, name: str, *, aliases: Iterable[str] = (), roles: Iterable[str] | None = None,
                open: bool = False, reads_only: bool = False, usage: str = "", example: str = "",
                summary: str = "") -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self._matched.clear()
            self.routes.append(Route(name=name, aliases=tuple(dict.fromkeys([*aliases, name])), handler=fn,
                                     roles=frozenset(roles) if roles is not None else None, open=open,
                                     reads_only=reads_only, usage=usage, example=example, summary=summary))
            return fn
        return deco

    def on(self, event_type: type, *, name: str) -> Callable[[Handler], Handler]:
        """A platform event's handler; it runs through the same middleware as a command."""
        def deco(fn: Handler) -> Handler:
            self.event_routes[event_type] = Route(name=name, aliases=(), handler=fn, open=True, system=True)
            return fn
        return deco

    def unknown(self, fn: Handler) -> Handler:
        self.fallback = fn
        return fn

    def route(self, name: str) -> Route | None:
        return next((r for r in self.routes if r.name == name), None)

    def match(self, text: str) -> tuple[Route, str] | None:
        """The route a text asks for and its argument; remembered per text, since every callback asks twice
        (``reads_only``, then ``dispatch``) and people send the same few commands (``积分``) all day."""
        found = self._matched.get(text, _UNSEEN)
        if found is _UNSEEN:
            if len(self._matched) >= MATCH_CACHE:
                self._matched.clear()
            found = self._matched[text] = self._match(text)
        return found  # type: ignore[return-value]

    def _match(self, text: str) -> tuple[Route, str] | None:
        text = normalise(text)
        folded = text.casefold()
        best: tuple[int, Route, str] | None = None
        for route in self.routes:
            for alias in route.aliases:
                a = alias.casefold()
                if not folded.startswith(a):
                    continue
                rest = text[len(alias):]
                if rest and not rest.startswith(" ") and not _is_cjk(alias):
                    continue  # "pointsx" is not "points"
                if best is None or len(alias) > best[0]:
                    best = (len(alias), route, rest.strip())
        return (best[1], best[2]) if best else None

    def reads_only(self, event: Event) -> bool:
        """Whether the event goes to a route declared to write nothing."""
        if not isinstance(event, (TextCommand, CardAction)):
            return False
        found = self.match(event.text if isinstance(event, TextCommand) else event.command)
        return found is not None and found[0].reads_only

    def dispatch(self, event: Event, ctx: Context) -> Reply:
        if isinstance(event, (TextCommand, CardAction)):
            text = event.text if isinstance(event, TextCommand) else event.command
            found = self.match(text)
            if found is None:
                ctx.args = normalise(text)
                route = Route(name="unknown", aliases=(), handler=self.fallback or _no_fallback, open=True)
            else:
                route, ctx.args = found
        else:
            found_route = self.event_routes.get(type(event))
            if found_route is None:
                log.info("no handler for %s event %s", event.platform, type(event).__name__)
                return NoReply()
            route = found_route
        ctx.command = route.name
        return self._run(route, event, ctx, 0)

    def _run(self, route: Route, event: Event, ctx: Context, i: int) -> Reply:
        if i < len(self.middleware):
            return self.middleware[i].process(event, ctx, route, lambda: self._run(route, event, ctx, i + 1))
        return route.handler(event, ctx)


def _no_fallback(event: Event, ctx: Context) -> Reply:
    return Text(msg.UNKNOWN_COMMAND)
