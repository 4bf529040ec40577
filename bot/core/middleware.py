"""Cross-cutting steps, one concern each, run in the order the factory lists them.

Dedupe happens before this chain (bot/core/pipeline.py), because its stored answer is the rendered
platform response, which only the adapter knows.
"""
from __future__ import annotations

import logging
from typing import Callable

from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import CardReply, Refused, Reply
from bot.core.router import Route
import telemetry
from cards import messages as msg
from storage.errors import DomainError

log = logging.getLogger(__name__)
Next = Callable[[], Reply]


class ResolveMember:
    """Map the platform user to an employee; unbound users only reach routes marked open.

    A platform event (an approval, a member leaving) has no chat user behind it: resolving its
    applicant would bind them from the roster and mark their binding used, which they did not do.
    """

    name = "resolve_member"

    def process(self, event: Event, ctx: Context, route: Route, next: Next) -> Reply:
        if route.system:
            return next()
        if route.reads_only:  # the binding's writes go with the answer (bot/core/pipeline.py)
            ctx.member, ctx.member_use = ctx.members.identify(event.platform, event.actor.platform_user_id)
        else:
            ctx.member = ctx.members.resolve(event.platform, event.actor.platform_user_id)
        if ctx.member is not None and ctx.member.status != "active":
            ctx.member = None
        if ctx.member is not None:
            telemetry.note(employee=ctx.member.employee_no)
        if ctx.member is None and not route.open:
            return CardReply(msg.not_bound_card(event.actor.platform_user_id))
        return next()


class RequireRole:
    name = "require_role"

    def process(self, event: Event, ctx: Context, route: Route, next: Next) -> Reply:
        if route.roles is not None and (ctx.member is None or ctx.member.role not in route.roles):
            log.info("denied %s to %s role %s", route.name, ctx.member and ctx.member.employee_no,
                     ctx.member and ctx.member.role)
            return Refused(msg.not_permitted(route.name))
        return next()


class DomainErrors:
    """Typed domain errors become friendly replies; the handler's writes are rolled back."""

    name = "domain_errors"

    def process(self, event: Event, ctx: Context, route: Route, next: Next) -> Reply:
        try:
            if route.reads_only:  # nothing to roll back
                return next()
            with ctx.session.begin_nested():
                return next()
        except DomainError as exc:
            log.info("%s: %s (%s) platform=%s event=%s", route.name, exc.code, type(exc).__name__, event.platform,
                     event.event_id)
            return Refused(msg.domain_error(exc))


def default_chain() -> list:
    return [ResolveMember(), RequireRole(), DomainErrors()]
