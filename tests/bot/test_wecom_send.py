"""WeComClient against a fake WeCom host (``responses``); no real network."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from bot.errors import ConfigurationError, PlatformApiError
from bot.http import make_session
from tests.bot.conftest import EpochClock
from bot.tokens import TokenCache
from bot.wecom.send import WeComClient

BASE = "http://fake-wecom.test"
CGI = f"{BASE}/cgi-bin"
CORP = "ww-fake-corp"
AGENT = 1000002
SECRET = "wecom-S3CRET-value-7f9a"
TOKEN1 = "wecom-TOKEN-one-111"
TOKEN2 = "wecom-TOKEN-two-222"
HOOK_KEY = "hook-KEY-693a91f6"
SENSITIVE = (SECRET, TOKEN1, TOKEN2, HOOK_KEY)


@pytest.fixture
def clock() -> EpochClock:
    return EpochClock()


@pytest.fixture
def client(clock: EpochClock, calls: list[str]) -> WeComClient:
    return WeComClient(CORP, AGENT, SECRET, BASE, session=make_session(), clock=clock, on_call=calls.append)


def add_token(rsps: responses.RequestsMock, token: str = TOKEN1, expires_in: int = 7200) -> responses.BaseResponse:
    return rsps.add(
        responses.GET,
        f"{CGI}/gettoken",
        json={"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": expires_in},
        match=[matchers.query_param_matcher({"corpid": CORP, "corpsecret": SECRET})],
    )


def add_send(rsps: responses.RequestsMock, body: dict[str, Any] | None = None, token: str = TOKEN1, **kw: Any) -> None:
    rsps.add(
        responses.POST,
        f"{CGI}/message/send",
        json=body if body is not None else {"errcode": 0, "errmsg": "ok", "msgid": "m1"},
        match=[matchers.query_param_matcher({"access_token": token})],
        **kw,
    )


def sent_json(rsps: responses.RequestsMock, index: int = -1) -> Any:
    return json.loads(rsps.calls[index].request.body)


def count(rsps: responses.RequestsMock, path: str) -> int:
    return sum(1 for c in rsps.calls if f"/cgi-bin/{path}" in c.request.url)


# ---------------------------------------------------------------- token handling


def test_token_fetched_once_and_cached(rsps: responses.RequestsMock, client: WeComClient, calls: list[str]) -> None:
    add_token(rsps)
    add_send(rsps)
    client.send_text("zhangsan", "a")
    client.send_text("zhangsan", "b")
    assert count(rsps, "gettoken") == 1
    assert count(rsps, "message/send") == 2
    assert calls == ["wecom", "wecom"]  # token fetches are not counted


def test_token_refreshed_near_expiry(rsps: responses.RequestsMock, client: WeComClient, clock: EpochClock) -> None:
    add_token(rsps, TOKEN1)
    add_token(rsps, TOKEN2)
    add_send(rsps, token=TOKEN1)
    add_send(rsps, token=TOKEN2)
    client.send_text("u", "x")
    clock.now += 7200 - 300
    client.send_text("u", "y")
    assert count(rsps, "gettoken") == 2
    assert f"access_token={TOKEN2}" in rsps.calls[-1].request.url


def test_shared_token_cache_is_used(rsps: responses.RequestsMock, clock: EpochClock) -> None:
    add_token(rsps)
    add_send(rsps)
    cache = TokenCache(clock=clock)
    for _ in range(2):
        WeComClient(CORP, AGENT, SECRET, BASE, session=make_session(), token_cache=cache).send_text("u", "x")
    assert count(rsps, "gettoken") == 1


@pytest.mark.parametrize("errcode", [40014, 42001])
def test_invalid_token_refetched_and_retried_once(rsps: responses.RequestsMock, client: WeComClient, errcode: int) -> None:
    add_token(rsps, TOKEN1)
    add_token(rsps, TOKEN2)
    add_send(rsps, {"errcode": errcode, "errmsg": "invalid access_token"}, token=TOKEN1)
    add_send(rsps, token=TOKEN2)
    assert client.send_text("u", "x")["msgid"] == "m1"
    assert count(rsps, "gettoken") == 2
    assert count(rsps, "message/send") == 2


def test_invalid_token_retried_only_once(rsps: responses.RequestsMock, client: WeComClient, calls: list[str]) -> None:
    add_token(rsps, TOKEN1)
    add_token(rsps, TOKEN2)
    add_send(rsps, {"errcode": 40014, "errmsg": "invalid"}, token=TOKEN1)
    add_send(rsps, {"errcode": 42001, "errmsg": "expired"}, token=TOKEN2)
    with pytest.raises(PlatformApiError) as info:
        client.send_text("u", "x")
    assert info.value.code == 42001 and info.value.retryable is True  # the outbox tries again later
    assert count(rsps, "message/send") == 2
    assert count(rsps, "gettoken") == 2
    assert calls == ["wecom", "wecom"]


@pytest.mark.parametrize("errcode", [40001, 40013, 40089])
def test_wrong_secret_is_configuration_error_without_retry(
    rsps: responses.RequestsMock, client: WeComClient, errcode: int
) -> None:
    rsps.add(responses.GET, f"{CGI}/gettoken", json={"errcode": errcode, "errmsg": "invalid credential"})
    with pytest.raises(ConfigurationError) as info:
        client.send_text("u", "x")
    assert "wecom.secret" in str(info.value)
    assert SECRET not in str(info.value)
    assert len(rsps.calls) == 1


# ---------------------------------------------------------------- error mapping


@pytest.mark.parametrize("errcode", [-1, 45009, 45033])
def test_busy_and_rate_limits_are_retryable(rsps: responses.RequestsMock, client: WeComClient, errcode: int) -> None:
    add_token(rsps)
    add_send(rsps, {"errcode": errcode, "errmsg": "busy"})
    with pytest.raises(PlatformApiError) as info:
        client.send_text("u", "x")
    assert info.value.retryable is True and info.value.code == errcode
    assert info.value.platform == "wecom"
    assert count(rsps, "message/send") == 1  # no hidden in-process retry


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retryable(rsps: responses.RequestsMock, client: WeComClient, status: int) -> None:
    add_token(rsps)
    add_send(rsps, {"error": "bad gateway"}, status=status)
    with pytest.raises(PlatformApiError) as info:
        client.send_text("u", "x")
    assert info.value.retryable is True


@pytest.mark.parametrize(
    "exc", [requests.exceptions.ReadTimeout, requests.exceptions.ConnectTimeout, requests.exceptions.ConnectionError]
)
def test_timeouts_are_retryable_and_scrubbed(rsps: responses.RequestsMock, client: WeComClient, exc: type) -> None:
    add_token(rsps)
    rsps.add(responses.POST, f"{CGI}/message/send", body=exc(f"{CGI}/message/send?access_token={TOKEN1} failed"))
    with pytest.raises(PlatformApiError) as info:
        client.send_text("u", "x")
    assert info.value.retryable is True
    assert TOKEN1 not in str(info.value)


def test_gettoken_timeout_is_retryable(rsps: responses.RequestsMock, client: WeComClient) -> None:
    rsps.add(
        responses.GET,
        f"{CGI}/gettoken",
        body=requests.exceptions.ConnectTimeout(f"{CGI}/gettoken?corpid={CORP}&corpsecret={SECRET}"),
    )
    with pytest.raises(PlatformApiError) as info:
        client.get_token()
    assert info.value.retryable is True
    assert SECRET not in str(info.value)


def test_other_codes_are_not_retryable(rsps: responses.RequestsMock, client: WeComClient) -> None:
    add_token(rsps)
    add_send(rsps, {"errcode": 81013, "errmsg": "user & party & tag all invalid"})
    with pytest.raises(PlatformApiError) as info:
        client.send_text("ghost", "x")
    assert info.value.code == 81013 and info.value.retryable is False


# ---------------------------------------------------------------- request bodies


def test_send_text_body(rsps: responses.RequestsMock, client: WeComClient) -> None:
    add_token(rsps)
    add_send(rsps)
    client.send_text(["zhangsan", "lisi", "zhangsan"], "你好")
    assert sent_json(rsps) == {"touser": "zhangsan|lisi", "msgtype": "text", "agentid": AGENT, "text": {"content": "你好"}}


def test_send_text_duplicate_check(rsps: responses.RequestsMock, client: WeComClient) -> None:
    add_token(rsps)
    add_send(rsps)
    client.send_text("u1", "notice", duplicate_check_seconds=1800)
    assert sent_json(rsps) == {
        "touser": "u1",
        "msgtype": "text",
        "agentid": AGENT,
        "text": {"content": "notice"},
        "enable_duplicate_check": 1,
        "duplicate_check_interval": 1800,
    }
    with pytest.raises(ValueError):
        client.send_text("u1", "x", duplicate_check_seconds=5 * 3600)


def test_send_template_card_returns_response_code(rsps: responses.RequestsMock, client: WeComClient) -> None:
    add_token(rsps)
    add_send(rsps, {"errcode": 0, "errmsg": "ok", "msgid": "m", "response_code": "RC-1"})
    card = {
        "card_type": "button_interaction",
        "main_title": {"title": "Approve request #42?", "desc": "from lisi"},
        "task_id": "req42-1700000000",
        "button_list": [
            {"text": "Approve", "style": 1, "key": "approve:42"},
            {"text": "Reject", "style": 2, "key": "reject:42"},
        ],
    }
    assert client.send_template_card("zhangsan", card) == "RC-1"
    assert sent_json(rsps) == {"touser": "zhangsan", "msgtype": "template_card", "agentid": AGENT, "template_card": card}


def test_update_template_card_button_body(rsps: responses.RequestsMock, client: WeComClient) -> None:
    add_token(rsps)
    rsps.add(responses.POST, f"{CGI}/message/update_template_card", json={"errcode": 0, "errmsg": "ok"})
    client.update_template_card_button(["zhangsan"], "RC-1", "Approved by zhangsan")
    assert f"access_token={TOKEN1}" in rsps.calls[-1].request.url
    assert sent_json(rsps) == {
        "userids": ["zhangsan"],
        "partyids": [],
        "tagids": [],
        "atall": 0,
        "agentid": AGENT,
        "response_code": "RC-1",
        "button": {"replace_name": "Approved by zhangsan"},
    }


def test_get_approval_detail(rsps: responses.RequestsMock, client: WeComClient) -> None:
    add_token(rsps)
    info = {"sp_no": "201909270001", "sp_status": 2, "applyer": {"userid": "lisi"}}
    rsps.add(responses.POST, f"{CGI}/oa/getapprovaldetail", json={"errcode": 0, "errmsg": "ok", "info": info})
    assert client.get_approval_detail("201909270001") == info
    assert sent_json(rsps) == {"sp_no": "201909270001"}


def test_get_approval_info_body(rsps: responses.RequestsMock, client: WeComClient) -> None:
    add_token(rsps)
    reply = {"errcode": 0, "errmsg": "ok", "sp_no_list": ["1", "2"], "new_next_cursor": "abc"}
    rsps.add(responses.POST, f"{CGI}/oa/getapprovalinfo", json=reply)
    assert client.get_approval_info(1569546000, 1569718800, template_id="TPL-1")["sp_no_list"] == ["1", "2"]
    assert sent_json(rsps) == {
        "starttime": "1569546000",
        "endtime": "1569718800",
        "cursor": 0,
        "size": 100,
        "filters": [{"key": "template_id", "value": "TPL-1"}],
    }
    client.get_approval_info(1569546000, 1569718800, cursor="abc", size=50)
    assert sent_json(rsps) == {"starttime": "1569546000", "endtime": "1569718800", "new_cursor": "abc", "size": 50}


def test_appchat_send_body(rsps: responses.RequestsMock, client: WeComClient) -> None:
    add_token(rsps)
    rsps.add(responses.POST, f"{CGI}/appchat/send", json={"errcode": 0, "errmsg": "ok"})
    client.appchat_send("CHAT1", {"msgtype": "markdown", "markdown": {"content": "top 10"}})
    assert sent_json(rsps) == {"chatid": "CHAT1", "msgtype": "markdown", "markdown": {"content": "top 10"}}


def test_webhook_send_by_key_and_url(rsps: responses.RequestsMock, client: WeComClient, calls: list[str]) -> None:
    rsps.add(
        responses.POST,
        f"{CGI}/webhook/send",
        json={"errcode": 0, "errmsg": "ok"},
        match=[matchers.query_param_matcher({"key": HOOK_KEY})],
    )
    msg = {"msgtype": "text", "text": {"content": "hello"}}
    client.webhook_send(HOOK_KEY, msg)
    client.webhook_send(f"{CGI}/webhook/send?key={HOOK_KEY}", msg)
    assert [sent_json(rsps, i) for i in (0, 1)] == [msg, msg]
    assert all("access_token" not in c.request.url for c in rsps.calls)
    assert calls == ["wecom", "wecom"]


def test_webhook_rate_limit_is_retryable(rsps: responses.RequestsMock, client: WeComClient) -> None:
    rsps.add(responses.POST, f"{CGI}/webhook/send", json={"errcode": 45009, "errmsg": "api freq out of limit"})
    with pytest.raises(PlatformApiError) as info:
        client.webhook_send(HOOK_KEY, {"msgtype": "text", "text": {"content": "x"}})
    assert info.value.retryable is True
    assert HOOK_KEY not in str(info.value)


def test_api_base_with_cgi_bin_suffix(rsps: responses.RequestsMock, clock: EpochClock) -> None:
    add_token(rsps)
    add_send(rsps)
    WeComClient(CORP, AGENT, SECRET, f"{BASE}/cgi-bin/", session=make_session(), clock=clock).send_text("u", "x")
    assert count(rsps, "message/send") == 1


def test_repr_hides_secret(client: WeComClient) -> None:
    assert SECRET not in repr(client)


def test_logs_show_scrubbed_urls(rsps: responses.RequestsMock, client: WeComClient, caplog: pytest.LogCaptureFixture) -> None:
    add_token(rsps)
    add_send(rsps, {"errcode": -1, "errmsg": "system busy"})
    with pytest.raises(PlatformApiError):
        client.send_text("u", "x")
    messages = [r.getMessage() for r in caplog.records]
    assert any("access_token=***" in m for m in messages)
    assert any("corpsecret=***" in m for m in messages)
    assert any(r.levelno == logging.WARNING and "-1" in r.getMessage() for r in caplog.records)
