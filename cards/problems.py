"""What is wrong with a row HR gave, in words for HR: a catalog item, an earning rule, a gift-card code.

The codes come from settings_rules.py (``check_item``, ``check_rule``; English words there, for the configuration
and the CLI) and storage/gift_codes.py; the console and the CSV imports show these.
"""
from __future__ import annotations

from typing import Any

from cards.messages import ITEM_KINDS, REASONS

CATALOG_PROBLEMS = {
    "sku": "sku 不能为空，最多 64 个字符且不含空格",
    "name": "名称不能为空，最多 128 个字符",
    "cost": "积分必须是正整数",
    "stock": "库存必须是不小于 0 的整数（留空表示不限）",
    "kind": "类型必须是 " + " / ".join(ITEM_KINDS),
    "description": "说明最多 500 个字符",
    "active": "上架请填 true 或 false",
    "limit": "限兑数量必须是正整数（留空表示不限）",
    "limit_period": "限兑周期必须是 week / month / quarter / year，且与限兑数量一起填写",
    "sort": "排序必须是整数",
    "leave_days": "假期类商品需填写 1 到 365 的天数",
    "leave_days_not_leave": "只有假期类商品可以填写天数",
    "charity": "捐赠类商品需填写受捐机构名称（1 到 40 个字符）",
    "charity_not_donation": "只有捐赠类商品可以填写受捐机构",
    "duplicate": "同一个 sku 在文件里出现了两次",
    "taken": "这个 sku 已经有商品了",
}


RULE_PROBLEMS = {
    "rule_name": "名称不能为空，最多 128 个字符",
    "platform": "平台必须是 dingtalk 或 wecom",
    "template": "请填写审批模板编号（钉钉 processCode / 企业微信 TemplateId），不含空格",
    "points_or_tiers": "请填写固定积分，或填写表单字段和分档（二选一）",
    "points": "积分必须是正整数",
    "tiers": "分档格式如 90:110%;80:100%;0:0% 或 90:500;60:-50（分数:积分 或 分数:百分比%）",
    "tiers_overlap": "两个分档的分数相同（分档重叠）",
    "tiers_need_base": "按百分比分档需要填写基数积分",
    "field": "分档需要填写审批表单里分数字段的名称",
    "base_points": "基数积分必须是正整数",
    "category": "类别不能为空，最多 32 个字符",
    "max_count": "次数上限必须是正整数（留空表示不限）",
    "max_period": "上限周期必须是 month / quarter / year，且与次数一起填写",
    "active": "启用请填 true 或 false",
    "unknown_rule": "没有这个编号的规则（新增规则请把 id 留空）",
    "duplicate": "同一条规则在文件里出现了两次",
    "rule_template_taken": "这个审批模板已有一条启用的规则",
}


def rule_problem(code: str, **params: Any) -> str:
    """A rule's problem in words for HR (settings_rules.py ``RULE_PROBLEMS`` words them for the configuration)."""
    if code == "rule_template_taken" and params:
        return REASONS[code].format(**params)
    return RULE_PROBLEMS.get(code, code)


def catalog_problem(code: str) -> str:
    """A catalog row's problem in words for HR (the CLI words it as the configuration does:
    settings_rules.py ``CONFIG_PROBLEMS``)."""
    return CATALOG_PROBLEMS.get(code, code)


CODE_HEADERS = ("code", "codes", "卡密", "卡号")  # a first row HR's file may have (storage/gift_codes.py read_codes)
CODE_PROBLEMS = {"duplicate": "卡密已在库中（或文件里重复），已跳过", "code_format": "卡密不能含空格，最多 200 个字符"}
