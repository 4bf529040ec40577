"""Neutral cards for the scheduled jobs (rendered per platform by ``cards/render_*.py``).

Why separate builders: the jobs decide *who* gets *what numbers*; these functions decide the words.
Chinese first, numbers as plain digits, and each button is the command a user could type (cards/model.py).
Digests are one aggregated message per recipient, never one per item (platform rate limits, §4).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from cards import messages as msg
from cards.model import Button, Card

SHOP_HINT = "积分即将过期，可前往商城兑换"
MAX_LIST = 10


def _more(items: list[str], total: int, unit: str = "项") -> list[str]:
    shown = items[:MAX_LIST]
    if total > len(shown):
        shown.append(f"……等共 {total} {unit}")
    return shown


def expired_card(points: int, day: date, balance: int | None = None) -> Card:
    fields = [("过期积分", str(points)), ("日期", day.isoformat())]
    if balance is not None:
        fields.append(("当前余额", str(balance)))
    return Card(title="积分已过期", lines=(f"您有 {points} 积分已于 {day:%Y-%m-%d} 到期失效。",),
                fields=tuple(fields), footer="积分自获得之日起有效期有限，请及时兑换。")


def expiry_notice_card(points: int, expires: date, days: int, task_id: str) -> Card:
    return Card(title="积分即将过期",
                lines=(f"您有 {points} 积分将于 {expires:%Y-%m-%d} 过期（还有 {days} 天）。", SHOP_HINT),
                fields=(("即将过期", str(points)), ("过期日期", f"{expires:%Y-%m-%d}")),
                buttons=(Button("去商城", "商城"), Button("我的积分", "积分", "default")),
                task_id=task_id)


@dataclass(frozen=True)
class BoardEntry:
    rank: int
    name: str
    department: str
    points: int


def leaderboard_card(label: str, top: list[BoardEntry], departments: list[tuple[str, list[BoardEntry]]]) -> Card:
    lines = [f"{e.rank}. {e.name}（{e.department or '—'}） {e.points} 分" for e in top] or ["本期暂无积分记录。"]
    if departments:
        lines.append("各部门第一：")
        lines += [f"{dept or '未分部门'}：{rows[0].name} {rows[0].points} 分" for dept, rows in departments if rows]
    return Card(title=f"积分排行榜 · {label}", lines=tuple(lines), footer="发送「排行榜」查看完整榜单")


def manager_digest_card(d: Any, week: str, task_id: str) -> Card:
    """``d``: a storage/digests.py ManagerDigest (cards/ imports no storage/)."""
    lines = [f"{d.name}，这是您团队本周（{week}）的积分周报。"]
    if d.quiet:
        lines.append("近 30 天未获得积分的成员：" + "、".join(_more(d.quiet, len(d.quiet), "人")))
    else:
        lines.append("团队成员近 30 天都获得过积分。")
    buttons = [Button("待办", "待办"), Button("额度", "额度", "default")]
    return Card(title="团队积分周报", lines=tuple(lines),
                fields=(("本周您发放", str(d.awarded_by_me)), ("团队本周获得", str(d.awarded_to_team)),
                        ("本月额度已用", str(d.budget_used)), ("本月额度剩余", str(d.budget_left)),
                        ("待处理申诉", str(d.open_appeals)), ("团队待发放订单", str(d.team_orders))),
                buttons=tuple(buttons), task_id=task_id)


def binding_audit_card(kind: str, row: Any, days: int, task_id: str) -> Card:
    """One binding HR should look at (``row``: a storage/bindings.py AuditRow), with the button that removes
    it: the typed 强制解绑, so the click runs the same checks and leaves the same audit entry."""
    platform = msg.PLATFORM_NAMES.get(row.platform, row.platform)
    lines = [f"{row.employee_no} {row.name} · {platform} {row.platform_user_id}"]
    if row.roster_no:
        lines.append(f"花名册中这个账号属于 {row.roster_no}")
    if row.last_used:
        lines.append(f"最近使用: {row.last_used:%Y-%m-%d}")
    buttons = () if row.employee_no.startswith("#") else (
        Button("解除这个绑定", f"强制解绑 {row.employee_no} {platform} 绑定审计清理", "danger"),)
    return Card(title=f"绑定审计 · {msg.binding_audit_title(kind, days)}", lines=tuple(lines), buttons=buttons,
                task_id=task_id)


CARD_TEXT_BYTES = 1800  # a detail card as text: WeCom's 2048-byte text, DingTalk's markdown, with room to spare


def hr_digest_cards(d: Any, week: str, audit_days: int = 90) -> list[Card]:
    """``d``: a storage/digests.py HrDigest, data only; every word of it is here.

    Why several cards: a WeCom card with a button shows at most 112 characters of text, so the first card carries
    the counts as fields and the 待办 button, and the lists follow as text cards cut at line boundaries, none
    over ``CARD_TEXT_BYTES``: nothing is cut off on either platform.
    """
    expiring_now, expiring_next = sum(e.points for e in d.expiring_now), sum(e.points for e in d.expiring)
    summary = Card(title=f"HR 积分周报 · {week}", lines=("明细见下方消息；发送「待办」处理订单和申诉。",),
                   fields=(("待发放订单", str(d.orders_total)), ("待处理申诉", str(d.appeals_total)),
                           ("离职仍有积分", f"{d.leavers_total} 人"), ("本月将过期", f"{expiring_now} 分"),
                           ("下月将过期", f"{expiring_next} 分"), ("绑定待审计", str(sum(d.bindings.values())))),
                   buttons=(Button("待办", "待办"),), task_id=f"hr-digest-{week}")
    lines: list[str] = [f"【待发放订单（最早的在前）】{d.orders_total}"]
    lines += _more([f"R{o.id} {o.owner} {o.item}×{o.quantity}（等待 {o.days} 天）" for o in d.orders], d.orders_total)
    lines.append(f"【待处理申诉】{d.appeals_total}")
    lines += _more([f"A{a.id} {a.owner}（{a.days} 天）" for a in d.appeals], d.appeals_total)
    lines.append(f"【已离职仍有积分】{d.leavers_total} 人")
    lines += _more([f"{p.employee_no} {p.name}：{p.points} 分" for p in d.leavers], d.leavers_total, "人")
    lines.append("【近 4 周兑换趋势（每周件数，由远及近）】")
    lines += [f"{t.item}：{'/'.join(map(str, t.weeks))}" for t in d.trend[:MAX_LIST]] or ["近 4 周没有兑换。"]
    for label, rows, empty in ((f"{d.this_month} 月内将过期积分（按部门）", d.expiring_now, "本月没有将过期的积分。"),
                               (f"{d.expiring_month} 将过期积分（按部门）", d.expiring, "下月没有将过期的积分。")):
        lines.append(f"【{label}】")
        lines += [f"{e.department or '未分部门'}：{e.points} 分" for e in rows[:MAX_LIST]] or [empty]
    if d.bindings:
        lines.append("【绑定审计】")
        lines += [f"{msg.binding_audit_title(kind, audit_days)}：{n}" for kind, n in d.bindings.items()]
        rest = sum(d.bindings.values()) - len(d.binding_rows)
        if d.binding_rows:
            lines.append(f"其中 {len(d.binding_rows)} 条另有卡片，可直接解除绑定" +
                         (f"；其余 {rest} 条请运行 flask audit-bindings 查看。" if rest > 0 else "。"))
    return [summary, *_text_cards(f"HR 积分周报明细 · {week}", lines)]


def _text_cards(title: str, lines: list[str]) -> list[Card]:
    """``lines`` as cards without buttons, each under ``CARD_TEXT_BYTES`` as text, cut between lines."""
    cards: list[list[str]] = [[]]
    size = 0
    for line in lines:
        n = len(line.encode()) + 1
        if cards[-1] and size + n > CARD_TEXT_BYTES - len(title.encode()) - 16:
            cards.append([])
            size = 0
        cards[-1].append(line)
        size += n
    if len(cards) == 1:
        return [Card(title=title, lines=tuple(cards[0]))]
    return [Card(title=f"{title}（{i}/{len(cards)}）", lines=tuple(c)) for i, c in enumerate(cards, 1)]
