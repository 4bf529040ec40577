"""Approval events (WeCom ``sys_approval_change``, DingTalk ``bpms_instance_change``) → points.

The handler is thin on purpose: ``storage.approvals.on_approval`` decides, this module only turns
its notices into cards and queues the approval-detail fetch when a rule needs form values the
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
from cards.model import Card
from storage import approvals, outbox
from storage.approvals import Notice, Outcome

log = logging.getLogger(__name__)
PLATFORM_NAMES = {"wecom": "企业微信", "dingtalk": "钉钉"}


def detail_key(platform: str, instance_id: str) -> str:
    return f"approval-detail:{platform}:{instance_id}"


def notice_card(n: Notice) -> Card:
    """Chinese first: the rule name and the approval title are what the employee recognises."""
    d = n.data
    title = d.get("title") or "（无标题）"
    who = f"{d.get('employee', '')}（{d.get('employee_no', '')}）"
    if n.kind == "awarded":
        return Card(title=f"审批通过，你获得了 {d['points']} 积分",
                    fields=(("规则", d["rule"]), ("审批", title), ("当前可用积分", str(d["balance"])),
                            ("记录编号", f"E{d['txn_id']}")),
                    footer=f"如有疑问可发送: 申诉 E{d['txn_id']} <原因>")
    if n.kind == "reversed":
        lines = (f"已扣回 {d['points']} 积分。",)
        if d.get("shortfall"):
            lines += (f"另有 {d['shortfall']} 积分已被使用，无法扣回，HR 会与你联系。",)
        return Card(title="审批已撤销，相应积分已扣回", lines=lines,
                    fields=(("规则", d["rule"]), ("审批", title), ("当前可用积分", str(d["balance"])),
                            ("记录编号", f"E{d['txn_id']}")))
    if n.kind == "capped":
        return Card(title="审批已通过，但本次未发放积分", lines=(d["note"],),
                    fields=(("规则", d["rule"]), ("审批", title)))
    if n.kind == "shortfall":
        return Card(title=f"审批撤销：{d['shortfall']} 积分无法扣回",
                    lines=(f"{who} 的积分已被使用，钱包不能为负，差额已记录，请 HR 决定如何处理。",),
                    fields=(("规则", d["rule"]), ("审批", title), ("已扣回", str(d["points"])),
                            ("差额", str(d["shortfall"])), ("撤销记录", f"E{d['txn_id']}")))
    if n.kind == "unknown_applicant":
        return Card(title="审批通过，但找不到申请人",
                    lines=(f"{PLATFORM_NAMES.get(d['platform'], d['platform'])}账号 {d['user_id']} 未绑定员工，"
                           "花名册中也没有这个账号。补全花名册后，对账任务会自动补发。",),
                    fields=(("规则", d["rule"]), ("审批", title), ("审批编号", d["instance_id"])))
    # no_field, frozen and other skips: HR is told why nothing was awarded
    return Card(title="审批通过，但未发放积分", lines=(d.get("note", ""),),
                fields=(("员工", who), ("规则", d["rule"]), ("审批", title), ("审批编号", d["instance_id"])))


def deliver(ctx: Context, outcome: Outcome, *, platform: str, instance_id: str) -> None:
    """Queue the notices (each once, by key) and, if needed, the approval-detail fetch."""
    for n in outcome.notices:
        ctx.notify(n.employee_id, notice_card(n), key=n.key)
    if outcome.fetch_detail:
        outbox.enqueue(ctx.session, "task", {"task": "approval_detail", "platform": platform,
                                             "instance_id": instance_id},
                       now=ctx.now(), idem_key=detail_key(platform, instance_id), platform=platform)


def handle_approval(event: Event, ctx: Context) -> Reply:
    assert isinstance(event, ApprovalChange)
    form = dict(event.form) if event.form_complete else None
    outcome = approvals.on_approval(ctx.session, ctx.ledger, ctx.settings, platform=event.platform,
                                    instance_id=event.instance_id, template=event.template, status=event.status,
                                    applicant_user_id=event.applicant_user_id, title=event.title, form=form,
                                    now=ctx.now(), finished_at=event.finished_at)
    deliver(ctx, outcome, platform=event.platform, instance_id=event.instance_id)
    log.info("approval %s:%s status=%s → %s %s", event.platform, event.instance_id, event.status, outcome.action,
             outcome.detail)
    return NoReply(outcome.action)


def register(router: Router) -> None:
    router.on(ApprovalChange, name="approval")(handle_approval)
