"""申诉/appeal, 通过申诉/approve and 驳回申诉/deny.

The appellant names a change by its ``E<n>`` (or ``-`` for points that never came); reviewers get a
card whose buttons are the decide commands. Only references are read where a reference is
expected, so a typo gets the usage text instead of acting on the wrong object.
"""
from __future__ import annotations

import re

from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import Reply, Text
from bot.core.router import Router
from cards import builders_people as cards
from cards import messages as msg
from handlers.award import budget_left, parse_points
from storage import appeals
from storage.kinds import TxnKind
from storage.models import REASON_MAX

APPEAL_USAGE = "申诉 <E编号> <理由>，或 申诉 - <理由>（应得但未收到的积分）"
APPEAL_EXAMPLE = "申诉 E12 扣分有误，当天我在出差"
APPROVE_USAGE = "通过申诉 <A编号> [积分] [备注]（针对发放或未到账的申诉写明补发积分；针对扣除或过期的申诉不写积分即退回）"
APPROVE_EXAMPLE = "通过申诉 A3 50 补发上月全勤"
DENY_USAGE = "驳回申诉 <A编号> <理由>"
DENY_EXAMPLE = "驳回申诉 A3 已核实无误"
DECIDERS = ("manager", "hr", "admin")
DASHES = ("-", "—", "–", "－")
_NUMBERISH = re.compile(r"^[+\-]?\d+(?:积分|分)?$")


def parse_ref(token: str, prefix: str) -> int | None:
    """``E12`` / ``e12`` → 12 for prefix ``E``; anything else → None."""
    m = re.fullmatch(rf"{prefix}(\d{{1,12}})", token.strip(), re.IGNORECASE)
    return int(m.group(1)) if m else None


def describe_txn(ctx: Context, txn_id: int | None) -> str:
    if txn_id is None:
        return msg.MISSING_POINTS
    txn = ctx.queries.txn(txn_id)
    if txn is None:
        return f"E{txn_id}"
    return msg.txn_subject(txn.id, txn.kind, txn.amount, txn.reason)


def handle_appeal(event: Event, ctx: Context) -> Reply:
    args = ctx.args.strip()
    if args[:1] in DASHES:
        txn_id, reason = None, args[1:].strip()
    else:
        first, _, reason = args.partition(" ")
        txn_id, reason = parse_ref(first, "E"), reason.strip()
        if txn_id is None:
            return Text(msg.usage_text("appeal", APPEAL_USAGE, APPEAL_EXAMPLE, msg.NEED_TXN_REF))
    if not reason:
        return Text(msg.usage_text("appeal", APPEAL_USAGE, APPEAL_EXAMPLE, msg.NEED_REASON))
    if len(reason) > REASON_MAX:
        return Text(msg.usage_text("appeal", APPEAL_USAGE, APPEAL_EXAMPLE, msg.REASON_TOO_LONG.format(max=REASON_MAX)))
    member = ctx.me
    appeal = ctx.appeals.create(member, txn_id, reason)
    subject = describe_txn(ctx, txn_id)
    who = ctx.appeals.reviewers(appeal)
    plan = appeals.plan_for(ctx.queries.txn(txn_id) if txn_id is not None else None)
    for reviewer in who:
        card = cards.appeal_review(appeal_id=appeal.id, employee=member.name, employee_no=member.employee_no,
                                   subject=subject, reason=reason, reviewer_id=reviewer.id, plan=plan.value,
                                   deny_reasons=ctx.settings.appeals["deny_reasons"])
        ctx.notify(reviewer.id, card, key=f"A{appeal.id}:review:{reviewer.id}")
    told = msg.REVIEWERS_TOLD.format(n=len(who)) if who else msg.NO_REVIEWER
    return Text(msg.APPEAL_FILED.format(id=appeal.id, subject=subject, told=told))


def _outcome(ctx: Context, decision: appeals.Decision, points: int | None) -> str:
    appeal, txn = decision.appeal, decision.txn
    if not decision.approved:
        return ""
    assert txn is not None
    if decision.plan is appeals.Plan.POINTS:
        return msg.APPEAL_TOPPED_UP.format(points=points, txn=txn.id)
    appealed = ctx.queries.txn(appeal.txn_id) if appeal.txn_id is not None else None
    if appealed is not None and appealed.kind == TxnKind.EXPIRE:
        days = ctx.settings.points["validity_days"]
        return msg.APPEAL_EXPIRY_RESTORED.format(points=txn.amount, txn=txn.id, days=days)
    return msg.APPEAL_UNDONE.format(appealed=appeal.txn_id, points=txn.amount, txn=txn.id)


def _decide(event: Event, ctx: Context, approve: bool) -> Reply:
    name, usage, example = ("approve", APPROVE_USAGE, APPROVE_EXAMPLE) if approve else ("deny", DENY_USAGE, DENY_EXAMPLE)
    tokens = ctx.args.split()
    appeal_id = parse_ref(tokens[0], "A") if tokens else None
    if appeal_id is None:
        return Text(msg.usage_text(name, usage, example, msg.NEED_APPEAL_REF))
    rest, points = tokens[1:], None
    if approve and rest and _NUMBERISH.match(rest[0]):
        points = parse_points(rest[0])
        if points is None:
            return Text(msg.usage_text(name, usage, example, msg.BAD_POINTS))
        rest = rest[1:]
    note = " ".join(rest)
    if not approve and not note:  # the appellant is always told why
        return Text(msg.usage_text(name, usage, example, msg.NEED_REASON.format(
            presets="、".join(ctx.settings.appeals["deny_reasons"]))))
    if len(note) > REASON_MAX:
        return Text(msg.usage_text(name, usage, example, msg.NOTE_TOO_LONG.format(max=REASON_MAX)))
    decider = ctx.me
    decision = ctx.appeals.decide(appeal_id, decider, approve=approve, points=points, note=note)
    outcome = _outcome(ctx, decision, points)
    appellant = ctx.members.get(decision.appeal.employee_id)
    assert appellant is not None
    ctx.close_cards(f"A{appeal_id}", "approved" if approve else "denied", decider)
    ctx.notify(appellant.id, cards.appeal_decided(appeal_id=appeal_id, approved=approve, decider=decider.name,
                                                  outcome=outcome, note=note), key=f"A{appeal_id}:decided")
    text = msg.APPEAL_DECIDED.format(id=appeal_id, outcome=outcome, name=appellant.name) if approve else \
        msg.APPEAL_DENIED.format(id=appeal_id, note=note, name=appellant.name)
    if decision.plan is appeals.Plan.POINTS and decider.role == "manager":
        text += msg.FROM_YOUR_BUDGET.format(left=budget_left(ctx, decider.id))
    return Text(text)


def handle_approve(event: Event, ctx: Context) -> Reply:
    return _decide(event, ctx, True)


def handle_deny(event: Event, ctx: Context) -> Reply:
    return _decide(event, ctx, False)


def register(router: Router) -> None:
    router.command("appeal", aliases=("申诉",), usage=APPEAL_USAGE, example=APPEAL_EXAMPLE,
                   summary="对积分记录提出申诉")(handle_appeal)
    router.command("approve", aliases=("通过申诉",), roles=DECIDERS, usage=APPROVE_USAGE, example=APPROVE_EXAMPLE,
                   summary="通过申诉（补发或撤销）")(handle_approve)
    router.command("deny", aliases=("驳回申诉",), roles=DECIDERS, usage=DENY_USAGE, example=DENY_EXAMPLE,
                   summary="驳回申诉")(handle_deny)

