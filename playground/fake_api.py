"""A fake DingTalk and WeCom API that answers like the real ones and remembers every message.

Why: the demo config points ``wecom.api_base``/``dingtalk.api_base`` here, so the real clients and
the real outbox (running in the scheduler process, calling over HTTP) deliver cards and notices to
this web process, which keeps them in memory for the playground page to poll. The answers follow
the documented shapes (docs/protocols.md A.8, B.7) closely enough that the clients' error handling,
token caching and response parsing all run: a wrong secret gets the platform's credential error,
a wrong token the token error the clients retry on.
"""
from __future__ import annotations

import itertools
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from flask import Blueprint, Response, jsonify, request

MAX_MESSAGES = 5000  # a long demo session must not grow without bound


@dataclass
class MessageLog:
    """Recorded messages and simulated approvals, shared by the fake API and the page's API."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)  # instance id / sp_no → detail
    lock: threading.Lock = field(default_factory=threading.Lock)
    seq: itertools.count = field(default_factory=lambda: itertools.count(1))

    def record(self, platform: str, recipients: list[str], kind: str, body: Mapping[str, Any],
               **extra: Any) -> list[dict[str, Any]]:
        out = []
        with self.lock:
            for to in recipients:
                msg = {"seq": next(self.seq), "platform": platform, "to": to, "kind": kind, "at": time.time(),
                       "body": dict(body), **extra}
                self.messages.append(msg)
                out.append(msg)
            del self.messages[:-MAX_MESSAGES]
        return out

    def since(self, platform: str, user: str, after: int) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.messages if m["platform"] == platform and m["to"] == user and m["seq"] > after]

    def find(self, platform: str, **match: Any) -> dict[str, Any] | None:
        with self.lock:
            for m in reversed(self.messages):
                if m["platform"] == platform and all(m.get(k) == v for k, v in match.items()):
                    return m
        return None


def _split(users: object) -> list[str]:
    if isinstance(users, list):
        return [str(u) for u in users if u]
    return [u for u in str(users or "").split("|") if u]


def _wecom(log: MessageLog, settings: Any) -> Blueprint:
    bp = Blueprint("playground_fake_wecom", __name__, url_prefix="/playground/fake/wecom/cgi-bin")
    token = "fake-wecom-" + secrets.token_hex(8)

    def ok(**data: Any) -> Response:
        return jsonify(errcode=0, errmsg="ok", **data)

    def bad_token() -> Response | None:
        if request.args.get("access_token") != token:
            return jsonify(errcode=40014, errmsg="invalid access_token")
        return None

    @bp.get("/gettoken")
    def gettoken() -> Response:
        cfg = settings.wecom
        if request.args.get("corpid") != cfg["corp_id"] or request.args.get("corpsecret") != cfg["secret"]:
            return jsonify(errcode=40001, errmsg="invalid credential")
        return ok(access_token=token, expires_in=7200)

    @bp.post("/message/send")
    def message_send() -> Response:
        if (err := bad_token()) is not None:
            return err
        body = request.get_json(force=True)
        users = _split(body.get("touser"))
        code = "rc-" + secrets.token_hex(8) if body.get("msgtype") == "template_card" else ""
        task_id = (body.get("template_card") or {}).get("task_id", "")
        log.record("wecom", users, body.get("msgtype", ""), body, response_code=code, task_id=task_id)
        extra = {"response_code": code} if code else {}
        return ok(invaliduser="", invalidparty="", invalidtag="", msgid=secrets.token_hex(10), **extra)

    @bp.post("/message/update_template_card")
    def update_card() -> Response:
        if (err := bad_token()) is not None:
            return err
        body = request.get_json(force=True)
        card = log.find("wecom", response_code=body.get("response_code"))
        log.record("wecom", _split(body.get("userids")), "update_template_card", body,
                   task_id=card["task_id"] if card else "")
        return ok(invaliduser=[])

    @bp.post("/appchat/send")
    def appchat() -> Response:
        if (err := bad_token()) is not None:
            return err
        body = request.get_json(force=True)
        log.record("wecom", [f"group:{body.get('chatid', '')}"], body.get("msgtype", ""), body)
        return ok()

    @bp.post("/webhook/send")
    def webhook() -> Response:
        body = request.get_json(force=True)
        log.record("wecom", [f"group:webhook:{request.args.get('key', '')}"], body.get("msgtype", ""), body)
        return ok()

    @bp.post("/oa/getapprovaldetail")
    def approval_detail() -> Response:
        if (err := bad_token()) is not None:
            return err
        sp_no = str(request.get_json(force=True).get("sp_no", ""))
        info = log.approvals.get(f"wecom:{sp_no}")
        if info is None:
            return jsonify(errcode=301025, errmsg="sp_no not found")
        return ok(info=info)

    @bp.post("/oa/getapprovalinfo")
    def approval_list() -> Response:
        if (err := bad_token()) is not None:
            return err
        numbers = [k.split(":", 1)[1] for k in log.approvals if k.startswith("wecom:")]
        return ok(sp_no_list=numbers, new_next_cursor="")

    return bp


def _dingtalk(log: MessageLog, settings: Any) -> Blueprint:
    bp = Blueprint("playground_fake_dingtalk", __name__, url_prefix="/playground/fake/dingtalk")
    token, legacy = "fake-dt-" + secrets.token_hex(8), "fake-dt-oapi-" + secrets.token_hex(8)

    def bad_token() -> tuple[Response, int] | None:
        if request.headers.get("x-acs-dingtalk-access-token") != token:
            return jsonify(code="InvalidAuthentication", message="access token is invalid"), 401
        return None

    def query_id() -> str:
        return "pqk" + secrets.token_hex(12)

    @bp.post("/v1.0/oauth2/accessToken")
    def access_token() -> Any:
        body, cfg = request.get_json(force=True), settings.dingtalk
        if body.get("appKey") != cfg["app_key"] or body.get("appSecret") != cfg["app_secret"]:
            return jsonify(code="invalidClientIdOrSecret", message="无效的clientId或者clientSecret"), 400
        return jsonify(accessToken=token, expireIn=7200)

    @bp.get("/gettoken")
    def gettoken() -> Response:
        cfg = settings.dingtalk
        if request.args.get("appkey") != cfg["app_key"] or request.args.get("appsecret") != cfg["app_secret"]:
            return jsonify(errcode=40089, errmsg="不合法的corpid或corpsecret")
        return jsonify(errcode=0, errmsg="ok", access_token=legacy, expires_in=7200)

    @bp.post("/v1.0/robot/oToMessages/batchSend")
    def oto() -> Any:
        if (err := bad_token()) is not None:
            return err
        body = request.get_json(force=True)
        log.record("dingtalk", _split(body.get("userIds")), body.get("msgKey", ""), body)
        return jsonify(processQueryKey=query_id(), invalidStaffIdList=[], flowControlledStaffIdList=[])

    @bp.post("/v1.0/robot/groupMessages/send")
    def group() -> Any:
        if (err := bad_token()) is not None:
            return err
        body = request.get_json(force=True)
        log.record("dingtalk", [f"group:{body.get('openConversationId', '')}"], body.get("msgKey", ""), body)
        return jsonify(processQueryKey=query_id())

    @bp.post("/robot/sendBySession")
    def session_webhook() -> Response:
        body = request.get_json(force=True)
        log.record("dingtalk", [request.args.get("session", "")], body.get("msgtype", ""), body)
        return jsonify(errcode=0, errmsg="ok")

    @bp.get("/v1.0/workflow/processInstances")
    def instance() -> Any:
        if (err := bad_token()) is not None:
            return err
        detail = log.approvals.get(f"dingtalk:{request.args.get('processInstanceId', '')}")
        if detail is None:
            return jsonify(code="processInstanceId.notFound", message="审批实例不存在"), 400
        return jsonify(success=True, result=detail)

    @bp.get("/call_back/get_call_back_failed_result")
    def failed_callbacks() -> Response:
        if request.args.get("access_token") != legacy:
            return jsonify(errcode=40014, errmsg="不合法的access_token")
        return jsonify(errcode=0, errmsg="ok", has_more=False, failed_list=[])

    @bp.post("/v1.0/card/instances/createAndDeliver")
    def card_create() -> Any:
        if (err := bad_token()) is not None:
            return err
        body = request.get_json(force=True)
        user = str(body.get("openSpaceId", "")).rsplit(".", 1)[-1]
        log.record("dingtalk", [user], "interactive_card", body)
        return jsonify(success=True, result={"outTrackId": body.get("outTrackId"), "deliverResults": [
            {"spaceType": "IM_ROBOT", "spaceId": user, "success": True}]})

    @bp.put("/v1.0/card/instances")
    def card_update() -> Any:
        if (err := bad_token()) is not None:
            return err
        return jsonify(success=True, result=True)

    return bp


def fake_blueprints(log: MessageLog, settings: Any) -> list[Blueprint]:
    return [_wecom(log, settings), _dingtalk(log, settings)]
