"""Shared outbound HTTP plumbing for the WeCom and DingTalk clients.

Why this module exists:

* ``requests`` never times out unless told to, so every call made through here gets a default
  (connect 3 s, read 10 s) even if a caller forgets (docs/reliability.md §4).
* Message sends are POSTs and are *not* idempotent.  urllib3 must not silently resend them;
  retries are a conscious decision of the outbox, which knows the message's idempotency key.
  Only GETs (token fetches, detail look-ups) get one transparent read retry.
* Access tokens and app secrets travel in query strings (``?access_token=``, ``corpsecret=``,
  ``appsecret=``, webhook ``key=``), and ``requests``/urllib3 put full URLs into exception
  messages and DEBUG logs.  :func:`scrub` removes them before anything is logged or raised
  (docs/reliability.md §6.4).
* Network failures become :class:`~bot.errors.PlatformApiError` with ``retryable=True`` so the
  callers need to handle exactly one exception type.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from bot.errors import PlatformApiError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0
DEFAULT_TIMEOUT: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT)

_REDACTED = "***"

# key=value in URLs / messages.  The look-behind keeps e.g. ``appkey=`` (not a secret) intact
# while catching ``key=`` (WeCom group-robot webhook key) and ``session=`` (DingTalk
# sessionWebhook, which grants posting into a conversation).
_QUERY_SECRET = re.compile(
    r"(?<![A-Za-z0-9_])(access_token|accesstoken|key|corpsecret|appsecret|secret|session|sign)"
    r"=([^&\s\"'#,;)]+)",
    re.IGNORECASE,
)
# "accessToken": "..." / 'appSecret': '...' in JSON bodies or dict reprs.
_JSON_SECRET = re.compile(
    r"([\"'](?:access_token|accessToken|appSecret|app_secret|corpsecret|secret)[\"']\s*:\s*[\"'])"
    r"([^\"']+)([\"'])",
    re.IGNORECASE,
)
# The DingTalk token header as it may appear in a headers repr.
_HEADER_SECRET = re.compile(r"(x-acs-dingtalk-access-token[\"']?\s*[:=]\s*[\"']?)([^\"'\s,}]+)", re.IGNORECASE)


def scrub(text: object) -> str:
    """Return ``str(text)`` with token/secret values replaced by ``***``.

    Why: every URL or exception message we log may contain a live credential.
    """
    s = str(text)
    s = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}={_REDACTED}", s)
    s = _JSON_SECRET.sub(lambda m: f"{m.group(1)}{_REDACTED}{m.group(3)}", s)
    s = _HEADER_SECRET.sub(lambda m: f"{m.group(1)}{_REDACTED}", s)
    return s


class ScrubFilter(logging.Filter):
    """Logging filter that scrubs a record's rendered message.

    Why: urllib3 logs ``"POST /cgi-bin/gettoken?corpid=..&corpsecret=.. HTTP/1.1"`` at DEBUG;
    with ``log_level = DEBUG`` that would put the secret into the log file.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # pragma: no cover - malformed record; let logging report it
            return True
        cleaned = scrub(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


_SCRUB_FILTER = ScrubFilter()


def install_log_scrubber(*logger_names: str) -> None:
    """Attach :class:`ScrubFilter` (once) to urllib3's logger and any extra named loggers."""
    for name in ("urllib3.connectionpool", *logger_names):
        target = logging.getLogger(name)
        if _SCRUB_FILTER not in target.filters:
            target.addFilter(_SCRUB_FILTER)


class _TimeoutAdapter(HTTPAdapter):
    """HTTPAdapter that applies :data:`DEFAULT_TIMEOUT` when a caller passes none."""

    def __init__(self, *args: Any, timeout: tuple[float, float] = DEFAULT_TIMEOUT, **kwargs: Any) -> None:
        self._default_timeout = timeout
        super().__init__(*args, **kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._default_timeout
        return super().send(request, **kwargs)


def _retry_policy() -> Retry:
    """One read retry for GET only; nothing for POST/PUT, nothing on connect or status."""
    return Retry(
        total=1,
        connect=0,
        read=1,
        status=0,
        other=0,
        redirect=0,
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,
        backoff_factor=0.2,
    )


def make_session(pool_maxsize: int = 10, timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> requests.Session:
    """Create a pooled session to share between the clients of one process.

    Why pooled: the outbox relay sends bursts; reusing TLS connections to the two platform
    hosts saves ~100 ms per message.
    """
    install_log_scrubber()
    session = requests.Session()
    adapter = _TimeoutAdapter(
        pool_connections=4, pool_maxsize=pool_maxsize, max_retries=_retry_policy(), timeout=timeout
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


@dataclass(frozen=True)
class HttpResult:
    """Status plus parsed JSON object (``{}`` when the body was not a JSON object)."""

    status: int
    data: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    is_json: bool = True

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def request_json(
    session: requests.Session,
    method: str,
    url: str,
    *,
    platform: str,
    params: Mapping[str, Any] | None = None,
    payload: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: tuple[float, float] | float = DEFAULT_TIMEOUT,
) -> HttpResult:
    """Send one request and parse the JSON reply; never raises ``requests`` exceptions.

    Connection failures and timeouts become retryable :class:`PlatformApiError` (a read timeout
    on a POST may mean the message *was* delivered - the outbox accepts at-least-once).
    HTTP error statuses are returned, not raised: each platform encodes its errors differently.
    """
    all_headers = {"Accept": "application/json"}
    body: bytes | None = None
    if payload is not None:
        # ensure_ascii=False: the platforms' size limits count UTF-8 bytes, not \\u escapes.
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        all_headers["Content-Type"] = "application/json; charset=utf-8"
    if headers:
        all_headers.update(headers)
    try:
        response = session.request(method, url, params=params, data=body, headers=all_headers, timeout=timeout)
    except requests.Timeout as exc:
        raise PlatformApiError(platform, "timeout", scrub(f"{method} {url}: {exc}"), retryable=True) from None
    except requests.ConnectionError as exc:
        raise PlatformApiError(platform, "connection", scrub(f"{method} {url}: {exc}"), retryable=True) from None
    except requests.RequestException as exc:
        raise PlatformApiError(platform, "request", scrub(f"{method} {url}: {exc}"), retryable=False) from None
    text = response.text or ""
    log.debug("%s %s -> HTTP %s", method, scrub(response.url or url), response.status_code)
    try:
        parsed = response.json() if text else {}
    except ValueError:
        return HttpResult(response.status_code, {}, text[:500], is_json=False)
    if not isinstance(parsed, dict):
        return HttpResult(response.status_code, {"_value": parsed}, text[:500], is_json=True)
    return HttpResult(response.status_code, parsed, text[:500], is_json=True)


def post_json(
    session: requests.Session,
    url: str,
    payload: Any,
    *,
    platform: str,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: tuple[float, float] | float = DEFAULT_TIMEOUT,
) -> HttpResult:
    """POST ``payload`` as UTF-8 JSON; see :func:`request_json`."""
    return request_json(
        session, "POST", url, platform=platform, params=params, payload=payload, headers=headers, timeout=timeout
    )


def get_json(
    session: requests.Session,
    url: str,
    *,
    platform: str,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: tuple[float, float] | float = DEFAULT_TIMEOUT,
) -> HttpResult:
    """GET and parse JSON; see :func:`request_json`."""
    return request_json(session, "GET", url, platform=platform, params=params, headers=headers, timeout=timeout)
