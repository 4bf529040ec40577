"""GET /metrics after a scripted run: the numbers say what the run did (docs/operations.md)."""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from bot import delivery
from bot.spool import Spooled
from scheduler import jobs
from storage.claims import period_key
from storage.outbox import enqueue
from telemetry import ContextFilter, JsonFormatter
from tests.e2e import signing
from tests.e2e.conftest import DINGTALK, WECOM, load_roster

REMOTE = {"REMOTE_ADDR": "10.1.2.3"}
ROSTER = ("employee_no,name,department,manager_no,role,dingtalk_userid,wecom_userid\n"
          "E1,张三,研发部,,employee,zhang,zhang\nM1,李经理,研发部,,manager,li,li\n")


def scrape(client: Any, **kw: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = client.get("/metrics", **kw)
    assert resp.status_code == 200 and resp.content_type.startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(resp.get_data(as_text=True)) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wecom_text(client: Any, user: str, text: str, msg_id: int, headers: dict | None = None) -> Any:
    ts = int(time.time())
    xml = signing.wecom_text_xml(user, WECOM["corp_id"], text, msg_id, ts)
    params, body = signing.wecom_post(WECOM["token"], WECOM["encoding_aes_key"], WECOM["corp_id"], xml, ts)
    return client.post("/callback/wecom", query_string=params, data=body, headers=headers or {})


def robot(client: Any, user: str, text: str, msg_id: str) -> Any:
    return client.post("/callback/dingtalk/robot", data=signing.robot_body(user, text, msg_id),
                       headers=signing.robot_headers(DINGTALK["app_secret"], int(time.time() * 1000)))


def test_metrics_count_what_a_scripted_run_did(app: Any, client: Any) -> None:
    bot = app.extensions["pointsbot"]
    before = scrape(client)
    load_roster(bot, ROSTER)  # grants M1 this month's budget
    assert wecom_text(client, "zhang", "积分", 7001).status_code == 200
    assert wecom_text(client, "zhang", "积分", 7001).status_code == 200  # WeCom retried: a query is answered again
    assert wecom_text(client, "zhang", "兑换 nosuch", 7002).status_code == 200
    assert wecom_text(client, "zhang", "兑换 nosuch", 7002).status_code == 200  # answered from the inbox
    assert client.post("/callback/wecom", query_string={"msg_signature": "x", "timestamp": str(int(time.time())),
                                                        "nonce": "n"}, data=b"<xml/>").status_code == 403
    assert robot(client, "li", "奖励 E1 10 修复线上问题", "m-1").status_code == 200
    with bot.db.session_scope() as s:  # a row of a kind this version does not know (a newer one wrote it): dead at once
        enqueue(s, "task", {}, now=bot.db.clock(), idem_key="pigeon")
        s.execute(text("UPDATE outbox SET kind = 'carrier-pigeon' WHERE idem_key = 'pigeon'"))
    delivery.drain(bot, worker_id="test")
    now = bot.db.clock()
    period = period_key("budget-grant", now, bot.settings.tz)
    assert "granted to 1 managers" in jobs.run_claimed(bot, "budget-grant", period, now, "test")  # nothing new
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("pointsbot_callbacks_total", platform="wecom", kind="TextCommand", outcome="answered") == 2
    assert grew("pointsbot_callbacks_total", platform="wecom", kind="TextCommand", outcome="applied") == 1
    assert grew("pointsbot_callbacks_total", platform="wecom", kind="TextCommand", outcome="redelivery") == 1
    assert grew("pointsbot_callbacks_total", platform="wecom", kind="-", outcome="rejected") == 1
    assert grew("pointsbot_callbacks_total", platform="dingtalk", kind="TextCommand", outcome="applied") == 1
    assert grew("pointsbot_callback_seconds_count", platform="wecom") == 5
    assert grew("pointsbot_ledger_transactions_total", kind="budget_grant") == 1
    assert grew("pointsbot_ledger_transactions_total", kind="award") == 1
    assert value(after, "pointsbot_database_up") == 1
    assert value(after, "pointsbot_outbox_rows", platform="-", status="dead") == 1
    assert value(after, "pointsbot_delivery_errors", platform="outbox", code="unknown_kind") == 1
    assert value(after, "pointsbot_delivery_errors", platform="wecom", code="connection") == 1  # no WeCom here
    assert value(after, "pointsbot_job_last_success_timestamp_seconds", job="budget-grant") > 1.7e9
    assert value(after, "pointsbot_job_last_duration_seconds", job="budget-grant") >= 0
    assert value(after, "pointsbot_dingtalk_api_quota") == bot.settings.dingtalk["monthly_api_quota"]


def test_a_savepoint_rolled_back_counts_no_transaction(app: Any, client: Any) -> None:
    """An award refused by a domain error after its transaction was written is not counted."""
    bot = app.extensions["pointsbot"]
    ids = load_roster(bot, ROSTER, budget=5)
    before = scrape(client)
    from storage.ledger import Ledger

    with bot.db.session_scope() as s:
        ledger = Ledger(s, bot.db.clock, 365)
        with pytest.raises(RuntimeError), s.begin_nested():
            ledger.award(ids["E1"], 10, idem_key="m-rolled-back", actor_id=None, reason="x")
            raise RuntimeError("the handler failed after the award")
        ledger.award(ids["E1"], 10, idem_key="m-kept", actor_id=None, reason="x")
    with pytest.raises(RuntimeError), bot.db.session_scope() as s:
        Ledger(s, bot.db.clock, 365).award(ids["E1"], 10, idem_key="m-session-rolled-back", actor_id=None, reason="x")
        raise RuntimeError("the request failed")
    after = scrape(client)
    assert value(after, "pointsbot_ledger_transactions_total", kind="award") - \
        value(before, "pointsbot_ledger_transactions_total", kind="award") == 1


def test_events_held_in_the_spool_are_a_gauge_to_alert_on(app: Any, client: Any) -> None:
    bot = app.extensions["pointsbot"]
    assert value(scrape(client), "pointsbot_spool_held") == 0
    bot.spool.hold_failed(Spooled("wecom", "<xml><MsgId>1</MsgId></xml>", bot.db.clock()))
    assert value(scrape(client), "pointsbot_spool_held") == 1
    assert client.get("/readyz").get_json()["spool"]["held"] == 1


@pytest.fixture
def token_config(config):  # type: ignore[no-untyped-def]
    config["server"]["metrics_token"] = "mt-secret-456"
    return config


def test_metrics_are_for_loopback_only_without_a_token(client: Any) -> None:
    assert client.get("/metrics").status_code == 200
    assert client.get("/metrics", environ_base=REMOTE).status_code == 404


@pytest.mark.usefixtures("token_config")
def test_metrics_with_a_token_require_it_from_everywhere(client: Any) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    scrape(client, headers={"Authorization": "Bearer mt-secret-456"}, environ_base=REMOTE)


@pytest.fixture
def json_lines() -> Iterator[list[str]]:
    """What the root logger writes in the JSON format, as lines."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep(level=logging.INFO)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    logging.getLogger().addHandler(handler)
    yield lines
    logging.getLogger().removeHandler(handler)


def test_json_log_lines_carry_the_request_the_event_and_the_employee(app: Any, client: Any,
                                                                     json_lines: list[str]) -> None:
    load_roster(app.extensions["pointsbot"], ROSTER)
    resp = wecom_text(client, "zhang", "积分", 7002, headers={"X-Request-ID": "lb-1234-abcd"})
    assert resp.headers["X-Request-ID"] == "lb-1234-abcd"
    handled = [json.loads(line) for line in json_lines if '"handled platform=' in line]
    assert len(handled) == 1
    assert {k: handled[0][k] for k in ("request_id", "platform", "event_id", "employee", "level")} == {
        "request_id": "lb-1234-abcd", "platform": "wecom", "event_id": "7002", "employee": "E1", "level": "INFO"}
    unsafe = wecom_text(client, "zhang", "积分", 7003, headers={"X-Request-ID": "x" * 65})
    assert len(unsafe.headers["X-Request-ID"]) == 32  # too long to log as given: a new id instead
    assert "积分" not in "".join(json_lines)  # no message body at INFO
