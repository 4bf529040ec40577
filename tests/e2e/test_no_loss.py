"""No loss: an event the bot acknowledged was applied, and a failure is never stored as its answer.

Through the real endpoints on every engine. The concurrency tests run their rounds from separate
processes (tests/e2e/racing.py), the way gunicorn workers race; both failed on today's engines:
deadlocked awards on MariaDB, first-message bindings on PostgreSQL.
"""
from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from cards import messages as msg
from storage import members
from storage.invariants import check_invariants
from storage.ledger import Ledger
from storage.models import Employee, Outbox, ProcessedEvent, Txn
from tests.e2e import signing
from tests.e2e.conftest import DINGTALK, WECOM, load_roster, post_approval
from tests.e2e.racing import race

ROUNDS, RACERS = 20, 12
ROSTER = "\n".join([
    "employee_no,name,department,manager_no,role,dingtalk_userid,wecom_userid",
    "A1,管理员,人力资源部,,admin,adm,adm",
    "E1,张三,研发部,,employee,zhang,zhang",
    *(f"N{r:02d},新管理员{r},人力资源部,,admin,new{r:02d},new{r:02d}" for r in range(ROUNDS)),
]) + "\n"


@pytest.fixture
def company(app):  # type: ignore[no-untyped-def]
    """A1 has used the bot before (bound); N00…N19 never wrote to it (bound lazily from the roster)."""
    bot = app.extensions["pointsbot"]
    ids = load_roster(bot, ROSTER)
    with bot.db.session_scope() as s:
        members.bind(s, s.get(Employee, ids["A1"]), "dingtalk", "adm", now=bot.db.clock(), actor_id=None, how="test")
    return bot


def robot(client, user: str, text: str, msg_id: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    resp = client.post("/callback/dingtalk/robot", data=signing.robot_body(user, text, msg_id),
                       headers=signing.robot_headers(DINGTALK["app_secret"], int(time.time() * 1000)))
    if resp.status_code != 200:
        return resp.status_code, ""
    data = json.loads(resp.data)
    return 200, data.get("text", {}).get("content", "") or data.get("markdown", {}).get("text", "")


def wecom(client, user: str, text: str, msg_id: int) -> tuple[int, bytes]:  # type: ignore[no-untyped-def]
    ts = int(time.time())
    xml = signing.wecom_text_xml(user, WECOM["corp_id"], text, msg_id, ts)
    params, body = signing.wecom_post(WECOM["token"], WECOM["encoding_aes_key"], WECOM["corp_id"], xml, ts)
    resp = client.post("/callback/wecom", query_string=params, data=body)
    return resp.status_code, resp.data


def awards_to_e1(bot) -> list[int]:  # type: ignore[no-untyped-def]
    with bot.db.session_scope() as s:
        e1 = s.scalar(select(Employee.id).where(Employee.employee_no == "E1"))
        return sorted(s.scalars(select(Txn.amount).where(Txn.kind == "award", Txn.employee_id == e1)))


def recorded(bot) -> int:  # type: ignore[no-untyped-def]
    with bot.db.session_scope() as s:
        return int(s.scalar(select(func.count(ProcessedEvent.id))) or 0)


def clean(bot) -> None:  # type: ignore[no-untyped-def]
    with bot.db.session_scope() as s:
        assert check_invariants(s) == []


def unconfirmed(results: list[list[tuple[int, str]]]) -> list[tuple[int, int, int, str]]:
    """(round, racer, status, reply) of every award that was not confirmed."""
    return [(r, i, status, text) for r, row in enumerate(results) for i, (status, text) in enumerate(row)
            if status != 200 or "已奖励" not in text]


def points(r: int, i: int) -> int:
    return 1 + r * RACERS + i  # distinct, so no award looks like a double send of another


def test_concurrent_awards_to_one_employee_all_apply_once(config, company, client) -> None:
    """Twelve awards to one employee at once, twenty rounds: all applied, each redelivery answered the same."""
    def send(c, r: int, i: int) -> tuple[int, str]:  # type: ignore[no-untyped-def]
        return robot(c, "adm", f"奖励 E1 {points(r, i)} 一起排查故障", f"m-{r}-{i}")

    results = race(config, ROUNDS, RACERS, send)
    assert unconfirmed(results) == []
    expected = sorted(points(r, i) for r in range(ROUNDS) for i in range(RACERS))
    assert awards_to_e1(company) == expected
    for r in (0, ROUNDS - 1):  # a redelivery is answered from the store and changes nothing
        for i in range(RACERS):
            assert send(client, r, i) == results[r][i]
    assert awards_to_e1(company) == expected
    clean(company)


def test_concurrent_first_messages_resolve_to_the_roster_employee(config, company) -> None:
    """An admin who never wrote to the bot sends twelve awards at once: none gets the "please bind" card."""
    def send(c, r: int, i: int) -> tuple[int, str]:  # type: ignore[no-untyped-def]
        return robot(c, f"new{r:02d}", f"奖励 E1 {points(r, i)} 新人第一次用", f"f-{r}-{i}")

    results = race(config, ROUNDS, RACERS, send)
    assert unconfirmed(results) == []
    assert awards_to_e1(company) == sorted(points(r, i) for r in range(ROUNDS) for i in range(RACERS))
    clean(company)


def _boom(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise RuntimeError("a bug in the award path")


def test_a_bug_is_answered_but_never_recorded(company, client, monkeypatch) -> None:
    before = recorded(company)
    monkeypatch.setattr(Ledger, "award", _boom)
    assert robot(client, "adm", "奖励 E1 30 帮忙", "bug-1") == (200, msg.INTERNAL_ERROR)
    status, body = wecom(client, "adm", "奖励 E1 40 帮忙", 880001)
    assert (status, body) == (200, b"")  # WeCom: an empty 200, the apology as a message of its own
    with company.db.session_scope() as s:
        [apology] = [json.loads(p) for p in s.scalars(select(Outbox.payload))]
    assert apology["card"]["title"] == msg.INTERNAL_ERROR and apology["user_id"] == "adm"
    assert recorded(company) == before and awards_to_e1(company) == []

    monkeypatch.undo()  # the fix is deployed; the platform (or the user) delivers the same messages again
    assert "已奖励" in robot(client, "adm", "奖励 E1 30 帮忙", "bug-1")[1]
    assert wecom(client, "adm", "奖励 E1 40 帮忙", 880001)[0] == 200
    assert awards_to_e1(company) == [30, 40] and recorded(company) == before + 2
    clean(company)


def wecom_left(client, user: str, ts: int) -> int:  # type: ignore[no-untyped-def]
    xml = (f"<xml><ToUserName><![CDATA[{WECOM['corp_id']}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
           f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event>"
           f"<ChangeType><![CDATA[delete_user]]></ChangeType><UserID><![CDATA[{user}]]></UserID></xml>")
    params, body = signing.wecom_post(WECOM["token"], WECOM["encoding_aes_key"], WECOM["corp_id"], xml, int(time.time()))
    return int(client.post("/callback/wecom", query_string=params, data=body).status_code)


def test_a_bug_in_a_platform_event_is_not_acknowledged(company, client, monkeypatch) -> None:
    """Acknowledged, an approval or a leaver is never sent again and is lost; not acknowledged, the platform
    sends it again (DingTalk then lists it for reconcile), and it is applied once the fix is deployed."""
    from storage import approvals, leavers

    before, ts = recorded(company), int(time.time())
    monkeypatch.setattr(approvals, "on_approval", _boom)
    monkeypatch.setattr(leavers, "member_left", _boom)
    assert post_approval(client, "inst-bug", "zhang") == 500
    assert wecom_left(client, "zhang", ts) == 500
    assert recorded(company) == before and awards_to_e1(company) == []

    monkeypatch.undo()
    assert post_approval(client, "inst-bug", "zhang") == 200
    assert wecom_left(client, "zhang", ts) == 200
    assert post_approval(client, "inst-bug", "zhang") == 200  # a redelivery: answered from the inbox
    assert awards_to_e1(company) == [100] and recorded(company) == before + 2
    with company.db.session_scope() as s:
        assert s.scalar(select(Employee.status).where(Employee.employee_no == "E1")) == "left"
    clean(company)


class FakeDeadlock(Exception):
    """What PyMySQL raises for InnoDB's deadlock (error 1213)."""


def _deadlocks(times: list[int]):  # type: ignore[no-untyped-def]
    real = Ledger.award

    def award(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if times[0] > 0:
            times[0] -= 1
            raise OperationalError("UPDATE accounts", {}, FakeDeadlock(1213, "Deadlock found when trying to get lock"))
        return real(self, *args, **kwargs)
    return award


def test_a_transient_error_is_retried_within_the_request(company, client, monkeypatch) -> None:
    monkeypatch.setattr(Ledger, "award", _deadlocks([2]))
    assert "已奖励" in robot(client, "adm", "奖励 E1 30 帮忙", "dl-1")[1]
    assert awards_to_e1(company) == [30]


def test_when_retries_run_out_the_event_is_kept_not_recorded(app, company, client, monkeypatch) -> None:
    """A deadlock that outlasts the retries: nothing is recorded; the robot asks the user to resend, the
    callbacks that the platforms would not resend wait in the spool and are applied once the database can."""
    before = recorded(company)
    monkeypatch.setattr(Ledger, "award", _deadlocks([10**6]))
    assert robot(client, "adm", "奖励 E1 30 帮忙", "dl-2") == (200, msg.BUSY)  # DingTalk never resends a robot message
    assert wecom(client, "adm", "奖励 E1 40 帮忙", 880002) == (200, b"")
    assert post_approval(client, "inst-busy", "zhang") == 200
    assert recorded(company) == before and awards_to_e1(company) == []
    assert company.spool.usage()[1] == 2

    monkeypatch.undo()  # the database takes writes again: the spool is replayed without anyone resending
    assert wait_until(lambda: not company.spool.pending())
    assert awards_to_e1(company) == [40, 100]
    with company.db.session_scope() as s:  # the WeCom reply went out as a message of its own
        assert any("已奖励" in p for p in s.scalars(select(Outbox.payload)))
    assert "已奖励" in robot(client, "adm", "奖励 E1 30 帮忙", "dl-2")[1]  # the user sends it again
    assert awards_to_e1(company) == [30, 40, 100]
    clean(company)


def wait_until(check, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False
