"""Build the requests DingTalk and WeCom would send, signed and encrypted with the configured secrets.

Why server-side: the browser never sees a token, key or app secret; it says "zhangsan typed 积分"
and this module produces exactly what the platform would POST (docs/protocols.md A.3/A.7 for WeCom,
B.1/B.2/B.4/B.5 for DingTalk). The playground then hands the request to the real callback views,
so every check (signature, timestamp window, receive id, dedupe) runs as in production.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping
from xml.sax.saxutils import escape

from defusedxml import ElementTree as SafeET

from bot.crypto import CallbackCrypto
from bot.dingtalk.crypto import robot_sign


@dataclass(frozen=True)
class SignedRequest:
    """One HTTP request for ``app.test_client()``; ``shown`` is what the page may display."""

    path: str
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    shown: dict[str, Any] = field(default_factory=dict)


def _cdata(value: str) -> str:
    """CDATA-wrap, splitting any ``]]>`` inside so user text cannot end the section."""
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _nonce() -> str:
    return str(secrets.randbelow(10**9))


class WeComSigner:
    """Encrypted WeCom callbacks (A.3) for the app and, when configured, the contact-sync URL."""

    def __init__(self, cfg: Mapping[str, Any], now: Callable[[], float]) -> None:
        self.corp_id, self.agent_id, self.now = cfg["corp_id"], cfg["agent_id"], now
        self.app = CallbackCrypto(cfg["token"], cfg["encoding_aes_key"], [cfg["corp_id"]])
        self.contacts = (CallbackCrypto(cfg["contacts_token"], cfg["contacts_encoding_aes_key"], [cfg["corp_id"]])
                         if cfg["contacts_token"] and cfg["contacts_encoding_aes_key"] else None)

    def _wrap(self, inner: str, path: str = "/callback/wecom", crypto: CallbackCrypto | None = None) -> SignedRequest:
        crypto = crypto or self.app
        ts, nonce = str(int(self.now())), _nonce()
        encrypt = crypto.encrypt(inner, self.corp_id)
        body = (f"<xml><ToUserName>{_cdata(self.corp_id)}</ToUserName><Encrypt>{_cdata(encrypt)}</Encrypt>"
                f"<AgentID>{_cdata(str(self.agent_id))}</AgentID></xml>").encode()
        params = {"msg_signature": crypto.sign(ts, nonce, encrypt), "timestamp": ts, "nonce": nonce}
        return SignedRequest(path, body, params=params, shown={"path": path, "query": params, "decrypted": inner})

    def _head(self, user: str, msg_type: str) -> str:
        return (f"<ToUserName>{_cdata(self.corp_id)}</ToUserName><FromUserName>{_cdata(user)}</FromUserName>"
                f"<CreateTime>{int(self.now())}</CreateTime><MsgType>{_cdata(msg_type)}</MsgType>")

    def text(self, user: str, content: str) -> SignedRequest:
        msg_id = secrets.randbelow(2**62)
        return self._wrap(f"<xml>{self._head(user, 'text')}<Content>{_cdata(content)}</Content>"
                          f"<MsgId>{msg_id}</MsgId><AgentID>{self.agent_id}</AgentID></xml>")

    def click(self, user: str, key: str, task_id: str, response_code: str) -> SignedRequest:
        """A ``template_card_event`` (A.7.3): EventKey is the clicked button's key."""
        return self._wrap(f"<xml>{self._head(user, 'event')}<Event>{_cdata('template_card_event')}</Event>"
                          f"<EventKey>{_cdata(key)}</EventKey><TaskId>{_cdata(task_id)}</TaskId>"
                          f"<CardType>{_cdata('button_interaction')}</CardType>"
                          f"<ResponseCode>{_cdata(response_code)}</ResponseCode>"
                          f"<AgentID>{self.agent_id}</AgentID></xml>")

    def approval(self, user: str, sp_no: str, template_id: str, name: str) -> SignedRequest:
        """``sys_approval_change`` with SpStatus 2 (approved) and StatuChangeEvent 2 (agreed), A.7.4."""
        now = int(self.now())
        info = (f"<SpNoStr>{_cdata(sp_no)}</SpNoStr><SpNo>{escape(sp_no)}</SpNo><SpName>{_cdata(name)}</SpName>"
                f"<SpStatus>2</SpStatus><TemplateId>{_cdata(template_id)}</TemplateId><ApplyTime>{now - 600}</ApplyTime>"
                f"<Applyer><UserId>{_cdata(user)}</UserId><Party>{_cdata('1')}</Party></Applyer>"
                f"<StatuChangeEvent>2</StatuChangeEvent>")
        return self._wrap(f"<xml>{self._head('sys', 'event')}<Event>{_cdata('sys_approval_change')}</Event>"
                          f"<AgentID>{self.agent_id}</AgentID><ApprovalInfo>{info}</ApprovalInfo></xml>")

    def member_left(self, user: str) -> SignedRequest:
        """``change_contact``/``delete_user`` (A.7.5), to the contact-sync URL when one is configured."""
        inner = (f"<xml>{self._head('sys', 'event')}<Event>{_cdata('change_contact')}</Event>"
                 f"<ChangeType>delete_user</ChangeType><UserID>{_cdata(user)}</UserID></xml>")
        if self.contacts is not None:
            return self._wrap(inner, "/callback/wecom/contacts", self.contacts)
        return self._wrap(inner)

    def open_reply(self, body: bytes) -> dict[str, Any] | None:
        """Verify and decrypt a passive reply (A.6) into what the user sees, or None for an empty 200."""
        if not body.strip():
            return None
        root = SafeET.fromstring(body)
        encrypt, sig = root.findtext("Encrypt") or "", root.findtext("MsgSignature") or ""
        if not self.app.verify(sig, root.findtext("TimeStamp") or "", root.findtext("Nonce") or "", encrypt):
            raise ValueError("passive reply signature does not verify")
        inner, _ = self.app.decrypt(encrypt)
        msg = SafeET.fromstring(inner)
        msg_type = msg.findtext("MsgType") or ""
        if msg_type == "update_button":
            return {"msgtype": "update_button", "replace_name": msg.findtext("Button/ReplaceName") or ""}
        return {"msgtype": msg_type, "content": msg.findtext("Content") or "", "raw": inner}


class DingTalkSigner:
    """Robot messages (B.2, HMAC headers) and encrypted event pushes (B.1)."""

    def __init__(self, cfg: Mapping[str, Any], now: Callable[[], float]) -> None:
        self.cfg, self.now = cfg, now
        self.crypto = CallbackCrypto(cfg["token"], cfg["aes_key"], [cfg["app_key"]])

    def robot(self, user: str, nick: str, content: str) -> SignedRequest:
        """A one-to-one robot message; ``sessionWebhook`` points at the fake API like the real oapi host."""
        ms = int(self.now() * 1000)
        session = f"{self.cfg['oapi_base'].rstrip('/')}/robot/sendBySession?session={user}"
        body = {"conversationId": f"cidPlayground{user}", "atUsers": [], "chatbotCorpId": self.cfg["corp_id"],
                "chatbotUserId": "$:LWCP_v1:$playgroundbot", "msgId": "msg" + secrets.token_hex(12),
                "senderNick": nick, "isAdmin": False, "senderStaffId": user,
                "sessionWebhookExpiredTime": ms + 90 * 60 * 1000, "createAt": ms,
                "senderCorpId": self.cfg["corp_id"], "conversationType": "1", "senderId": f"$:LWCP_v1:${user}",
                "isInAtList": True, "sessionWebhook": session, "text": {"content": " " + content},
                "msgtype": "text", "robotCode": self.cfg["robot_code"]}
        headers = {"timestamp": str(ms), "sign": robot_sign(str(ms), self.cfg["app_secret"]),
                   "Content-Type": "application/json; charset=utf-8"}
        raw = json.dumps(body, ensure_ascii=False)
        return SignedRequest("/callback/dingtalk/robot", raw.encode(), headers=headers,
                             shown={"path": "/callback/dingtalk/robot", "headers": {"timestamp": str(ms), "sign": headers["sign"]},
                                    "body": body})

    def event(self, payload: dict[str, Any]) -> SignedRequest:
        ms, nonce = str(int(self.now() * 1000)), secrets.token_hex(4)
        plain = json.dumps(payload, ensure_ascii=False)
        encrypt = self.crypto.encrypt(plain, self.cfg["app_key"])
        params = {"msg_signature": self.crypto.sign(ms, nonce, encrypt), "timestamp": ms, "nonce": nonce}
        return SignedRequest("/callback/dingtalk", json.dumps({"encrypt": encrypt}).encode(), params=params,
                             headers={"Content-Type": "application/json"},
                             shown={"path": "/callback/dingtalk", "query": params, "decrypted": payload})

    def _event_base(self, event_type: str) -> dict[str, Any]:
        ms = int(self.now() * 1000)
        return {"EventType": event_type, "EventTime": ms, "CorpId": self.cfg["corp_id"],
                "eventId": secrets.token_hex(16), "BizId": str(ms)}

    def approval(self, user: str, instance_id: str, process_code: str, title: str) -> SignedRequest:
        """``bpms_instance_change`` type=finish result=agree (B.4)."""
        ms = int(self.now() * 1000)
        return self.event({**self._event_base("bpms_instance_change"), "processInstanceId": instance_id,
                           "processCode": process_code, "title": title, "type": "finish", "result": "agree",
                           "staffId": user, "createTime": ms - 600_000, "finishTime": ms,
                           "url": "https://aflow.dingtalk.com/playground"})

    def member_left(self, user: str) -> SignedRequest:
        """``user_leave_org`` (B.5)."""
        return self.event({**self._event_base("user_leave_org"), "timeStamp": str(int(self.now() * 1000)),
                           "userId": [user]})

    def open_ack(self, body: bytes) -> bool:
        """True when the answer is the encrypted ``success`` the platform expects (B.1)."""
        try:
            data = json.loads(body)
            if not self.crypto.verify(data["msg_signature"], data["timeStamp"], data["nonce"], data["encrypt"]):
                return False
            return self.crypto.decrypt(data["encrypt"])[0] == "success"
        except (ValueError, KeyError, TypeError):
            return False
