"""Configuration errors name the key; the environment overrides the file."""
from __future__ import annotations

from pathlib import Path

import pytest

from settings import ConfigError, build_settings, load_settings, overlay_env

ROOT = Path(__file__).resolve().parent.parent


def test_example_config_is_valid_and_documents_every_key() -> None:
    from settings import DEFAULTS

    s = load_settings(ROOT / "config.example.toml", environ={})
    assert s.playground["enabled"] is True
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    for section, keys in DEFAULTS.items():
        assert f"[{section}]" in text
        for key in keys:
            if key != "groups":
                assert f"\n{key} =" in text, f"{section}.{key} is not documented"


@pytest.mark.parametrize("data, key", [
    ({"server": {"port": "eighty"}}, "server.port"),
    ({"server": {"prot": 1}}, "server.prot"),
    ({"points": {"validity_days": 0}}, "points.validity_days"),
    ({"points": {"manager_award_scope": "everyone"}}, "points.manager_award_scope"),
    ({"wecom": {"enabled": True}}, "wecom.corp_id"),
    ({"wecom": {"enabled": True, "corp_id": "c", "secret": "s", "token": "t", "agent_id": 1,
                "encoding_aes_key": "short"}}, "wecom.encoding_aes_key"),
    ({"leavers": {"policy": "transfer"}}, "leavers.pool_employee_no"),
    ({"catalog": [{"sku": "a", "name": "A", "cost": -5}]}, "catalog[a].cost"),
    ({"rules": [{"name": "r", "platform": "dingtalk", "template": "P", "points": 5, "colour": 1}]}, "rules[r].colour"),
    ({"rules": [{"name": "r", "platform": "dingtalk", "template": "P", "points": -5}]}, "rules[r].points"),
    ({"rules": [{"name": "r", "platform": "wecom", "template": "T", "field": "f",
                 "tiers": [{"min": 90, "points": 5}, {"min": 90, "points": 3}]}]}, "rules[r].tiers"),
    ({"server": {"timezone": "Mars/Olympus"}}, "server.timezone"),
    ({"nonsense": {}}, "nonsense"),
])
def test_bad_settings_name_the_key(data: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_settings(data)
    assert key in str(err.value)


def test_environment_overrides_file_and_is_typed() -> None:
    data = overlay_env({"server": {"port": 1}}, {"POINTSBOT_SERVER__PORT": "9000", "POINTSBOT_WECOM__SECRET": "x"})
    s = build_settings(data)
    assert s.server["port"] == 9000 and s.wecom["secret"] == "x"
    with pytest.raises(ConfigError, match="server.port"):
        overlay_env({}, {"POINTSBOT_SERVER__PORT": "many"})
    with pytest.raises(ConfigError, match="POINTSBOT_SERVER__NOPE"):
        overlay_env({}, {"POINTSBOT_SERVER__NOPE": "1"})


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nothere.toml"):
        load_settings(tmp_path / "nothere.toml", environ={})


def test_tiers_pick_highest_min_not_above_value() -> None:
    s = build_settings({"rules": [{"name": "绩效", "platform": "wecom", "template": "T", "field": "得分",
                                   "tiers": [{"min": 80, "points": 300}, {"min": 90, "points": 500},
                                             {"min": 70, "points": 100}]}]})
    rule = s.rules[0]
    assert [rule.points_for(v) for v in (95, 90, 89.9, 80, 70, 69, None)] == [500, 500, 300, 300, 100, 0, 0]


def test_cli_reports_config_error_without_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nport = "x"\n', encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "check-ledger"], cwd=ROOT,
                          env={"POINTSBOT_CONFIG": str(bad), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "server.port" in proc.stderr
    assert "Traceback" not in proc.stderr
