"""奖励/award and 扣除/deduct: a person, a number of points and a reason.

Managers give from their own monthly budget, within the configured scope and per-award maximum;
HR and admins give from issuance and may deduct. Nobody changes their own balance (OWASP API1/5).
A repeat of the same award inside 60 s is refused: a user typing twice is a new message, not a
platform retry, so only a business-level check catches it (docs/reliability.md §3.3).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta


from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import Reply, Text
from bot.core.router import Router
from cards import builders_people as cards
from cards import messages as msg
from storage.errors import NotPermitted, UnknownEmployee
from storage.ledger import MAX_POINTS
from storage.models import REASON_MAX, Employee, Txn

AWARD_USAGE = "奖励 <工号/@同事/姓名> <积分> <原因>"
AWARD_EXAMPLE = "奖励 1002 50 帮忙排查线上故障"
DEDUCT_USAGE = "扣除 <工号/@同事/姓名> <积分> <原因>"
DEDUCT_EXAMPLE = "扣除 1002 20 重复领取"
DOUBLE_SEND_WINDOW = timedelta(seconds=60)
GIVERS = ("manager", "hr", "admin")
_POINTS = re.compile(r"^\+?(\d{1,9})(?:积分|分)?$")
_NUMBER = re.compile(r"^[+-]?\d+(?:积分|分)?$")


@dataclass(frozen=True)
class Change:
    person: Employee
    points: int
    reason: str


def parse_points(token: str) -> int | None:
    """A positive whole number (``50``, ``+50``, ``50分``); anything else is None."""
    m = _POINTS.match(token)
    if m is None:
        return None
    n = int(m.group(1))
    return n if 0 < n <= MAX_POINTS else None


def points_problem(ctx: Context, token: str) -> str:
    """What is wrong with a points token: a number out of range is told its range (a manager's is max_award)."""
    if _NUMBER.match(token) is None:
        return msg.BAD_POINTS
    top = int(ctx.settings.points["max_award"]) if ctx.me.role == "manager" else MAX_POINTS
    return msg.POINTS_RANGE.format(max=top)


def find_target(ctx: Context, event: Event, token: str) -> Employee:
    """An ``@name`` token means the platform's mention list, which carries the real user id."""
    mentions = tuple(getattr(event, "mentions", ()) or ())
    if token.startswith("@") and mentions:
        return ctx.members.find("", event.platform, mentions[:1])
    return ctx.members.find(token, event.platform)


def one_person(ctx: Context, event: Event, command: str, usage: str, example: str,
               spaced_mention: bool = False) -> Employee | Reply:
    """The one person a command names (``<工号/@同事/姓名>``), or the usage reply that ends the command here.
    ``spaced_mention``: an @mention may run over several words (display names may hold spaces)."""
    tokens = ctx.args.split()
    if len(tokens) != 1 and not (spaced_mention and tokens and tokens[0].startswith("@")):
        return Text(msg.usage_text(command, usage, example))
    try:
        return find_target(ctx, event, tokens[0])
    except UnknownEmployee as exc:
        return Text(msg.usage_text(command, usage, example, msg.domain_error(exc)))


def parse_change(ctx: Context, event: Event) -> Change | str:
    """``<person> <points> <reason>``; returns the problem text instead when the input is bad."""
    tokens = ctx.args.split()
    at = 1
    if tokens and tokens[0].startswith("@") and getattr(event, "mentions", ()):
        # a display name may contain spaces: the points are the first number after it
        at = next((i for i in range(1, len(tokens)) if parse_points(tokens[i]) is not None), len(tokens))
    if len(tokens) < at + 2:
        return msg.NEED_TARGET
    points = parse_points(tokens[at])
    if points is None:
        return points_problem(ctx, tokens[at])
    reason = " ".join(tokens[at + 1:])
    if len(reason) > REASON_MAX:
        return msg.REASON_TOO_LONG.format(max=REASON_MAX)
    try:
        person = find_target(ctx, event, tokens[0])
    except UnknownEmployee as exc:
        return msg.domain_error(exc)
    return Change(person=person, points=points, reason=reason)


def check_award_allowed(ctx: Context, giver: Employee, change: Change) -> None:
    """Self, scope and size rules; the budget itself is checked atomically by the ledger."""
    if change.person.id == giver.id:
        raise NotPermitted("self award", reason="self_award")
    if giver.role != "manager":
        return
    points_cfg = ctx.settings.points
    if change.points > int(points_cfg["max_award"]):
        raise NotPermitted("over max award", reason="over_max_award", max=points_cfg["max_award"])
    if points_cfg["manager_award_scope"] == "team" and not ctx.members.in_team(giver.id, change.person.id):
        raise NotPermitted("outside team", reason="outside_team")


def recent_twin(ctx: Context, kind: str, giver: Employee, change: Change, signed: int) -> Txn | None:
    """The same giver, receiver and points within the window: probably a double send."""
    return ctx.queries.recent_twin(kind=kind, actor_id=giver.id, employee_id=change.person.id,
                               amount=signed, since=ctx.now() - DOUBLE_SEND_WINDOW)


def wallet_balance(ctx: Context, employee_id: int) -> int:
    return ctx.ledger.balance(ctx.ledger.wallet(employee_id).id)


def budget_left(ctx: Context, manager_id: int) -> int:
    return ctx.ledger.balance(ctx.ledger.budget(manager_id).id)


def handle_award(event: Event, ctx: Context) -> Reply:
    change = parse_change(ctx, event)
    if isinstance(change, str):
        return Text(msg.usage_text("award", AWARD_USAGE, AWARD_EXAMPLE, change))
    giver = ctx.me
    key = f"award:{event.platform}:{event.event_id}"
    txn = ctx.ledger.find(key)
    if txn is None:
        check_award_allowed(ctx, giver, change)
        twin = recent_twin(ctx, "award", giver, change, change.points)
        if twin is not None:
            return Text(msg.DUPLICATE_CHANGE.format(name=change.person.name, points=change.points, txn=twin.id,
                                                    verb=msg.VERB_AWARD))
        txn = ctx.ledger.award(change.person.id, change.points, idem_key=key, reason=change.reason,
                               category="manual", actor_id=giver.id,
                               budget_of=giver.id if giver.role == "manager" else None)
    balance = wallet_balance(ctx, change.person.id)
    ctx.notify(change.person.id, cards.award_notice(points=change.points, giver=giver.name, reason=change.reason,
                                                    balance=balance, txn_id=txn.id), key=f"E{txn.id}:notice")
    text = msg.AWARDED.format(name=change.person.name, no=change.person.employee_no, points=change.points, txn=txn.id)
    if giver.role == "manager":
        text += msg.BUDGET_LEFT.format(left=budget_left(ctx, giver.id))
    return Text(text)


def handle_deduct(event: Event, ctx: Context) -> Reply:
    change = parse_change(ctx, event)
    if isinstance(change, str):
        return Text(msg.usage_text("deduct", DEDUCT_USAGE, DEDUCT_EXAMPLE, change))
    actor = ctx.me
    key = f"deduct:{event.platform}:{event.event_id}"
    txn = ctx.ledger.find(key)
    if txn is None:
        if change.person.id == actor.id:
            raise NotPermitted("self award", reason="self_award")
        twin = recent_twin(ctx, "deduct", actor, change, -change.points)
        if twin is not None:
            return Text(msg.DUPLICATE_CHANGE.format(name=change.person.name, points=change.points, txn=twin.id,
                                                    verb=msg.VERB_DEDUCT))
        txn = ctx.ledger.deduct(change.person.id, change.points, idem_key=key, reason=change.reason,
                                actor_id=actor.id)
    balance = wallet_balance(ctx, change.person.id)
    ctx.notify(change.person.id, cards.deduct_notice(points=change.points, actor=actor.name, reason=change.reason,
                                                     balance=balance, txn_id=txn.id), key=f"E{txn.id}:notice")
    return Text(msg.DEDUCTED.format(name=change.person.name, no=change.person.employee_no, points=change.points,
                                    txn=txn.id, balance=balance))


def register(router: Router) -> None:
    router.command("award", aliases=("奖励", "give"), roles=GIVERS, usage=AWARD_USAGE, example=AWARD_EXAMPLE,
                   summary="给同事发放积分（经理使用本月额度）")(handle_award)
    router.command("deduct", aliases=("扣除",), roles=("hr", "admin"), usage=DEDUCT_USAGE, example=DEDUCT_EXAMPLE,
                   summary="扣除员工积分")(handle_deduct)
