"""User-facing text, Chinese first, kept in one place (like bolt's logger/messages.py)."""
from __future__ import annotations

import re
from datetime import date, datetime, timezone, tzinfo
from typing import Any

from cards.model import Button, Card

INTERNAL_ERROR = "抱歉，系统暂时出了点问题，请稍后再试。如持续出现请联系 HR。"
BUSY = "系统繁忙，这条消息没有处理，请稍后再发送一次。"
BUTTON_DONE = "已处理"  # a clicked WeCom button, greyed out; the result follows as a message
UNKNOWN_COMMAND = "未知命令，发送「帮助」查看可用命令。"

COMMAND_NAMES = {
    "points": "积分", "history": "明细", "shop": "商城", "redeem": "兑换", "confirm": "确认兑换", "cancel": "取消兑换",
    "orders": "我的订单", "award": "奖励", "deduct": "扣除", "budget": "额度", "appeal": "申诉", "approve": "通过申诉",
    "deny": "驳回申诉", "fulfil": "发放", "reject": "拒绝订单", "todo": "待办", "bind": "绑定", "unbind": "解绑",
    "confirm-unbind": "确认解绑", "force-unbind": "强制解绑", "bind-code": "绑定码", "lookup": "查询", "console": "后台", "reverse": "撤销", "rank": "排行榜", "rules": "规则", "help": "帮助", "reactivate": "恢复员工",
}


def not_bound_card(user_id: str) -> Card:
    return Card(
        title="你还没有绑定员工账号",
        lines=("绑定后即可查询积分、兑换奖励。",
               "请向 HR 索取绑定码，然后发送: 绑定 <工号> <绑定码>",
               "例如: 绑定 1002 483920"),
        buttons=(Button("查看帮助", "帮助", "default"),),
    )


def not_permitted(command: str) -> str:
    return f"你没有权限使用「{COMMAND_NAMES.get(command, command)}」命令。如有疑问请联系 HR。"


# Keyed by ``DomainError.code`` (storage/errors.py): cards/ cannot import storage/, and a code is the
# contract an edge (the console's JSON, say) can show as well.
DOMAIN_ERRORS = {
    "invalid_amount": "积分数量需为正整数。",
    "unknown_employee": "找不到这位员工，请使用工号、@提及或完整姓名。",
    "unknown_txn": "找不到这条积分记录，请检查 E 开头的编号（发送「明细」查看）。",
    "unknown_item": "找不到这个商品，请发送「商城」查看商品编号。",
    "unknown_order": "找不到这个订单，请检查 R 开头的订单号（发送「我的订单」查看）。",
    "unknown_appeal": "找不到这条申诉，请检查 A 开头的编号。",
    "out_of_stock": "这个商品库存不足。",
    "limit_reached": "这个商品每人限兑，你已达到上限。",
    "wallet_frozen": "该账户已冻结（员工已离职），暂不能进行此操作。",
    "not_reversible": "这条记录不能撤销。",
    "already_reversed": "这条记录已经处理过了。",
    "invalid_state": "当前状态下不能进行此操作。",
    "not_permitted": "你没有权限进行此操作。",
    "invalid_code": "绑定码无效或已过期，请向 HR 重新获取。",
    "insufficient_points": "积分不足: 可用 {available} 积分，需要 {needed} 积分。",
    "budget_exhausted": "本月奖励额度不足: 剩余 {available} 积分，需要 {needed} 积分。",
}
# Keyed by ``DomainError.reason``: the finer cause, with the parameters the raiser gave.
REASONS = {
    "code_locked": "绑定码已因多次输错被锁定，请向 HR 重新获取。",
    "self_award": "不能给自己发放或扣除积分。",
    "over_max_award": "单次奖励最多 {max} 积分。",
    "outside_team": "你只能奖励自己团队的成员（直接或间接下属）。",
    "appeal_pending": "E{txn} 已有待处理的申诉 A{appeal}，请耐心等待处理。",
    "appeal_not_by_approval": ("E{txn} 是兑换、转移或额度记录，不能通过申诉更正：订单请使用「发放」/「拒绝订单」处理，"
                               "其他情况请联系 HR。可以驳回这条申诉。"),
    "appeal_needs_points": "E{txn} 是一笔发放，通过申诉需写明补发的积分: 通过申诉 A{appeal} <积分> [备注]",
    "appeal_needs_points_no_txn": "A{appeal} 没有关联积分记录，通过申诉需写明补发的积分: 通过申诉 A{appeal} <积分> [备注]",
    "appeal_over_max_award": "单次奖励最多 {max} 积分，申诉补发也一样。",
    "appeal_staff_matter": "这条申诉针对 HR、管理员或系统（审批、过期、离职转移）做出的记录，需由 HR 或管理员处理。",
    "appeal_not_yours": "你不能处理这条申诉（只有申诉人的经理、HR 或管理员可以处理，且不能处理自己的申诉）。",
    "appeal_approved": "申诉 A{appeal} 已通过，不能重复处理。",
    "appeal_denied": "申诉 A{appeal} 已驳回，不能重复处理。",
    "unbind_hr_only": "只有 HR 或管理员可以为他人发起解绑。",
    "unbind_not_yours": "只有被解绑的员工本人可以确认这条解绑申请。",
    "unbind_closed_or_expired": "解绑申请 U{request} 已处理或已过期，请重新发送「解绑」。",
    "unbind_closed": "解绑申请 U{request} 已处理。",
    "force_unbind_hr_only": "只有 HR 或管理员可以强制解绑。",
    "lookup_outside_team": "你只能查询自己团队成员（直接或间接下属）的积分。",
    "binding_unbound": "这个聊天账号已被解绑，需要用新的绑定码重新绑定。",
    "console_not_allowed": "积分后台仅限在职的经理、HR 和管理员使用。",
    "console_link_unknown": "这个登录链接无效。请在钉钉或企业微信中向机器人发送「后台」获取新的链接。",
    "console_link_spent": "这个登录链接已使用或已过期（每个链接只能用一次，10 分钟内有效）。请在聊天中发送「后台」获取新的链接。",
    "console_staff_only": "仅限 HR 和管理员查看。",
    "order_not_yours": "订单 R{order} 不是你的订单，只有下单人本人可以确认或取消。",
    "orders_hr_only": "只有 HR 或管理员可以处理订单。",
    "catalog_hr_only": "只有 HR 或管理员可以修改商城。",
    "order_own": "不能发放自己的订单 R{order}，请由其他 HR 或管理员处理。",
    "order_no_hold": "订单 R{order} 没有冻结记录，请联系管理员。",
    "order_fulfilled": "订单 R{order} 已发放，不能再更改。",
    "order_rejected": "订单 R{order} 已被拒绝，积分已退回。",
    "order_cancelled": "订单 R{order} 已取消。",
    "order_lapsed": "订单 R{order} 超过 24 小时未确认，已失效。如仍需兑换请重新下单。",
    "order_awaiting_confirmation": "订单 R{order} 尚未确认（24 小时内未确认会自动失效），暂无需处理。",
    "order_awaiting_fulfilment": "订单 R{order} 已确认，等待发放。",
    "rules_hr_only": "只有 HR 或管理员可以修改积分规则。",
    "budgets_hr_only": "只有 HR 或管理员可以调整经理的额度。",
    "rule_template_taken": "规则「{name}」（编号 {id}）已在使用这个审批模板，同一模板只能有一条启用的规则。",
    "budget_not_manager": "{name} 不是经理，没有奖励额度。",
    "topup_amount": "追加额度需为 1 到 {max} 之间的整数。",
    "order_refunded": "订单 R{order} 已退款，积分已退回。",
    "order_not_fulfilled": "订单 R{order} 尚未发放：等待发放的订单请用「拒绝订单」退回积分。",
    "codes_key_missing": "尚未配置卡密加密密钥（gift_cards.codes_key），不能保存卡密，请联系管理员。",
    "codes_not_gift_card": "「{item}」不是购物卡，只有购物卡可以上传卡密。",
    "stock_follows_codes": "「{item}」的库存就是剩余卡密数，请上传卡密补货。",
}
ITEM_KINDS = {"goods": "实物", "gift_card": "购物卡", "leave": "假期", "training": "培训课程", "service": "服务",
              "donation": "捐赠"}
# What HR does to hand an item out, by kind (the fulfilment card and the console's queue).
FULFIL_TODO = {
    "goods": "发放实物：{item} ×{qty}",
    "gift_card": "发放购物卡 {item} ×{qty}，并把卡号单独发给兑换人",
    "leave": "在假期系统中为兑换人增加 {days} 天假期（{item} ×{qty}）",
    "training": "为兑换人报名课程「{item}」（×{qty}）",
    "service": "为兑换人预约「{item}」（×{qty}）",
    "donation": "以兑换人的名义完成捐赠「{item}」（×{qty}）",
}
# What the employee is told once HR has handed the item out, by kind.
FULFILLED_TITLE = {
    "goods": "你的兑换订单 R{order} 已发放",
    "gift_card": "你兑换的购物卡已发放（R{order}），卡号请查收 HR 的消息",
    "leave": "已为你增加 {days} 天假期（R{order}），可在假期系统中查看",
    "training": "已为你报名课程「{item}」（R{order}）",
    "service": "已为你预约「{item}」（R{order}）",
    "donation": "已以你的名义完成捐赠「{item}」（R{order}），感谢你的爱心",
}
LIMIT_PERIODS = {"week": "每周", "month": "每月", "quarter": "每季度", "year": "每年"}


# LimitReached's reason names the period (storage/catalog.py): item_limit_week … item_limit_year.
REASONS.update({f"item_limit_{period}": f"「{{item}}」{words}每人限兑 {{limit}} 个，你这期已兑换 {{used}} 个。"
                for period, words in LIMIT_PERIODS.items()})


def fulfil_todo(kind: str, item: str, qty: int, leave_days: int | None) -> str:
    return FULFIL_TODO.get(kind, FULFIL_TODO["goods"]).format(item=item, qty=qty, days=(leave_days or 0) * qty)


def fulfilled_title(kind: str, order: int, item: str, qty: int, leave_days: int | None) -> str:
    return FULFILLED_TITLE.get(kind, FULFILLED_TITLE["goods"]).format(order=order, item=item,
                                                                      days=(leave_days or 0) * qty)


def limit_text(limit: int | None, period: str) -> str:
    """"每季度限兑 1 次" for an item with a per-employee limit, "" without."""
    return f"{LIMIT_PERIODS.get(period, period)}限兑 {limit} 个" if limit else ""


ORDER_STATUS = {"awaiting_confirmation": "待确认", "awaiting_fulfilment": "等待发放", "fulfilled": "已发放",
                "rejected": "已拒绝", "cancelled": "已取消", "lapsed": "已失效", "refunded": "已退款"}


def domain_error(exc: Any) -> str:
    """The friendly text of a ``DomainError``: its reason's, else its code's, else a generic line."""
    params = getattr(exc, "params", {})
    for key in (getattr(exc, "reason", ""), getattr(exc, "code", "")):
        text = REASONS.get(key) or DOMAIN_ERRORS.get(key)
        if text is not None:
            try:
                return text.format(**params)
            except (KeyError, IndexError):
                continue
    return "操作未完成，请检查输入后重试。"


BINDING_AUDIT = {"leavers": "离职员工仍有的绑定", "shared": "绑定到两名员工的聊天账号",
                 "unused": "超过 {days} 天未使用的绑定"}


def binding_audit_title(kind: str, days: int) -> str:
    """A section of the binding audit (storage/bindings.py AUDIT_KINDS)."""
    return BINDING_AUDIT.get(kind, kind).format(days=days)


CLOSED = {"fulfilled": "已由 {name} 发放", "rejected": "已由 {name} 拒绝", "cancelled": "已由 {name} 取消",
          "confirmed": "已确认", "approved": "已由 {name} 通过", "denied": "已由 {name} 驳回", "unbound": "已确认解绑"}
SUBJECT_NAMES = {"R": "订单", "A": "申诉", "U": "解绑申请"}


def card_closed(subject: str, outcome: str, name: str = "") -> tuple[str, str]:
    """(what replaces a decided card's buttons, the message to those whose copy cannot be edited)."""
    ref = subject.split(":")[0]
    button = CLOSED[outcome].format(name=name)
    return button, f"{SUBJECT_NAMES.get(ref[:1], '')} {ref} {button}。".lstrip()


# storage/bulk.py reports each CSV row in English for the CLI's operator; the console shows HR these words.
BULK_ROW = (
    (r"^employee_no is empty$", "缺少工号"),
    (r"^points (.*) is not a positive whole number$", r"积分 \1 不是正整数"),
    (r"^points (\d+) must be between 1 and (\d+)$", r"积分 \1 需在 1 到 \2 之间"),
    (r"^reason is empty$", "缺少原因"),
    (r"^key is empty$", "缺少 key（每行的唯一编号）"),
    (r"^key is longer than (\d+) characters$", r"key 超过 \1 个字符"),
    (r"^unknown employee (.*)$", r"找不到工号为 \1 的员工"),
    (r"^(.*) has left$", r"\1 已离职"),
    (r"^key '(.*)' was already used for (E\d+)$", r"key \1 已用于另一笔奖励 \2"),
)


def bulk_row(detail: str) -> str:
    """A bulk-award row's detail in Chinese (unknown wording passes through as it is)."""
    for pattern, words in BULK_ROW:
        if re.match(pattern, detail):
            return re.sub(pattern, words, detail)
    return detail


def order_state(order_id: int, status: str) -> str:
    """Why an action cannot apply to an order in ``status`` any more."""
    return REASONS.get(f"order_{status}", "订单 R{order} 当前状态不能进行此操作。").format(order=order_id)


# ---- people: award, budget, appeal, todo, bind (handlers/award.py … handlers/bind.py) ----

def usage_text(command: str, usage: str, example: str = "", problem: str = "") -> str:
    """Bad input gets the command's usage, so the user can retry without asking anyone."""
    lines = [problem] if problem else []
    lines.append(f"用法: {usage}")
    if example:
        lines.append(f"例如: {example}")
    return "\n".join(lines)


REASON_TOO_LONG = "理由最多 {max} 个字，请精简后再发送。"
NOTE_TOO_LONG = "备注最多 {max} 个字，请精简后再发送。"
DUPLICATE_CHANGE = ("60 秒内你已给 {name} {verb}过同样的 {points} 积分（E{txn}），疑似重复发送，本次未{verb}。"
                    "如确需再次{verb}，请稍后再发送。")
ALREADY_BOUND = "你的账号已绑定 {name}（{no}），无需重复绑定。"
BOUND_ELSEWHERE = "这个聊天账号已绑定其他员工。如需更换，请先发送「解绑」。"


BIND_DONE = "绑定成功！你好，{name}（{no}）。\n发送「积分」查询余额，发送「帮助」查看全部命令。"
NOTHING_TO_UNBIND = "{name}（{no}）没有可解绑的聊天账号。"
LEAVER_UNBOUND = "{name} 已离职，已直接解除绑定: {accounts}（U{id}）。"
UNBIND_REQUESTED = "已发起解绑申请 U{id}，等待 {name}（{no}）确认。"
UNBIND_DONE = "已解绑 {count} 个聊天账号（U{id}）。此后不会再向这些账号推送消息；如需重新绑定，请向 HR 索取绑定码。"
NO_UNBIND_REQUEST = "找不到这条解绑申请。"
FORCE_UNBOUND = "已强制解绑 {name}（{no}）的 {count} 个聊天账号: {accounts}。原因: {reason}"
NEED_FORCE_REASON = "请写明强制解绑的原因（会记入审计日志）。"
BIND_CODE = ("{name}（{no}）的绑定码: {code}\n{hours} 小时内有效，只能使用一次；新的绑定码生成后旧的即失效。"
             "请本人在钉钉或企业微信中向机器人发送: 绑定 {no} {code}")
BIND_CODE_PRIVATE = "绑定码不能在群里发送，已私信发送给你。"
BIND_CODE_LEAVER = "{name}（{no}）已离职，不能生成绑定码。如需恢复请先「恢复员工」。"
USE_LOOKUP = "查看同事的积分请发送: 查询 {who}"
REVERSED = "已撤销 E{orig}（{name}，积分变动 {points:+d}），更正记录 E{txn}。已通知 {name}。"
NEED_TXN_REF = "请写明要撤销的记录编号（E 开头，员工发送「明细」可以看到）。"
ALREADY_ACTIVE = "{name}（{no}）在职，无需恢复。"
REACTIVATED = ("已恢复 {name}（{no}）为在职，账户已解冻，可用积分 {balance}。"
               "聊天账号需重新绑定: 发送「绑定码 {no}」生成绑定码交给本人。")
CONSOLE_LINK = "积分后台登录链接（{minutes} 分钟内有效，只能使用一次，请勿转发）:\n{url}"
CONSOLE_LINK_PRIVATE = "后台登录链接不能在群里发送，已私信发送给你。"
CONSOLE_OFF = "积分后台未启用，请联系管理员。"
PLATFORM_NAMES = {"wecom": "企业微信", "dingtalk": "钉钉"}
TODO_APPEALS, TODO_ORDERS, TODO_LEAVERS = "待处理申诉", "待发放订单", "仍有积分的离职员工"
TODO_APPEAL_LINE = "A{id} {name} {about}: {reason}  →  通过申诉 A{id} / 驳回申诉 A{id}"
TODO_APPEAL_MISSING = "未收到的积分"
TODO_ORDER_LINE = "R{id} {name} {item} ×{qty}  →  发放 R{id} / 拒绝订单 R{id}"
TODO_LEAVER_LINE = "{name}（{no}）剩余 {balance} 积分"
BAD_PAGE = "页码需为正整数。"
NO_SUCH_COMMAND = "没有找到命令「{topic}」。"
AWARDED = "已奖励 {name}（{no}）{points} 积分，记录编号 E{txn}。"
BUDGET_LEFT = "\n本月剩余额度: {left}"
DEDUCTED = "已扣除 {name}（{no}）{points} 积分，记录编号 E{txn}。\n其当前可用积分: {balance}"
VERB_AWARD, VERB_DEDUCT = "发放", "扣除"
NEED_TARGET = "请写明对象、积分和原因。"
BAD_POINTS = "积分数量需为正整数。"
POINTS_RANGE = "积分数需在 1 到 {max} 之间。"
BOARD_TITLE = "积分排行榜 · {department}{label}"
MY_RANK = "你的排名: 第 {rank} 名（{points} 积分）"
NOT_RANKED = "你在这段时间还没有获得积分，加油!"
EMPTY_DEPARTMENT = "部门「{department}」在这段时间还没有人获得积分（部门名需完整）。"
NEED_ITEM = "请写明要兑换的商品（发送「商城」查看商品编号）。"
ORDER_FULFILLED_ALREADY = "订单 R{id} 已发放。"
ORDER_CODES_HERE = "  卡密: {codes}"
ORDER_CODES_PRIVATE = "  卡密请在与我的单聊中发送「我的订单」查看"
CODES_HIDDEN = "（已隐藏）"
REFUNDED = "已为 {name} 退回订单 R{id}（{item} ×{qty}）的 {cost} 积分（E{txn}）。"
CODES_NOTHING = "请粘贴卡密或选择卡密文件。"

CANCELLED_NOTHING_HELD = "已取消订单 R{id}，没有扣除积分。"
CANCELLED_REFUNDED = "已取消订单 R{id}，{cost} 积分已退回{txn}。\n当前可用积分: {balance}"
ORDER_LINE = "R{id} {item} ×{qty}  {cost} 积分 · {status} · {when}"
ORDER_TO_CONFIRM = "  →  确认兑换 R{id} / 取消兑换 R{id}"
ORDER_CANCELLABLE = "  →  可发送 取消兑换 R{id}"
NEED_TXN_REF = "请写明 E 开头的记录编号（发送「明细」查看）。"
NEED_REASON = "请写明申诉理由。"
NEED_APPEAL_REF = "请写明 A 开头的申诉编号。"
REVIEWERS_TOLD = "已通知 {n} 位审核人（经理/HR）"
NO_REVIEWER = "暂无可通知的审核人，请联系 HR"
APPEAL_FILED = "已提交申诉 A{id}，对象: {subject}。\n{told}，处理结果会通知你。"
APPEAL_TOPPED_UP = "补发 {points} 积分（E{txn}）"
APPEAL_EXPIRY_RESTORED = "恢复已过期的 {points} 积分（E{txn}，自今日起 {days} 天内有效）"
APPEAL_UNDONE = "撤销 E{appealed}，退回 {points} 积分（E{txn}）"
APPEAL_DECIDED = "申诉 A{id} 已通过: {outcome}。已通知 {name}。"
APPEAL_DENIED = "申诉 A{id} 已驳回，理由: {note}。已通知 {name}。"
NEED_REASON = "请写明理由（会告知员工），常用理由: {presets}。"
FROM_YOUR_BUDGET = "\n补发计入你的本月额度，剩余: {left}"
MISSING_POINTS = "应得但未收到的积分"
EVERYONE, BEFORE_BINDING_TOO = "所有员工", "（绑定前也可使用）"
BUDGET = "本月奖励额度剩余: {left}\n本月已用: {used}\n每月额度: {monthly}\n发送「奖励 <工号/@同事> <积分> <原因>」发放奖励。"
FULFILLED = "已发放订单 R{id}（{name} {item} ×{qty}），已通知员工。"
REJECTED = "已拒绝订单 R{id}（{name} {item} ×{qty}），理由: {note}。{cost} 积分已退回，库存已恢复，已通知员工。"


# ---- balance, shop, orders, rank, rules, help (handlers/query.py … handlers/help.py) ----

TXN_KIND_TEXT = {"award": "奖励", "deduct": "扣除", "expire": "过期", "hold": "兑换冻结", "settle": "兑换完成",
                 "release": "兑换退回", "reverse": "撤销", "transfer": "转移", "budget_grant": "月度额度",
                 "budget_reset": "额度清零", "budget_topup": "额度追加"}
ROLE_TEXT = {"employee": "员工", "manager": "经理", "hr": "HR", "admin": "管理员"}
NEED_ORDER_REF = "请写明 R 开头的订单号（发送「我的订单」查看）。"
BAD_QUANTITY = "数量需为 1 到 {max} 之间的整数。"
ALREADY_CONFIRMED = "订单 R{id} 已确认，等待发放。"
ALREADY_CANCELLED = "订单 R{id} 已取消。"
DID_YOU_MEAN = "你是不是想输入: {suggestion}"
NOT_UNDERSTOOD = "没看懂「{text}」。"


PERIOD_TEXT = {"week": "本周", "month": "本月", "quarter": "本季度", "year": "今年"}


def period_label(kind: str, first: date, last: date) -> str:
    """积分 and 排行榜 name the period they count: 本周（03-09 至 03-15）."""
    return f"{PERIOD_TEXT.get(kind, kind)}（{first:%m-%d} 至 {last:%m-%d}）"


def board_label(kind: str, first: date) -> str:
    """The pushed leaderboard names its period for the group: 2026年第11周, 2026年3月, 2026年第1季度, 2026年."""
    if kind == "week":
        year, week, _ = first.isocalendar()
        return f"{year}年第{week}周"
    if kind == "month":
        return f"{first:%Y}年{first.month}月"
    if kind == "quarter":
        return f"{first:%Y}年第{(first.month - 1) // 3 + 1}季度"
    return f"{first:%Y}年"


def txn_subject(txn_id: int, kind: str, amount: int, reason: str) -> str:
    """What an appeal is about, as its reviewers read it: E12（奖励 +50 积分：帮忙排查）."""
    what = TXN_KIND_TEXT.get(kind, kind)
    return f"E{txn_id}（{what} {amount:+d} 积分" + (f"：{reason}" if reason else "") + "）"


def local_time(dt: datetime, tz: tzinfo, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Database times are naive UTC; people read them in the company's time zone."""
    return dt.replace(tzinfo=timezone.utc).astimezone(tz).strftime(fmt)
