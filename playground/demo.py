"""The demo company that ``flask --app app demo-data`` loads into an empty database (``make run``).

Why it exists: a newcomer must see a living bot in the playground — balances, a history worth
reading, a leaderboard, points about to expire, budgets to spend — without a tenant. Everything is
written through the same services production uses (roster import, bindings, the ledger, catalog
sync), with the ledger's clock moved back in time, so the demo also exercises the real invariants
(``flask check-ledger`` passes on it). A seeded ``random.Random`` makes every load identical.

Chat ids: each person's WeCom userid and DingTalk userId are the pinyin of their name (张三 →
``zhangsan`` on both platforms); employee numbers are ``1001`` … ``1030``. The playground page
lists the same scheme.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import catalog, gift_codes, orders, rules
from storage.db import Database
from storage.employees import import_roster, month_key
from storage.errors import DomainError
from storage.ledger import Ledger
from storage.models import Binding, Employee

SEED = 20240601
HISTORY_DAYS = 92  # about three months

# (userid = pinyin, name, department, role). The first person of each department heads it.
PEOPLE: tuple[tuple[str, str, str, str], ...] = (
    ("lijun", "李军", "研发部", "manager"), ("zhangsan", "张三", "研发部", "employee"),
    ("wangwu", "王五", "研发部", "employee"), ("zhaoliu", "赵六", "研发部", "employee"),
    ("sunqi", "孙七", "研发部", "employee"), ("zhouba", "周八", "研发部", "employee"),
    ("wujiu", "吴九", "研发部", "employee"), ("zhengshi", "郑十", "研发部", "employee"),
    ("chenjing", "陈静", "研发部", "employee"), ("linfeng", "林峰", "研发部", "employee"),
    ("liuyang", "刘洋", "市场部", "manager"), ("huangli", "黄丽", "市场部", "employee"),
    ("yangfan", "杨帆", "市场部", "employee"), ("xumin", "徐敏", "市场部", "employee"),
    ("heyun", "何云", "市场部", "employee"), ("guoxin", "郭欣", "市场部", "employee"),
    ("jiangtao", "蒋涛", "市场部", "employee"),
    ("maqiang", "马强", "销售部", "manager"), ("zhuhong", "朱红", "销售部", "employee"),
    ("hutao", "胡涛", "销售部", "employee"), ("gaofei", "高飞", "销售部", "employee"),
    ("luoyi", "罗毅", "销售部", "employee"), ("liangchen", "梁晨", "销售部", "employee"),
    ("songjia", "宋佳", "销售部", "employee"), ("tangning", "唐宁", "销售部", "employee"),
    ("hanmei", "韩梅", "人力资源部", "hr"), ("fengxue", "冯雪", "人力资源部", "hr"),
    ("caoyu", "曹宇", "人力资源部", "admin"), ("xiaoyu", "肖雨", "人力资源部", "employee"),
    ("pengbo", "彭博", "人力资源部", "employee"),
)
# Who the playground page offers first, by role.
FEATURED = {"employee": "zhangsan", "manager": "lijun", "hr": "hanmei", "admin": "caoyu"}

REASONS = {
    "研发部": ("帮助同事排查线上故障", "主动重构支付模块并补齐测试", "周末值班处理告警", "分享 Kubernetes 实践",
             "提前完成版本交付", "指导新同事熟悉代码库"),
    "市场部": ("策划的活动报名超出预期", "完成行业峰会展台布置", "撰写的公众号文章阅读量 10 万+", "协助销售准备投标材料",
             "整理竞品分析报告"),
    "销售部": ("签下年度大客户", "超额完成季度回款", "帮助同事跟进客户续约", "客户满意度回访全部好评",
             "开拓华南新渠道"),
    "人力资源部": ("高效完成校园招聘", "组织部门团建", "优化入职流程", "协助完成年度调薪"),
}
AWARD_POINTS = (20, 30, 50, 50, 80, 100)
# Old awards whose lots expire soon (the expiry notice has something to say).
YEAR_END_REASON = "年度优秀员工（去年评优）"
# Past redemptions (month index from the start of the history → who bought what), all fulfilled.
REDEMPTIONS = {0: (("wangwu", "course"), ("huangli", "leave1")), 1: (("hutao", "course"), ("xumin", "charity")),
               2: (("zhuhong", "ecard50"), ("chenjing", "checkup"), ("gaofei", "course"), ("luoyi", "charity"))}
DEMO_CODES = 20  # made-up gift-card codes in ecard50's pool, when the configuration has a codes key
EXPIRING_SOON = ("zhangsan", "wangwu", "huangli", "zhuhong", "hutao", "xumin", "chenjing", "luoyi")


@dataclass
class _Clock:
    """The ledger's clock, moved back and forth while the history is written."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


def _roster_rows() -> list[tuple[int, dict[str, str]]]:
    numbers = {uid: str(1001 + i) for i, (uid, _, _, _) in enumerate(PEOPLE)}
    heads = {}
    for uid, _, dept, _ in PEOPLE:
        heads.setdefault(dept, uid)
    rows = []
    for i, (uid, name, dept, role) in enumerate(PEOPLE):
        head = heads[dept] if heads[dept] != uid else ("caoyu" if uid != "caoyu" else "")
        rows.append((i + 2, {"employee_no": numbers[uid], "name": name, "department": dept,
                             "manager_no": numbers.get(head, ""), "role": role, "dingtalk_userid": uid,
                             "wecom_userid": uid, "status": "active"}))
    return rows


def _month_starts(start: datetime, end: datetime) -> list[datetime]:
    """First instants of each month after ``start`` up to ``end``."""
    out, cur = [], start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while True:
        cur = (cur + timedelta(days=32)).replace(day=1)
        if cur > end:
            return out
        out.append(cur)


class _Writer:
    """Writes the history in time order with one ledger whose clock we move."""

    def __init__(self, s: Session, settings: Any, now: datetime) -> None:
        self.s, self.settings, self.now = s, settings, now
        self.rng = random.Random(SEED)
        self.clock = _Clock(now)
        self.ledger = Ledger(s, self.clock, settings.points["validity_days"], settings.tz)
        self.people: dict[str, Employee] = {}
        self.seq = 0

    def at(self, when: datetime) -> None:
        self.clock.now = when

    def award(self, uid: str, points: int, reason: str, *, category: str = "manual", by: str | None = None,
              from_budget: bool = False) -> None:
        """One award; a budget that ran out just skips it (a demo must never fail to load)."""
        self.seq += 1
        emp, actor = self.people[uid], self.people[by] if by else None
        try:
            self.ledger.award(emp.id, points, idem_key=f"demo:award:{self.seq}", reason=reason, category=category,
                              actor_id=actor.id if actor else None,
                              budget_of=actor.id if (actor and from_budget) else None)
        except DomainError:
            pass

    def redeem(self, uid: str, sku: str, fulfilled_by: str) -> None:
        """A past redemption through the order service (stock, limits, hold), fulfilled by HR a day later."""
        emp, tz = self.people[uid], self.settings.tz
        try:
            with self.s.begin_nested():
                order = orders.start(self.s, emp, sku, 1, self.clock(), tz)
                orders.confirm(self.s, self.ledger, emp, order.id, self.clock(), tz)
        except DomainError:  # not enough points, sold out, or the item's limit: this one does not happen
            return
        if order.status == orders.FULFILLED:  # a donation, or a gift card from its code pool: no HR step
            return
        self.at(self.clock() + timedelta(days=1, hours=3))
        orders.fulfil(self.s, self.ledger, self.people[fulfilled_by], order.id, self.clock())


def _people(s: Session) -> dict[str, Employee]:
    by_uid = {e.wecom_userid: e for e in s.scalars(select(Employee))}
    return {uid: by_uid[uid] for uid, *_ in PEOPLE}


def _used_today(w: _Writer) -> None:
    """The roster import bound everyone three months ago; they have chatted since, so no binding is "unused"."""
    for b in w.s.scalars(select(Binding)):
        b.last_used_at = w.now


def _code_pool(w: _Writer) -> None:
    """ecard50 hands out made-up codes at once (a gift card with a pool; card100 stays HR's to hand out), so the
    demo shows both."""
    key = w.settings.gift_cards["codes_key"]
    if not key or catalog.get(w.s, "ecard50") is None:
        return
    codes = [(n, f"DEMO-{w.rng.randrange(16**4):04X}-{w.rng.randrange(16**4):04X}-{n:02d}")
             for n in range(1, DEMO_CODES + 1)]
    gift_codes.add(w.s, gift_codes.Vault(key), "ecard50", codes, now=w.clock(), actor_id=w.people["hanmei"].id)


def _expiring_soon(w: _Writer) -> None:
    """Year-end awards from almost ``validity_days`` ago: their lots expire within the next 30 days."""
    validity = w.settings.points["validity_days"]
    for i, uid in enumerate(EXPIRING_SOON):
        w.at(w.now - timedelta(days=validity) + timedelta(days=4 + 3 * i, hours=2))
        w.award(uid, 600 if uid == "zhangsan" else w.rng.choice((200, 300, 400)), YEAR_END_REASON,
                category="annual", by="hanmei")


def _months(w: _Writer, start: datetime) -> None:
    """Per month: the budget grant, manager awards, 全勤, trainings; a quarterly performance round."""
    budget, rollover = w.settings.points["manager_monthly_budget"], w.settings.points["budget_rollover"]
    managers = [uid for uid, _, _, role in PEOPLE if role == "manager"]
    staff = [uid for uid, _, _, role in PEOPLE if role != "admin"]
    months = [start, *_month_starts(start, w.now)]
    for m, month_start in enumerate(months):
        month_end = min((month_start + timedelta(days=32)).replace(day=1), w.now)
        w.at(max(month_start, start))
        for uid in managers:
            w.ledger.grant_budget(w.people[uid].id, month_key(w.clock()), budget, rollover=rollover)
        span = max(1, int((month_end - w.clock()).total_seconds() // 3600) - 2)
        events: list[tuple[int, str, str]] = []
        for mgr in managers:
            dept = next(d for u, _, d, _ in PEOPLE if u == mgr)
            team = [u for u, _, d, r in PEOPLE if d == dept and u != mgr]
            for _ in range(w.rng.randint(4, 6)):
                events.append((w.rng.randrange(span), mgr, w.rng.choice(team)))
        base = w.clock()
        for offset, mgr, uid in sorted(events):
            w.at(base + timedelta(hours=offset))
            dept = w.people[uid].department
            w.award(uid, w.rng.choice(AWARD_POINTS), w.rng.choice(REASONS[dept]), by=mgr, from_budget=True)
        if month_end < w.now:  # a finished month: attendance and trainings came through approvals
            w.at(month_end - timedelta(hours=20))
            label = month_key(month_start)
            for uid in staff:
                if w.rng.random() < 0.6:
                    w.award(uid, 100, f"全勤 {label}", category="attendance")
            for uid in w.rng.sample(staff, 4):
                w.award(uid, 50, f"培训完成：{w.rng.choice(('信息安全', '项目管理', '高效沟通'))}", category="training")
        for uid, sku in REDEMPTIONS.get(m, ()):
            if month_end < w.now:
                w.at(month_end - timedelta(days=3, hours=w.rng.randint(0, 30)))
                w.redeem(uid, sku, fulfilled_by=w.rng.choice(("hanmei", "fengxue")))
        if m == 1:
            w.at(month_start + timedelta(days=5))
            for uid in w.rng.sample(staff, 8):
                score = w.rng.randint(72, 98)
                points = 500 if score >= 90 else 300 if score >= 80 else 100
                w.award(uid, points, f"季度绩效 {score} 分", category="performance")


def load_demo(db: Database, settings: Any) -> None:
    """Load the demo company; call only on an empty database (the CLI checks)."""
    now = db.clock()
    start = (now - timedelta(days=HISTORY_DAYS)).replace(hour=1, minute=0, second=0, microsecond=0)
    with db.session_scope() as s:
        w = _Writer(s, settings, now)
        w.at(start)
        report = import_roster(s, _roster_rows(), w.ledger, now=start,
                               budget=settings.points["manager_monthly_budget"],
                               rollover=settings.points["budget_rollover"])
        if report.rejected:
            raise ValueError(f"demo roster rejected: {report.rejected}")
        w.people = _people(s)
        for emp in w.people.values():
            emp.created_at = start - timedelta(days=settings.points["validity_days"] + 60)
        _used_today(w)
        catalog.seed_from_config(s, settings.catalog, now=start)
        rules.seed_from_config(s, settings.rules, now=start)  # as db upgrade does (no-op when it did)
        _code_pool(w)
        _expiring_soon(w)
        _months(w, start)
        w.at(now)
        # This month's budget is granted by _months (its last month starts this month): nothing to add.
