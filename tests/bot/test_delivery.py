"""Outbox delivery against fake platforms: retries, rate limits, crashes, two workers (issue 3 items 4-6)."""
from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
import responses
from sqlalchemy import select

import app as app_module
from bot import delivery
from bot.clients import DINGTALK_CALLS, build_clients, call_counter, get_clients
from bot.http import make_session
from cards.model import Button, Card
from settings import build_settings
from storage.members import bind
from storage.models import Outbox, RateBucket
from storage.outbox import enqueue
from tests.bot.fake_platforms import SESSION_URL, SETTINGS, FakePlatforms
from tests.storage.factories import make_employee


@pytest.fixture
def fake(rsps: responses.RequestsMock) -> FakePlatforms:
    f = FakePlatforms()
    f.install(rsps)
    return f


def make_bot(db: Any, **overrides: Any) -> Any:
    data = json.loads(json.dumps(SETTINGS))
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        data.setdefault(section, {})[name] = value
    settings = build_settings(data)
    bot = app_module.PointsBot(settings=settings, db=db, router=None, pipeline=None)
    bot.clients.update(build_clients(settings, session=make_session(), on_call=call_counter(bot)))
    return bot


@pytest.fixture
def bot(sqlite_db: Any) -> Any:
    return make_bot(sqlite_db)


def employee(db: Any, no: str, *, wecom: str = "", dingtalk: str = "") -> int:
    with db.session_scope() as s:
        emp = make_employee(s, no)
        for platform, uid in (("wecom", wecom), ("dingtalk", dingtalk)):
            if uid:
                bind(s, emp, platform, uid, now=db.clock(), actor_id=None, how="test")
        return emp.id


def card(text: str, buttons: bool = False) -> dict[str, Any]:
    extra = {"buttons": (Button("确认", f"确认兑换 {text}"),), "task_id": f"t-{text}"} if buttons else {}
    return Card(title="通知", lines=(text,), **extra).to_dict()  # type: ignore[arg-type]


def add(db: Any, kind: str, payload: dict[str, Any], key: str | None = None) -> int:
    with db.session_scope() as s:
        row = enqueue(s, kind, payload, now=db.clock(), idem_key=key)
        assert row is not None
        return row.id


def rows(db: Any) -> list[Outbox]:
    with db.session_scope() as s:
        return list(s.scalars(select(Outbox).order_by(Outbox.id)))


def run_until_quiet(bot: Any, clock: Any, rounds: int = 30, step: float = 301.0) -> delivery.DeliveryStats:
    total = delivery.DeliveryStats()
    for _ in range(rounds):
        total.add(delivery.deliver_once(bot, worker_id="w1", rand=lambda: 1.0))
        if all(r.status != "pending" for r in rows(bot.db)):
            break
        clock.advance(seconds=step)
    return total


# ---- basic kinds --------------------------------------------------------------------------------
def test_notice_goes_to_every_bound_platform(bot: Any, fake: FakePlatforms) -> None:
    emp = employee(bot.db, "E1", wecom="zhangsan", dingtalk="dt-zs")
    add(bot.db, "notice", {"employee_id": emp, "card": card("您获得 10 积分")})
    stats = delivery.deliver_once(bot, worker_id="w1")
    assert stats.sent == 1
    assert [(d.platform, d.to) for d in fake.delivered] == [("wecom", "zhangsan"), ("dingtalk", "dt-zs")]
    assert "您获得 10 积分" in fake.delivered[0].text and "sampleMarkdown" not in fake.delivered[1].text
    assert rows(bot.db)[0].status == "sent" and rows(bot.db)[0].sent_at == bot.db.clock()


def test_unbound_employee_is_marked_sent_without_a_call(bot: Any, fake: FakePlatforms) -> None:
    emp = employee(bot.db, "E1")
    add(bot.db, "notice", {"employee_id": emp, "card": card("x")})
    delivery.deliver_once(bot, worker_id="w1")
    row = rows(bot.db)[0]
    assert row.status == "sent" and "no bound chat account" in row.last_error and fake.send_requests == 0


def test_dingtalk_personal_notices_off_skips_dingtalk(sqlite_db: Any, fake: FakePlatforms) -> None:
    bot = make_bot(sqlite_db, dingtalk__personal_notices=False)
    emp = employee(bot.db, "E1", wecom="zs", dingtalk="dt-zs")
    add(bot.db, "notice", {"employee_id": emp, "card": card("x")})
    delivery.deliver_once(bot, worker_id="w1")
    assert [d.platform for d in fake.delivered] == ["wecom"]
    assert "personal notices off" in rows(bot.db)[0].last_error


def test_template_card_platform_message_group_and_session(bot: Any, fake: FakePlatforms) -> None:
    add(bot.db, "platform_message", {"platform": "wecom", "user_id": "lisi", "card": card("R1", buttons=True)})
    add(bot.db, "group", {"platform": "dingtalk", "chat_id": "cid-1", "card": card("榜单")})
    add(bot.db, "group", {"platform": "wecom", "chat_id": "wrk-1", "card": card("榜单")})
    add(bot.db, "group", {"platform": "wecom", "chat_id": "robot", "webhook_key": "hook-KEY", "card": card("榜单")})
    add(bot.db, "session_reply", {"url": SESSION_URL, "message": {"msgtype": "text", "text": {"content": "好"}}})
    assert delivery.deliver_once(bot, worker_id="w1").sent == 5
    assert "button_interaction" in fake.delivered[0].text
    assert [d.to for d in fake.delivered] == ["lisi", "cid-1", "wrk-1", "webhook", "session"]
    with bot.db.session_scope() as s:  # the webhook key never becomes a bucket name
        assert not any("hook-KEY" in b for b in s.scalars(select(RateBucket.destination)))


def test_expired_session_webhook_is_dead(bot: Any, fake: FakePlatforms) -> None:
    past = (bot.db.clock() - timedelta(minutes=1)).timestamp()
    add(bot.db, "session_reply", {"url": SESSION_URL, "message": {"msgtype": "text", "text": {"content": "x"}},
                                  "expires_at": past - 8 * 3600 - 1e6})
    delivery.deliver_once(bot, worker_id="w1")
    assert rows(bot.db)[0].status == "dead" and fake.send_requests == 0


def test_tasks_run_and_an_unknown_task_is_dead(bot: Any, fake: FakePlatforms, monkeypatch: Any) -> None:
    seen: list[dict[str, Any]] = []
    monkeypatch.setitem(bot.tasks, "ping", lambda b, p: seen.append(p))
    add(bot.db, "task", {"task": "ping", "n": 1})
    add(bot.db, "task", {"task": "nobody-registered-this"})
    stats = delivery.deliver_once(bot, worker_id="w1")
    assert seen == [{"task": "ping", "n": 1}]
    assert [r.status for r in rows(bot.db)] == ["sent", "dead"] and stats.dead == 1
    assert "approval_detail" in bot.tasks  # the factory's wiring: the approval form fetch


# ---- failures and recovery ------------------------------------------------------------------------
def test_5xx_timeouts_and_busy_then_recovery_deliver_each_message_once(bot: Any, fake: FakePlatforms,
                                                                      clock: Any) -> None:
    emp = employee(bot.db, "E1", wecom="zs", dingtalk="dt-zs")
    for i in range(6):
        add(bot.db, "notice", {"employee_id": emp, "card": card(f"消息{i}")}, key=f"k{i}")
    fake.script = ["500", "timeout", "busy", "500", "timeout", "limit", "500", "timeout"]
    run_until_quiet(bot, clock)
    assert all(r.status == "sent" for r in rows(bot.db))
    counts = Counter((d.platform, t) for d in fake.delivered for t in [f"消息{i}" for i in range(6)] if t in d.text)
    assert set(counts.values()) == {1} and len(counts) == 12  # each message once on each platform


def test_token_expiry_mid_run_refreshes_once_and_loses_nothing(bot: Any, fake: FakePlatforms) -> None:
    emp = employee(bot.db, "E1", wecom="zs", dingtalk="dt-zs")
    for i in range(4):
        add(bot.db, "notice", {"employee_id": emp, "card": card(f"m{i}")})
    delivery.deliver_once(bot, worker_id="w1", limit=2)
    fetched = fake.token_fetches
    fake.rotate()
    delivery.deliver_once(bot, worker_id="w1")
    assert all(r.status == "sent" for r in rows(bot.db))
    assert fake.token_fetches == fetched + 2  # one refresh per platform
    assert len(fake.delivered) == 8


def test_wrong_secret_is_a_configuration_error_and_the_row_waits(bot: Any, fake: FakePlatforms) -> None:
    fake.wrong_secret = True
    add(bot.db, "platform_message", {"platform": "wecom", "user_id": "zs", "card": card("x")})
    stats = delivery.deliver_once(bot, worker_id="w1")
    row = rows(bot.db)[0]
    assert stats.waiting == 1 and row.status == "pending" and row.attempts == 0
    assert row.next_attempt_at == bot.db.clock() + delivery.CONFIG_WAIT
    assert "S3CRET" not in row.last_error


def test_non_retryable_error_is_dead_at_once(bot: Any, fake: FakePlatforms) -> None:
    add(bot.db, "platform_message", {"platform": "wecom", "user_id": "ghost", "card": card("x")})
    fake.script = ["bad_user"]
    assert delivery.deliver_once(bot, worker_id="w1").dead == 1
    assert rows(bot.db)[0].status == "dead" and rows(bot.db)[0].attempts == 1


def test_dead_letter_after_ten_attempts(bot: Any, fake: FakePlatforms, clock: Any, caplog: Any) -> None:
    add(bot.db, "platform_message", {"platform": "wecom", "user_id": "zs", "card": card("秘密内容")})
    fake.script = ["500"] * 50
    with caplog.at_level(logging.INFO, logger="bot.delivery"):
        run_until_quiet(bot, clock)
    row = rows(bot.db)[0]
    assert row.status == "dead" and row.attempts == delivery.MAX_ATTEMPTS
    assert fake.send_requests == delivery.MAX_ATTEMPTS
    assert "dead-lettered after 10 attempt(s)" in caplog.text
    assert "秘密内容" not in caplog.text  # no message bodies in the logs


def test_backoff_is_full_jitter_with_base_1s_and_cap_5min(bot: Any, fake: FakePlatforms) -> None:
    assert [delivery.backoff_seconds(n, lambda: 1.0) for n in (1, 2, 3, 9, 10, 30)] == [1, 2, 4, 256, 300, 300]
    assert delivery.backoff_seconds(5, lambda: 0.0) == 0 and delivery.backoff_seconds(5, lambda: 0.5) == 8
    add(bot.db, "platform_message", {"platform": "wecom", "user_id": "zs", "card": card("x")})
    fake.script = ["500"]
    delivery.deliver_once(bot, worker_id="w1", rand=lambda: 0.25)
    assert rows(bot.db)[0].next_attempt_at == bot.db.clock() + timedelta(seconds=0.25)


# ---- rate limits and quotas ---------------------------------------------------------------------
def test_group_robot_never_gets_more_than_20_a_minute(bot: Any, fake: FakePlatforms, clock: Any) -> None:
    for i in range(25):
        add(bot.db, "group", {"platform": "dingtalk", "chat_id": "cid-1", "card": card(f"g{i}")})
    first = delivery.deliver_once(bot, worker_id="w1", limit=100)
    assert first.sent == 20 and first.deferred == 5 and len(fake.delivered) == 20
    assert all(r.attempts == 0 for r in rows(bot.db))
    clock.advance(seconds=30)  # same minute window for the deferred rows? they wait for the next minute
    clock.now = clock.now.replace(second=0) + timedelta(minutes=1)
    assert delivery.deliver_once(bot, worker_id="w2", limit=100).sent == 5


def test_wecom_member_limit_30_a_minute(bot: Any, fake: FakePlatforms) -> None:
    for i in range(33):
        add(bot.db, "platform_message", {"platform": "wecom", "user_id": "zs", "card": card(f"p{i}")})
    stats = delivery.deliver_once(bot, worker_id="w1", limit=100)
    assert stats.sent == 30 and stats.deferred == 3


def test_platform_rate_limit_answers_are_retried(bot: Any, fake: FakePlatforms, clock: Any) -> None:
    emp = employee(bot.db, "E1", dingtalk="dt-zs")
    add(bot.db, "notice", {"employee_id": emp, "card": card("限流")})
    fake.flow_users = {"dt-zs"}
    assert delivery.deliver_once(bot, worker_id="w1", rand=lambda: 1.0).retried == 1
    clock.advance(seconds=2)
    assert delivery.deliver_once(bot, worker_id="w1").sent == 1
    assert len(fake.delivered) == 1


@pytest.mark.parametrize("code", ["send.too.fast", "send.byToken.tooFast"])
def test_dingtalk_throttling_is_retried_not_dead(bot: Any, fake: FakePlatforms, clock: Any, code: str) -> None:
    emp = employee(bot.db, "E1", dingtalk="dt-zs")
    add(bot.db, "notice", {"employee_id": emp, "card": card("排行榜")})
    fake.script = [code]
    stats = delivery.deliver_once(bot, worker_id="w1", rand=lambda: 1.0)
    assert (stats.retried, stats.dead) == (1, 0)
    clock.advance(seconds=2)
    assert delivery.deliver_once(bot, worker_id="w1").sent == 1 and len(fake.delivered) == 1


def test_wecom_untrusted_ip_holds_the_messages_until_fixed(bot: Any, fake: FakePlatforms, clock: Any,
                                                            caplog: Any) -> None:
    """60020: the server's IP is not in the app's trusted list. A configuration error, not a bad message."""
    emp = employee(bot.db, "E1", wecom="zs")
    add(bot.db, "notice", {"employee_id": emp, "card": card("可信IP")})
    fake.script = ["untrusted_ip"] * 12  # more failures than MAX_ATTEMPTS: none of them counts
    for _ in range(12):
        stats = delivery.deliver_once(bot, worker_id="w1")
        assert (stats.waiting, stats.dead, stats.sent) == (1, 0, 0)
        clock.advance(hours=1)
    assert "企业可信IP" in caplog.text
    assert delivery.deliver_once(bot, worker_id="w1").sent == 1 and len(fake.delivered) == 1  # fixed: it goes out


def test_wecom_duplicate_check_only_on_notices_about_one_event(bot: Any, fake: FakePlatforms,
                                                                rsps: responses.RequestsMock) -> None:
    """A send answered after our timeout is retried; WeCom then drops the copy, but only of unique content."""
    from bot.core.context import Context

    emp = employee(bot.db, "E1", wecom="zs")
    with bot.db.session_scope() as s:
        ctx = Context(session=s, settings=bot.settings, clock=bot.db.clock, platform="wecom")
        ctx.notify(emp, Card.from_dict(card("E12 奖励 50")), key="E12:notice")
        ctx.notify(emp, Card.from_dict(card("R3 待确认", buttons=True)), key="R3:confirm")
    add(bot.db, "platform_message", {"platform": "wecom", "user_id": "zs", "card": card("可用积分 50")})  # a reply
    assert delivery.deliver_once(bot, worker_id="w1").sent == 3
    sent = [json.loads(c.request.body) for c in rsps.calls if "message/send" in c.request.url]
    checks = [(b["msgtype"], b.get("enable_duplicate_check"), b.get("duplicate_check_interval")) for b in sent]
    assert checks == [("text", 1, 1800), ("template_card", 1, 1800), ("text", None, None)]


def test_a_late_answer_delivers_a_notice_once_and_a_reply_at_least_once(bot: Any, fake: FakePlatforms,
                                                                        clock: Any) -> None:
    """WeCom delivered, but answered after our timeout: the row is sent again. Its duplicate check keeps a notice
    about one event from arriving twice; a reply to a query has none (a repeated 积分 must not vanish)."""
    from bot.core.context import Context

    emp = employee(bot.db, "E1", wecom="zs")
    with bot.db.session_scope() as s:
        Context(session=s, settings=bot.settings, clock=bot.db.clock, platform="wecom").notify(
            emp, Card.from_dict(card("E7 奖励 30")), key="E7:notice")
    add(bot.db, "platform_message", {"platform": "wecom", "user_id": "zs", "card": card("可用积分 30")})
    fake.script = ["late", "late"]
    assert delivery.deliver_once(bot, worker_id="w1", rand=lambda: 1.0).retried == 2
    clock.advance(seconds=5)
    assert delivery.deliver_once(bot, worker_id="w1").sent == 2
    assert sorted(t.split("\n")[1] for t in fake.texts()) == ["E7 奖励 30", "可用积分 30", "可用积分 30"]


def test_partial_delivery_is_not_repeated(bot: Any, fake: FakePlatforms, clock: Any) -> None:
    emp = employee(bot.db, "E1", wecom="zs", dingtalk="dt-zs")
    add(bot.db, "notice", {"employee_id": emp, "card": card("一次")})
    fake.script = [None, "500"]  # type: ignore[list-item]  # WeCom ok, DingTalk fails
    delivery.deliver_once(bot, worker_id="w1", rand=lambda: 1.0)
    clock.advance(seconds=2)
    delivery.deliver_once(bot, worker_id="w1")
    assert sorted(d.platform for d in fake.delivered) == ["dingtalk", "wecom"]


def test_dingtalk_monthly_quota_stops_personal_notices(sqlite_db: Any, fake: FakePlatforms, caplog: Any) -> None:
    bot = make_bot(sqlite_db, dingtalk__monthly_api_quota=2)
    emp = employee(bot.db, "E1", dingtalk="dt-zs")
    for i in range(4):
        add(bot.db, "notice", {"employee_id": emp, "card": card(f"q{i}")})
    add(bot.db, "group", {"platform": "dingtalk", "chat_id": "cid-1", "card": card("group still goes")})
    with caplog.at_level(logging.ERROR):
        delivery.deliver_once(bot, worker_id="w1")
    assert len([d for d in fake.delivered if d.to == "dt-zs"]) == 2
    assert caplog.text.count("monthly API quota reached") == 1
    assert "quota" in rows(bot.db)[3].last_error and rows(bot.db)[4].status == "sent"
    with bot.db.session_scope() as s:
        assert s.scalar(select(RateBucket.count).where(RateBucket.destination == DINGTALK_CALLS)) == 3


def test_platform_quota_answer_sets_the_counter(bot: Any, fake: FakePlatforms) -> None:
    emp = employee(bot.db, "E1", dingtalk="dt-zs")
    add(bot.db, "notice", {"employee_id": emp, "card": card("a")})
    add(bot.db, "notice", {"employee_id": emp, "card": card("b")})
    fake.script = ["quota"]
    delivery.deliver_once(bot, worker_id="w1")
    assert [r.status for r in rows(bot.db)] == ["dead", "sent"]
    assert "quota" in rows(bot.db)[1].last_error and fake.send_requests == 1


# ---- crashes and concurrency --------------------------------------------------------------------
def test_crash_between_commit_and_send_is_delivered_after_restart(bot: Any, fake: FakePlatforms, clock: Any) -> None:
    ids = [add(bot.db, "platform_message", {"platform": "wecom", "user_id": f"u{i}", "card": card(f"c{i}")})
           for i in range(100)]  # 100 trials
    stats = delivery.DeliveryStats()
    for row_id in ids:  # a worker claims each row (committed) and "dies" before sending
        assert isinstance(delivery._claim(bot, row_id, "dead-worker", clock(), stats), delivery.Plan)
    assert delivery.deliver_once(bot, worker_id="new", limit=200).claimed == 0  # leases still held
    clock.advance(seconds=delivery.LEASE.total_seconds() + 1)  # restart: delivered once the 60 s lease ends
    assert delivery.deliver_once(bot, worker_id="new", limit=200).sent == 100
    assert len(fake.texts()) == 100 and Counter(fake.texts()).most_common(1)[0][1] == 1


def test_crash_after_send_before_mark_resends_once_at_least_once(bot: Any, fake: FakePlatforms, clock: Any) -> None:
    row_id = add(bot.db, "platform_message", {"platform": "wecom", "user_id": "zs", "card": card("dup")})
    plan = delivery._claim(bot, row_id, "dead-worker", clock(), delivery.DeliveryStats())
    assert isinstance(plan, delivery.Plan) and delivery._send(bot, plan).status == "sent"  # then the process dies
    clock.advance(seconds=61)
    delivery.deliver_once(bot, worker_id="new")
    assert fake.texts().count(fake.texts()[0]) == 2  # documented: at-least-once


def test_two_workers_at_once_send_each_row_once(engine_db: Any, fake: FakePlatforms) -> None:
    bot = make_bot(engine_db)
    get_clients(bot)
    for i in range(60):
        add(engine_db, "group", {"platform": "dingtalk", "chat_id": f"cid-{i % 6}", "card": card(f"w{i}")})
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            barrier.wait()
            for _ in range(5):
                delivery.deliver_once(bot, worker_id=name, limit=100)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"worker-{n}",)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(fake.texts()) == sorted(set(fake.texts())) and len(fake.texts()) == 60
    assert all(r.status == "sent" for r in rows(engine_db))
