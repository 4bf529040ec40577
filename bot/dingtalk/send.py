"""DingTalk (钉钉) server → API client: robot messages, cards, approval detail, failed callbacks.

Why hand-written: the official ``alibabacloud-dingtalk`` SDK pulls in a large dependency tree
for the six endpoints we use, and we need one shared token cache, call counting for the
5000-calls-per-month quota, and outbox-friendly error classification.  Protocol reference:
docs/protocols.md §B.2, §B.4, §B.6.2, §B.7, §B.8.

Error policy:

* new API HTTP 401 or code ``InvalidAuthentication`` (legacy ``40014``/``42001``): drop the
  cached token, refetch and retry **once**; rejected again → retryable (the outbox tries later).
* ``…QpsLimit…``, ``send.too.fast``/``send.byToken.tooFast``/``system.busy``, legacy ``90018``/
  ``90002``/``-1``, HTTP 5xx/429, the per-IP block page, timeouts → retryable :class:`PlatformApiError`.
* ``90020`` / ``…ApiCountLimitForOrg`` (monthly quota exhausted) → non-retryable, code
  ``"quota"`` so the outbox can stop sending instead of burning attempts.
* wrong app secret at token time → :class:`ConfigurationError` naming ``dingtalk.app_secret``.
* anything else → non-retryable with DingTalk's own code.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import requests

from bot.errors import ConfigurationError, PlatformApiError
from bot.http import HttpResult, get_json, make_session, post_json, request_json, scrub
from bot.tokens import Clock, TokenCache

log = logging.getLogger(__name__)

PLATFORM = "dingtalk"
DEFAULT_API_BASE = "https://api.dingtalk.com"
DEFAULT_OAPI_BASE = "https://oapi.dingtalk.com"
TOKEN_HEADER = "x-acs-dingtalk-access-token"

MAX_OTO_USERS = 20  # the docs say 20 in the description and 100 in an error text: stay at 20
MAX_MSG_PARAM_BYTES = 15000

LEGACY_TOKEN_CODES = frozenset({40014, 42001})
LEGACY_RETRYABLE = frozenset({-1, 90018, 90002, 130101})  # 130101: robot "sending too fast"
TRY_LATER = frozenset({"send.too.fast", "send.byToken.tooFast", "system.busy", "InvalidAuthentication"})  # B.7.4
LEGACY_QUOTA = frozenset({90020})
LEGACY_CREDENTIAL_CODES = frozenset({40001, 40013, 40089})


# ---------------------------------------------------------------------- message parameters
def encode_msg_param(msg_param: Mapping[str, Any]) -> str:
    """``msgParam`` must be a JSON *string*, ≤ 15000 bytes (rejected otherwise, wasting quota)."""
    encoded = json.dumps(dict(msg_param), ensure_ascii=False, separators=(",", ":"))
    if len(encoded.encode("utf-8")) > MAX_MSG_PARAM_BYTES:
        raise ValueError(f"msgParam is longer than {MAX_MSG_PARAM_BYTES} bytes")
    return encoded


def _card_params(card_param_map: Mapping[str, Any]) -> dict[str, str]:
    """All ``cardParamMap`` values must be strings; other types are JSON-encoded (B.6.2)."""
    return {
        str(k): v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, separators=(",", ":"))
        for k, v in card_param_map.items()
    }


@dataclass
class OtoSendResult:
    """Outcome of :meth:`DingTalkClient.robot_send_oto` over all chunks.

    ``failed_staff_ids``: users of the chunk that raised ``error`` and of the later, unsent
    chunks.  :attr:`retry_user_ids` is what the caller should re-queue.
    """

    process_query_keys: list[str] = field(default_factory=list)
    invalid_staff_ids: list[str] = field(default_factory=list)
    flow_controlled_staff_ids: list[str] = field(default_factory=list)
    failed_staff_ids: list[str] = field(default_factory=list)
    error: PlatformApiError | None = None

    @property
    def retry_user_ids(self) -> list[str]:
        retry = list(self.flow_controlled_staff_ids)
        if self.error is not None and self.error.retryable:
            retry.extend(self.failed_staff_ids)
        return retry


# ---------------------------------------------------------------------- client
class DingTalkClient:
    """One DingTalk internal app and its robot.

    ``on_call`` is invoked with ``"dingtalk"`` for every outbound request except token
    fetches, which DingTalk excludes from the monthly API quota.
    """

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        robot_code: str,
        agent_id: int | str,
        api_base: str = DEFAULT_API_BASE,
        oapi_base: str = DEFAULT_OAPI_BASE,
        session: requests.Session | None = None,
        clock: Clock = time.time,
        token_cache: TokenCache | None = None,
        *,
        on_call: Callable[[str], None] | None = None,
    ) -> None:
        self.app_key = app_key
        self._secret = app_secret
        self.robot_code = robot_code or app_key
        self.agent_id = int(agent_id or 0)
        self._api_base = api_base.rstrip("/")
        self._oapi_base = oapi_base.rstrip("/")
        self._session = session if session is not None else make_session()
        self._tokens = token_cache if token_cache is not None else TokenCache(clock=clock)
        self._on_call = on_call

    def __repr__(self) -> str:
        return f"DingTalkClient(app_key={self.app_key!r}, app_secret=***)"

    # ------------------------------------------------------------------ tokens

    def get_token(self) -> str:
        """New-style token for ``api.dingtalk.com`` (header ``x-acs-dingtalk-access-token``)."""
        return self._tokens.get(PLATFORM, self.app_key, self._fetch_token)

    def get_legacy_token(self) -> str:
        """Legacy ``oapi`` token (query ``access_token``), cached separately."""
        return self._tokens.get(PLATFORM + "-oapi", self.app_key, self._fetch_legacy_token)

    def _fetch_token(self) -> tuple[str, float]:
        body = {"appKey": self.app_key, "appSecret": self._secret}
        result = post_json(self._session, f"{self._api_base}/v1.0/oauth2/accessToken", body, platform=PLATFORM)
        code = str(result.data.get("code", ""))
        if result.status == 400 and code.lower() == "invalidclientidorsecret":
            log.error("dingtalk accessToken rejected the app credentials (%s)", code)
            raise ConfigurationError(
                f"DingTalk rejected the app credentials ({code}); check dingtalk.app_secret (and dingtalk.app_key)"
            )
        data = self._check_new(result, "oauth2/accessToken")
        token = data.get("accessToken")
        if not isinstance(token, str) or not token:
            raise self._error("bad_response", "accessToken missing in response", True)
        log.info("dingtalk: fetched a new access token")
        return token, float(data.get("expireIn") or 7200)

    def _fetch_legacy_token(self) -> tuple[str, float]:
        params = {"appkey": self.app_key, "appsecret": self._secret}
        result = get_json(self._session, f"{self._oapi_base}/gettoken", platform=PLATFORM, params=params)
        errcode = self._errcode(result)
        if errcode in LEGACY_CREDENTIAL_CODES:
            log.error("dingtalk gettoken rejected the app credentials (errcode %s)", errcode)
            raise ConfigurationError(
                f"DingTalk gettoken rejected the app credentials (errcode {errcode}); "
                "check dingtalk.app_secret (and dingtalk.app_key)"
            )
        data = self._check_legacy(result, "gettoken")
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise PlatformApiError(PLATFORM, "bad_response", "gettoken returned no access_token", retryable=True)
        return token, float(data.get("expires_in") or 7200)

    # ------------------------------------------------------------------ core

    def _count(self) -> None:
        if self._on_call is not None:
            self._on_call(PLATFORM)

    def _api(
        self,
        method: str,
        path: str,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Call the new API (``api_base``); refetch the token and retry once on 401/InvalidAuthentication."""
        url = f"{self._api_base}/{path.lstrip('/')}"
        for attempt in (1, 2):
            token = self.get_token()
            self._count()
            payload = dict(json_body) if json_body is not None else None
            result = request_json(
                self._session, method, url, platform=PLATFORM, params=params, payload=payload,
                headers={TOKEN_HEADER: token},
            )
            code = str(result.data.get("code", ""))
            if attempt == 1 and (result.status == 401 or code == "InvalidAuthentication"):
                log.warning("dingtalk %s: token rejected (HTTP %s), refreshing and retrying once", path, result.status)
                self._tokens.invalidate(PLATFORM, self.app_key, token)
                continue
            return self._check_new(result, path)
        raise AssertionError("unreachable")  # pragma: no cover

    def _oapi(self, method: str, path: str, json_body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Call the legacy API (``oapi_base``, ``?access_token=``); retry once on 40014/42001."""
        url = f"{self._oapi_base}/{path.lstrip('/')}"
        for attempt in (1, 2):
            token = self.get_legacy_token()
            self._count()
            payload = dict(json_body) if json_body is not None else None
            result = request_json(
                self._session, method, url, platform=PLATFORM, params={"access_token": token}, payload=payload
            )
            if attempt == 1 and self._errcode(result) in LEGACY_TOKEN_CODES:
                log.warning("dingtalk %s: legacy token rejected, refreshing and retrying once", path)
                self._tokens.invalidate(PLATFORM + "-oapi", self.app_key, token)
                continue
            return self._check_legacy(result, path)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _errcode(result: HttpResult) -> int | None:
        try:
            return int(result.data["errcode"])
        except (KeyError, TypeError, ValueError):
            return None

    @staticmethod
    def _error(code: str | int, message: str, retryable: bool) -> PlatformApiError:
        log.warning("dingtalk API error %s (retryable=%s): %s", code, retryable, scrub(message))
        return PlatformApiError(PLATFORM, code, scrub(message), retryable=retryable)

    def _blocked(self, result: HttpResult, what: str) -> PlatformApiError | None:
        """The per-IP block answers with HTML or ``{"status":1111,"punish":"deny",…}`` (B.7.4)."""
        if result.data.get("punish") or result.data.get("status") == 1111:
            return self._error("ip_blocked", f"{what}: calls from this IP are blocked for a while", True)
        if not result.is_json:
            return self._error(f"http_{result.status}", f"{what}: non-JSON response", result.status >= 500 or result.ok)
        return None

    def _check_new(self, result: HttpResult, what: str) -> dict[str, Any]:
        blocked = self._blocked(result, what)
        if blocked is not None:
            raise blocked
        code = str(result.data.get("code") or "")
        message = str(result.data.get("message") or "")
        if result.ok and result.data.get("success") is not False:
            return result.data
        if "ApiCountLimitForOrg" in code:
            raise self._error("quota", f"{what}: monthly API quota exhausted ({code})", False)
        retryable = "QpsLimit" in code or code in TRY_LATER or result.status in (401, 429) or result.status >= 500
        raise self._error(code or f"http_{result.status}", f"{what}: HTTP {result.status} {message}", retryable)

    def _check_legacy(self, result: HttpResult, what: str) -> dict[str, Any]:
        blocked = self._blocked(result, what)
        if blocked is not None:
            raise blocked
        if result.status >= 500 or result.status == 429:
            raise self._error(f"http_{result.status}", f"{what}: HTTP {result.status}", True)
        errcode = self._errcode(result)
        if errcode == 0:
            return result.data
        if errcode is None:
            raise self._error(f"http_{result.status}", f"{what}: HTTP {result.status}, no errcode", not result.ok)
        errmsg = str(result.data.get("errmsg") or "")
        if errcode in LEGACY_QUOTA:
            raise self._error("quota", f"{what}: monthly API quota exhausted ({errcode})", False)
        raise self._error(errcode, f"{what}: {errmsg}", errcode in LEGACY_RETRYABLE | LEGACY_TOKEN_CODES)

    # ------------------------------------------------------------------ robot messages

    def robot_send_oto(self, user_ids: Sequence[str], msg_key: str, msg_param: Mapping[str, Any]) -> OtoSendResult:
        """Robot one-to-one message to users, in chunks of ≤ 20 ids.

        Raises if the first chunk fails (nothing was sent).  If a later chunk fails, returns
        the partial result with ``error`` set and the unsent users in ``failed_staff_ids``, so
        the caller never re-sends to users that already got the message.
        """
        users = [u for u in dict.fromkeys(user_ids) if u]
        if not users:
            raise ValueError("user_ids: at least one user id is required")
        param = encode_msg_param(msg_param)
        out = OtoSendResult()
        for start in range(0, len(users), MAX_OTO_USERS):
            chunk = users[start : start + MAX_OTO_USERS]
            body = {"robotCode": self.robot_code, "userIds": chunk, "msgKey": msg_key, "msgParam": param}
            try:
                data = self._api("POST", "v1.0/robot/oToMessages/batchSend", body)
            except PlatformApiError as exc:
                if start == 0:
                    raise
                out.error = exc
                out.failed_staff_ids = users[start:]
                return out
            if data.get("processQueryKey"):
                out.process_query_keys.append(str(data["processQueryKey"]))
            out.invalid_staff_ids.extend(data.get("invalidStaffIdList") or [])
            out.flow_controlled_staff_ids.extend(data.get("flowControlledStaffIdList") or [])
        return out

    def robot_send_group(self, open_conversation_id: str, msg_key: str, msg_param: Mapping[str, Any]) -> str:
        """Robot message to a group the robot is in; returns ``processQueryKey``."""
        body = {
            "robotCode": self.robot_code,
            "openConversationId": open_conversation_id,
            "msgKey": msg_key,
            "msgParam": encode_msg_param(msg_param),
        }
        data = self._api("POST", "v1.0/robot/groupMessages/send", body)
        return str(data.get("processQueryKey") or "")

    def session_webhook_send(self, url: str, message: Mapping[str, Any]) -> dict[str, Any]:
        """Reply through a conversation's ``sessionWebhook`` (no token; expires ~90 min)."""
        self._count()
        result = post_json(self._session, url, dict(message), platform=PLATFORM)
        return self._check_legacy(result, "sessionWebhook")

    # ------------------------------------------------------------------ cards

    def card_create_and_deliver(
        self,
        out_track_id: str,
        card_template_id: str,
        card_param_map: Mapping[str, Any],
        *,
        open_conversation_id: str | None = None,
        user_id: str | None = None,
        callback_type: str = "STREAM",
        callback_route_key: str | None = None,
        support_forward: bool | None = None,
    ) -> dict[str, Any]:
        """Create an interactive card and deliver it to a group or a robot single chat.

        Exactly one of ``open_conversation_id`` (group) or ``user_id`` (robot chat).
        Returns the ``result`` object (``outTrackId``, ``deliverResults``).
        """
        if (open_conversation_id is None) == (user_id is None):
            raise ValueError("pass exactly one of open_conversation_id or user_id")
        if callback_type == "HTTP" and not callback_route_key:
            raise ValueError("callback_type HTTP needs callback_route_key")
        body: dict[str, Any] = {
            "cardTemplateId": card_template_id,
            "outTrackId": out_track_id,
            "callbackType": callback_type,
        }
        if callback_route_key:
            body["callbackRouteKey"] = callback_route_key
        body["cardData"] = {"cardParamMap": _card_params(card_param_map)}
        if open_conversation_id is not None:
            body["openSpaceId"] = f"dtv1.card//IM_GROUP.{open_conversation_id}"
            body["imGroupOpenSpaceModel"] = {"supportForward": True if support_forward is None else support_forward}
            body["imGroupOpenDeliverModel"] = {"robotCode": self.robot_code}
        else:
            body["openSpaceId"] = f"dtv1.card//IM_ROBOT.{user_id}"
            body["imRobotOpenSpaceModel"] = {"supportForward": bool(support_forward)}
            body["imRobotOpenDeliverModel"] = {"spaceType": "IM_ROBOT", "robotCode": self.robot_code}
        data = self._api("POST", "v1.0/card/instances/createAndDeliver", body)
        result = data.get("result")
        return result if isinstance(result, dict) else data

    def card_update(self, out_track_id: str, card_param_map: Mapping[str, Any]) -> dict[str, Any]:
        """Update the public data of a delivered card by ``outTrackId`` (keys merged)."""
        body = {
            "outTrackId": out_track_id,
            "cardData": {"cardParamMap": _card_params(card_param_map)},
            "cardUpdateOptions": {"updateCardDataByKey": True},
        }
        return self._api("PUT", "v1.0/card/instances", body)

    # ------------------------------------------------------------------ approvals / callbacks

    def get_process_instance(self, instance_id: str) -> dict[str, Any]:
        """Return ``result`` of the approval instance (status, result, formComponentValues …)."""
        data = self._api("GET", "v1.0/workflow/processInstances", params={"processInstanceId": instance_id})
        result = data.get("result")
        if not isinstance(result, dict):
            raise PlatformApiError(PLATFORM, "bad_response", "processInstances returned no result", retryable=True)
        return result

    def get_failed_callbacks(self) -> dict[str, Any]:
        """Events whose HTTP push failed twice (``failed_list`` ≤ 200, ``has_more``)."""
        return self._oapi("GET", "call_back/get_call_back_failed_result")
