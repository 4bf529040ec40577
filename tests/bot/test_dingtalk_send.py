"""DingTalkClient request bodies against fake DingTalk hosts (``responses``); no real network."""

from __future__ import annotations


import pytest
import responses
from responses import matchers

from bot.dingtalk.send import DingTalkClient, OtoSendResult
from bot.errors import PlatformApiError
from tests.bot.dingtalk_fakes import (  # noqa: F401 (fixtures; SENSITIVE feeds the leak check)
    API, OAPI, SECRET, ROBOT, TOKEN1, LEGACY1, SESSION, SENSITIVE, clock, client, add_token, add_legacy_token, add_oto, sent_json, count, MD)


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
