"""A production config must not talk to the playground's fake API, and without the playground the
page and the fake API do not exist."""
from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from settings import ConfigError, build_settings

ROOT = Path(__file__).resolve().parent.parent


def _example() -> dict[str, Any]:
    return tomllib.loads((ROOT / "config.example.toml").read_text(encoding="utf-8"))


def _production(data: dict[str, Any]) -> dict[str, Any]:
    """The demo config with the playground off and every API base at the real platforms."""
    data = copy.deepcopy(data)
    data["playground"] = {"enabled": False}
    data["console"]["secret_key"] = "production-console-secret-0123456789"
    data["gift_cards"]["codes_key"] = "cHJvZHVjdGlvbiBnaWZ0IGNvZGVzIGtleSAwMTIzNDU="  # not the demo's
    data["wecom"].update(api_base="https://qyapi.weixin.qq.com", group_webhook_base="https://qyapi.weixin.qq.com")
    data["dingtalk"].update(api_base="https://api.dingtalk.com", oapi_base="https://oapi.dingtalk.com")
    return data


def test_example_config_with_the_playground_on_is_accepted() -> None:
    assert build_settings(_example()).playground["enabled"] is True


def test_the_demos_gift_card_key_is_refused_without_the_playground() -> None:
    data = _production(_example())
    data["gift_cards"]["codes_key"] = _example()["gift_cards"]["codes_key"]
    with pytest.raises(ConfigError, match=r"^gift_cards\.codes_key: this is the demo's published key"):
        build_settings(data)
    data["gift_cards"]["codes_key"] = "not a fernet key"
    with pytest.raises(ConfigError, match=r"^gift_cards\.codes_key: expected a Fernet key"):
        build_settings(data)


@pytest.mark.parametrize("section, key", [("wecom", "api_base"), ("wecom", "group_webhook_base"),
                                          ("dingtalk", "api_base"), ("dingtalk", "oapi_base")])
def test_demo_api_base_without_playground_is_refused_naming_the_key(section: str, key: str) -> None:
    data = _production(_example())
    data[section][key] = "http://127.0.0.1:8000/playground/fake/" + section
    with pytest.raises(ConfigError, match=rf"^{section}\.{key}: .*points at this app"):
        build_settings(data)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000",                 # same host and port as server.host/port
    "http://localhost:8000/anything",        # a loopback name for the same port
    "https://bot.example.com/api",           # under server.public_url
    "https://other.example.com/playground/fake/wecom",  # the fake API's path anywhere
])
def test_self_pointing_urls_are_refused(url: str) -> None:
    data = _production(_example())
    data["server"]["public_url"] = "https://bot.example.com"
    data["wecom"]["api_base"] = url
    with pytest.raises(ConfigError, match=r"^wecom\.api_base"):
        build_settings(data)


@pytest.mark.parametrize("url", ["https://qyapi.weixin.qq.com", "http://127.0.0.1:9000", "https://bot.example.community",
                                 "http://wecom-proxy.internal:8000"])
def test_other_hosts_are_accepted(url: str) -> None:
    data = _production(_example())
    data["server"]["public_url"] = "https://bot.example.com"
    data["wecom"]["api_base"] = url
    assert build_settings(data).wecom["api_base"] == url


def test_server_on_all_interfaces_still_catches_loopback() -> None:
    data = _production(_example())
    data["server"].update(host="0.0.0.0", port=8080)
    data["dingtalk"]["oapi_base"] = "http://127.0.0.1:8080"
    with pytest.raises(ConfigError, match=r"^dingtalk\.oapi_base"):
        build_settings(data)


def test_the_example_without_the_playground_needs_a_console_key() -> None:
    data = _production(_example())
    data["console"]["secret_key"] = ""
    with pytest.raises(ConfigError, match=r"^console\.secret_key"):
        build_settings(data)


def test_without_playground_page_and_fake_api_are_404(tmp_path) -> None:
    data = _production(_example())
    data["database"] = {"url": f"sqlite:///{tmp_path / 'guard.db'}"}
    app = create_app(data)
    client = app.test_client()
    assert "pointsbot_playground" not in app.extensions
    for method, path in [("get", "/playground"), ("get", "/playground/static/playground.js"),
                         ("get", "/playground/api/messages?platform=wecom&user=zhangsan"),
                         ("post", "/playground/api/send"), ("post", "/playground/api/click"),
                         ("post", "/playground/api/simulate/approval"),
                         ("get", "/playground/fake/wecom/cgi-bin/gettoken"),
                         ("post", "/playground/fake/wecom/cgi-bin/message/send"),
                         ("post", "/playground/fake/dingtalk/v1.0/oauth2/accessToken"),
                         ("post", "/playground/fake/dingtalk/v1.0/robot/oToMessages/batchSend")]:
        assert getattr(client, method)(path).status_code == 404, path
    root = client.get("/")
    assert root.status_code == 200 and "pointsbot · 员工积分机器人" in root.get_data(as_text=True)
    assert "playground" not in root.get_data(as_text=True)


def test_with_playground_the_page_exists(tmp_path) -> None:
    data = _example()
    data["database"] = {"url": f"sqlite:///{tmp_path / 'on.db'}"}
    client = create_app(data).test_client()
    assert client.get("/playground").status_code == 200
    root = client.get("/")
    assert root.status_code == 302 and root.headers["Location"].endswith("/playground")
