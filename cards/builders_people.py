"""Cards for awards, appeals, pending work and binding: domain values in, neutral Card out.

Every button is the typed command it stands for, so a click runs the same checks as typing it.
Cards with buttons get a task_id unique per card instance (WeCom rejects a reused task_id).
"""
from __future__ import annotations

from collections.abc import Sequence

from cards.model import Button, Card


def award_notice(*, points: int, giver: str, reason: str, balance: int, txn_id: int) -> Card:
    """Told to the receiver: who, how many, why and the new balance (and how to object)."""
    return Card(
        title=f"你获得了 {points} 积分",
        fields=(("发放人", giver), ("原因", reason), ("当前可用积分", str(balance)), ("记录编号", f"E{txn_id}")),
        footer=f"如有疑问可发送: 申诉 E{txn_id} <原因>",
    )


def deduct_notice(*, points: int, actor: str, reason: str, balance: int, txn_id: int) -> Card:
    return Card(
        title=f"你被扣除了 {points} 积分",
        fields=(("操作人", actor), ("原因", reason), ("当前可用积分", str(balance)), ("记录编号", f"E{txn_id}")),
        footer=f"如有异议可发送: 申诉 E{txn_id} <原因>",
    )


APPEAL_FOOTERS = {
    "points": "通过需写明补发积分: 通过申诉 {ref} <积分> [备注]（点「通过申诉」会提示写法）",
    "undo": "点「通过申诉」即退回这笔积分；也可发送: 通过申诉 {ref} <积分> [备注]（按积分补发）",
    "none": "兑换、转移类记录不能通过申诉更正，请按订单处理或驳回",
}


def appeal_review(*, appeal_id: int, employee: str, employee_no: str, subject: str, reason: str,
                  reviewer_id: int, plan: str, deny_reasons: Sequence[str] = ()) -> Card:
    """Sent to each reviewer; the buttons are the decide commands (a denial with one of the preset reasons,
    ``[appeals] deny_reasons``), the footer says what approval does."""
    ref = f"A{appeal_id}"
    return Card(
        title=f"新的积分申诉 {ref}",
        fields=(("申诉人", f"{employee}（{employee_no}）"), ("申诉对象", subject), ("理由", reason)),
        buttons=(Button("通过申诉", f"通过申诉 {ref}", "primary"),
                 *(Button(f"驳回：{r}", f"驳回申诉 {ref} {r}", "danger") for r in deny_reasons[:3])),
        footer=APPEAL_FOOTERS[plan].format(ref=ref),
        task_id=f"{ref}-review-{reviewer_id}", subject=ref,
    )


def appeal_decided(*, appeal_id: int, approved: bool, decider: str, outcome: str, note: str) -> Card:
    """Told to the appellant once, whichever reviewer decided."""
    fields = [("处理人", decider), ("结果", outcome), ("备注", note)] if approved else \
        [("处理人", decider), ("驳回理由", note or "未填写")]
    fields = [f for f in fields if f[1]]
    return Card(title=f"你的申诉 A{appeal_id} 已{'通过' if approved else '驳回'}", fields=tuple(fields))


def unbind_confirm(*, request_id: int, employee: str, accounts: str, by_other: str = "") -> Card:
    """Asks the target employee to confirm; nothing is removed until they click."""
    ref = f"U{request_id}"
    lines = [f"{by_other} 发起了解绑申请 {ref}。"] if by_other else [f"解绑申请 {ref} 已创建。"]
    lines.append(f"将解除 {employee} 的聊天账号绑定: {accounts}")
    lines.append("解绑后将不再向这些账号推送消息；如需再次使用请向 HR 索取绑定码。")
    return Card(title=f"确认解绑 {ref}", lines=tuple(lines),
                buttons=(Button("确认解绑", f"确认解绑 {ref}", "danger"),), task_id=f"{ref}-confirm", subject=ref)


def todo_card(sections: list[tuple[str, list[str], int]]) -> Card:
    """Pending work as (heading, shown lines, how many in total) sections."""
    lines: list[str] = []
    for heading, rows, total in sections:
        if total == 0:
            continue
        lines.append(f"【{heading}】{total} 项")
        lines.extend(f"· {row}" for row in rows)
        if total > len(rows):
            lines.append(f"…还有 {total - len(rows)} 项")
    if not lines:
        return Card(title="待办", lines=("暂无待办事项。",))
    return Card(title="待办", lines=tuple(lines))



def force_unbound_notice(*, employee: str, accounts: str, by: str, reason: str) -> Card:
    """Told on the accounts still bound after HR removed some without the employee's confirmation."""
    return Card(title="聊天账号已被解绑", lines=(f"{by} 解除了 {employee} 的聊天账号绑定: {accounts}。", f"原因: {reason}",
                                          "此后不会再向这些账号推送消息；如有疑问请联系 HR。"))


def reversal_notice(*, original: int, points: int, actor: str, reason: str, balance: int, txn_id: int) -> Card:
    """Told to the employee whose record was reversed."""
    return Card(title=f"你的积分记录 E{original} 已被撤销",
                fields=(("积分变动", f"{points:+d}"), ("操作人", actor), ("原因", reason),
                        ("当前可用积分", str(balance)), ("更正记录", f"E{txn_id}")),
                footer=f"如有异议可发送: 申诉 E{txn_id} <原因>")


def refund_notice(*, order_id: int, item: str, quantity: int, points: int, actor: str, reason: str, balance: int,
                  txn_id: int) -> Card:
    """Told to the employee whose fulfilled order HR undid."""
    return Card(title=f"你的订单 R{order_id} 已退款，{points} 积分已退回",
                fields=(("商品", f"{item} ×{quantity}"), ("操作人", actor), ("原因", reason),
                        ("当前可用积分", str(balance)), ("更正记录", f"E{txn_id}")))


def console_link_card(text: str) -> Card:
    """A console login link sent one-to-one (asked for in a group chat)."""
    return Card(title="积分后台登录链接", lines=tuple(text.splitlines()))


def bind_code_card(text: str) -> Card:
    """A bind code sent one-to-one (asked for in a group chat)."""
    return Card(title="绑定码", lines=tuple(text.splitlines()))


def lookup_card(*, name: str, no: str, department: str, active: bool, available: int, on_hold: int,
                lifetime_earned: int, expiring: Sequence[tuple[str, int]], rows: Sequence[str], total: int,
                platforms: Sequence[str]) -> Card:
    """查询: what HR (or the manager) sees about one employee."""
    fields = (("可用积分", str(available)), ("兑换冻结中", str(on_hold)), ("累计获得", str(lifetime_earned)),
              ("已绑定", "、".join(platforms) or "未绑定"))
    lines = [f"部门: {department or '未分部门'}" + ("" if active else "（已离职，账户冻结）")]
    lines += [f"30 天内将过期: {pts} 积分（{when} 到期）" for when, pts in expiring]
    lines.append(f"最近 {len(rows)} 条记录（共 {total} 条）:" if rows else "暂无积分记录。")
    lines += rows
    return Card(title=f"{name}（{no}）的积分: {available}", lines=tuple(lines), fields=fields,
                footer="记录有误时可「奖励」「扣除」更正，或请员工发送「申诉 E<编号> <理由>」。")


def unbind_done(*, request_id: int, employee: str, count: int) -> Card:
    """Told to whoever started someone else's unbind, once the owner confirmed."""
    return Card(title=f"解绑申请 U{request_id} 已完成", lines=(f"{employee} 已确认，解除了 {count} 个聊天账号绑定。",))
