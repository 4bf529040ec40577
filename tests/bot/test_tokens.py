"""TokenCache behaviour and the credential hygiene of bot.http (scrub, log filter, session)."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import requests
import responses

from bot.errors import PlatformApiError
from bot.http import DEFAULT_TIMEOUT, get_json, install_log_scrubber, make_session, post_json, scrub
from tests.bot.conftest import EpochClock
from bot.tokens import CachedToken, InMemoryTokenStore, TokenCache, TokenStore


class Fetcher:
    def __init__(self, lifetime: float = 7200, fail: Exception | None = None) -> None:
        self.calls = 0
        self.lifetime = lifetime
        self.fail = fail

    def __call__(self) -> tuple[str, float]:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return f"tok-{self.calls}", self.lifetime


# ---------------------------------------------------------------- TokenCache


def test_token_fetched_once_and_cached() -> None:
    clock = EpochClock()
    cache = TokenCache(clock=clock)
    fetch = Fetcher()
    assert cache.get("wecom", "app", fetch) == "tok-1"
    clock.advance(3600)
    assert cache.get("wecom", "app", fetch) == "tok-1"
    assert fetch.calls == 1


def test_token_refreshed_five_minutes_before_expiry() -> None:
    clock = EpochClock()
    cache = TokenCache(clock=clock)
    fetch = Fetcher()
    cache.get("wecom", "app", fetch)
    clock.advance(7200 - 300 - 1)
    assert cache.get("wecom", "app", fetch) == "tok-1"
    clock.advance(1)
    assert cache.get("wecom", "app", fetch) == "tok-2"
    assert fetch.calls == 2


def test_tokens_are_per_platform_and_app_key() -> None:
    cache = TokenCache(clock=EpochClock())
    fetch = Fetcher()
    assert cache.get("wecom", "a", fetch) == "tok-1"
    assert cache.get("wecom", "b", fetch) == "tok-2"
    assert cache.get("dingtalk", "a", fetch) == "tok-3"
    assert cache.get("wecom", "a", fetch) == "tok-1"


def test_invalidate_forces_refetch() -> None:
    cache = TokenCache(clock=EpochClock())
    fetch = Fetcher()
    cache.get("wecom", "app", fetch)
    cache.invalidate("wecom", "app")
    assert cache.get("wecom", "app", fetch) == "tok-2"


def test_invalidate_with_stale_token_keeps_the_newer_one() -> None:
    cache = TokenCache(clock=EpochClock())
    fetch = Fetcher()
    cache.get("wecom", "app", fetch)
    cache.invalidate("wecom", "app", "tok-1")
    assert cache.get("wecom", "app", fetch) == "tok-2"
    cache.invalidate("wecom", "app", "tok-1")  # a slow thread reporting the old token
    assert cache.get("wecom", "app", fetch) == "tok-2"
    assert fetch.calls == 2


def test_fetch_error_propagates_and_caches_nothing() -> None:
    cache = TokenCache(clock=EpochClock())
    with pytest.raises(RuntimeError):
        cache.get("wecom", "app", Fetcher(fail=RuntimeError("down")))
    again = Fetcher()
    assert cache.get("wecom", "app", again) == "tok-1" and again.calls == 1  # nothing was cached: fetched


def test_short_lifetime_still_cached_for_half_of_it() -> None:
    clock = EpochClock()
    cache = TokenCache(clock=clock)
    fetch = Fetcher(lifetime=200)
    cache.get("x", "k", fetch)
    clock.advance(99)
    cache.get("x", "k", fetch)
    assert fetch.calls == 1
    clock.advance(1)
    cache.get("x", "k", fetch)
    assert fetch.calls == 2


def test_concurrent_callers_fetch_once() -> None:
    cache = TokenCache()
    calls = 0
    gate = threading.Event()

    def slow_fetch() -> tuple[str, float]:
        nonlocal calls
        calls += 1
        gate.wait(2)
        return "shared", 7200

    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("wecom", "app", slow_fetch))) for _ in range(16)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    gate.set()
    for t in threads:
        t.join(5)
    assert calls == 1
    assert results == ["shared"] * 16


def test_store_protocol_and_repr_hides_token() -> None:
    store: TokenStore = InMemoryTokenStore()
    store.save(("p", "k"), CachedToken("very-secret-token", 1.0, 2.0))
    assert store.load(("p", "k")) is not None
    assert "very-secret-token" not in repr(store.load(("p", "k")))
    store.delete(("p", "k"))
    assert store.load(("p", "k")) is None


# ---------------------------------------------------------------- bot.http


@pytest.mark.parametrize(
    "raw, secret",
    [
        ("https://qyapi.weixin.qq.com/cgi-bin/message/send?access_token=AbC123.-_x", "AbC123.-_x"),
        ("GET /cgi-bin/gettoken?corpid=ww1&corpsecret=S3CRET HTTP/1.1", "S3CRET"),
        ("https://oapi.dingtalk.com/gettoken?appkey=dingk&appsecret=DtSecret99", "DtSecret99"),
        ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx", "693a91f6-7xxx"),
        ("Max retries exceeded with url: /x?access_token=TTT (Caused by X)", "TTT"),
        ('{"appKey":"k","appSecret":"JsonSecret"}', "JsonSecret"),
        ("{'accessToken': 'dtTok'}", "dtTok"),
        ("{'x-acs-dingtalk-access-token': 'hdrTok'}", "hdrTok"),
        ("https://oapi.dingtalk.com/robot/sendBySession?session=sess123", "sess123"),
    ],
)
def test_scrub_removes_credentials(raw: str, secret: str) -> None:
    cleaned = scrub(raw)
    assert secret not in cleaned
    assert "***" in cleaned


def test_scrub_keeps_harmless_parameters() -> None:
    assert scrub("gettoken?appkey=dingk&corpid=ww1") == "gettoken?appkey=dingk&corpid=ww1"
    assert scrub("?corpid=ww1&corpsecret=S&x=1") == "?corpid=ww1&corpsecret=***&x=1"


def test_urllib3_debug_log_is_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    install_log_scrubber()
    caplog.set_level(logging.DEBUG)
    logging.getLogger("urllib3.connectionpool").debug(
        '%s "%s %s HTTP/1.1" %s', "https://q", "GET", "/cgi-bin/gettoken?corpid=c&corpsecret=LEAKME", 200
    )
    assert caplog.records
    assert all("LEAKME" not in r.getMessage() for r in caplog.records)


def test_session_has_no_post_retries_and_default_timeout() -> None:
    session = make_session()
    adapter = session.get_adapter("https://api.example.invalid/")
    retry = adapter.max_retries
    assert retry.connect == 0
    assert "POST" not in retry.allowed_methods and "PUT" not in retry.allowed_methods
    assert adapter._default_timeout == DEFAULT_TIMEOUT == (3.0, 10.0)


@responses.activate
def test_post_json_maps_timeouts_and_connection_errors() -> None:
    url = "http://fake-wecom.test/cgi-bin/message/send"
    responses.add(responses.POST, url, body=requests.exceptions.ReadTimeout(f"{url}?access_token=TKN read timeout"))
    responses.add(responses.POST, url, body=requests.exceptions.ConnectionError(f"{url}?access_token=TKN refused"))
    session = make_session()
    for expected in ("timeout", "connection"):
        with pytest.raises(PlatformApiError) as info:
            post_json(session, url, {"a": 1}, platform="wecom", params={"access_token": "TKN"})
        assert info.value.retryable is True
        assert info.value.code == expected
        assert "TKN" not in str(info.value) and "TKN" not in info.value.message


@responses.activate
def test_request_json_sends_utf8_json_and_parses_non_json() -> None:
    url = "http://fake-wecom.test/x"
    responses.add(responses.POST, url, json={"errcode": 0})
    responses.add(responses.GET, url, body="<html>blocked</html>", status=200)
    session = make_session()
    result = post_json(session, url, {"content": "积分"}, platform="wecom")
    assert result.ok and result.data == {"errcode": 0}
    assert responses.calls[0].request.body == '{"content":"积分"}'.encode()
    assert responses.calls[0].request.headers["Content-Type"].startswith("application/json")
    html = get_json(session, url, platform="wecom")
    assert html.is_json is False and html.data == {}
