"""Members leaving or joining (WeCom ``change_contact``, DingTalk ``user_leave_org``/``user_add_org``).

A leaver is unbound and frozen at once (no awards, no new orders, no commands from a chat account
that may be reassigned), and HR is told the balance and the pending orders, because those need a
person's decision. A join is only logged: binding needs the employee's own action (a code) or the
roster, never a guess from a platform event.
"""
from __future__ import annotations

import logging

from bot.core.context import Context
from bot.core.events import Event, MemberJoined, MemberLeft
from bot.core.replies import NoReply, Reply
from bot.core.router import Router
from cards.builders_events import leaver_card
from storage.leavers import LeaverReport

log = logging.getLogger(__name__)


def notify_leaver(ctx: Context, report: LeaverReport, platform: str) -> None:
    """Keyed by the time of leaving too, so a re-hired and again departed employee is reported again."""
    card = leaver_card(name=report.name, employee_no=report.employee_no, balance=report.balance,
                       pending_orders=report.pending_orders, platform=platform)
    when = f"{ctx.now():%Y%m%d%H%M%S}"
    for staff in report.staff_ids:
        ctx.notify(staff, card, key=f"leaver:{report.employee_id}:left-notice:{when}:{staff}")


def handle_left(event: Event, ctx: Context) -> Reply:
    assert isinstance(event, MemberLeft)
    for user_id in event.user_ids:
        report = ctx.members.left(event.platform, user_id)
        if report is None:
            continue
        log.info("member left %s:%s → employee %s (changed=%s, balance=%s, pending orders=%d)", event.platform,
                 user_id, report.employee_no, report.changed, report.balance, len(report.pending_orders))
        if report.changed:
            notify_leaver(ctx, report, event.platform)
    return NoReply()


def handle_joined(event: Event, ctx: Context) -> Reply:
    assert isinstance(event, MemberJoined)
    log.info("member joined %s: %d user(s); binding happens by roster or bind code", event.platform,
             len(event.user_ids))
    return NoReply()


def register(router: Router) -> None:
    router.on(MemberLeft, name="member-left")(handle_left)
    router.on(MemberJoined, name="member-joined")(handle_joined)
