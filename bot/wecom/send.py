"""WeCom (企业微信) server → API client: messages, template cards, approvals, group posts.

Why a hand-written client rather than wechatpy: we need a handful of endpoints, a shared
thread-safe token cache, exact control over retries (the outbox owns them) and scrubbed
errors.  Protocol reference: docs/protocols.md §A.8.

Error policy (decide on ``errcode``, never on ``errmsg``):

* ``40014``/``42001`` (token invalid/expired): drop the cached token, fetch a new one and
  retry the call **once**.
* ``-1`` (busy), ``45009``/``45033`` (frequency/concurrency), HTTP 5xx/429, timeouts and
  connection errors: :class:`PlatformApiError` with ``retryable=True`` - the outbox backs off.
* ``gettoken`` rejecting the credentials: :class:`ConfigurationError` naming ``wecom.secret``
  - retrying cannot fix a wrong secret and would only burn the gettoken rate limit.
* Everything else: non-retryable :class:`PlatformApiError` carrying the errcode.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping, Sequence

import requests

from bot.errors import ConfigurationError, PlatformApiError
from bot.http import HttpResult, get_json, make_session, post_json, scrub
from bot.tokens import Clock, TokenCache

log = logging.getLogger(__name__)

PLATFORM = "wecom"
DEFAULT_API_BASE = "https://qyapi.weixin.qq.com"

TOKEN_RETRY_CODES = frozenset({40014, 42001})
RETRYABLE_CODES = frozenset({-1, 45009, 45033})
UNTRUSTED_IP = 60020  # a configuration error (docs/protocols.md A.8.1): the messages wait, nothing is dead-lettered
# gettoken: 40001 invalid secret, 40013 invalid corpid, 40089 invalid corpid/secret,
# 41002 missing corpid, 41004 missing secret, 40091 secret invalid.
CREDENTIAL_CODES = frozenset({40001, 40013, 40089, 41002, 41004, 40091})

MAX_TOUSER = 1000
MAX_DUPLICATE_CHECK_SECONDS = 4 * 3600


def join_users(touser: str | Sequence[str]) -> str:
    """``["a", "b"]`` → ``"a|b"`` (the message/send recipient format); strings pass through."""
    if isinstance(touser, str):
        return touser
    users = [u for u in dict.fromkeys(touser) if u]
    if not users:
        raise ValueError("touser: at least one user id is required")
    if len(users) > MAX_TOUSER:
        raise ValueError(f"touser: at most {MAX_TOUSER} users per message, got {len(users)}")
    return "|".join(users)


class WeComClient:
    """One self-built WeCom app (corp id + agent id + secret).

    ``on_call`` is invoked with ``"wecom"`` for every outbound API request except token
    fetches (those are not business calls and are excluded from the platforms' quotas).
    """

    def __init__(
        self,
        corp_id: str,
        agent_id: int | str,
        secret: str,
        api_base: str = DEFAULT_API_BASE,
        session: requests.Session | None = None,
        clock: Clock = time.time,
        token_cache: TokenCache | None = None,
        *,
        on_call: Callable[[str], None] | None = None,
        webhook_base: str | None = None,
    ) -> None:
        self.corp_id = corp_id
        self.agent_id = int(agent_id)
        self._secret = secret
        self._base = self._cgi_base(api_base)
        self._webhook_base = self._cgi_base(webhook_base or api_base)
        self._session = session if session is not None else make_session()
        self._tokens = token_cache if token_cache is not None else TokenCache(clock=clock)
        self._on_call = on_call
        self._token_key = f"{corp_id}:{self.agent_id}"

    def __repr__(self) -> str:
        return f"WeComClient(corp_id={self.corp_id!r}, agent_id={self.agent_id}, secret=***)"

    @staticmethod
    def _cgi_base(base: str) -> str:
        """Accept both ``https://qyapi.weixin.qq.com`` and ``…/cgi-bin`` as configured bases."""
        base = base.rstrip("/")
        return base if base.endswith("/cgi-bin") else base + "/cgi-bin"

    # ------------------------------------------------------------------ token

    def get_token(self) -> str:
        """Return a cached access_token, calling ``gettoken`` only when needed."""
        return self._tokens.get(PLATFORM, self._token_key, self._fetch_token)

    def _fetch_token(self) -> tuple[str, float]:
        result = get_json(
            self._session,
            f"{self._base}/gettoken",
            platform=PLATFORM,
            params={"corpid": self.corp_id, "corpsecret": self._secret},
        )
        data = self._check(result, "gettoken", token_call=True)
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise PlatformApiError(PLATFORM, "bad_response", "gettoken returned no access_token", retryable=True)
        log.info("wecom: fetched a new access_token for agent %s", self.agent_id)
        return token, float(data.get("expires_in") or 7200)

    # ------------------------------------------------------------------ core

    def _count(self) -> None:
        if self._on_call is not None:
            self._on_call(PLATFORM)

    def _call(
        self,
        method: str,
        path: str,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Call ``/cgi-bin/{path}`` with the access token; refetch and retry once on 40014/42001."""
        url = f"{self._base}/{path.lstrip('/')}"
        for attempt in (1, 2):
            token = self.get_token()
            query = {**(params or {}), "access_token": token}
            self._count()
            if method.upper() == "GET":
                result = get_json(self._session, url, platform=PLATFORM, params=query)
            else:
                result = post_json(self._session, url, dict(json or {}), platform=PLATFORM, params=query)
            errcode = self._errcode(result)
            if errcode in TOKEN_RETRY_CODES and attempt == 1:
                log.warning("wecom %s: errcode %s, refreshing access_token and retrying once", path, errcode)
                self._tokens.invalidate(PLATFORM, self._token_key, token)
                continue
            return self._check(result, path)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _errcode(result: HttpResult) -> int | None:
        code = result.data.get("errcode")
        try:
            return int(code) if code is not None else None
        except (TypeError, ValueError):
            return None

    def _check(self, result: HttpResult, what: str, *, token_call: bool = False) -> dict[str, Any]:
        """Return the body if ``errcode == 0``; otherwise raise the mapped error."""
        if result.status >= 500 or result.status == 429:
            raise self._error(f"http_{result.status}", f"{what}: HTTP {result.status}", True)
        if not result.ok:
            raise self._error(f"http_{result.status}", f"{what}: HTTP {result.status}", False)
        if not result.is_json:
            raise self._error("bad_response", f"{what}: response is not JSON", True)
        errcode = self._errcode(result)
        if errcode is None:
            raise self._error("bad_response", f"{what}: response has no errcode", True)
        if errcode == 0:
            return result.data
        errmsg = scrub(result.data.get("errmsg", ""))
        if errcode == UNTRUSTED_IP:
            log.error("wecom refused a call from this server's IP (errcode 60020); messages are held until it is fixed")
            raise ConfigurationError(
                "WeCom refused the call: this server's egress IP is not in the app's trusted IP list (errcode 60020); "
                "add it under 应用管理 → the app → 企业可信IP, and the held messages go out"
            )
        if token_call and errcode in CREDENTIAL_CODES:
            log.error("wecom gettoken rejected the credentials (errcode %s)", errcode)
            raise ConfigurationError(
                f"WeCom gettoken rejected the credentials (errcode {errcode}: {errmsg}); "
                "check wecom.secret (and wecom.corp_id)"
            )
        # a token rejected even after a refresh is a passing state on WeCom's side: try again later
        raise self._error(errcode, f"{what}: {errmsg}", errcode in RETRYABLE_CODES | TOKEN_RETRY_CODES)

    @staticmethod
    def _error(code: str | int, message: str, retryable: bool) -> PlatformApiError:
        log.warning("wecom API error %s (retryable=%s): %s", code, retryable, scrub(message))
        return PlatformApiError(PLATFORM, code, scrub(message), retryable=retryable)

    # ------------------------------------------------------------------ messages

    def _send(self, touser: str | Sequence[str], msgtype: str, content: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "touser": join_users(touser),
            "msgtype": msgtype,
            "agentid": self.agent_id,
            msgtype: dict(content),
        }
        body.update(extra)
        return self._call("POST", "message/send", body)

    def send_text(
        self, touser: str | Sequence[str], content: str, *, duplicate_check_seconds: int | None = None
    ) -> dict[str, Any]:
        """Send a text message.  Returns the response (``msgid``, ``invaliduser`` …).

        ``duplicate_check_seconds`` turns on WeCom's own duplicate suppression; only use it for
        notices whose content is unique, since it also drops a legitimate identical resend.
        """
        return self._send(touser, "text", {"content": content}, **_duplicate_check(duplicate_check_seconds))

    def send_template_card(self, touser: str | Sequence[str], template_card: Mapping[str, Any], *,
                           duplicate_check_seconds: int | None = None) -> str | None:
        """Send a template card; returns the single-use, 72-hour ``response_code`` (interaction cards).

        ``duplicate_check_seconds`` as for :meth:`send_text`.
        """
        data = self._send(touser, "template_card", template_card, **_duplicate_check(duplicate_check_seconds))
        code = data.get("response_code")
        return str(code) if code else None

    def update_template_card_button(
        self, userids: str | Sequence[str], response_code: str, replace_name: str
    ) -> dict[str, Any]:
        """Disable a card's buttons showing ``replace_name`` (e.g. "Approved by zhangsan")."""
        users = [userids] if isinstance(userids, str) else list(dict.fromkeys(userids))
        body = {
            "userids": users,
            "partyids": [],
            "tagids": [],
            "atall": 0,
            "agentid": self.agent_id,
            "response_code": response_code,
            "button": {"replace_name": replace_name},
        }
        return self._call("POST", "message/update_template_card", body)

    # ------------------------------------------------------------------ approvals

    def get_approval_detail(self, sp_no: str) -> dict[str, Any]:
        """Return ``info`` of ``oa/getapprovaldetail`` (sp_status, applyer, apply_data …)."""
        data = self._call("POST", "oa/getapprovaldetail", {"sp_no": str(sp_no)})
        info = data.get("info")
        if not isinstance(info, dict):
            raise PlatformApiError(PLATFORM, "bad_response", "getapprovaldetail returned no info", retryable=True)
        return info

    def get_approval_info(
        self,
        starttime: int,
        endtime: int,
        template_id: str | None = None,
        cursor: int | str = 0,
        size: int = 100,
    ) -> dict[str, Any]:
        """List ``sp_no`` values over a time window (used to catch up on missed approval events).

        ``cursor``: an ``int`` is sent as the legacy ``cursor``; a ``str`` (the response's
        ``new_next_cursor``) is sent as ``new_cursor``.  Returns the whole response
        (``sp_no_list``, ``next_cursor``/``new_next_cursor``).
        """
        if not 0 < size <= 100:
            raise ValueError("size must be in 1..100")
        body: dict[str, Any] = {"starttime": str(int(starttime)), "endtime": str(int(endtime))}
        if isinstance(cursor, str):
            body["new_cursor"] = cursor
        else:
            body["cursor"] = int(cursor)
        body["size"] = size
        if template_id:
            body["filters"] = [{"key": "template_id", "value": template_id}]
        return self._call("POST", "oa/getapprovalinfo", body)

    # ------------------------------------------------------------------ groups

    def appchat_send(self, chatid: str, msg: Mapping[str, Any]) -> dict[str, Any]:
        """Post into an app-created group chat; ``msg`` is e.g. ``{"msgtype":"text","text":{…}}``."""
        body = {"chatid": chatid, **dict(msg)}
        return self._call("POST", "appchat/send", body)

    def webhook_send(self, webhook_url_or_key: str, msg: Mapping[str, Any]) -> dict[str, Any]:
        """Post through a group robot webhook (20 messages/minute per robot); no access token."""
        if webhook_url_or_key.startswith(("http://", "https://")):
            url, params = webhook_url_or_key, None
        else:
            url, params = f"{self._webhook_base}/webhook/send", {"key": webhook_url_or_key}
        self._count()
        result = post_json(self._session, url, dict(msg), platform=PLATFORM, params=params)
        return self._check(result, "webhook/send")


def _duplicate_check(seconds: int | None) -> dict[str, Any]:
    """WeCom's own suppression of a message identical to one sent in the last ``seconds`` (docs/protocols.md A.8.2)."""
    if seconds is None:
        return {}
    if not 0 < seconds <= MAX_DUPLICATE_CHECK_SECONDS:
        raise ValueError("duplicate_check_seconds must be in 1..14400")
    return {"enable_duplicate_check": 1, "duplicate_check_interval": int(seconds)}
