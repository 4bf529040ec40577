"""后台/console: a single-use login link to the HR console, for managers, HR and admins.

Answered one-to-one only: typed in a group, the link goes to the asker privately, since anyone who
opens it first would be logged in as them. Links are issued by storage/console.py (docs/console.md).
"""
from __future__ import annotations

from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import Reply, Text
from bot.core.router import Router
from cards import builders_people as cards
from cards import messages as msg
from storage.console import CONSOLE_ROLES

USAGE = "后台"


def handle_console(event: Event, ctx: Context) -> Reply:
    if not ctx.settings.console["enabled"]:
        return Text(msg.CONSOLE_OFF)
    token = ctx.services.console.issue_link(ctx.me, via=f"chat {event.platform}")
    base = str(ctx.settings.server["public_url"]).rstrip("/")
    text = msg.CONSOLE_LINK.format(url=f"{base}/console/login/{token}", minutes=ctx.settings.console["link_minutes"])
    if not event.conversation.is_group:
        return Text(text)
    ctx.notify(ctx.me.id, cards.console_link_card(text), key=f"console-link:{event.platform}:{event.event_id}")
    return Text(msg.CONSOLE_LINK_PRIVATE)


def register(router: Router) -> None:
    router.command("console", aliases=("后台", "管理后台"), roles=CONSOLE_ROLES, usage=USAGE, example=USAGE,
                   summary="获取积分后台的登录链接（只私聊发送）")(handle_console)
