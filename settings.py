"""Configuration: one TOML file (plus environment overrides) parsed into a validated, frozen object.

Why not ``app.config.from_file``: Flask keeps only UPPERCASE keys, so the ``[server]``/``[wecom]``
tables would be dropped silently. Every error names the key and what was expected, because the
person reading it is an operator at start-up, not a developer with a traceback.
"""
from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


from settings_rules import (PERIODS, CatalogItem, ConfigError, Rule, Tier,  # noqa: F401  (re-exported)
                            parse_catalog, parse_rules)

# section -> key -> default. The type of the default is the expected type.
DEFAULTS: dict[str, dict[str, Any]] = {
    "server": {
        "host": "127.0.0.1",
        "port": 8000,
        "public_url": "http://127.0.0.1:8000",
        "timezone": "Asia/Shanghai",
        "signature_window_seconds": 300,
        "log_level": "INFO",
        "log_format": "text",
        "status_token": "",
        "metrics_token": "",
    },
    "database": {"url": "sqlite:///var/pointsbot.db", "sqlite_synchronous": "FULL"},
    "wecom": {
        "enabled": False,
        "corp_id": "",
        "agent_id": 0,
        "secret": "",
        "token": "",
        "encoding_aes_key": "",
        "contacts_token": "",
        "contacts_encoding_aes_key": "",
        "api_base": "https://qyapi.weixin.qq.com",
        "group_webhook_base": "https://qyapi.weixin.qq.com",
    },
    "dingtalk": {
        "enabled": False,
        "app_key": "",
        "app_secret": "",
        "robot_code": "",
        "corp_id": "",
        "agent_id": 0,
        "token": "",
        "aes_key": "",
        "api_base": "https://api.dingtalk.com",
        "oapi_base": "https://oapi.dingtalk.com",
        "card_template_id": "",
        "card_callback_route_key": "",
        "card_api_secret": "",
        "personal_notices": True,
        "monthly_api_quota": 5000,
    },
    "points": {
        "validity_days": 365,
        "expiry_notice_days": [30, 7],
        "manager_monthly_budget": 1000,
        "budget_rollover": False,
        "manager_award_scope": "all",
        "max_award": 500,
    },
    "leavers": {"policy": "freeze", "grace_days": 30, "pool_employee_no": ""},
    "scheduler": {
        "expire_points": "5 0 * * *",
        "expiry_notices": "0 10 * * *",
        "leaderboard": "0 18 * * FRI",
        "manager_digest": "0 9 * * MON",
        "hr_digest": "30 9 * * MON",
        "budget_grant": "0 0 1 * *",
        "leaver_policy": "0 1 * * *",
        "reconcile_approvals": "*/30 * * * *",
        "prune": "30 3 * * *",
        "lapse_orders": "15,45 * * * *",
        "outbox_interval_seconds": 1.0,
        "lease_seconds": 600,
    },
    "leaderboard": {"top_n": 10, "period": "week", "groups": []},
    "playground": {"enabled": False},
    "orders": {"reject_reasons": ["库存不足", "不符合兑换规则", "信息不全"]},
    "appeals": {"deny_reasons": ["已核实无误", "不符合申诉规则", "信息不全"]},
    "console": {"enabled": False, "secret_key": "", "session_hours": 8, "link_minutes": 10},
    "spool": {"dir": "var/spool", "max_mb": 64, "max_events": 10000},
    # Not ``[catalog]``: TOML cannot have that table beside the ``[[catalog]]`` items.
    "gift_cards": {"codes_key": "", "low_stock": 5},
    "announcements": {"groups": []},  # where HR's announced changes of rules and catalog go (console tick box)
    "retention": {"events_days": 30, "sent_messages_days": 30, "job_runs_days": 180, "rate_buckets_days": 2,
                  "sent_cards_days": 7},
}
LIST_SECTIONS = ("catalog", "rules")
CHOICES = {
    ("points", "manager_award_scope"): ("all", "team"),
    ("leavers", "policy"): ("freeze", "expire", "transfer"),
    ("leaderboard", "period"): ("week", "month", "quarter", "year"),
    ("database", "sqlite_synchronous"): ("FULL", "NORMAL"),
    ("server", "log_format"): ("text", "json"),
}


@dataclass(frozen=True)
class Settings:
    server: Mapping[str, Any]
    database: Mapping[str, Any]
    wecom: Mapping[str, Any]
    dingtalk: Mapping[str, Any]
    points: Mapping[str, Any]
    leavers: Mapping[str, Any]
    scheduler: Mapping[str, Any]
    leaderboard: Mapping[str, Any]
    playground: Mapping[str, Any]
    console: Mapping[str, Any]
    orders: Mapping[str, Any]
    appeals: Mapping[str, Any]
    spool: Mapping[str, Any]
    retention: Mapping[str, Any]
    gift_cards: Mapping[str, Any]
    announcements: Mapping[str, Any]
    catalog: tuple[CatalogItem, ...] = ()
    rules: tuple[Rule, ...] = ()
    source: str = "<mapping>"
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.server["timezone"])


def _check_type(key: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected a whole number, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        value = float(value)
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
    elif isinstance(default, list):
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
    return value


def _coerce_env(key: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return raw.lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, list):
            return tomllib.loads(f"v = {raw}")["v"]
    except (ValueError, tomllib.TOMLDecodeError):
        raise ConfigError(f"{key} (from environment): cannot read {raw!r} as {type(default).__name__}") from None
    return raw


def overlay_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Apply ``POINTSBOT_<SECTION>__<KEY>`` variables (secrets belong in the environment)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for name, raw in environ.items():
        if not name.startswith("POINTSBOT_") or "__" not in name or name == "POINTSBOT_CONFIG":
            continue
        section, _, key = name[len("POINTSBOT_"):].partition("__")
        section, key = section.lower(), key.lower()
        if section not in DEFAULTS or key not in DEFAULTS[section]:
            raise ConfigError(f"{name}: no setting [{section}] {key}")
        out.setdefault(section, {})[key] = _coerce_env(f"{section}.{key}", raw, DEFAULTS[section][key])
    return out


def _section(name: str, given: Any) -> dict[str, Any]:
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise ConfigError(f"[{name}]: expected a table")
    result = dict(DEFAULTS[name])
    for key, value in given.items():
        if key not in DEFAULTS[name]:
            raise ConfigError(f"{name}.{key}: unknown setting (known: {', '.join(sorted(DEFAULTS[name]))})")
        result[key] = _check_type(f"{name}.{key}", value, DEFAULTS[name][key])
        choices = CHOICES.get((name, key))
        if choices and result[key] not in choices:
            raise ConfigError(f"{name}.{key}: expected one of {', '.join(choices)}, got {value!r}")
    return result


def _require(section: dict[str, Any], name: str, keys: tuple[str, ...]) -> None:
    for key in keys:
        if not section[key]:
            raise ConfigError(f"{name}.{key}: required when {name}.enabled = true")


def _validate_platforms(wecom: dict[str, Any], dingtalk: dict[str, Any]) -> None:
    if wecom["enabled"]:
        _require(wecom, "wecom", ("corp_id", "secret", "token", "encoding_aes_key", "agent_id"))
        if len(wecom["encoding_aes_key"]) != 43:
            raise ConfigError("wecom.encoding_aes_key: expected exactly 43 characters")
        if wecom["contacts_encoding_aes_key"] and len(wecom["contacts_encoding_aes_key"]) != 43:
            raise ConfigError("wecom.contacts_encoding_aes_key: expected exactly 43 characters")
    if dingtalk["enabled"]:
        _require(dingtalk, "dingtalk", ("app_key", "app_secret", "token", "aes_key"))
        if len(dingtalk["aes_key"]) != 43:
            raise ConfigError("dingtalk.aes_key: expected exactly 43 characters")
        if not dingtalk["robot_code"]:
            dingtalk["robot_code"] = dingtalk["app_key"]


def _validate_misc(server: dict[str, Any], points: dict[str, Any], leavers: dict[str, Any], board: dict[str, Any]) -> None:
    try:
        ZoneInfo(server["timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"server.timezone: unknown time zone {server['timezone']!r}") from None
    if not 1 <= server["signature_window_seconds"] <= 3600:
        raise ConfigError("server.signature_window_seconds: expected 1 to 3600 seconds")
    for key in ("validity_days", "manager_monthly_budget", "max_award"):
        if points[key] <= 0:
            raise ConfigError(f"points.{key}: expected a positive number")
    if any(not isinstance(d, int) or isinstance(d, bool) or d <= 0 for d in points["expiry_notice_days"]):
        raise ConfigError("points.expiry_notice_days: expected a list of positive whole numbers of days")
    if leavers["policy"] == "transfer" and not leavers["pool_employee_no"]:
        raise ConfigError("leavers.pool_employee_no: required when leavers.policy = \"transfer\"")
    _validate_groups("leaderboard", board["groups"])


def _validate_groups(section: str, groups: list[Any]) -> None:
    """``[[<section>.groups]]``: the group chats something is posted to."""
    for i, group in enumerate(groups):
        if not isinstance(group, Mapping) or group.get("platform") not in ("dingtalk", "wecom") or not group.get("chat_id"):
            raise ConfigError(f"{section}.groups[{i}]: expected platform (dingtalk|wecom) and chat_id")
        unknown = set(group) - {"platform", "chat_id", "webhook_key", "name"}
        if unknown:
            raise ConfigError(f"{section}.groups[{i}].{sorted(unknown)[0]}: unknown setting")


SELF_POINTING_KEYS = (("wecom", "api_base"), ("wecom", "group_webhook_base"), ("dingtalk", "api_base"),
                      ("dingtalk", "oapi_base"))
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "::", ""}


def _refuse_self_pointing_apis(sections: Mapping[str, dict[str, Any]]) -> None:
    """Without the playground, an API base aimed at this app is a copied demo config: refuse to start.

    Otherwise the outbox would post every message to a route that does not exist (404) and the
    operator would see a bot that silently never answers.
    """
    if sections["playground"]["enabled"]:
        return
    server = sections["server"]
    host, port = str(server["host"]).strip("[]").lower(), server["port"]
    hosts = _LOCAL_HOSTS | {host} if host in _LOCAL_HOSTS else {host}
    public = str(server["public_url"]).rstrip("/").lower()
    for section, key in SELF_POINTING_KEYS:
        url = str(sections[section][key]).strip()
        parts = urlsplit(url.lower())
        try:
            url_port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        except ValueError:
            url_port = None
        if ("/playground/fake" in parts.path or (public and (url.lower() + "/").startswith(public + "/"))
                or ((parts.hostname or "") in hosts and url_port == port)):
            raise ConfigError(f"{section}.{key}: {url} points at this app itself (the playground's fake API); "
                              f"set the platform's real address, e.g. {DEFAULTS[section][key]}")


def _validate_console(console: dict[str, Any], playground: Mapping[str, Any]) -> None:
    """The session key signs every console cookie: required, shared by every process and host. Only the local
    demo (the playground on) may leave it empty; each start then makes a random one (sessions end at restart)."""
    for key in ("session_hours", "link_minutes"):
        if console[key] <= 0:
            raise ConfigError(f"console.{key}: expected a positive number")
    if not console["enabled"]:
        return
    key = console["secret_key"]
    if not key and playground["enabled"]:
        console["secret_key"] = secrets.token_urlsafe(32)
    elif len(key) < 32:
        raise ConfigError("console.secret_key: required when console.enabled is true, at least 32 characters "
                          "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'); the same on every "
                          "process and host; or set POINTSBOT_CONSOLE__SECRET_KEY")


DEMO_CODES_KEY = "cG9pbnRzYm90IGRlbW8gY29kZXMga2V5OiBkZW1vISE="  # config.example.toml's, public


def _validate_gift_cards(gift_cards: Mapping[str, Any], playground: Mapping[str, Any]) -> None:
    """The codes key encrypts the gift-card codes HR uploads (storage/gift_codes.py); checked here so a
    mistyped key stops the start, not the first upload or the first confirmation. The demo's key is public:
    only the demo may use it."""
    from cryptography.fernet import Fernet

    if gift_cards["low_stock"] < 0:
        raise ConfigError("gift_cards.low_stock: expected a whole number >= 0")
    if not gift_cards["codes_key"]:
        return
    if gift_cards["codes_key"] == DEMO_CODES_KEY and not playground["enabled"]:
        raise ConfigError("gift_cards.codes_key: this is the demo's published key; make your own with python -c "
                          "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'")
    try:
        Fernet(gift_cards["codes_key"])
    except (ValueError, TypeError):
        raise ConfigError("gift_cards.codes_key: expected a Fernet key (44 characters of URL-safe base64), e.g. "
                          "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'; "
                          "or set POINTSBOT_GIFT_CARDS__CODES_KEY") from None


def build_settings(data: Mapping[str, Any], source: str = "<mapping>") -> Settings:
    unknown = set(data) - set(DEFAULTS) - set(LIST_SECTIONS)
    if unknown:
        raise ConfigError(f"{sorted(unknown)[0]}: unknown section (known: {', '.join(sorted([*DEFAULTS, *LIST_SECTIONS]))})")
    sections = {name: _section(name, data.get(name)) for name in DEFAULTS}
    _validate_platforms(sections["wecom"], sections["dingtalk"])
    _validate_misc(sections["server"], sections["points"], sections["leavers"], sections["leaderboard"])
    for section, key in (("spool", "max_mb"), ("spool", "max_events"), *(("retention", k) for k in sections["retention"])):
        if sections[section][key] <= 0:
            raise ConfigError(f"{section}.{key}: expected a positive number")
    if sections["retention"]["job_runs_days"] <= 40:
        raise ConfigError("retention.job_runs_days: expected more than 40 days (the scheduler's catch-up looks back 40)")
    _refuse_self_pointing_apis(sections)
    _validate_console(sections["console"], sections["playground"])
    _validate_gift_cards(sections["gift_cards"], sections["playground"])
    _validate_groups("announcements", sections["announcements"]["groups"])
    for section, key in (("orders", "reject_reasons"), ("appeals", "deny_reasons")):
        reasons = sections[section][key]
        if len(reasons) > 3 or any(not isinstance(r, str) or not r.strip() or len(r) > 20 for r in reasons):
            raise ConfigError(f"{section}.{key}: expected up to three short texts (each 1 to 20 characters), "
                              "offered as buttons")
    return Settings(**sections, catalog=parse_catalog(data.get("catalog")), rules=parse_rules(data.get("rules")),
                    source=source)


def load_settings(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file (``POINTSBOT_CONFIG``, else ``./config.toml``) and the environment."""
    environ = os.environ if environ is None else environ
    path = Path(path or environ.get("POINTSBOT_CONFIG") or "config.toml")
    if not path.is_file():
        raise ConfigError(f"configuration file {path} not found (set POINTSBOT_CONFIG or create config.toml "
                          f"from config.example.toml)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return build_settings(overlay_env(data, environ), source=str(path))
