"""Approval events end to end: real-format payloads → parser → pipeline (inbox) → handler → ledger → outbox.

Each event is delivered several times and out of order; the form-detail fetch runs through the real
outbox against a fake approval-detail API (``responses`` on http://fake-*.test, never a real host),
including when that API fails twice first; reconcile awards what was never delivered and nothing twice.
"""
from __future__ import annotations

import json
import random
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
import responses
from sqlalchemy import select

from app import PointsBot
from bot import approvals_sync
from bot import delivery
from bot.dingtalk.parse import parse_event
from bot.core.events import Event
from bot.core.pipeline import Answer, Pipeline
from bot.core.router import Router
from bot.wecom.parse import parse as parse_wecom
from handlers import approvals as approval_handlers
from handlers import members as member_handlers
from settings import build_settings
from storage import rules
from storage.invariants import check_invariants
from storage import approvals as storage_approvals
from storage.models import ApprovalInstance, Binding, Outbox, ProcessedEvent, Txn
from tests.e2e.conftest import DINGTALK, WECOM
from tests.storage.factories import make_employee

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

WC, DT, DT_OAPI = "http://fake-wecom.test/cgi-bin", "http://fake-dingtalk.test", "http://fake-dingtalk-oapi.test"
RULES = [
    {"name": "全勤", "platform": "dingtalk", "template": "PROC-FULLATT", "points": 100, "category": "attendance"},
    {"name": "月度之星", "platform": "dingtalk", "template": "PROC-STAR", "points": 30,
     "max_per": {"count": 1, "period": "month"}},
    {"name": "技能认证", "platform": "dingtalk", "template": "PROC-CERT", "field": "认证等级",
     "tiers": [{"min": 3, "points": 300}, {"min": 1, "points": 100}]},
    {"name": "培训", "platform": "wecom", "template": "TPL-TRAIN", "points": 50, "category": "training"},
    {"name": "季度绩效", "platform": "wecom", "template": "TPL-PERF", "field": "绩效得分",
     "tiers": [{"min": 90, "points": 500}, {"min": 80, "points": 300}, {"min": 70, "points": 100}]},
]
SP_STATUS = {"running": (1, 1), "approved": (2, 2), "rejected": (3, 3), "withdrawn": (4, 6), "revoked": (6, 8),
             "deleted": (7, 1)}


def wecom_xml(sp_no: str, status: str, *, template: str = "TPL-TRAIN", user: str = "wc_e1", t: int = 1773100000,
              title: str = "安全培训") -> str:
    sp, change = SP_STATUS[status]
    return (f"<xml><ToUserName><![CDATA[{WECOM['corp_id']}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
            f"<CreateTime>{t}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[sys_approval_change]]></Event><AgentID>1000002</AgentID><ApprovalInfo>"
            f"<SpNoStr><![CDATA[{sp_no}]]></SpNoStr><SpNo>{sp_no}</SpNo><SpName><![CDATA[{title}]]></SpName>"
            f"<SpStatus>{sp}</SpStatus><TemplateId><![CDATA[{template}]]></TemplateId><ApplyTime>{t - 100}</ApplyTime>"
            f"<Applyer><UserId><![CDATA[{user}]]></UserId><Party><![CDATA[1]]></Party></Applyer>"
            f"<StatuChangeEvent>{change}</StatuChangeEvent></ApprovalInfo></xml>")


def dingtalk_payload(pid: str, kind: str, *, template: str = "PROC-FULLATT", user: str = "dt_e1",
                     event_id: str | None = None, title: str = "三月全勤") -> dict[str, Any]:
    type_, result = {"start": ("start", None), "agree": ("finish", "agree"), "refuse": ("finish", "refuse"),
                     "terminate": ("terminate", None)}[kind]
    body = {"EventType": "bpms_instance_change", "EventTime": 1773100000000, "CorpId": DINGTALK["corp_id"],
            "eventId": event_id or f"ev-{pid}-{kind}", "processInstanceId": pid, "processCode": template,
            "title": title, "type": type_, "staffId": user, "createTime": 1773000000000}
    if result:
        body["result"] = result
    return body


def wecom_event(*args: Any, **kw: Any) -> Event:
    return parse_wecom(wecom_xml(*args, **kw), datetime(2026, 3, 10, 2))


def dingtalk_event(*args: Any, **kw: Any) -> Event:
    return parse_event(json.dumps(dingtalk_payload(*args, **kw), ensure_ascii=False), datetime(2026, 3, 10, 2))


def ok(event: Event, reply: Any) -> tuple[Answer, tuple]:
    return Answer(200, "success"), ()


class Harness:
    """The pipeline and the bot object as the app wires them, on a test database."""

    def __init__(self, db, clock) -> None:
        self.db, self.clock = db, clock
        self.settings = build_settings({"wecom": WECOM, "dingtalk": DINGTALK, "rules": RULES})
        router = Router()
        approval_handlers.register(router)
        member_handlers.register(router)
        self.bot = PointsBot(settings=self.settings, db=db, router=router, pipeline=Pipeline(db, self.settings, router))
        with db.session_scope() as s:
            self.ids = {no: make_employee(s, no, name=name, role=role, dingtalk=f"dt_{no.lower()}",
                                          wecom=f"wc_{no.lower()}").id
                        for no, name, role in (("E1", "张三", "employee"), ("E2", "李四", "employee"),
                                               ("H1", "人事乙", "hr"))}
            rules.seed_from_config(s, self.settings.rules, now=clock())  # as db upgrade does

    def send(self, event: Event) -> None:
        assert self.bot.pipeline.handle(event, ok).status == 200

    def txns(self, kind: str | None = None) -> list[Txn]:
        with self.db.session_scope() as s:
            q = select(Txn).where(Txn.kind.in_((kind,) if kind else ("award", "reverse"))).order_by(Txn.id)
            return list(s.scalars(q))

    def by_key(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for t in self.txns():
            out.setdefault(t.idem_key, []).append(t.amount)
        return out

    def outbox(self, kind: str) -> list[dict[str, Any]]:
        with self.db.session_scope() as s:
            return [json.loads(r.payload) | {"_status": r.status, "_attempts": r.attempts, "_key": r.idem_key}
                    for r in s.scalars(select(Outbox).where(Outbox.kind == kind).order_by(Outbox.id))]

    def drain(self) -> None:
        delivery.drain(self.bot, worker_id="test", rand=lambda: 0.0)


@pytest.fixture
def h(sqlite_db, clock) -> Harness:
    return Harness(sqlite_db, clock)


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    """Fake platform hosts: tokens and message sends always work; each test adds its approval answers."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{WC}/gettoken", json={"errcode": 0, "access_token": "wc-token", "expires_in": 7200})
        mock.post(f"{WC}/message/send", json={"errcode": 0, "errmsg": "ok", "msgid": "m1"})
        mock.post(f"{DT}/v1.0/oauth2/accessToken", json={"accessToken": "dt-token", "expireIn": 7200})
        mock.post(f"{DT}/v1.0/robot/oToMessages/batchSend", json={"processQueryKey": "q1"})
        mock.get(f"{DT_OAPI}/gettoken", json={"errcode": 0, "access_token": "dt-legacy", "expires_in": 7200})
        yield mock


# ---- live events: every status, duplicates, out of order ---------------------------------------------

def scenario() -> tuple[list[Event], dict[str, int]]:
    """(events, expected net award per instance key); a revoke after approval nets 0 with one reversal."""
    ev: list[Event] = []
    ev += [dingtalk_event("D-OK", "agree"), dingtalk_event("D-OK", "start")]  # finish before start
    ev += [dingtalk_event("D-NO", "start"), dingtalk_event("D-NO", "refuse")]
    ev += [dingtalk_event("D-TERM", "start"), dingtalk_event("D-TERM", "terminate")]
    ev += [dingtalk_event("D-OTHER", "agree", template="PROC-UNKNOWN")]
    ev += [wecom_event("W-OK", "running"), wecom_event("W-OK", "approved"),
           wecom_event("W-OK", "approved", t=1773100050)]  # the same status again under another event id
    ev += [wecom_event("W-NO", "running"), wecom_event("W-NO", "rejected")]
    ev += [wecom_event("W-WD", "running"), wecom_event("W-WD", "withdrawn")]
    ev += [wecom_event("W-DEL", "approved", template="TPL-NONE"), wecom_event("W-GONE", "deleted")]
    ev += [wecom_event("W-REV", "running"), wecom_event("W-REV", "approved", user="wc_e2"),
           wecom_event("W-REV", "revoked", user="wc_e2")]
    ev += [wecom_event("W-EARLY", "revoked"), wecom_event("W-EARLY", "approved")]  # withdrawal before approval
    return ev, {"approval:dingtalk:D-OK": 100, "approval:wecom:W-OK": 50}


def test_every_status_each_delivered_three_times(h: Harness) -> None:
    events, expected = scenario()
    for event in events:
        for _ in range(3):
            h.send(event)
    assert h.by_key() == {**{k: [v] for k, v in expected.items()},
                          "approval:wecom:W-REV": [50], "approval-reverse:wecom:W-REV": [-50]}
    with h.db.session_scope() as s:
        states = {r.instance_id: r.status for r in s.scalars(select(ApprovalInstance))}
        assert check_invariants(s) == []
    assert states == {"D-OK": "approved", "W-OK": "approved", "W-REV": "revoked", "W-EARLY": "revoked"}
    notices = h.outbox("notice")
    texts = [json.dumps(n["card"], ensure_ascii=False) for n in notices]
    assert len(notices) == 4  # D-OK, W-OK and W-REV awarded, W-REV reversed: each told once
    assert any("全勤" in t and "三月全勤" in t for t in texts)
    assert any("培训" in t and "安全培训" in t and "扣回" in t for t in texts)


@pytest.mark.parametrize("seed", range(8))
def test_shuffled_deliveries_award_once(h: Harness, seed: int) -> None:
    events, expected = scenario()
    deliveries = events * 3
    random.Random(seed).shuffle(deliveries)
    for event in deliveries:
        h.send(event)
    keys = h.by_key()
    for key, points in expected.items():
        assert keys.pop(key) == [points]
    # revoked instances: either approved then reversed (one reversal), or the revoke came first (nothing at all)
    for sp in ("W-REV", "W-EARLY"):
        rev = (keys.pop(f"approval:wecom:{sp}", []), keys.pop(f"approval-reverse:wecom:{sp}", []))
        assert rev in (([50], [-50]), ([], []))
    assert keys == {}


def test_monthly_cap_through_events(h: Harness) -> None:
    for pid in ("S1", "S2", "S3"):
        h.send(dingtalk_event(pid, "agree", template="PROC-STAR", title=f"{pid} 月度之星"))
    assert [t.amount for t in h.txns("award")] == [30]
    with h.db.session_scope() as s:
        notes = {r.instance_id: r.note for r in s.scalars(select(ApprovalInstance))}
    assert "每月最多 1 次" in notes["S2"] and "每月最多 1 次" in notes["S3"]


# ---- form values from the approval-detail API (outbox task) -------------------------------------------

def wecom_detail(sp_no: str, score: str, status: int = 2, template: str = "TPL-PERF") -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", "info": {
        "sp_no": sp_no, "sp_name": "Q1 绩效", "sp_status": status, "template_id": template, "apply_time": 1773000000,
        "applyer": {"userid": "wc_e1", "partyid": "1"},
        "apply_data": {"contents": [
            {"control": "Text", "id": "c1", "title": [{"text": "备注", "lang": "zh_CN"}], "value": {"text": "好"}},
            {"control": "Number", "id": "c2", "title": [{"text": "绩效得分", "lang": "zh_CN"}],
             "value": {"new_number": score}}]}}}


def test_wecom_tiers_from_the_detail_api_after_two_failures(h: Harness, api: responses.RequestsMock) -> None:
    url = f"{WC}/oa/getapprovaldetail"
    api.post(url, status=500, body="busy")
    api.post(url, json={"errcode": -1, "errmsg": "system busy"})
    api.post(url, json=wecom_detail("P1", "86"))
    for _ in range(3):
        h.send(wecom_event("P1", "approved", template="TPL-PERF", title="Q1 绩效"))
    (task,) = h.outbox("task")
    assert task["task"] == "approval_detail" and task["_key"] == "approval-detail:wecom:P1"
    h.drain()
    (task,) = h.outbox("task")
    assert (task["_status"], task["_attempts"]) == ("sent", 2)
    assert [(t.amount, t.idem_key) for t in h.txns()] == [(300, "approval:wecom:P1")]
    assert len([c for c in api.calls if c.request.url.startswith(url)]) == 3
    (notice,) = h.outbox("notice")
    assert "季度绩效" in json.dumps(notice["card"], ensure_ascii=False) and notice["_status"] == "sent"
    h.send(wecom_event("P1", "approved", template="TPL-PERF", t=1773100099))  # a late duplicate: nothing
    h.drain()
    assert len(h.txns()) == 1


def test_dingtalk_tiers_from_the_detail_api_after_two_failures(h: Harness, api: responses.RequestsMock) -> None:
    url = re.compile(re.escape(f"{DT}/v1.0/workflow/processInstances") + r"\?.*")
    api.get(url, status=503, json={"code": "ServiceUnavailable"})
    api.get(url, status=500, json={"code": "InternalError"})
    api.get(url, json={"success": True, "result": {
        "title": "张三的技能认证", "status": "COMPLETED", "result": "agree", "originatorUserId": "dt_e1",
        "formComponentValues": [{"name": "认证等级", "value": "3", "componentType": "NumberField"}]}})
    h.send(dingtalk_event("C1", "agree", template="PROC-CERT", title="张三的技能认证"))
    h.send(dingtalk_event("C1", "start", template="PROC-CERT"))
    h.drain()
    assert [(t.amount, t.idem_key) for t in h.txns()] == [(300, "approval:dingtalk:C1")]
    (task,) = h.outbox("task")
    assert (task["_status"], task["_attempts"]) == ("sent", 2)


def test_a_detail_the_pipeline_could_not_apply_is_fetched_again(h: Harness, api: responses.RequestsMock,
                                                                 monkeypatch: Any) -> None:
    """The fetched form goes through the pipeline like a callback; a failure there is not the task's success."""
    api.post(f"{WC}/oa/getapprovaldetail", json=wecom_detail("P3", "86"))
    h.send(wecom_event("P3", "approved", template="TPL-PERF"))
    real, calls = storage_approvals.on_approval, []

    def failing_once(*args: Any, **kw: Any) -> Any:
        calls.append(kw["form"])
        if len(calls) == 1:
            raise RuntimeError("a bug in the first run")
        return real(*args, **kw)

    monkeypatch.setattr(storage_approvals, "on_approval", failing_once)
    h.drain()
    (task,) = h.outbox("task")
    assert (task["_status"], task["_attempts"]) == ("sent", 1) and len(calls) == 2 and calls[0] is not None
    assert [(t.amount, t.idem_key) for t in h.txns()] == [(300, "approval:wecom:P3")]
    with h.db.session_scope() as s:  # the applied run is in the inbox, the failed one is not
        ids = list(s.scalars(select(ProcessedEvent.event_id).where(ProcessedEvent.event_id.like("sync:%"))))
    assert len(ids) == 1 and ids[0].startswith("sync:wecom:P3:")


def test_revoked_while_the_detail_fetch_waits(h: Harness, api: responses.RequestsMock) -> None:
    api.post(f"{WC}/oa/getapprovaldetail", json=wecom_detail("P2", "95", status=6))
    h.send(wecom_event("P2", "approved", template="TPL-PERF"))
    h.send(wecom_event("P2", "revoked", template="TPL-PERF"))
    h.drain()
    assert h.txns() == []
    assert not any("getapprovaldetail" in c.request.url for c in api.calls)


# ---- reconcile ---------------------------------------------------------------------------------------------

def test_reconcile_wecom_awards_a_missed_approval_once(h: Harness, api: responses.RequestsMock, clock) -> None:
    h.send(wecom_event("W-LIVE", "approved"))
    api.post(f"{WC}/oa/getapprovalinfo", json={"errcode": 0, "sp_no_list": ["W-LIVE", "W-MISSED", "W-RUN"]})
    api.post(f"{WC}/oa/getapprovalinfo", json={"errcode": 0, "sp_no_list": []})
    detail_url = f"{WC}/oa/getapprovaldetail"

    def detail(request: Any) -> tuple[int, dict[str, str], str]:
        sp_no = json.loads(request.body)["sp_no"]
        body = wecom_detail(sp_no, "0", status=2 if sp_no == "W-MISSED" else 1, template="TPL-TRAIN")
        return 200, {}, json.dumps(body)

    api.add_callback(responses.POST, detail_url, callback=detail)
    assert approvals_sync.reconcile(h.bot, clock()) == 1
    asked = [json.loads(c.request.body)["sp_no"] for c in api.calls if c.request.url.startswith(detail_url)]
    assert sorted(asked) == ["W-MISSED", "W-RUN"]  # the live award is already settled: not fetched
    h.send(wecom_event("W-MISSED", "approved"))  # the event arrives late
    assert approvals_sync.reconcile(h.bot, clock()) == 0
    assert h.by_key() == {"approval:wecom:W-LIVE": [50], "approval:wecom:W-MISSED": [50]}
    info = [json.loads(c.request.body) for c in api.calls if "getapprovalinfo" in c.request.url]
    start, end = int(info[0]["starttime"]), int(info[0]["endtime"])
    assert end == int(clock().replace(tzinfo=timezone.utc).timestamp()) and end - start == 3 * 86400
    assert info[0]["filters"] == [{"key": "template_id", "value": "TPL-TRAIN"}]


def test_reconcile_dingtalk_replays_failed_callbacks(h: Harness, api: responses.RequestsMock, clock) -> None:
    missed = dingtalk_payload("D-MISSED", "agree")
    leaver = {"EventType": "user_leave_org", "userId": ["dt_e2"], "eventId": "ev-leave"}
    listing = {"errcode": 0, "has_more": False, "failed_list": [
        {"call_back_tag": "bpms_instance_change", "event_time": 1773100000000,
         "bpms_instance_change": json.dumps(missed, ensure_ascii=False)},
        {"call_back_tag": "bpms_instance_change", "event_time": 1773100000000,
         "bpms_instance_change": dingtalk_payload("D-REFUSED", "refuse")},
        {"call_back_tag": "user_leave_org", "event_time": 1773100000000, "user_leave_org": leaver}]}
    api.get(f"{DT_OAPI}/call_back/get_call_back_failed_result", json=listing)
    assert approvals_sync.reconcile(h.bot, clock()) == 1
    h.send(dingtalk_event("D-MISSED", "agree", event_id="ev-late"))  # DingTalk delivers it after all
    assert approvals_sync.reconcile(h.bot, clock()) == 0  # the same list again changes nothing
    assert h.by_key() == {"approval:dingtalk:D-MISSED": [100]}
    from storage.models import Employee
    with h.db.session_scope() as s:
        assert s.get(Employee, h.ids["E2"]).status == "left"


def test_reconcile_reads_the_documented_nested_failed_list(h: Harness, api: responses.RequestsMock, clock) -> None:
    """Items as DingTalk documents them: fields under bpmsCallBackData, member ids as a lowercase userid list."""
    listing = json.loads((FIXTURES / "dingtalk" / "failed_callbacks.json").read_text(encoding="utf-8"))
    api.get(f"{DT_OAPI}/call_back/get_call_back_failed_result", json=listing)
    assert approvals_sync.reconcile(h.bot, clock()) == 1
    assert h.by_key() == {"approval:dingtalk:D-NESTED": [100]}
    from storage.models import Employee
    with h.db.session_scope() as s:
        assert s.get(Employee, h.ids["E2"]).status == "left"
        assert s.scalar(select(ApprovalInstance.finished_at)) == datetime(2026, 3, 9, 21, 0)  # its finishTime


def test_reconcile_retries_a_detail_fetch_whose_task_died(h: Harness, api: responses.RequestsMock, clock) -> None:
    h.send(wecom_event("P3", "approved", template="TPL-PERF"))
    with h.db.session_scope() as s:
        s.execute(Outbox.__table__.update().values(status="dead"))
    api.post(f"{WC}/oa/getapprovalinfo", json={"errcode": 0, "sp_no_list": []})
    api.post(f"{WC}/oa/getapprovaldetail", json=wecom_detail("P3", "91"))
    assert approvals_sync.reconcile(h.bot, clock()) == 0  # too recent: the outbox may still be on it
    clock.advance(minutes=11)
    assert approvals_sync.reconcile(h.bot, clock()) == 1
    assert h.by_key() == {"approval:wecom:P3": [500]}


def test_an_unbound_employees_approval_still_awards_by_roster_id(h: Harness) -> None:
    """An unbind keeps the account unbound for messages, never for points: the roster id still names the person."""
    from storage.members import resolve_member, unbind_all

    with h.db.session_scope() as s:
        assert resolve_member(s, "dingtalk", "dt_e1", h.clock()).id == h.ids["E1"]
        unbind_all(s, h.ids["E1"], now=h.clock(), actor_id=None, why="U1")
    h.send(dingtalk_event("D-UNB", "agree"))
    assert h.by_key() == {"approval:dingtalk:D-UNB": [100]}
    with h.db.session_scope() as s:
        assert s.scalar(select(Binding.status).where(Binding.platform_user_id == "dt_e1")) == "unbound"
    [notice] = h.outbox("notice")
    assert notice["employee_id"] == h.ids["E1"]  # queued; delivery finds no active account and sends nothing
