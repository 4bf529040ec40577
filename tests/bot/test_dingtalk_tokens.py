"""DingTalkClient access tokens and error mapping against fake DingTalk hosts (``responses``); no real network."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import responses
from responses import matchers

from bot.dingtalk.send import DingTalkClient
from bot.errors import ConfigurationError, PlatformApiError
from tests.bot.conftest import EpochClock
from tests.bot.dingtalk_fakes import (  # noqa: F401 (fixtures; SENSITIVE feeds the leak check)
    API, OAPI, SECRET, TOKEN1, TOKEN2, LEGACY1, LEGACY2, SENSITIVE, OTO, clock, client, add_token, add_legacy_token, add_oto, count, MD)


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
    assert info.value.retryable is True  # rejected right after a refresh: the outbox tries again later
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
        (400, {"code": "send.too.fast", "message": "发送太快"}, "send.too.fast", True),
        (400, {"code": "send.byToken.tooFast", "message": "too fast"}, "send.byToken.tooFast", True),
        (429, {"code": "system.busy", "message": "busy"}, "system.busy", True),
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
    "errcode, code, retryable", [(-1, -1, True), (90018, 90018, True), (90002, 90002, True), (90020, "quota", False),
                                 (33012, 33012, False), (42001, 42001, True)]
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
