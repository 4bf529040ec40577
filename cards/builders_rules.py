"""The 规则 card, worded from the configuration's rules and the catalog's prices (what the approval handler
and the shop actually use), so it can never disagree with them."""
from __future__ import annotations

from typing import Sequence

from cards.builders import rules_card as _card
from cards.model import Card
from settings import Rule, Settings

PLATFORM_TEXT = {"dingtalk": "钉钉审批", "wecom": "企业微信审批"}
PERIOD_TEXT = {"month": "每月", "quarter": "每季度", "year": "每年"}


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def rule_line(rule: Rule) -> str:
    """One line per rule: fixed points, or each tier (highest first), plus the cap if any."""
    where = PLATFORM_TEXT.get(rule.platform, rule.platform)
    if rule.points is not None:
        what = f"{rule.points} 积分"
    else:
        tiers = " / ".join(f"≥{_num(t.min)}: {t.points}" for t in sorted(rule.tiers, key=lambda t: -t.min))
        what = f"按「{rule.field}」分档 {tiers} 积分"
    cap = f"，{PERIOD_TEXT.get(rule.max_period, rule.max_period)}最多 {rule.max_count} 次" if rule.max_count else ""
    return f"· {rule.name}（{where}通过后自动发放）: {what}{cap}"


def policy_lines(settings: Settings) -> list[str]:
    pts = settings.points
    lines = [f"· 积分自获得起 {pts['validity_days']} 天后过期，兑换时先使用最早过期的积分。",
             f"· 经理每月有 {pts['manager_monthly_budget']} 积分的奖励额度"
             + ("，未用完可累积到下月" if pts["budget_rollover"] else "，未用完不累积")
             + f"；单次最多奖励 {pts['max_award']} 积分，不能奖励自己。",
             "· 兑换需先下单再确认，确认后冻结积分；HR 发放前可随时取消，被拒绝时积分原路退回。",
             "· 24 小时内未确认的订单自动失效。",
             "· 对积分记录有疑问可发送: 申诉 E<编号> <理由>"]
    return lines


def rules_card(settings: Settings, shelf: Sequence[tuple[str, int]]) -> Card:
    """``shelf`` is the active items' (name, cost) in shop order."""
    earning = [rule_line(r) for r in settings.rules]
    catalog = [f"· {i}. {name}: {cost} 积分" for i, (name, cost) in enumerate(shelf, start=1)]
    return _card(earning=earning, catalog=catalog, policy=policy_lines(settings))
