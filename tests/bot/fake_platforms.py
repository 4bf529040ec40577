"""A stateful fake WeCom + DingTalk (``responses`` callbacks on *.test hosts, never real ones).

Records every message it accepted, rotates tokens on demand, and fails sends from a script
(``"500"``, ``"timeout"``, ``"busy"`` = WeCom -1, ``"limit"`` = WeCom 45033, ``"flow"`` = DingTalk flow control).
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

import requests
import responses

WECOM = "http://fake-wecom.test"
DINGTALK = "http://fake-dingtalk.test"
SESSION_URL = f"{DINGTALK}/robot/sendBySession?session=s1"

SETTINGS: dict[str, Any] = {
    "wecom": {"enabled": True, "corp_id": "ww-fake", "agent_id": 1000002, "secret": "wecom-S3CRET-x",
              "token": "tok", "encoding_aes_key": "a" * 43, "api_base": WECOM, "group_webhook_base": WECOM},
    "dingtalk": {"enabled": True, "app_key": "dk-fake", "app_secret": "dt-S3CRET-y", "robot_code": "robot-1",
                 "token": "tok", "aes_key": "b" * 43, "api_base": DINGTALK, "oapi_base": DINGTALK},
}


@dataclass
class Delivered:
    platform: str
    to: str  # user ids ("a|b"), a chat id or "session"
    text: str


@dataclass
class FakePlatforms:
    wecom_token: str = "wtok-1"
    dingtalk_token: str = "dtok-1"
    script: list[str] = field(default_factory=list)  # failures for the next sends, in order
    delivered: list[Delivered] = field(default_factory=list)
    token_fetches: int = 0
    send_requests: int = 0
    wrong_secret: bool = False
    flow_users: set[str] = field(default_factory=set)
    codes: dict[str, bool] = field(default_factory=dict)  # WeCom response_code → used
    updated: list[tuple[str, str]] = field(default_factory=list)  # (user, replace_name) of edited cards

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self._checked: set[tuple[str, str]] = set()  # messages sent with WeCom's duplicate check on

    # ---- control
    def rotate(self) -> None:
        """Server-side expiry: the current tokens stop working; a fetch returns new ones."""
        with self.lock:
            self.wecom_token += "x"
            self.dingtalk_token += "x"

    def texts(self) -> list[str]:
        return [d.text for d in self.delivered]

    def _failure(self) -> str | None:
        with self.lock:
            self.send_requests += 1
            return self.script.pop(0) if self.script else None

    # ---- WeCom
    def _wecom_token(self, req: Any) -> tuple[int, dict[str, str], str]:
        self.token_fetches += 1
        if self.wrong_secret:
            return 200, {}, json.dumps({"errcode": 40001, "errmsg": "invalid credential"})
        return 200, {}, json.dumps({"errcode": 0, "access_token": self.wecom_token, "expires_in": 7200})

    def _wecom_send(self, req: Any) -> tuple[int, dict[str, str], str]:
        query = parse_qs(urlparse(req.url).query)
        if query.get("access_token", [""])[0] != self.wecom_token and "webhook" not in req.url:
            return 200, {}, json.dumps({"errcode": 42001, "errmsg": "access_token expired"})
        failure = self._failure()
        if failure == "timeout":
            raise requests.exceptions.ReadTimeout("fake read timeout")
        if failure == "late":  # WeCom delivers, but its answer comes after our read timeout
            self._wecom_deliver(json.loads(req.body))
            raise requests.exceptions.ReadTimeout("fake read timeout after delivery")
        if failure == "500":
            return 502, {}, "<html>bad gateway</html>"
        if failure in ("busy", "limit"):
            return 200, {}, json.dumps({"errcode": -1 if failure == "busy" else 45033, "errmsg": "busy"})
        if failure == "bad_user":
            return 200, {}, json.dumps({"errcode": 81013, "errmsg": "user invalid"})
        if failure == "untrusted_ip":
            return 200, {}, json.dumps({"errcode": 60020, "errmsg": "not allow to access from your ip"})
        body = json.loads(req.body)
        self._wecom_deliver(body)
        answer = {"errcode": 0, "errmsg": "ok", "msgid": "m"}
        if body.get("msgtype") == "template_card":  # interaction cards get a single-use code (A.8.2, A.8.3)
            with self.lock:
                self.codes[f"code-{len(self.codes) + 1}"] = False
                answer["response_code"] = f"code-{len(self.codes)}"
        return 200, {}, json.dumps(answer)

    def _wecom_update_card(self, req: Any) -> tuple[int, dict[str, str], str]:
        """``update_template_card``: a code works once (A.8.3); the update is recorded per user."""
        body = json.loads(req.body)
        with self.lock:
            if self.codes.get(body["response_code"]) is not False:
                return 200, {}, json.dumps({"errcode": 40093, "errmsg": "invalid response_code"})
            self.codes[body["response_code"]] = True
            self.updated += [(u, body["button"]["replace_name"]) for u in body["userids"]]
        return 200, {}, json.dumps({"errcode": 0, "errmsg": "ok"})

    def _wecom_deliver(self, body: dict) -> None:
        """Record a delivery; with ``enable_duplicate_check`` WeCom drops a copy of the same message (A.8.2)."""
        to = body.get("touser") or body.get("chatid") or "webhook"
        msg = body.get(body["msgtype"])
        text = msg.get("content") or json.dumps(msg, ensure_ascii=False)
        with self.lock:
            if body.get("enable_duplicate_check") and (to, text) in self._checked:
                return
            if body.get("enable_duplicate_check"):
                self._checked.add((to, text))
            self.delivered.append(Delivered("wecom", to, text))

    # ---- DingTalk
    def _dingtalk_token(self, req: Any) -> tuple[int, dict[str, str], str]:
        self.token_fetches += 1
        return 200, {}, json.dumps({"accessToken": self.dingtalk_token, "expireIn": 7200})

    def _dingtalk_send(self, req: Any) -> tuple[int, dict[str, str], str]:
        if "session" not in req.url and req.headers.get("x-acs-dingtalk-access-token") != self.dingtalk_token:
            return 401, {}, json.dumps({"code": "InvalidAuthentication", "message": "token expired"})
        failure = self._failure()
        if failure == "timeout":
            raise requests.exceptions.ConnectTimeout("fake connect timeout")
        if failure == "500":
            return 500, {}, json.dumps({"code": "ServiceUnavailable", "message": "down"})
        if failure == "quota":
            return 403, {}, json.dumps({"code": "Forbidden.ApiCountLimitForOrg", "message": "quota"})
        if failure in ("send.too.fast", "send.byToken.tooFast"):  # DingTalk's throttling answer to bursts
            return 400, {}, json.dumps({"code": failure, "message": "发送太快，请稍后再试"})
        body = json.loads(req.body)
        if "session" in req.url:
            with self.lock:
                self.delivered.append(Delivered("dingtalk", "session", json.dumps(body, ensure_ascii=False)))
            return 200, {}, json.dumps({"errcode": 0, "errmsg": "ok"})
        users = body.get("userIds") or []
        flow = [u for u in users if u in self.flow_users]
        with self.lock:
            self.flow_users -= set(flow)
            ok = [u for u in users if u not in flow]
            if ok or body.get("openConversationId"):
                to = "|".join(ok) if users else body["openConversationId"]
                self.delivered.append(Delivered("dingtalk", to, body["msgParam"]))
        return 200, {}, json.dumps({"processQueryKey": "pqk", "flowControlledStaffIdList": flow})

    def install(self, rsps: responses.RequestsMock) -> None:
        rsps.add_callback("GET", f"{WECOM}/cgi-bin/gettoken", callback=self._wecom_token)
        for path in ("message/send", "appchat/send", "webhook/send"):
            rsps.add_callback("POST", f"{WECOM}/cgi-bin/{path}", callback=self._wecom_send)
        rsps.add_callback("POST", f"{WECOM}/cgi-bin/message/update_template_card", callback=self._wecom_update_card)
        rsps.add_callback("POST", f"{DINGTALK}/v1.0/oauth2/accessToken", callback=self._dingtalk_token)
        for path in ("v1.0/robot/oToMessages/batchSend", "v1.0/robot/groupMessages/send", "robot/sendBySession"):
            rsps.add_callback("POST", f"{DINGTALK}/{path}", callback=self._dingtalk_send)
