"""绑定/bind, 解绑/unbind, 确认解绑/confirm-unbind, 强制解绑/force-unbind and 绑定码/bind-code.

Binding proves identity with a one-time code from HR (``绑定码`` in chat or ``flask bind-code``), so it
is open to unbound users. Unbinding goes through a request the account's owner confirms (HR may start
one for someone else, for one platform or all); when the owner cannot confirm (left, lost the
account) HR and admins force it, with a reason for the audit log. After either, nothing is pushed to
that account (the outbox resolves bindings when it sends), and the roster does not bind it again.
"""
from __future__ import annotations

import re


from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import CardReply, Reply, Text
from bot.core.router import Router
from cards import builders_people as cards
from cards import messages as msg
from handlers.appeal import parse_ref
from handlers.award import find_target, one_person
from storage import bindings
from storage.errors import InvalidCode, UnknownEmployee
from storage.models import REASON_MAX, Employee

BIND_USAGE = "绑定 <工号> <绑定码>（绑定码向 HR 索取，24 小时内有效）"
BIND_EXAMPLE = "绑定 1002 48392017"
UNBIND_USAGE = "解绑 [工号/@同事/姓名] [钉钉|企业微信]（为他人解绑仅限 HR、管理员）"
UNBIND_EXAMPLE = "解绑"
FORCE_USAGE = "强制解绑 <工号/@同事/姓名> [钉钉|企业微信] <原因>"
FORCE_EXAMPLE = "强制解绑 1002 钉钉 账号已停用"
CODE_USAGE = "绑定码 <工号/@同事/姓名>"
CODE_EXAMPLE = "绑定码 1002"
PLATFORM_WORDS = {"钉钉": "dingtalk", "dingtalk": "dingtalk", "企业微信": "wecom", "企微": "wecom", "wecom": "wecom"}
CONFIRM_USAGE = "确认解绑 <U编号>"
CONFIRM_EXAMPLE = "确认解绑 U3"
_CODE = re.compile(r"^\d{6,8}$")


def handle_bind(event: Event, ctx: Context) -> Reply:
    tokens = ctx.args.split()
    if len(tokens) != 2 or not _CODE.match(tokens[1]):
        return Text(msg.usage_text("bind", BIND_USAGE, BIND_EXAMPLE))
    employee_no, code = tokens
    user_id = event.actor.platform_user_id
    current = ctx.members.binding_for(event.platform, user_id)
    if current is not None:  # checked first, so a code is not used up for nothing
        owner = ctx.members.get(current.employee_id)
        if owner is not None and owner.employee_no == employee_no:
            return Text(msg.ALREADY_BOUND.format(name=owner.name, no=owner.employee_no))
        return Text(msg.BOUND_ELSEWHERE)
    try:
        emp = ctx.bindings.redeem_code(employee_no, code)
    except InvalidCode as exc:  # answered, not raised: the wrong-try count must be kept
        return Text(msg.domain_error(exc))
    ctx.members.bind(emp, event.platform, user_id, actor_id=emp.id, how="code")
    return Text(msg.BIND_DONE.format(name=emp.name, no=emp.employee_no))


def _accounts(ctx: Context, employee_id: int, platform: str) -> str:
    bound = ctx.members.bound_ids(employee_id)
    shown = [f"{msg.PLATFORM_NAMES.get(p, p)} {uid}" for p, uid in sorted(bound.items()) if not platform or p == platform]
    return "、".join(shown)


def _platform_of(tokens: list[str]) -> tuple[list[str], str]:
    """The tokens without a platform word, and the platform it named ("" for none)."""
    for i, token in enumerate(tokens):
        if (platform := PLATFORM_WORDS.get(token.casefold())) is not None:
            return tokens[:i] + tokens[i + 1:], platform
    return tokens, ""


def handle_unbind(event: Event, ctx: Context) -> Reply:
    member = ctx.me
    target = member
    tokens, platform = _platform_of(ctx.args.split())
    if tokens:
        try:
            target = find_target(ctx, event, tokens[0])
        except UnknownEmployee as exc:
            return Text(msg.usage_text("unbind", UNBIND_USAGE, UNBIND_EXAMPLE, msg.domain_error(exc)))
    if target.id == member.id and not platform:
        platform = event.platform
    accounts = _accounts(ctx, target.id, platform)
    if not accounts:
        return Text(msg.NOTHING_TO_UNBIND.format(name=target.name, no=target.employee_no))
    req = ctx.bindings.request_unbind(target, member, platform)
    if req.status == bindings.DONE:
        return Text(msg.LEAVER_UNBOUND.format(name=target.name, accounts=accounts, id=req.id))
    if target.id == member.id:
        return CardReply(cards.unbind_confirm(request_id=req.id, employee=target.name, accounts=accounts))
    card = cards.unbind_confirm(request_id=req.id, employee=target.name, accounts=accounts, by_other=member.name)
    ctx.notify(target.id, card, key=f"U{req.id}:confirm")
    return Text(msg.UNBIND_REQUESTED.format(id=req.id, name=target.name, no=target.employee_no))


def handle_confirm_unbind(event: Event, ctx: Context) -> Reply:
    tokens = ctx.args.split()
    req_id = parse_ref(tokens[0], "U") if len(tokens) == 1 else None
    req = ctx.bindings.get(req_id) if req_id is not None else None
    if req is None:
        return Text(msg.usage_text("confirm-unbind", CONFIRM_USAGE, CONFIRM_EXAMPLE, msg.NO_UNBIND_REQUEST))
    member = ctx.me
    count = ctx.bindings.complete(req, member)
    ctx.close_cards(f"U{req.id}", "unbound", member)
    target = ctx.members.get(req.employee_id)
    if req.requested_by != member.id and target is not None:
        ctx.notify(req.requested_by, cards.unbind_done(request_id=req.id, employee=target.name, count=count),
                   key=f"U{req.id}:done")
    return Text(msg.UNBIND_DONE.format(count=count, id=req.id))


def handle_force_unbind(event: Event, ctx: Context) -> Reply:
    tokens, platform = _platform_of(ctx.args.split())
    if not tokens:
        return Text(msg.usage_text("force-unbind", FORCE_USAGE, FORCE_EXAMPLE))
    try:
        target = find_target(ctx, event, tokens[0])
    except UnknownEmployee as exc:
        return Text(msg.usage_text("force-unbind", FORCE_USAGE, FORCE_EXAMPLE, msg.domain_error(exc)))
    reason = " ".join(tokens[1:])
    if not reason:
        return Text(msg.usage_text("force-unbind", FORCE_USAGE, FORCE_EXAMPLE, msg.NEED_FORCE_REASON))
    if len(reason) > REASON_MAX:
        return Text(msg.REASON_TOO_LONG.format(max=REASON_MAX))
    accounts = _accounts(ctx, target.id, platform)
    if not accounts:
        return Text(msg.NOTHING_TO_UNBIND.format(name=target.name, no=target.employee_no))
    count = ctx.bindings.force_unbind(target, ctx.me, platform, reason)
    if ctx.members.bound_ids(target.id):  # told where they can still be reached
        ctx.notify(target.id, cards.force_unbound_notice(employee=target.name, accounts=accounts, by=ctx.me.name,
                                                         reason=reason), key=f"force-unbind:{event.event_id}")
    return Text(msg.FORCE_UNBOUND.format(name=target.name, no=target.employee_no, count=count, accounts=accounts,
                                         reason=reason))


def handle_bind_code(event: Event, ctx: Context) -> Reply:
    """Answered only one-to-one: in a group everyone present would read the code."""
    target = one_person(ctx, event, "bind-code", CODE_USAGE, CODE_EXAMPLE)
    if not isinstance(target, Employee):
        return target
    if target.status != "active":
        return Text(msg.BIND_CODE_LEAVER.format(name=target.name, no=target.employee_no))
    text = msg.BIND_CODE.format(name=target.name, no=target.employee_no, code=ctx.bindings.issue_code(target),
                                hours=int(bindings.CODE_VALIDITY.total_seconds() // 3600))
    if not event.conversation.is_group:
        return Text(text)
    ctx.notify(ctx.me.id, cards.bind_code_card(text), key=f"bind-code:{event.platform}:{event.event_id}")
    return Text(msg.BIND_CODE_PRIVATE)


def register(router: Router) -> None:
    router.command("bind", aliases=("绑定",), open=True, usage=BIND_USAGE, example=BIND_EXAMPLE,
                   summary="用绑定码绑定员工账号")(handle_bind)
    router.command("unbind", aliases=("解绑",), usage=UNBIND_USAGE, example=UNBIND_EXAMPLE,
                   summary="解除聊天账号绑定")(handle_unbind)
    router.command("confirm-unbind", aliases=("确认解绑",), usage=CONFIRM_USAGE, example=CONFIRM_EXAMPLE,
                   summary="确认解绑申请")(handle_confirm_unbind)
    router.command("force-unbind", aliases=("强制解绑",), roles=bindings.ADMIN_ROLES, usage=FORCE_USAGE,
                   example=FORCE_EXAMPLE, summary="员工无法确认时直接解绑（需写明原因）")(handle_force_unbind)
    router.command("bind-code", aliases=("绑定码",), roles=bindings.ADMIN_ROLES, usage=CODE_USAGE,
                   example=CODE_EXAMPLE, summary="为员工生成一次性绑定码（只私聊发送）")(handle_bind_code)
