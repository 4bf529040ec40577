"""Cards about platform events: approvals decided, employees who left (sent by handlers/approvals.py and
handlers/members.py). The HR-facing ones say what a person must decide, because nothing else will."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from cards.model import Card

PLATFORM_NAMES = {"wecom": "企业微信", "dingtalk": "钉钉"}
SHOW_ORDERS = 10


def approval_notice(kind: str, d: Mapping[str, Any]) -> Card:
    """Chinese first: the rule name and the approval title are what the employee recognises."""
    title = d.get("title") or "（无标题）"
    who = f"{d.get('employee', '')}（{d.get('employee_no', '')}）"
    if kind == "awarded":
        return Card(title=f"审批通过，你获得了 {d['points']} 积分",
                    fields=(("规则", d["rule"]), ("审批", title), ("当前可用积分", str(d["balance"])),
                            ("记录编号", f"E{d['txn_id']}")),
                    footer=f"如有疑问可发送: 申诉 E{d['txn_id']} <原因>")
    if kind == "reversed":
        lines = (f"已扣回 {d['points']} 积分。",)
        if d.get("shortfall"):
            lines += (f"另有 {d['shortfall']} 积分已被使用，无法扣回，HR 会与你联系。",)
        return Card(title="审批已撤销，相应积分已扣回", lines=lines,
                    fields=(("规则", d["rule"]), ("审批", title), ("当前可用积分", str(d["balance"])),
                            ("记录编号", f"E{d['txn_id']}")))
    if kind == "deducted":
        return Card(title=f"审批结果：按规则扣除 {d['points']} 积分",
                    fields=(("规则", d["rule"]), ("审批", title), ("当前可用积分", str(d["balance"])),
                            ("记录编号", f"E{d['txn_id']}")),
                    footer=f"如有疑问可发送: 申诉 E{d['txn_id']} <原因>")
    if kind == "deduction_short":
        return Card(title=f"规则扣除：{d['shortfall']} 积分余额不足未扣",
                    lines=(f"{who} 按规则应扣 {d['points'] + d['shortfall']} 积分，余额只够扣 {d['points']} 积分；"
                           "钱包不能为负，差额已记录，请 HR 决定如何处理。",),
                    fields=(("规则", d["rule"]), ("审批", title), ("已扣除", str(d["points"])),
                            ("差额", str(d["shortfall"])), ("审批编号", d["instance_id"])))
    if kind == "capped":
        return Card(title="审批已通过，但本次未发放积分", lines=(d["note"],),
                    fields=(("规则", d["rule"]), ("审批", title)))
    if kind == "shortfall":
        return Card(title=f"审批撤销：{d['shortfall']} 积分无法扣回",
                    lines=(f"{who} 的积分已被使用，钱包不能为负，差额已记录，请 HR 决定如何处理。",),
                    fields=(("规则", d["rule"]), ("审批", title), ("已扣回", str(d["points"])),
                            ("差额", str(d["shortfall"])), ("撤销记录", f"E{d['txn_id']}")))
    if kind == "unknown_applicant":
        return Card(title="审批通过，但找不到申请人",
                    lines=(f"{PLATFORM_NAMES.get(d['platform'], d['platform'])}账号 {d['user_id']} 未绑定员工，"
                           "花名册中也没有这个账号。补全花名册后，对账任务会自动补发。",),
                    fields=(("规则", d["rule"]), ("审批", title), ("审批编号", d["instance_id"])))
    # no_field, frozen and other skips: HR is told why nothing was awarded
    return Card(title="审批通过，但未发放积分", lines=(d.get("note", ""),),
                fields=(("员工", who), ("规则", d["rule"]), ("审批", title), ("审批编号", d["instance_id"])))


def leaver_card(*, name: str, employee_no: str, balance: int, pending_orders: Sequence[tuple[int, str, int]],
                platform: str) -> Card:
    lines = [f"{name}（{employee_no}）已离职：聊天账号已全部解绑，积分账户已冻结。"]
    if pending_orders:
        lines.append(f"待处理订单 {len(pending_orders)} 个，请决定发放或拒绝：")
        lines += [f"R{oid} {item} {cost} 积分  →  发放 R{oid} / 拒绝订单 R{oid}"
                  for oid, item, cost in pending_orders[:SHOW_ORDERS]]
        if len(pending_orders) > SHOW_ORDERS:
            lines.append(f"…… 另有 {len(pending_orders) - SHOW_ORDERS} 个")
    lines.append(f"剩余积分将按离职政策处理；如属误操作，请管理员在服务器上执行: "
                 f"flask --app app reactivate {employee_no}")
    return Card(title=f"员工离职：{name}", lines=tuple(lines),
                fields=(("剩余积分", str(balance)), ("待处理订单", str(len(pending_orders))),
                        ("来源", PLATFORM_NAMES.get(platform, platform))))
