"""Every endpoint, end to end: real signed and encrypted requests built by tests/e2e/signing.py.

Each endpoint rejects a tampered signature, a stale timestamp, a wrong receive id and a body that is
not the platform's outer format with 403 and no write; each delivery repeated 4 times acts once and
gets the same answer. No outbound HTTP happens inside any callback.
"""
from __future__ import annotations

import json
import re
import time
from xml.etree import ElementTree
from typing import Any, Callable

import pytest
import requests
from sqlalchemy import func, select

from storage.models import Outbox, ProcessedEvent
from tests.e2e import signing
from tests.e2e.conftest import DINGTALK, WECOM

Request = tuple[str, str, dict[str, Any], bytes, dict[str, str]]  # method, path, query, body, headers


def _counts(app) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with app.extensions["pointsbot"].db.session_scope() as s:
        return (s.scalar(select(func.count(ProcessedEvent.id))) or 0, s.scalar(select(func.count(Outbox.id))) or 0)


def _send(client, req: Request):  # type: ignore[no-untyped-def]
    method, path, query, body, headers = req
    return client.open(path, method=method, query_string=query, data=body, headers=headers)


def wecom_text(ts: int | None = None, *, corp: str = WECOM["corp_id"], msg_id: int = 77001) -> Request:
    ts = ts or int(time.time())
    q, b = signing.wecom_post(WECOM["token"], WECOM["encoding_aes_key"], corp,
                              signing.wecom_text_xml("lisi", corp, "帮助", msg_id, ts), ts)
    return "POST", "/callback/wecom", q, b, {}


def wecom_click(ts: int | None = None, *, corp: str = WECOM["corp_id"]) -> Request:
    ts = ts or int(time.time())
    q, b = signing.wecom_post(WECOM["token"], WECOM["encoding_aes_key"], corp,
                              signing.wecom_click_xml("lisi", corp, "帮助", ts), ts)
    return "POST", "/callback/wecom", q, b, {}


def wecom_left(ts: int | None = None, *, corp: str = WECOM["corp_id"]) -> Request:
    ts = ts or int(time.time())
    xml = (f"<xml><ToUserName><![CDATA[{corp}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
           f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event>"
           f"<ChangeType>delete_user</ChangeType><UserID><![CDATA[nobody]]></UserID></xml>")
    q, b = signing.wecom_post(WECOM["contacts_token"], WECOM["contacts_encoding_aes_key"], corp, xml, ts)
    return "POST", "/callback/wecom/contacts", q, b, {}


def wecom_approval(ts: int | None = None, *, corp: str = WECOM["corp_id"]) -> Request:
    ts = ts or int(time.time())
    xml = (f"<xml><ToUserName><![CDATA[{corp}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
           f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
           f"<Event><![CDATA[sys_approval_change]]></Event><AgentID>1000002</AgentID><ApprovalInfo>"
           f"<SpNo>202611230001</SpNo><SpName><![CDATA[未知模板]]></SpName><SpStatus>2</SpStatus>"
           f"<TemplateId><![CDATA[TPL-UNMATCHED]]></TemplateId><ApplyTime>{ts}</ApplyTime>"
           f"<Applyer><UserId><![CDATA[lisi]]></UserId><Party><![CDATA[1]]></Party></Applyer>"
           f"<StatuChangeEvent>2</StatuChangeEvent></ApprovalInfo></xml>")
    q, b = signing.wecom_post(WECOM["token"], WECOM["encoding_aes_key"], corp, xml, ts)
    return "POST", "/callback/wecom", q, b, {}


def dingtalk_event(payload: dict[str, Any], ts_ms: int | None = None, *, owner: str = DINGTALK["app_key"]) -> Request:
    ts_ms = ts_ms or int(time.time() * 1000)
    q, b = signing.dingtalk_event(DINGTALK["token"], DINGTALK["aes_key"], owner, payload, ts_ms)
    return "POST", "/callback/dingtalk", q, b, {"Content-Type": "application/json"}


def dingtalk_approval(ts_ms: int | None = None, *, owner: str = DINGTALK["app_key"]) -> Request:
    return dingtalk_event({"EventType": "bpms_instance_change", "eventId": "ev-approval-1",
                           "processInstanceId": "inst-unmatched", "processCode": "PROC-UNMATCHED", "type": "finish",
                           "result": "agree", "staffId": "lisi", "title": "t"}, ts_ms, owner=owner)


def dingtalk_left(ts_ms: int | None = None, *, owner: str = DINGTALK["app_key"]) -> Request:
    return dingtalk_event({"EventType": "user_leave_org", "eventId": "ev-left-1", "userId": ["nobody"]}, ts_ms,
                          owner=owner)


def robot(ts_ms: int | None = None, *, secret: str = DINGTALK["app_secret"]) -> Request:
    ts_ms = ts_ms or int(time.time() * 1000)
    return ("POST", "/callback/dingtalk/robot", {}, signing.robot_body("lisi", "帮助", "msgROBOT1"),
            signing.robot_headers(secret, ts_ms))


def card(ts_ms: int | None = None, *, secret: str = "cardSecret1") -> Request:
    import base64, hashlib, hmac  # noqa: E401
    ts_ms = ts_ms or int(time.time() * 1000)
    sig = base64.b64encode(hmac.new(secret.encode(), str(ts_ms).encode(), hashlib.sha256).digest()).decode()
    body = json.dumps({"type": "actionCallback", "outTrackId": "R1-confirm", "corpId": "dingtestcorp",
                       "userId": "lisi", "content": json.dumps({"cardPrivateData": {"actionIds": ["1"],
                                                                                    "params": {"command": "帮助"}}})})
    return ("POST", "/callback/dingtalk/card", {}, body.encode(),
            {"x-ddpaas-signature-timestamp": str(ts_ms), "x-ddpaas-signature": sig, "Content-Type": "application/json"})


STALE_S = int(time.time()) - 3600 * 2
BUILDERS: dict[str, dict[str, Callable[[], Request]]] = {
    "wecom text": {"ok": wecom_text, "stale": lambda: wecom_text(STALE_S), "wrong_id": lambda: wecom_text(corp="ww0000")},
    "wecom click": {"ok": wecom_click, "stale": lambda: wecom_click(STALE_S), "wrong_id": lambda: wecom_click(corp="ww0")},
    "wecom approval": {"ok": wecom_approval, "stale": lambda: wecom_approval(STALE_S),
                       "wrong_id": lambda: wecom_approval(corp="ww0")},
    "wecom member left": {"ok": wecom_left, "stale": lambda: wecom_left(STALE_S), "wrong_id": lambda: wecom_left(corp="ww0")},
    "dingtalk approval": {"ok": dingtalk_approval, "stale": lambda: dingtalk_approval(STALE_S * 1000),
                          "wrong_id": lambda: dingtalk_approval(owner="dingother")},
    "dingtalk member left": {"ok": dingtalk_left, "stale": lambda: dingtalk_left(STALE_S * 1000),
                             "wrong_id": lambda: dingtalk_left(owner="dingother")},
    "dingtalk robot": {"ok": robot, "stale": lambda: robot(int(time.time() * 1000) - 3601 * 1000),
                       "wrong_id": lambda: robot(secret="another-secret")},
    "dingtalk card": {"ok": card, "stale": lambda: card(STALE_S * 1000), "wrong_id": lambda: card(secret="other")},
}


def _tamper(req: Request) -> Request:
    method, path, query, body, headers = req
    if "msg_signature" in query or "signature" in query:
        key = "msg_signature" if "msg_signature" in query else "signature"
        query = {**query, key: ("0" if query[key][0] != "0" else "1") + query[key][1:]}
    else:
        key = "sign" if "sign" in headers else "x-ddpaas-signature"
        headers = {**headers, key: "A" + headers[key][1:] if headers[key][0] != "A" else "B" + headers[key][1:]}
    return method, path, query, body, headers


def _not_outer_format(req: Request) -> Request:
    method, path, query, body, headers = req
    return method, path, query, b"<html>hello</html>", headers


@pytest.fixture
def no_outbound_http(monkeypatch):  # type: ignore[no-untyped-def]
    def fail(*a, **kw):  # type: ignore[no-untyped-def]
        raise AssertionError("outbound HTTP inside a callback request")
    monkeypatch.setattr(requests.Session, "request", fail)
    monkeypatch.setattr(requests, "request", fail)


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("case", ["tampered", "stale", "wrong_id", "not_outer_format"])
def test_bad_requests_are_403_and_write_nothing(client, app, name: str, case: str, no_outbound_http) -> None:
    builders = BUILDERS[name]
    req = {"tampered": lambda: _tamper(builders["ok"]()), "stale": builders["stale"], "wrong_id": builders["wrong_id"],
           "not_outer_format": lambda: _not_outer_format(builders["ok"]())}[case]()
    before = _counts(app)
    assert _send(client, req).status_code == 403
    assert _counts(app) == before


def _meaning(answer) -> bytes:  # type: ignore[no-untyped-def]
    """An answer without what encrypting it again changes: a WeCom passive reply's nonce, signature and time."""
    if not answer.data.startswith(b"<xml>"):
        return answer.data
    inner, _ = signing.aes_decrypt(WECOM["encoding_aes_key"], ElementTree.fromstring(answer.data).findtext("Encrypt"))
    return re.sub(r"<CreateTime>\d+</CreateTime>", "", inner).encode()


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_four_deliveries_act_once_with_the_same_answer(client, app, name: str, no_outbound_http) -> None:
    """A query (帮助) is answered again from fresh data, a platform event from the inbox: either way the same."""
    req = BUILDERS[name]["ok"]()
    first = _send(client, req)
    after_first = _counts(app)
    answers = [first] + [_send(client, req) for _ in range(3)]
    assert [a.status_code for a in answers] == [200] * 4
    bodies = {_meaning(a) for a in answers}
    assert len(bodies) == 1, "a redelivery must get the first answer again"
    assert _counts(app) == after_first and after_first[0] <= 1
