"""The callback endpoints answer as the platforms expect, end to end through Flask."""
from __future__ import annotations

import json
import time
from xml.etree import ElementTree

from sqlalchemy import func, select

from storage.models import Outbox, ProcessedEvent
from tests.e2e import signing
from tests.e2e.conftest import DINGTALK, WECOM


def test_wecom_url_verification(client) -> None:
    ts = str(int(time.time()))
    echostr = signing.aes_encrypt(WECOM["encoding_aes_key"], "1288432023552776189", WECOM["corp_id"])
    sig = signing.sha1_signature(WECOM["token"], ts, "n1", echostr)
    resp = client.get("/callback/wecom", query_string={"msg_signature": sig, "timestamp": ts, "nonce": "n1",
                                                       "echostr": echostr})
    assert resp.status_code == 200
    assert resp.data == b"1288432023552776189"


def _wecom_content(answer) -> str:  # type: ignore[no-untyped-def]
    inner, _ = signing.aes_decrypt(WECOM["encoding_aes_key"], ElementTree.fromstring(answer.data).findtext("Encrypt"))
    return ElementTree.fromstring(inner).findtext("Content") or ""


def _four_times(client, text: str, msg_id: int) -> list:  # type: ignore[no-untyped-def]
    """One WeCom text message from an unbound user, delivered four times; the four answers, each a 200."""
    now = int(time.time())
    xml = signing.wecom_text_xml("zhangsan", WECOM["corp_id"], text, msg_id, now)
    params, body = signing.wecom_post(WECOM["token"], WECOM["encoding_aes_key"], WECOM["corp_id"], xml, now)
    answers = [client.post("/callback/wecom", query_string=params, data=body) for _ in range(4)]
    assert {a.status_code for a in answers} == {200}
    return answers


def test_a_redelivered_wecom_query_is_answered_again_and_recorded_nowhere(client, app) -> None:
    answers = _four_times(client, "帮助", 9001)
    assert len({_wecom_content(a) for a in answers}) == 1 and "积分" in _wecom_content(answers[0])
    with app.extensions["pointsbot"].db.session_scope() as s:
        assert s.scalar(select(func.count(ProcessedEvent.id))) == 0
        assert s.scalar(select(func.count(Outbox.id))) == 0


def test_a_redelivered_wecom_command_gets_the_stored_answer(client, app) -> None:
    answers = _four_times(client, "绑定 NOSUCHCODE", 9003)
    assert len({a.data for a in answers}) == 1 and _wecom_content(answers[0])
    with app.extensions["pointsbot"].db.session_scope() as s:
        assert s.scalar(select(func.count(ProcessedEvent.id))) == 1


def test_wecom_tampered_signature_is_403_and_writes_nothing(client, app) -> None:
    now = int(time.time())
    xml = signing.wecom_text_xml("zhangsan", WECOM["corp_id"], "积分", 9002, now)
    params, body = signing.wecom_post(WECOM["token"], WECOM["encoding_aes_key"], WECOM["corp_id"], xml, now)
    params["nonce"] = params["nonce"] + "1"
    assert client.post("/callback/wecom", query_string=params, data=body).status_code == 403
    with app.extensions["pointsbot"].db.session_scope() as s:
        assert s.scalar(select(func.count(ProcessedEvent.id))) == 0


def test_dingtalk_check_url_answers_encrypted_success(client) -> None:
    ts = int(time.time() * 1000)
    params, body = signing.dingtalk_event(DINGTALK["token"], DINGTALK["aes_key"], DINGTALK["app_key"],
                                          {"EventType": "check_url"}, ts)
    resp = client.post("/callback/dingtalk", query_string=params, data=body, content_type="application/json")
    assert resp.status_code == 200
    data = json.loads(resp.data)
    assert signing.aes_decrypt(DINGTALK["aes_key"], data["encrypt"]) == ("success", DINGTALK["app_key"])
    assert data["msg_signature"] == signing.sha1_signature(DINGTALK["token"], data["timeStamp"], data["nonce"],
                                                           data["encrypt"])


def test_dingtalk_robot_help_reply(client) -> None:
    ts = int(time.time() * 1000)
    resp = client.post("/callback/dingtalk/robot", data=signing.robot_body("user123", "help", "msg-1"),
                       headers=signing.robot_headers(DINGTALK["app_secret"], ts))
    assert resp.status_code == 200
    assert json.loads(resp.data)["msgtype"] in ("text", "markdown")


def test_oversized_body_is_413(client) -> None:
    resp = client.post("/callback/dingtalk/robot", data=b"x" * (65 * 1024), headers={"timestamp": "1", "sign": "x"})
    assert resp.status_code == 413
