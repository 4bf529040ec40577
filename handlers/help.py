"""帮助/help [command], and the answer to anything the router does not recognise.

The text comes from the routes' own metadata (usage, example, summary), so help cannot drift from
what the commands accept. An unrecognised message gets a "did you mean" built with difflib over
every alias, then the command list (docs/architecture.md §1.2: an unmatched command gets the help card,
not an error). Help is open to unbound users: it is how they learn to bind.
"""
from __future__ import annotations

import difflib
import re

from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import CardReply, Reply
from bot.core.router import Route, Router, normalise
from cards import builders
from cards import messages as msg

SAMPLE_NO = "1002"  # the employee number in every handler's example (docs/commands.md)
_CJK_HEAD = re.compile(r"([\u2e80-\u9fff\uf900-\ufaff]+)(.*)")


def visible(route: Route, ctx: Context) -> bool:
    """Unbound users see the everyday commands; bound members see what their role may use."""
    if route.roles is None:
        return True
    return ctx.member is not None and ctx.member.role in route.roles


def _role_order(role: str) -> int:
    order = list(msg.ROLE_TEXT)
    return order.index(role) if role in order else len(order)


def who_text(route: Route) -> str:
    if route.roles is None:
        return msg.EVERYONE + (msg.BEFORE_BINDING_TOO if route.open else "")
    return "、".join(msg.ROLE_TEXT.get(r, r) for r in sorted(route.roles, key=_role_order))


def overview(router: Router, ctx: Context, intro: tuple[str, ...] = ()) -> CardReply:
    entries = [builders.HelpEntry(name=r.aliases[0], aliases=r.aliases[1:], summary=r.summary)
               for r in router.routes if visible(r, ctx)]
    return CardReply(builders.help_card(entries, intro=intro, bound=ctx.member is not None))


def find_route(router: Router, text: str) -> Route | None:
    found = router.match(text)
    if found is not None:
        return found[0]
    folded = text.casefold()
    return next((r for r in router.routes if folded in (a.casefold() for a in r.aliases)), None)


def suggest(router: Router, text: str) -> str | None:
    """The closest alias to the first word, followed by the rest of what was typed."""
    tokens = normalise(text).split()
    if not tokens:
        return None
    head, rest = tokens[0], tokens[1:]
    m = _CJK_HEAD.fullmatch(head)
    if m and m.group(2):  # "兑奂2": Chinese commands may be glued to their argument
        head, rest = m.group(1), [m.group(2), *rest]
    aliases = {a.casefold(): a for r in router.routes for a in r.aliases}
    close = difflib.get_close_matches(head.casefold(), list(aliases), n=1, cutoff=0.5)
    if not close:
        return None
    return " ".join([aliases[close[0]], *rest])


def live_example(example: str, ctx: Context) -> str:
    """Examples name employee ``SAMPLE_NO``; shown, they name a real colleague, so they work as typed whatever the
    company's numbering (``1002``, ``E1002``…)."""
    if SAMPLE_NO not in example:
        return example
    live = ctx.queries.sample_employee_no(ctx.member.id if ctx.member is not None else None)
    return example.replace(SAMPLE_NO, live) if live else example


def register(router: Router) -> None:
    def handle_help(event: Event, ctx: Context) -> Reply:
        topic = ctx.args.strip()
        if not topic:
            return overview(router, ctx)
        route = find_route(router, topic)
        if route is None:
            hint = suggest(router, topic)
            intro = (msg.NO_SUCH_COMMAND.format(topic=topic),) + ((msg.DID_YOU_MEAN.format(suggestion=hint),) if hint else ())
            return overview(router, ctx, intro)
        return CardReply(builders.help_command_card(name=route.aliases[0], aliases=route.aliases[1:],
                                                    summary=route.summary, usage=route.usage,
                                                    example=live_example(route.example, ctx), who=who_text(route)))

    def handle_unknown(event: Event, ctx: Context) -> Reply:
        text = ctx.args.strip()
        if not text:
            return overview(router, ctx)
        hint = suggest(router, text)
        intro = [msg.NOT_UNDERSTOOD.format(text=text[:40])]
        if hint:
            intro.append(msg.DID_YOU_MEAN.format(suggestion=hint))
        return overview(router, ctx, tuple(intro))

    router.command("help", reads_only=True, aliases=("帮助", "菜单", "?"), open=True, usage="帮助 [命令]", example="帮助 兑换",
                   summary="查看所有命令，或某个命令的用法和示例")(handle_help)
    router.unknown(handle_unknown)
