"""DingTalkClient against fake DingTalk hosts (``responses``); no real network."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from bot.dingtalk.send import DingTalkClient, OtoSendResult, markdown_message, text_message
from bot.errors import ConfigurationError, PlatformApiError
from bot.http import make_session
from tests.bot.conftest import EpochClock

API = "http://fake-dingtalk-api.test"
OAPI = "http://fake-dingtalk-oapi.test"
APP_KEY = "dingfakeappkey"
SECRET = "dingtalk-S3CRET-value-42aa"
ROBOT = "dingfakerobot"
TOKEN1 = "dt-TOKEN-one-111"
TOKEN2 = "dt-TOKEN-two-222"
LEGACY1 = "dt-LEGACY-one-333"
LEGACY2 = "dt-LEGACY-two-444"
SESSION = "dt-SESSION-555"
SENSITIVE = (SECRET, TOKEN1, TOKEN2, LEGACY1, LEGACY2, SESSION)
OTO = f"{API}/v1.0/robot/oToMessages/batchSend"


@pytest.fixture
def clock() -> EpochClock:
    return EpochClock()


@pytest.fixture
def client(clock: EpochClock, calls: list[str]) -> DingTalkClient:
    return DingTalkClient(
        APP_KEY, SECRET, ROBOT, 123, API, OAPI, session=make_session(), clock=clock, on_call=calls.append
    )


def add_token(rsps: responses.RequestsMock, token: str = TOKEN1, expire_in: int = 7200) -> None:
    rsps.add(
        responses.POST,
        f"{API}/v1.0/oauth2/accessToken",
        json={"accessToken": token, "expireIn": expire_in},
        match=[matchers.json_params_matcher({"appKey": APP_KEY, "appSecret": SECRET})],
    )


def add_legacy_token(rsps: responses.RequestsMock, token: str = LEGACY1) -> None:
    rsps.add(
        responses.GET,
        f"{OAPI}/gettoken",
        json={"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200},
        match=[matchers.query_param_matcher({"appkey": APP_KEY, "appsecret": SECRET})],
    )


def add_oto(rsps: responses.RequestsMock, body: dict[str, Any] | None = None, status: int = 200, token: str = TOKEN1) -> None:
    rsps.add(
        responses.POST,
        OTO,
        json=body if body is not None else {"processQueryKey": "pqk"},
        status=status,
        match=[matchers.header_matcher({"x-acs-dingtalk-access-token": token})],
    )


def sent_json(rsps: responses.RequestsMock, index: int = -1) -> Any:
    return json.loads(rsps.calls[index].request.body)


def count(rsps: responses.RequestsMock, fragment: str) -> int:
    return sum(1 for c in rsps.calls if fragment in c.request.url)


MD = markdown_message("hello title", "hello text")


# ---------------------------------------------------------------- messages


def test_message_builders() -> None:
    assert MD.webhook == {"msgtype": "markdown", "markdown": {"title": "hello title", "text": "hello text"}}
    assert (MD.msg_key, MD.msg_param) == ("sampleMarkdown", {"title": "hello title", "text": "hello text"})
    t = text_message("hi")
    assert t.webhook == {"msgtype": "text", "text": {"content": "hi"}}
    assert (t.msg_key, t.msg_param) == ("sampleText", {"content": "hi"})


# ---------------------------------------------------------------- tokens


def test_token_fetched_once_and_cached(rsps: responses.RequestsMock, client: DingTalkClient, calls: list[str]) -> None:
    add_token(rsps)
    add_oto(rsps)
    client.robot_send_oto(["u1"], MD.msg_key, MD.msg_param)
    client.robot_send_oto(["u2"], MD.msg_key, MD.msg_param)
    assert count(rsps, "oauth2/accessToken") == 1
    assert count(rsps, "batchSend") == 2
    assert calls == ["dingtalk", "dingtalk"]


def test_token_refreshed_near_expiry(rsps: responses.RequestsMock, client: DingTalkClient, clock: EpochClock) -> None:
    add_token(rsps, TOKEN1)
    add_token(rsps, TOKEN2)
    add_oto(rsps, token=TOKEN1)
    add_oto(rsps, token=TOKEN2)
    client.robot_send_oto(["u1"], "sampleText", {"content": "a"})
    clock.now += 7200 - 299
    client.robot_send_oto(["u1"], "sampleText", {"content": "b"})
    assert count(rsps, "oauth2/accessToken") == 2


@pytest.mark.parametrize(
    "status, body",
    [(401, {"code": "Unauthorized", "message": "x"}), (400, {"code": "InvalidAuthentication", "message": "bad token"})],
)
def test_rejected_token_refetched_and_retried_once(
    rsps: responses.RequestsMock, client: DingTalkClient, status: int, body: dict[str, str]
) -> None:
    add_token(rsps, TOKEN1)
    add_token(rsps, TOKEN2)
    add_oto(rsps, body, status=status, token=TOKEN1)
    add_oto(rsps, {"processQueryKey": "ok2"}, token=TOKEN2)
    assert client.robot_send_oto(["u1"], "sampleText", {"content": "x"}).process_query_keys == ["ok2"]
    assert count(rsps, "oauth2/accessToken") == 2
    assert count(rsps, "batchSend") == 2


def test_rejected_token_retried_only_once(rsps: responses.RequestsMock, client: DingTalkClient, calls: list[str]) -> None:
    add_token(rsps, TOKEN1)
    add_token(rsps, TOKEN2)
    add_oto(rsps, {"code": "Unauthorized"}, status=401, token=TOKEN1)
    add_oto(rsps, {"code": "Unauthorized"}, status=401, token=TOKEN2)
    with pytest.raises(PlatformApiError) as info:
        client.robot_send_oto(["u1"], "sampleText", {"content": "x"})
    assert info.value.retryable is False
    assert count(rsps, "batchSend") == 2
    assert calls == ["dingtalk", "dingtalk"]


def test_wrong_secret_is_configuration_error_without_retry(rsps: responses.RequestsMock, client: DingTalkClient) -> None:
    rsps.add(
        responses.POST,
        f"{API}/v1.0/oauth2/accessToken",
        status=400,
        json={"code": "invalidClientIdOrSecret", "message": "无效的clientId或者clientSecret"},
    )
    with pytest.raises(ConfigurationError) as info:
        client.robot_send_group("cid1", "sampleText", {"content": "x"})
    assert "dingtalk.app_secret" in str(info.value)
    assert SECRET not in str(info.value)
    assert len(rsps.calls) == 1


def test_legacy_wrong_secret_is_configuration_error(rsps: responses.RequestsMock, client: DingTalkClient) -> None:
    rsps.add(responses.GET, f"{OAPI}/gettoken", json={"errcode": 40089, "errmsg": "不合法的corpid或corpsecret"})
    with pytest.raises(ConfigurationError, match="dingtalk.app_secret"):
        client.get_failed_callbacks()
    assert len(rsps.calls) == 1


# ---------------------------------------------------------------- error mapping


@pytest.mark.parametrize(
    "status, body, code, retryable",
    [
        (403, {"code": "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"}, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi", True),
        (403, {"code": "Forbidden.AccessDenied.QpsLimitForApi"}, "Forbidden.AccessDenied.QpsLimitForApi", True),
        (403, {"code": "Forbidden.AccessDenied.ApiCountLimitForOrg"}, "quota", False),
        (500, {"code": "ServiceUnavailable"}, "ServiceUnavailable", True),
        (503, {}, "http_503", True),
        (400, {"code": "invalidParameter.msgKey.invalid", "message": "bad"}, "invalidParameter.msgKey.invalid", False),
        (200, {"status": 1111, "wait": 5, "source": "x5", "punish": "deny"}, "ip_blocked", True),
    ],
)
def test_new_api_error_mapping(
    rsps: responses.RequestsMock, client: DingTalkClient, status: int, body: dict[str, Any], code: str, retryable: bool
) -> None:
    add_token(rsps)
    rsps.add(responses.POST, f"{API}/v1.0/robot/groupMessages/send", status=status, json=body)
    with pytest.raises(PlatformApiError) as info:
        client.robot_send_group("cid1", "sampleText", {"content": "x"})
    assert (info.value.code, info.value.retryable, info.value.platform) == (code, retryable, "dingtalk")
    assert count(rsps, "groupMessages") == 1


@pytest.mark.parametrize("exc", [requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError])
def test_timeouts_are_retryable(rsps: responses.RequestsMock, client: DingTalkClient, exc: type) -> None:
    add_token(rsps)
    rsps.add(responses.POST, OTO, body=exc("read timed out"))
    with pytest.raises(PlatformApiError) as info:
        client.robot_send_oto(["u1"], "sampleText", {"content": "x"})
    assert info.value.retryable is True


@pytest.mark.parametrize(
    "errcode, code, retryable", [(-1, -1, True), (90018, 90018, True), (90002, 90002, True), (90020, "quota", False), (33012, 33012, False)]
)
def test_legacy_error_mapping(
    rsps: responses.RequestsMock, client: DingTalkClient, errcode: int, code: Any, retryable: bool
) -> None:
    add_legacy_token(rsps)
    rsps.add(responses.GET, f"{OAPI}/call_back/get_call_back_failed_result", json={"errcode": errcode, "errmsg": "e"})
    with pytest.raises(PlatformApiError) as info:
        client.get_failed_callbacks()
    assert (info.value.code, info.value.retryable) == (code, retryable)


def test_legacy_token_refetched_and_retried_once(rsps: responses.RequestsMock, client: DingTalkClient) -> None:
    add_legacy_token(rsps, LEGACY1)
    add_legacy_token(rsps, LEGACY2)
    url = f"{OAPI}/call_back/get_call_back_failed_result"
    rsps.add(responses.GET, url, json={"errcode": 40014, "errmsg": "不合法的access_token"},
             match=[matchers.query_param_matcher({"access_token": LEGACY1})])
    reply = {"errcode": 0, "errmsg": "ok", "has_more": False, "failed_list": [{"call_back_tag": "user_leave_org"}]}
    rsps.add(responses.GET, url, json=reply, match=[matchers.query_param_matcher({"access_token": LEGACY2})])
    assert client.get_failed_callbacks()["failed_list"][0]["call_back_tag"] == "user_leave_org"
    assert count(rsps, "gettoken") == 2 and count(rsps, "get_call_back_failed_result") == 2


# ---------------------------------------------------------------- request bodies


def test_oto_body_and_msg_param_is_json_string(rsps: responses.RequestsMock, client: DingTalkClient) -> None:
    add_token(rsps)
    add_oto(rsps, {"processQueryKey": "pqk", "invalidStaffIdList": [], "flowControlledStaffIdList": []})
    client.robot_send_oto(["manager1234"], MD.msg_key, MD.msg_param)
    body = sent_json(rsps)
    assert body == {
        "robotCode": ROBOT,
        "userIds": ["manager1234"],
        "msgKey": "sampleMarkdown",
        "msgParam": '{"title":"hello title","text":"hello text"}',
    }
    assert isinstance(body["msgParam"], str)
    assert rsps.calls[-1].request.headers["x-acs-dingtalk-access-token"] == TOKEN1


def test_oto_chunks_more_than_20_users(rsps: responses.RequestsMock, client: DingTalkClient) -> None:
    add_token(rsps)
    add_oto(rsps, {"processQueryKey": "k1", "invalidStaffIdList": ["u3"], "flowControlledStaffIdList": ["u5"]})
    add_oto(rsps, {"processQueryKey": "k2", "invalidStaffIdList": [], "flowControlledStaffIdList": ["u30"]})
    add_oto(rsps, {"processQueryKey": "k3"})
    users = [f"u{i}" for i in range(45)] + ["u0"]  # duplicate dropped
    result = client.robot_send_oto(users, "sampleText", {"content": "hi"})
    sent = [sent_json(rsps, i)["userIds"] for i in range(1, 4)]
    assert [len(s) for s in sent] == [20, 20, 5]
    assert sum(sent, []) == [f"u{i}" for i in range(45)]
    assert result.process_query_keys == ["k1", "k2", "k3"]
    assert result.invalid_staff_ids == ["u3"]
    assert result.flow_controlled_staff_ids == ["u5", "u30"]
    assert result.retry_user_ids == ["u5", "u30"]


def test_oto_partial_failure_reports_unsent_users(rsps: responses.RequestsMock, client: DingTalkClient) -> None:
    add_token(rsps)
    add_oto(rsps, {"processQueryKey": "k1"})
    add_oto(rsps, {"code": "Forbidden.AccessDenied.QpsLimitForApi"}, status=403)
    users = [f"u{i}" for i in range(45)]
    result = client.robot_send_oto(users, "sampleText", {"content": "hi"})
    assert isinstance(result, OtoSendResult)
    assert result.error is not None and result.error.retryable
    assert result.failed_staff_ids == users[20:]
    assert result.retry_user_ids == users[20:]
    assert count(rsps, "batchSend") == 2  # stops at the failing chunk


def test_oto_first_chunk_failure_raises(rsps: responses.RequestsMock, client: DingTalkClient) -> None:
    add_token(rsps)
    add_oto(rsps, {"code": "Forbidden.AccessDenied.ApiCountLimitForOrg"}, status=403)
    with pytest.raises(PlatformApiError) as info:
        client.robot_send_oto([f"u{i}" for i in range(30)], "sampleText", {"content": "x"})
    assert info.value.code == "quota"


def test_msg_param_too_long_rejected_before_any_call(rsps: responses.RequestsMock, client: DingTalkClient) -> None:
    with pytest.raises(ValueError):
        client.robot_send_group("cid", "sampleText", {"content": "x" * 15001})
    assert len(rsps.calls) == 0


def test_group_send_body(rsps: responses.RequestsMock, client: DingTalkClient) -> None:
    add_token(rsps)
    rsps.add(responses.POST, f"{API}/v1.0/robot/groupMessages/send", json={"processQueryKey": "g1"})
    assert client.robot_send_group("cid123==", "sampleText", {"content": "积分榜"}) == "g1"
    assert sent_json(rsps) == {
        "robotCode": ROBOT,
        "openConversationId": "cid123==",
        "msgKey": "sampleText",
        "msgParam": '{"content":"积分榜"}',
    }


def test_session_webhook_send(rsps: responses.RequestsMock, client: DingTalkClient, calls: list[str]) -> None:
    url = f"{OAPI}/robot/sendBySession?session={SESSION}"
    rsps.add(responses.POST, url, json={"errcode": 0, "errmsg": "ok"})
    rsps.add(responses.POST, url, json={"errcode": 300001, "errmsg": "session expired"})
    client.session_webhook_send(url, MD.webhook)
    assert sent_json(rsps) == MD.webhook
    assert "x-acs-dingtalk-access-token" not in rsps.calls[-1].request.headers
    with pytest.raises(PlatformApiError) as info:
        client.session_webhook_send(url, MD.webhook)
    assert info.value.retryable is False and SESSION not in str(info.value)
    assert calls == ["dingtalk", "dingtalk"]


def test_card_create_and_deliver_group_body(rsps: responses.RequestsMock, client: DingTalkClient) -> None:
    add_token(rsps)
    result = {"outTrackId": "req42", "deliverResults": [{"success": True}]}
    rsps.add(responses.POST, f"{API}/v1.0/card/instances/createAndDeliver", json={"success": True, "result": result})
    got = client.card_create_and_deliver(
        "req42", "tpl", {"title": "Approve request #42?", "amount": 10}, open_conversation_id="cidG"
    )
    assert got == result
    assert sent_json(rsps) == {
        "cardTemplateId": "tpl",
        "outTrackId": "req42",
        "callbackType": "STREAM",
        "cardData": {"cardParamMap": {"title": "Approve request #42?", "amount": "10"}},
        "openSpaceId": "dtv1.card//IM_GROUP.cidG",
        "imGroupOpenSpaceModel": {"supportForward": True},
        "imGroupOpenDeliverModel": {"robotCode": ROBOT},
    }


def test_card_create_and_deliver_robot_chat_http_callback(rsps: responses.RequestsMock, client: DingTalkClient) -> None:
    add_token(rsps)
    rsps.add(responses.POST, f"{API}/v1.0/card/instances/createAndDeliver", json={"success": True, "result": {}})
    client.card_create_and_deliver(
        "req43", "tpl", {"status": "pending"}, user_id="manager1234", callback_type="HTTP", callback_route_key="myroute"
    )
    assert sent_json(rsps) == {
        "cardTemplateId": "tpl",
        "outTrackId": "req43",
        "callbackType": "HTTP",
        "callbackRouteKey": "myroute",
        "cardData": {"cardParamMap": {"status": "pending"}},
        "openSpaceId": "dtv1.card//IM_ROBOT.manager1234",
        "imRobotOpenSpaceModel": {"supportForward": False},
        "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT", "robotCode": ROBOT},
    }
    with pytest.raises(ValueError):
        client.card_create_and_deliver("x", "tpl", {}, user_id="a", open_conversation_id="b")


def test_card_update_body(rsps: responses.RequestsMock, client: DingTalkClient) -> None:
    add_token(rsps)
    rsps.add(responses.PUT, f"{API}/v1.0/card/instances", json={"success": True, "result": True})
    client.card_update("req42", {"status": "approved"})
    assert rsps.calls[-1].request.method == "PUT"
    assert sent_json(rsps) == {
        "outTrackId": "req42",
        "cardData": {"cardParamMap": {"status": "approved"}},
        "cardUpdateOptions": {"updateCardDataByKey": True},
    }


def test_get_process_instance(rsps: responses.RequestsMock, client: DingTalkClient) -> None:
    add_token(rsps)
    result = {"status": "COMPLETED", "result": "agree", "formComponentValues": [{"name": "绩效得分", "value": "92"}]}
    rsps.add(
        responses.GET,
        f"{API}/v1.0/workflow/processInstances",
        json={"success": True, "result": result},
        match=[matchers.query_param_matcher({"processInstanceId": "inst-1"})],
    )
    assert client.get_process_instance("inst-1") == result
    assert rsps.calls[-1].request.headers["x-acs-dingtalk-access-token"] == TOKEN1


def test_get_failed_callbacks_uses_legacy_token(rsps: responses.RequestsMock, client: DingTalkClient, calls: list[str]) -> None:
    add_legacy_token(rsps)
    rsps.add(
        responses.GET,
        f"{OAPI}/call_back/get_call_back_failed_result",
        json={"errcode": 0, "errmsg": "ok", "has_more": False, "failed_list": []},
        match=[matchers.query_param_matcher({"access_token": LEGACY1})],
    )
    assert client.get_failed_callbacks()["has_more"] is False
    client.get_failed_callbacks()
    assert count(rsps, "gettoken") == 1
    assert calls == ["dingtalk", "dingtalk"]


def test_repr_hides_secret(client: DingTalkClient) -> None:
    assert SECRET not in repr(client)


def test_logs_show_scrubbed_urls(rsps: responses.RequestsMock, client: DingTalkClient, caplog: pytest.LogCaptureFixture) -> None:
    add_legacy_token(rsps)
    rsps.add(responses.GET, f"{OAPI}/call_back/get_call_back_failed_result", json={"errcode": 90018, "errmsg": "qps"})
    with pytest.raises(PlatformApiError):
        client.get_failed_callbacks()
    messages = [r.getMessage() for r in caplog.records]
    assert any("appsecret=***" in m for m in messages)
    assert any("access_token=***" in m for m in messages)
