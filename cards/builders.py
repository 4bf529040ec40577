"""Cards for balances, the shop, orders, leaderboards, rules and help: domain values in, Card out.

Plain values (numbers, already-formatted local times) come in, because ``cards/`` may not import
``storage/``. Nothing is escaped here: the renderers escape, and escaping twice shows users
backslashes. Every button is the typed command it stands for; a card with buttons gets a
``task_id`` unique per card instance (WeCom rejects a reused one).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from cards import messages as msg
from cards.model import Button, Card


@dataclass(frozen=True, slots=True)
class ShopRow:
    number: int
    sku: str
    name: str
    cost: int
    stock: int | None  # None = unlimited
    kind: str = "goods"
    description: str = ""
    limit: str = ""  # the per-employee limit in words, "" without one


@dataclass(frozen=True, slots=True)
class HelpEntry:
    name: str  # the Chinese command
    aliases: tuple[str, ...]  # the other spellings
    summary: str


def _stock_text(stock: int | None) -> str:
    if stock is None:
        return "库存充足"
    return "已兑完" if stock <= 0 else f"库存 {stock}"


def balance_card(*, name: str, available: int, on_hold: int, expiring: Sequence[tuple[str, int]],
                 lifetime_earned: int, rank: int | None, period_label: str, period_points: int) -> Card:
    """The statement. ``available`` stands alone as a plain number, as docs/commands.md (References) promises."""
    fields = [("可用积分", str(available)), ("兑换冻结中", str(on_hold)), ("累计获得", str(lifetime_earned)),
              (f"{period_label}排名", f"第 {rank} 名（{period_points} 积分）" if rank else "暂未上榜")]
    lines = [f"30 天内将过期: {pts} 积分（{when} 到期）" for when, pts in expiring] or ["30 天内没有将过期的积分。"]
    return Card(title=f"{name} 的积分: {available}", lines=tuple(lines), fields=tuple(fields),
                footer="发送「明细」查看积分记录，「商城」查看可兑换的奖励。")


def history_card(*, rows: Sequence[str], page: int, pages: int, total: int) -> Card:
    if not rows:
        return Card(title="积分明细", lines=("暂无积分记录。",))
    footer = f"第 {page}/{pages} 页，共 {total} 条。"
    if page < pages:
        footer += f"发送「明细 {page + 1}」查看下一页。"
    footer += "对某条记录有疑问可发送: 申诉 E<编号> <理由>"
    return Card(title="积分明细（最新在前）", lines=tuple(rows), footer=footer)


def shop_card(rows: Sequence[ShopRow], balance: int | None = None) -> Card:
    if not rows:
        return Card(title="积分商城", lines=("商城暂无商品。",))
    lines = tuple(f"{r.number}. [{msg.ITEM_KINDS.get(r.kind, r.kind)}] {r.name}（{r.sku}）  {r.cost} 积分  ·  "
                  f"{_stock_text(r.stock)}{'  ·  ' + r.limit if r.limit else ''}"
                  f"{chr(10) + '   ' + r.description if r.description else ''}" for r in rows)
    fields = (("你的可用积分", str(balance)),) if balance is not None else ()
    return Card(title="积分商城", lines=lines, fields=fields, footer="兑换请发送: 兑换 <编号> [数量]，例如: 兑换 1")


def redeem_confirm(*, order_id: int, item: str, quantity: int, cost: int, balance: int) -> Card:
    """Asks before any points move; the order lapses after 24 h without an answer."""
    ref = f"R{order_id}"
    return Card(
        title=f"{ref}: 是否确认兑换? 需扣除 {cost} 积分",
        fields=(("商品", f"{item} ×{quantity}"), ("需扣除", f"{cost} 积分"), ("当前可用", str(balance)),
                ("确认后剩余", str(balance - cost))),
        buttons=(Button("确认兑换", f"确认兑换 {ref}", "primary"), Button("取消兑换", f"取消兑换 {ref}", "default")),
        footer="24 小时内未确认，订单将自动失效。",
        task_id=f"{ref}-confirm", subject=f"{ref}:confirm",
    )


def redeem_done(*, order_id: int, item: str, quantity: int, cost: int, balance: int, hold_txn_id: int | None) -> Card:
    ref = f"R{order_id}"
    fields = [("商品", f"{item} ×{quantity}"), ("冻结积分", f"{cost}"), ("当前可用", str(balance))]
    if hold_txn_id is not None:
        fields.append(("记录编号", f"E{hold_txn_id}"))
    return Card(title=f"已确认兑换 {ref}，等待 HR 发放", fields=tuple(fields),
                buttons=(Button("取消兑换", f"取消兑换 {ref}", "default"),),
                footer="HR 发放前可随时取消，积分将原路退回。", task_id=f"{ref}-done", subject=ref)


# A card field whose value is this is filled with the order's gift-card codes at the moment of sending
# (bot/delivery.py), so the outbox row, the sent-card record and any log of the card hold only the reference.
CODES_FIELD = "\u2063codes\u2063"


def codes_sent(*, order_id: int, item: str, quantity: int, cost: int, balance: int, hold_txn_id: int | None) -> Card:
    """The answer to 确认兑换 of a gift card with a code pool: done at once, the code goes one-to-one."""
    fields = [("商品", f"{item} ×{quantity}"), ("消耗积分", str(cost)), ("当前可用", str(balance))]
    if hold_txn_id is not None:
        fields.append(("记录编号", f"E{hold_txn_id}"))
    return Card(title=f"兑换成功 R{order_id}：卡密已私信发送给你", fields=tuple(fields),
                footer="在与我的单聊中发送「我的订单」可再次查看卡密。请妥善保管，勿转发他人。")


def codes_notice(*, order_id: int, item: str, quantity: int) -> Card:
    """Sent one-to-one; ``CODES_FIELD`` becomes the codes only when it is sent."""
    return Card(title=f"你兑换的 {item} ×{quantity}（R{order_id}）", fields=(("卡密", CODES_FIELD),),
                footer="请妥善保管，勿转发他人。如卡密无法使用，请联系 HR。")


def donation_thanks(*, order_id: int, item: str, quantity: int, cost: int, charity: str, balance: int,
                    hold_txn_id: int | None) -> Card:
    fields = [("捐赠", f"{item} ×{quantity}"), ("受捐机构", charity), ("捐出积分", str(cost)), ("当前可用", str(balance))]
    if hold_txn_id is not None:
        fields.append(("记录编号", f"E{hold_txn_id}"))
    return Card(title=f"感谢你的爱心！已以你的名义向「{charity}」捐赠（R{order_id}）", fields=tuple(fields),
                footer="每月的捐赠总额由 HR 统一转交受捐机构。")


def codes_running_low(*, item: str, sku: str, free: int) -> Card:
    """To HR and admins when a pool runs low or empty (once per upload)."""
    title = (f"购物卡「{item}」的卡密已用完，员工暂时无法兑换" if free <= 0
             else f"购物卡「{item}」的卡密只剩 {free} 个")
    return Card(title=title, fields=(("商品", f"{item}（{sku}）"), ("剩余卡密", str(free))),
                footer="请在积分后台「商城」中打开该商品上传卡密。")


def fulfil_request(*, order_id: int, employee: str, employee_no: str, department: str, item: str, quantity: int,
                   cost: int, reviewer_id: int, todo: str, reject_reasons: Sequence[str] = ()) -> Card:
    """Sent to each HR member and admin; whoever acts first wins, the others get told it is done. A rejection
    always carries a reason: one button per preset (``[orders] reject_reasons``), or typed."""
    ref = f"R{order_id}"
    who = f"{employee}（{employee_no}{'，' + department if department else ''}）"
    return Card(
        title=f"新的兑换订单 {ref} 待发放",
        fields=(("兑换人", who), ("商品", f"{item} ×{quantity}"), ("积分", f"{cost}（已冻结）"), ("需要做", todo)),
        buttons=(Button("发放", f"发放 {ref}", "primary"),
                 *(Button(f"拒绝：{r}", f"拒绝订单 {ref} {r}", "danger") for r in reject_reasons[:3])),
        footer=f"也可发送: 发放 {ref} <备注> / 拒绝订单 {ref} <理由>（拒绝会退回积分）",
        task_id=f"{ref}-fulfil-{reviewer_id}", subject=ref,
    )


def order_fulfilled(*, order_id: int, item: str, quantity: int, actor: str, note: str, kind: str = "goods",
                    leave_days: int | None = None) -> Card:
    """The employee's confirmation, worded for what the item is (a day of leave is not "handed out")."""
    fields = [("商品", f"{item} ×{quantity}"), ("处理人", actor)]
    if note:
        fields.append(("备注", note))
    return Card(title=msg.fulfilled_title(kind, order_id, item, quantity, leave_days), fields=tuple(fields))


def order_rejected(*, order_id: int, item: str, quantity: int, cost: int, actor: str, note: str,
                   balance: int) -> Card:
    fields = [("商品", f"{item} ×{quantity}"), ("处理人", actor), ("退回积分", str(cost)), ("当前可用积分", str(balance))]
    fields.append(("拒绝理由", note or "未填写"))
    return Card(title=f"你的兑换订单 R{order_id} 被拒绝，积分已退回", fields=tuple(fields))


def orders_card(rows: Sequence[str]) -> Card:
    if not rows:
        return Card(title="我的订单", lines=("你还没有兑换订单。发送「商城」看看吧。",))
    return Card(title="我的订单（最新在前）", lines=tuple(rows),
                footer="待确认的订单可发送 确认兑换 R<编号> / 取消兑换 R<编号>")


def leaderboard_card(*, title: str, rows: Sequence[tuple[int, str, str, int]], me: str = "") -> Card:
    """``rows`` are (rank, name, department, points)."""
    lines = [f"{rank}. {name}{'（' + dept + '）' if dept else ''}  {pts} 积分" for rank, name, dept, pts in rows]
    return Card(title=title, lines=tuple(lines) or ("这段时间还没有人获得积分。",), footer=me)


def rules_card(*, earning: Sequence[str], catalog: Sequence[str], policy: Sequence[str]) -> Card:
    lines = ["【如何获得积分】", *(earning or ["暂无自动发放规则，积分由经理或 HR 发放。"]),
             "【可兑换的奖励】", *(catalog or ["商城暂无商品。"]), "【其他规则】", *policy]
    return Card(title="积分规则", lines=tuple(lines))


def help_card(entries: Sequence[HelpEntry], *, intro: Sequence[str] = (), bound: bool = True) -> Card:
    lines = [*intro]
    for e in entries:
        other = f"（{' / '.join(e.aliases)}）" if e.aliases else ""
        lines.append(f"· {e.name}{other}: {e.summary}")
    footer = "发送「帮助 <命令>」查看用法和示例，例如: 帮助 兑换"
    if not bound:
        footer = "请先绑定员工账号: 绑定 <工号> <绑定码>（绑定码向 HR 索取）。" + footer
    return Card(title="积分机器人: 可用命令", lines=tuple(lines), footer=footer)


def help_command_card(*, name: str, aliases: Sequence[str], summary: str, usage: str, example: str,
                      who: str) -> Card:
    fields = [("用法", usage or name)]
    if example:
        fields.append(("示例", example))
    if aliases:
        fields.append(("其他写法", " / ".join(aliases)))
    fields.append(("可用人员", who))
    return Card(title=f"帮助: {name}", lines=(summary,) if summary else (), fields=tuple(fields))
