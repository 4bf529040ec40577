"""Fake DingTalk hosts for the DingTalkClient tests (``responses``): constants, fixtures, canned answers."""

from __future__ import annotations

from types import SimpleNamespace

import json
from typing import Any

import pytest
import responses
from responses import matchers

from bot.dingtalk.send import DingTalkClient
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


MD = SimpleNamespace(  # one markdown message as the robot API and a sessionWebhook take it (B.2, B.7.2)
    msg_key="sampleMarkdown", msg_param={"title": "hello title", "text": "hello text"},
    webhook={"msgtype": "markdown", "markdown": {"title": "hello title", "text": "hello text"}})
