"""What each scheduled job queues, rendered for both platforms, and that a re-run sends nothing new."""
from __future__ import annotations

import json
from urllib.parse import unquote
import threading
import types
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot import delivery
from cards import render_dingtalk, render_wecom
from cards.model import Card
from cards import builders_jobs as cards
from scheduler import jobs
from storage import claims
from storage.claims import Lease, LeaseLost
from storage.ledger import Ledger
from storage.members import bind
from storage.outbox import enqueue_many
from storage.models import Account, Appeal, Employee, JobRun, Order, Outbox
from tests.scheduler.helpers import award, run
from tests.storage.factories import make_employee

def queued(bot: Any, prefix: str = "") -> list[Outbox]:
    with bot.db.session_scope() as s:
        return list(s.scalars(select(Outbox).where(Outbox.idem_key.like(f"{prefix}%")).order_by(Outbox.id)))


def rendered(row: Outbox) -> tuple[str, str, Card]:
    """(WeCom body, DingTalk robot msgParam) of a row's card, as the outbox would send them."""
    card = Card.from_dict(json.loads(row.payload)["card"])
    wecom = json.dumps(render_wecom.render(card, 1000002), ensure_ascii=False)
    _key, param = render_dingtalk.to_robot_api(render_dingtalk.render_markdown(card, 12000))
    return wecom, render_dingtalk.dump_msg_param(param), card


def test_expire_points_notifies_each_affected_employee_once(bot: Any, company: dict[str, int], clock: Any) -> None:
    award(bot, company["a"], 40, clock() - timedelta(days=366), "old-a")
    award(bot, company["a"], 5, clock() - timedelta(days=365, hours=1), "old-a2")
    award(bot, company["b"], 7, clock() - timedelta(days=10), "new-b")
    assert "1 notices queued" in run(bot, "expire-points", clock())
    rows = queued(bot, "expired:")
    assert [r.idem_key for r in rows] == [f"expired:{company['a']}:2026-03-10"]
    wecom, dingtalk, card = rendered(rows[0])
    assert json.loads(rows[0].payload)["employee_id"] == company["a"]
    for text in (wecom, dingtalk):
        assert "积分已过期" in text and "45" in text and "2026-03-10" in text
    run(bot, "expire-points", clock(), force=True)  # a forced re-run expires and sends nothing new
    assert len(queued(bot, "expired:")) == 1


def test_expiry_notices_per_threshold_with_shop_hint(bot: Any, company: dict[str, int], clock: Any) -> None:
    validity = timedelta(days=365)
    award(bot, company["a"], 30, clock() + timedelta(days=7) - validity, "in7")
    award(bot, company["a"], 20, clock() + timedelta(days=7, hours=1) - validity, "in7b")
    award(bot, company["b"], 9, clock() + timedelta(days=30) - validity, "in30")
    award(bot, company["b"], 99, clock() + timedelta(days=12) - validity, "in12")  # no threshold today
    run(bot, "expiry-notices", clock())
    keys = sorted(r.idem_key for r in queued(bot, "expiry-notice:"))
    assert keys == sorted([f"expiry-notice:{company['a']}:2026-03-17:T-7", f"expiry-notice:{company['b']}:2026-04-09:T-30"])
    row = next(r for r in queued(bot, "expiry-notice:") if f":{company['a']}:" in r.idem_key)
    wecom, dingtalk, card = rendered(row)
    assert "template_card" in wecom and "dtmd://dingtalkclient/sendMessage?content=%E5%95%86%E5%9F%8E" in dingtalk
    for text in (wecom, dingtalk):
        assert "50" in text and "2026-03-17" in text and cards.SHOP_HINT in text
    run(bot, "expiry-notices", clock(), force=True)
    assert len(queued(bot, "expiry-notice:")) == 2  # each employee is told once per date and threshold


def test_expiry_notices_cover_days_missed_in_an_outage(bot: Any, company: dict[str, int], clock: Any) -> None:
    award(bot, company["a"], 11, clock() + timedelta(days=5) - timedelta(days=365), "in5")
    run(bot, "expiry-notices", clock() - timedelta(days=3))  # last run on 7 March: 15 March was 8 days away
    assert queued(bot, "expiry-notice:") == []
    run(bot, "expiry-notices", clock())  # 8 and 9 March were missed: the T-7 warning is still given, once
    assert [r.idem_key for r in queued(bot, "expiry-notice:")] == [f"expiry-notice:{company['a']}:2026-03-15:T-7"]
    assert "还有 5 天" in rendered(queued(bot, "expiry-notice:")[0])[1]


def test_leaderboard_one_message_per_group_per_period(bot: Any, company: dict[str, int], clock: Any) -> None:
    award(bot, company["a"], 80, clock() - timedelta(hours=5), "w-a", budget_of=company["mgr"])
    award(bot, company["b"], 120, clock() - timedelta(hours=4), "w-b", budget_of=company["mgr"])
    award(bot, company["hr"], 10, clock() - timedelta(days=20), "old")  # last month: not this week
    run(bot, "leaderboard", clock())
    rows = queued(bot, "leaderboard:")
    assert [r.kind for r in rows] == ["group", "group"]
    assert json.loads(rows[1].payload)["webhook_key"] == "k1"
    wecom, dingtalk, card = rendered(rows[0])
    for text in (wecom, dingtalk):
        assert "积分排行榜" in text and "赵HR" not in text
        assert text.index("李四（市场部） 120 分") < text.index("张三（研发部） 80 分")
        assert "市场部：李四 120 分" in text and "研发部：张三 80 分" in text
    run(bot, "leaderboard", clock(), force=True)
    assert len(queued(bot, "leaderboard:")) == 2


def test_manager_digest_figures(bot: Any, company: dict[str, int], clock: Any) -> None:
    award(bot, company["a"], 100, clock() - timedelta(days=2), "m-a", budget_of=company["mgr"])
    with bot.db.session_scope() as s:
        s.add(Appeal(employee_id=company["a"], reason="少了", status="open", created_at=clock()))
        s.add(Order(employee_id=company["b"], sku="cup", item_name="杯子", quantity=1, cost=10,
                    status="awaiting_fulfilment", created_at=clock()))
    run(bot, "manager-digest", clock())
    rows = queued(bot, "manager-digest:")
    assert [r.idem_key for r in rows] == [f"manager-digest:{company['mgr']}:2026-W11"]
    wecom, dingtalk, card = rendered(rows[0])
    fields = dict(card.fields)
    assert fields == {"本周您发放": "100", "团队本周获得": "100", "本月额度已用": "100", "本月额度剩余": "900",
                      "待处理申诉": "1", "团队待发放订单": "1"}
    assert "李四" in dingtalk and "张三" not in card.lines[1]  # quiet member listed
    assert "团队积分周报" in wecom and "template_card" in wecom
    run(bot, "manager-digest", clock(), force=True)
    assert len(queued(bot, "manager-digest:")) == 1


def test_hr_digest_sections(bot: Any, company: dict[str, int], clock: Any) -> None:
    award(bot, company["gone"], 66, clock() - timedelta(days=3), "gone")
    award(bot, company["b"], 44, clock() + timedelta(days=25) - timedelta(days=365), "exp-next-month")
    with bot.db.session_scope() as s:
        s.get(Employee, company["gone"]).status = "left"
        for i, days in enumerate((3, 10)):
            s.add(Order(employee_id=company["a"], sku="cup", item_name="杯子", quantity=1 + i, cost=10,
                        status="awaiting_fulfilment", created_at=clock() - timedelta(days=days)))
        s.add(Appeal(employee_id=company["a"], reason="x", status="open", created_at=clock() - timedelta(days=1)))
    award(bot, company["a"], 33, clock() + timedelta(days=5) - timedelta(days=365), "exp-this-month")
    run(bot, "hr-digest", clock())
    rows = queued(bot, "hr-digest:")
    assert len(rows) == 2 and all(json.loads(r.payload)["employee_ids"] == [company["hr"]] for r in rows)
    wecom, dingtalk, summary = rendered(rows[0])
    assert ("待发放订单", "2") in summary.fields and ("下月将过期", "44 分") in summary.fields
    assert ("本月将过期", "33 分") in summary.fields and [b.command for b in summary.buttons] == ["待办"]
    _, _, detail = rendered(rows[1])
    text = "\n".join(detail.lines)
    assert text.index("杯子×2（等待 10 天）") < text.index("杯子×1（等待 3 天）")  # oldest first
    assert "L1 钱离职：66 分" in text and "杯子：0/0/2/1" in text and "市场部：44 分" in text
    assert "2026-03 月内将过期积分" in text and "研发部：33 分" in text and "2026-04 将过期积分" in text
    assert "HR 积分周报" in dingtalk and "HR 积分周报" in wecom
    run(bot, "hr-digest", clock(), force=True)
    assert len(queued(bot, "hr-digest:")) == 2


def test_a_long_hr_digest_is_split_and_nothing_is_cut_on_either_platform(bot: Any, company: dict[str, int],
                                                                          clock: Any) -> None:
    with bot.db.session_scope() as s:
        for i in range(40):
            emp = make_employee(s, f"X{i:02d}", name=f"离职员工{i:02d}号很长的名字")
            Ledger(s, clock, 365).award(emp.id, 10 + i, idem_key=f"x{i}", reason="测试")
            emp.status = "left"
            s.add(Order(employee_id=emp.id, sku="cup", item_name="一个名字相当长的商品" * 2, quantity=1, cost=10,
                        status="awaiting_fulfilment", created_at=clock() - timedelta(days=i)))
    run(bot, "hr-digest", clock())
    rows = queued(bot, "hr-digest:")
    assert len(rows) >= 3
    shown = []
    for row in rows:
        wecom, dingtalk, card = rendered(row)
        body = json.loads(wecom)
        if body["msgtype"] == "template_card":  # the summary: every line and field shown in full
            shown_text = body["template_card"].get("sub_title_text", "") + json.dumps(
                body["template_card"].get("horizontal_content_list", []), ensure_ascii=False)
            assert all(v in shown_text for _, v in card.fields)
        else:
            shown_text = body["text"]["content"]
            assert len(shown_text.encode()) <= 2048
        assert all(line in shown_text for line in card.lines)  # nothing cut
        assert all(line in unquote(dingtalk) for line in card.lines)
        shown += card.lines
    text = "\n".join(shown)
    assert "X39 离职员工39号很长的名字：49 分" in text and "……等共 40 人" in text  # listed up to 10, then counted


def test_hr_digest_sends_binding_audit_cards_with_a_cleanup_button(bot: Any, company: dict[str, int],
                                                                   clock: Any) -> None:
    with bot.db.session_scope() as s:  # a leaver whose account is still bound (left before bindings were kept)
        s.get(Employee, company["gone"]).status = "left"
        for i in range(7):
            emp = make_employee(s, f"U{i}", name=f"久未用{i}")
            bind(s, emp, "dingtalk", f"d-u{i}", now=clock() - timedelta(days=200), actor_id=None, how="test")
        bind(s, s.get(Employee, company["gone"]), "wecom", "w-gone", now=clock(), actor_id=None, how="test")
    run(bot, "hr-digest", clock())
    main, detail, *audit = queued(bot, "hr-digest:")
    assert len(audit) == 5  # the limit; the rest is summarised in the digest
    _, _, card = rendered(detail)
    text = "\n".join(card.lines)
    assert "离职员工仍有的绑定：1" in text and "超过 90 天未使用的绑定：7" in text and "其余 3 条" in text
    assert "(bindings" not in text  # Chinese only
    _, dingtalk, first = rendered(audit[0])
    dingtalk = unquote(dingtalk)
    assert first.title == "绑定审计 · 离职员工仍有的绑定" and "L1 钱离职 · 企业微信 w-gone" in first.lines[0]
    assert [b.command for b in first.buttons] == ["强制解绑 L1 企业微信 绑定审计清理"]
    assert "dtmd://" in dingtalk and "强制解绑 L1 企业微信 绑定审计清理" in dingtalk and json.loads(audit[0].payload)["employee_ids"] == [company["hr"]]
    assert len({Card.from_dict(json.loads(r.payload)["card"]).task_id for r in audit}) == 5


def test_budget_grant_once_per_month(bot: Any, company: dict[str, int], clock: Any) -> None:
    clock.now = datetime(2026, 3, 31, 16, 0)  # 1 April 00:00 in Shanghai
    assert "2026-04" in run(bot, "budget-grant", clock())
    run(bot, "budget-grant", clock(), force=True)
    with bot.db.session_scope() as s:
        assert s.scalar(select(Account.balance).where(Account.kind == "budget")) == 1000
        assert s.scalar(select(func.count()).select_from(Account).where(Account.kind == "budget")) == 1


def test_platform_jobs_run_what_the_factory_wired(bot: Any, clock: Any, monkeypatch: Any) -> None:
    """The scheduler imports nothing of bot/: delivery and reconcile are the bot object's (app.py)."""
    seen: list[Any] = []
    monkeypatch.setattr(bot, "reconcile", lambda now: seen.append(now) or 2, raising=False)
    assert run(bot, "reconcile-approvals", clock()).endswith("2 award(s) made by reconcile")
    assert seen == [clock()]
    monkeypatch.setattr(bot, "deliver", lambda **kw: seen.append(kw) or delivery.DeliveryStats(sent=3), raising=False)
    assert "outbox: 3 sent" in run(bot, "deliver-outbox", clock())
    assert sorted(seen[-1]) == ["worker_id"]


def test_run_job_now_claims_the_period_and_force_reruns(bot: Any, company: dict[str, int], clock: Any) -> None:
    app = types.SimpleNamespace(extensions={"pointsbot": bot})
    assert "granted to 1 managers" in jobs.run_job_now(app, "budget-grant")
    assert "already done" in jobs.run_job_now(app, "budget-grant")
    assert "granted" in jobs.run_job_now(app, "budget-grant", force=True)
    assert "outbox:" in jobs.run_job_now(app, "deliver-outbox")


def test_queue_writes_in_batches_and_skips_existing_keys(bot: Any, clock: Any) -> None:
    rows = [{"idem_key": f"k{i}", "kind": "notice", "payload": {"employee_id": i, "card": {}}} for i in range(1234)]
    assert enqueue_many(bot.db, rows[:600], clock()) == 600
    assert enqueue_many(bot.db, rows, clock()) == 634
    assert enqueue_many(bot.db, rows, clock()) == 0


# ---- a scheduler that dies or stops mid-job ------------------------------------------------------

def _due_wallets(bot: Any, company: dict[str, int], clock: Any) -> None:
    for who in ("a", "b", "mgr", "hr"):
        award(bot, company[who], 10, clock() - timedelta(days=366), f"due-{who}")


def _wallets(bot: Any) -> dict[int, int]:
    with bot.db.session_scope() as s:
        return dict(s.execute(select(Account.employee_id, Account.balance).where(Account.kind == "wallet")).all())


def _run_row(bot: Any) -> tuple[str, str]:
    with bot.db.session_scope() as s:
        run = s.scalar(select(JobRun).where(JobRun.job == "expire-points"))
        return run.status, run.owner


def test_a_run_whose_scheduler_died_is_taken_over_and_notices_sent_once(bot: Any, company: dict[str, int], clock: Any,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """kill -9 after the first batch: the run stays "running"; the next sweep finishes the period."""
    _due_wallets(bot, company, clock)
    monkeypatch.setattr(jobs, "EXPIRY_BATCH", 1)

    def killed(self: Lease) -> None:
        raise SystemExit("kill -9")  # nothing after the first batch runs, not even the failure bookkeeping

    monkeypatch.setattr(Lease, "keep", killed)
    with pytest.raises(SystemExit):
        run(bot, "expire-points", clock(), owner="host-a")
    monkeypatch.undo()
    assert sorted(_wallets(bot).values()) == [0, 10, 10, 10] and _run_row(bot) == ("running", "host-a")
    assert jobs.take_over(bot, clock(), "host-b") == {}  # its lease has not lapsed yet
    clock.advance(seconds=bot.settings.scheduler["lease_seconds"] + 1)
    assert "expired 3 lots" in jobs.take_over(bot, clock(), "host-b")["expire-points 2026-03-10"]
    assert set(_wallets(bot).values()) == {0} and _run_row(bot) == ("done", "host-b")
    assert len(queued(bot, "expired:")) == 4  # everyone whose points expired today, the dead run's too, once
    assert jobs.take_over(bot, clock(), "host-c") == {}


def test_a_stopping_scheduler_releases_its_run_at_a_batch_boundary(bot: Any, company: dict[str, int], clock: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _due_wallets(bot, company, clock)
    monkeypatch.setattr(jobs, "EXPIRY_BATCH", 1)
    stopping = threading.Event()
    stopping.set()  # SIGTERM arrived while the first batch ran
    outcome = jobs.run_claimed(bot, "expire-points", "2026-03-10", clock(), "host-a", stopping=stopping)
    assert "stopped" in outcome and sorted(_wallets(bot).values()) == [0, 10, 10, 10]
    assert _run_row(bot) == ("running", "host-a")
    assert "expired 3 lots" in jobs.take_over(bot, clock(), "host-b")["expire-points 2026-03-10"]  # at once
    assert _run_row(bot) == ("done", "host-b")


def test_a_lease_is_renewed_between_batches_and_lost_to_a_new_owner(bot: Any, clock: Any) -> None:
    assert claims.claim(bot.db, "expire-points", "2026-03-10", "host-a", clock(), 60)
    lease = Lease(bot.db, "expire-points", "2026-03-10", "host-a", 60)
    clock.advance(seconds=50)
    lease.keep()  # renewed less than 20 s ago: nothing to do
    lease.renewed -= 21
    lease.keep()
    with bot.db.session_scope() as s:
        assert s.scalar(select(JobRun.lease_until)) == clock() + timedelta(seconds=60)
    clock.advance(seconds=61)  # a pause longer than the lease: another scheduler takes the run over
    assert claims.claim(bot.db, "expire-points", "2026-03-10", "host-b", clock(), 60)
    lease.renewed -= 21
    with pytest.raises(LeaseLost):
        lease.keep()


def test_prune_runs_daily_as_a_claimed_job(bot: Any, clock: Any) -> None:
    with bot.db.session_scope() as s:
        s.add(Outbox(idem_key="old", kind="notice", payload="{}", status="sent", attempts=0, created_at=clock(),
                     next_attempt_at=clock(), sent_at=clock() - timedelta(days=31)))
    assert "1 outbox" in run(bot, "prune", clock())
    assert "already done" in run(bot, "prune", clock() + timedelta(hours=1))


def test_unconfirmed_orders_lapse_on_schedule_not_only_when_looked_at(bot: Any, clock: Any) -> None:
    with bot.db.session_scope() as s:
        emp = make_employee(s, "E1")
        for hours, sku in ((25, "old"), (2, "new")):
            s.add(Order(employee_id=emp.id, sku=sku, item_name=sku, quantity=1, cost=10, status="awaiting_confirmation",
                        created_at=clock() - timedelta(hours=hours), note=""))
    assert run(bot, "lapse-orders", clock()).endswith(": 1 unconfirmed order(s) lapsed")
    with bot.db.session_scope() as s:
        assert dict(s.execute(select(Order.sku, Order.status)).all()) == {"old": "lapsed", "new": "awaiting_confirmation"}
    assert "already done" in run(bot, "lapse-orders", clock() + timedelta(minutes=5))  # one run per half hour
    assert run(bot, "lapse-orders", clock() + timedelta(hours=23)).endswith(": 1 unconfirmed order(s) lapsed")
