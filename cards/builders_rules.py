"""The 规则 card, worded from the rules and the catalog the database holds (what the approval handler and the
shop actually use), so it can never disagree with them."""
from __future__ import annotations

from typing import Sequence

from cards import messages as msg
from cards.builders import rules_card as _card
from cards.model import Card
from settings import Rule, Settings, Tier

PLATFORM_TEXT = {"dingtalk": "钉钉审批", "wecom": "企业微信审批"}
PERIOD_TEXT = {"month": "每月", "quarter": "每季度", "year": "每年"}


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _tier(t: Tier, base: int | None) -> str:
    """``≥90: 142（110%）``, ``≥60: 扣 50``: what the tier gives, worked out."""
    amount = t.amount(base)
    given = f"扣 {-amount}" if amount < 0 else str(amount)
    return f"≥{_num(t.min)}: {given}" + (f"（{_num(t.percent)}%）" if t.percent is not None else "")


def rule_line(rule: Rule) -> str:
    """One line per rule: fixed points, or each tier (highest first), plus the cap and the version."""
    where = PLATFORM_TEXT.get(rule.platform, rule.platform)
    if rule.points is not None:
        what = f"{rule.points} 积分"
    else:
        tiers = " / ".join(_tier(t, rule.base_points) for t in sorted(rule.tiers, key=lambda t: -t.min))
        base = f"（基数 {rule.base_points}）" if rule.base_points is not None else ""
        what = f"按「{rule.field}」分档{base} {tiers} 积分"
    cap = f"，{PERIOD_TEXT.get(rule.max_period, rule.max_period)}最多 {rule.max_count} 次" if rule.max_count else ""
    version = f"（第 {rule.version} 版）" if rule.version > 1 else ""
    return f"· {rule.name}{version}（{where}通过后自动发放）: {what}{cap}"


def policy_lines(settings: Settings, changed: str = "") -> list[str]:
    pts = settings.points
    lines = [f"· 积分自获得起 {pts['validity_days']} 天后过期，兑换时先使用最早过期的积分。",
             f"· 经理每月一般有 {pts['manager_monthly_budget']} 积分的奖励额度（HR 可为个别经理调整）"
             + ("，未用完可累积到下月" if pts["budget_rollover"] else "，未用完不累积")
             + f"；单次最多奖励 {pts['max_award']} 积分，不能奖励自己。",
             "· 兑换需先下单再确认，确认后冻结积分；HR 发放前可随时取消，被拒绝时积分原路退回。",
             "· 24 小时内未确认的订单自动失效。",
             "· 对积分记录有疑问可发送: 申诉 E<编号> <理由>"]
    if changed:
        lines.append(f"· 获得规则最近一次调整: {changed}（调整只影响之后通过的审批）")
    return lines


def rules_card(settings: Settings, rules: Sequence[Rule], shelf: Sequence[tuple[str, int]], changed: str = "") -> Card:
    """``rules`` are the active earning rules as they are now, ``shelf`` the active items' (name, cost) in shop
    order, ``changed`` the local date of the rules' last change ("" when never changed since they were loaded)."""
    earning = [rule_line(r) for r in rules if r.active]
    catalog = [f"· {i}. {name}: {cost} 积分" for i, (name, cost) in enumerate(shelf, start=1)]
    return _card(earning=earning, catalog=catalog, policy=policy_lines(settings, changed))


def rule_announcement(old: Rule | None, new: Rule, *, changed_by: str) -> Card:
    """To the announcement groups when HR ticks 公告 on saving a rule: what it was, what it is, from when."""
    lines = [f"调整前：{rule_line(old).lstrip('· ')}" if old is not None and old.active else "新增规则",
             f"调整后：{rule_line(new).lstrip('· ')}" if new.active else "该规则已停用"]
    return Card(title=f"积分规则调整：{new.name}", lines=tuple(lines),
                footer=f"由 {changed_by} 调整，只影响此后通过的审批；发送「规则」查看全部规则。")


def item_line(*, name: str, kind: str, cost: int, limit: str, active: bool) -> str | None:
    """An item as the announcement shows it; None when it is off the shelf."""
    if not active:
        return None
    return f"{name}（{msg.ITEM_KINDS.get(kind, kind)}）{cost} 积分" + (f"，{limit}" if limit else "")


def catalog_announcement(old_line: str | None, new_line: str | None, *, name: str, changed_by: str) -> Card:
    """To the announcement groups when HR ticks 公告 on saving a catalog item."""
    lines = [f"调整前：{old_line}" if old_line else "新上架", f"调整后：{new_line}" if new_line else "已下架"]
    return Card(title=f"积分商城调整：{name}", lines=tuple(lines), footer=f"由 {changed_by} 调整；发送「商城」查看全部商品。")
