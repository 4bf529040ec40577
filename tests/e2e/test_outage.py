"""A database outage loses nothing: callbacks are spooled, answered as received, and replayed.

The database is cut away for real (tests/e2e/relay.py: a TCP relay between the app and PostgreSQL or
MariaDB that the test closes), during callbacks of every kind: a WeCom text command, a WeCom approval,
a DingTalk approval, a DingTalk leaver event and a DingTalk robot message.
"""
from __future__ import annotations

import copy
import json
import time
from typing import Any, Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from app import create_app
from storage import members
from storage.db import Database
from storage.invariants import check_invariants
from storage.migrate import upgrade
from storage.models import Base, Employee, Outbox, ProcessedEvent, Txn
from tests.e2e import signing
from tests.e2e.conftest import BASE_CONFIG, DINGTALK, WECOM, load_roster, post_approval
from tests.e2e.relay import Relay
from tests.e2e.test_no_loss import robot, wait_until, wecom

ROSTER = ("employee_no,name,department,manager_no,role,dingtalk_userid,wecom_userid\n"
          "A1,管理员,人力资源部,,admin,adm,adm\nE1,张三,研发部,,employee,zhang,zhang\n"
          "E2,李四,研发部,,employee,li,li\n")


@pytest.fixture
def cut_app(engine_name: str, server_databases: dict[str, str], tmp_path: Any) -> Iterator[tuple[Any, Relay]]:
    """The app on PostgreSQL or MariaDB through a relay the test can cut; at most 5 events fit the spool."""
    if engine_name == "sqlite":
        pytest.skip("an embedded database has no network to cut")
    direct = make_url(server_databases[engine_name])
    relay = Relay(direct.port or (5432 if engine_name == "postgresql" else 3306))
    db = Database(direct.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False))
    Base.metadata.drop_all(db.engine)
    with db.engine.begin() as conn:  # alembic_version too: the schema comes from the migrations here
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    upgrade(db)
    config = copy.deepcopy(BASE_CONFIG)
    config["rules"].append({"name": "培训", "platform": "wecom", "template": "TPL-TRAIN", "points": 50})
    config["database"] = {"url": db.url}
    config["spool"] = {"dir": str(tmp_path / "spool"), "max_events": 5}
    app = create_app(config, db=db)
    bot = app.extensions["pointsbot"]
    ids = load_roster(bot, ROSTER)
    with db.session_scope() as s:
        members.bind(s, s.get(Employee, ids["A1"]), "wecom", "adm", now=db.clock(), actor_id=None, how="test")
        members.bind(s, s.get(Employee, ids["A1"]), "dingtalk", "adm", now=db.clock(), actor_id=None, how="test")
    yield app, relay
    relay.restore()
    wait_until(lambda: not bot.spool.pending(), 10)
    db.dispose()
    relay.cut()


def wecom_approval(client, sp_no: str, user: str) -> int:  # type: ignore[no-untyped-def]
    ts = int(time.time())
    xml = (f"<xml><ToUserName><![CDATA[{WECOM['corp_id']}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
           f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
           f"<Event><![CDATA[sys_approval_change]]></Event><AgentID>1000002</AgentID><ApprovalInfo>"
           f"<SpNo>{sp_no}</SpNo><SpName><![CDATA[培训完成]]></SpName><SpStatus>2</SpStatus>"
           f"<TemplateId><![CDATA[TPL-TRAIN]]></TemplateId><ApplyTime>{ts}</ApplyTime>"
           f"<Applyer><UserId><![CDATA[{user}]]></UserId></Applyer><StatuChangeEvent>2</StatuChangeEvent>"
           f"</ApprovalInfo></xml>")
    params, body = signing.wecom_post(WECOM["token"], WECOM["encoding_aes_key"], WECOM["corp_id"], xml, ts)
    return client.post("/callback/wecom", query_string=params, data=body).status_code


def dingtalk_leaver(client, user: str) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    payload = {"EventType": "user_leave_org", "eventId": f"ev-left-{user}", "userId": [user]}
    params, body = signing.dingtalk_event(DINGTALK["token"], DINGTALK["aes_key"], DINGTALK["app_key"], payload,
                                          int(time.time() * 1000))
    resp = client.post("/callback/dingtalk", query_string=params, data=body, headers={"Content-Type": "application/json"})
    return resp.status_code, json.loads(resp.data) if resp.status_code == 200 else {}


def test_callbacks_during_an_outage_are_spooled_and_replayed(cut_app) -> None:
    app, relay = cut_app
    bot, client = app.extensions["pointsbot"], app.test_client()
    relay.cut()
    assert wecom(client, "adm", "奖励 E1 30 扛住了故障", 990001) == (200, b"")  # answered as received
    assert wecom_approval(client, "SP-OUTAGE", "zhang") == 200
    assert post_approval(client, "inst-outage", "zhang") == 200
    status, ack = dingtalk_leaver(client, "li")
    assert status == 200 and set(ack) == {"msg_signature", "timeStamp", "nonce", "encrypt"}  # the encrypted success
    assert robot(client, "adm", "积分", "r-outage") == (200, "系统繁忙，这条消息没有处理，请稍后再发送一次。")
    assert client.get("/healthz").status_code == 503
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["spool"]["events"] == 4 and ready.json["database"] == "unavailable"
    assert wecom(client, "adm", "奖励 E1 5 再来", 990002) == (200, b"")
    assert wecom(client, "adm", "奖励 E1 6 又来", 990003)[0] == 503  # the spool is full (max_events = 5)
    assert client.get("/readyz").status_code == 503

    relay.restore()  # the database is back: the next callback (or the replayer) applies what waits, in order
    assert wait_until(lambda: not bot.spool.pending(), 15)
    with bot.db.session_scope() as s:
        e1 = s.scalar(select(Employee).where(Employee.employee_no == "E1"))
        assert sorted(s.scalars(select(Txn.amount).where(Txn.employee_id == e1.id, Txn.kind == "award"))) == [5, 30, 50, 100]
        assert s.scalar(select(Employee.status).where(Employee.employee_no == "E2")) == "left"
        assert s.scalar(select(func.count(ProcessedEvent.id))) == 5
        assert any("已奖励" in p for p in s.scalars(select(Outbox.payload)))  # the WeCom reply, as a message
        assert check_invariants(s) == []
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").json["ready"] is True
