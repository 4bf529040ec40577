"""Approval events (WeCom ``sys_approval_change``, DingTalk ``bpms_instance_change``) → points.

The handler is thin on purpose: ``storage.approvals.on_approval`` decides, this module only sends
its notices (worded by cards/builders_events.py) and queues the approval-detail fetch when a rule needs form values the
event does not carry (fetched outside the callback request, by the outbox, with retries).
The detail fetch and reconcile (bot/approvals_sync.py) send their events through the same pipeline,
so they tell people exactly what the live path would.
"""
from __future__ import annotations

import logging

from bot.core.context import Context
from bot.core.events import ApprovalChange, Event
from bot.core.replies import NoReply, Reply
from bot.core.router import Router
from cards.builders_events import approval_notice
from storage.approvals import Decision

log = logging.getLogger(__name__)


def detail_key(platform: str, instance_id: str) -> str:
    return f"approval-detail:{platform}:{instance_id}"


def deliver(ctx: Context, outcome: Decision, *, platform: str, instance_id: str) -> None:
    """Queue the notices (each once, by key) and, if needed, the approval-detail fetch."""
    for n in outcome.notices:
        ctx.notify(n.employee_id, approval_notice(n.kind, n.data), key=n.key)
    if outcome.fetch_detail:
        ctx.services.task("approval_detail", {"platform": platform, "instance_id": instance_id},
                          key=detail_key(platform, instance_id), platform=platform)


def handle_approval(event: Event, ctx: Context) -> Reply:
    assert isinstance(event, ApprovalChange)
    form = dict(event.form) if event.form_complete else None
    outcome = ctx.approvals.on_change(platform=event.platform, instance_id=event.instance_id,
                                      template=event.template, status=event.status,
                                      applicant_user_id=event.applicant_user_id, title=event.title, form=form,
                                      finished_at=event.finished_at)
    deliver(ctx, outcome, platform=event.platform, instance_id=event.instance_id)
    log.info("approval %s:%s status=%s → %s %s", event.platform, event.instance_id, event.status, outcome.action,
             outcome.detail)
    return NoReply(outcome.action)


def register(router: Router) -> None:
    router.on(ApprovalChange, name="approval")(handle_approval)
