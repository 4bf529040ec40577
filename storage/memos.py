"""The words stored with a record: ledger memos (``Txn.reason``) and approval notes.

Everything a user reads that is not stored is worded in ``cards/`` (``cards/messages.py``); these are
the exception because they are data. A transaction's memo is part of the audit trail and must read the
same in a year as the day it was written, whatever the wording in ``cards/`` becomes, and the console,
the exports and the chat all show the stored text. So they are written in the company's language when
the record is made, from the templates here, and nowhere else in ``storage/`` holds user-facing text
(``tests/test_layering.py`` checks it). See docs/architecture.md, "Where text lives".
"""
from __future__ import annotations

# Txn.reason
EXPIRED = "积分到期"
EXPIRED_AFTER_REFUND = "过期"
LEAVER_EXPIRED = "离职积分过期"
LEAVER_TO_POOL = "离职积分转入积分池"
REVERSAL = "撤销 E{txn}"
BUDGET_RESET = "{month} 额度重置"
BUDGET_GRANT = "{month} 月度额度"
BUDGET_TOPUP = "额度追加"
REDEMPTION = "兑换 R{order} {item}×{quantity}"
CANCELLED_REDEMPTION = "取消兑换 R{order}"
REJECTED_ORDER = "拒绝订单 R{order}"
REFUNDED_ORDER = "退款订单 R{order}"
APPEAL_CORRECTION = "申诉 A{appeal} 更正"
APPEAL_REVERSAL = "申诉 A{appeal}: 撤销 E{txn}"
APPROVAL_AWARD = "{rule}：{title}"
APPROVAL_DEDUCTION = "{rule}（自动扣除）：{title}"
DEDUCTION_SHORT = "余额不足，{points} 积分未扣除，待 HR 处理"
APPROVAL_REVOKED = "审批撤销：{rule} {title}"

# ApprovalInstance.note and Shortfall.reason: what HR reads about an approval that awarded nothing
APPLICANT_UNKNOWN = "申请人 {applicant} 未绑定且不在花名册"
AWAITING_FORM = "等待获取表单"
FIELD_MISSING = "表单字段「{field}」缺失或不是数字"
BELOW_LOWEST_TIER = "「{field}」为 {value:g}，低于最低档"
OVER_CAP = "超出上限：每{period}最多 {count} 次"
PERIOD_NAMES = {"month": "月", "quarter": "季度", "year": "年"}
LEAVER_NOT_AWARDED = "员工已离职（账户冻结），未发放"
NOT_AWARDED = "未发放：{error}"
REVOKE_BEFORE_APPROVAL = "撤销先于通过到达"
REVOKED_FROM = "撤销（之前状态 {before}）"
REVERSED_BY_HAND = "奖励已被人工撤销"
SHORTFALL = "审批 {instance} 撤销时积分已被使用"
SHORTFALL_OPEN = "差额 {points} 积分待 HR 处理"


def with_note(memo: str, note: str) -> str:
    """A memo followed by the decider's own words, when they gave any."""
    return f"{memo}: {note}" if note else memo
