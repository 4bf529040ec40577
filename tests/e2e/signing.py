"""Build real signed and encrypted platform requests, independently of the code under test.

Only hashlib, hmac and the cryptography primitives are used here (never bot.crypto), so a bug in
our crypto cannot cancel itself out in the tests.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def sha1_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()


def aes_encrypt(aes_key43: str, msg: str, receive_id: str, random16: bytes | None = None) -> str:
    key = base64.b64decode(aes_key43 + "=")
    body = msg.encode()
    plain = (random16 or os.urandom(16)) + struct.pack(">I", len(body)) + body + receive_id.encode()
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(plain) + enc.finalize()).decode()


def aes_decrypt(aes_key43: str, encrypt: str) -> tuple[str, str]:
    key = base64.b64decode(aes_key43 + "=")
    dec = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = dec.update(base64.b64decode(encrypt)) + dec.finalize()
    plain = plain[:-plain[-1]]
    (n,) = struct.unpack(">I", plain[16:20])
    return plain[20:20 + n].decode(), plain[20 + n:].decode()


def wecom_post(token: str, aes_key: str, corp_id: str, inner_xml: str, timestamp: int, nonce: str = "12345"):
    """(query params, body bytes) of an encrypted WeCom POST callback."""
    encrypt = aes_encrypt(aes_key, inner_xml, corp_id)
    body = (f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt>"
            f"<AgentID><![CDATA[1000002]]></AgentID></xml>").encode()
    params = {"msg_signature": sha1_signature(token, str(timestamp), nonce, encrypt), "timestamp": str(timestamp),
              "nonce": nonce}
    return params, body


def wecom_text_xml(user: str, corp_id: str, content: str, msg_id: int, create_time: int) -> str:
    return (f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
            f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId><AgentID>1000002</AgentID></xml>")


def wecom_click_xml(user: str, corp_id: str, key: str, create_time: int, task_id: str = "t1") -> str:
    return (f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
            f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[template_card_event]]></Event><EventKey><![CDATA[{key}]]></EventKey>"
            f"<TaskId><![CDATA[{task_id}]]></TaskId><CardType><![CDATA[button_interaction]]></CardType>"
            f"<ResponseCode><![CDATA[rc-{create_time}]]></ResponseCode><AgentID>1000002</AgentID></xml>")


def dingtalk_event(token: str, aes_key: str, owner_key: str, payload: dict, timestamp_ms: int, nonce: str = "nOnCe123"):
    encrypt = aes_encrypt(aes_key, json.dumps(payload, ensure_ascii=False), owner_key)
    params = {"signature": sha1_signature(token, str(timestamp_ms), nonce, encrypt), "timestamp": str(timestamp_ms),
              "nonce": nonce}
    return params, json.dumps({"encrypt": encrypt}).encode()


def robot_headers(app_secret: str, timestamp_ms: int) -> dict[str, str]:
    digest = hmac.new(app_secret.encode(), f"{timestamp_ms}\n{app_secret}".encode(), hashlib.sha256).digest()
    return {"timestamp": str(timestamp_ms), "sign": base64.b64encode(digest).decode(),
            "Content-Type": "application/json; charset=utf-8"}


def robot_body(user: str, text: str, msg_id: str, *, group: bool = False, at_users: list[str] | None = None) -> bytes:
    return json.dumps({
        "conversationId": "cidTEST==", "atUsers": [{"dingtalkId": "$:x", "staffId": u} for u in (at_users or [])],
        "chatbotCorpId": "dingcorp", "chatbotUserId": "$:LWCP_v1:$bot", "msgId": msg_id, "senderNick": "测试",
        "isAdmin": False, "senderStaffId": user, "sessionWebhookExpiredTime": 1999999999000, "createAt": 1700000000000,
        "senderCorpId": "dingcorp", "conversationType": "2" if group else "1", "senderId": "$:LWCP_v1:$u",
        "conversationTitle": "t", "isInAtList": True, "sessionWebhook": "http://fake-dingtalk.test/robot/sendBySession?session=x",
        "text": {"content": " " + text}, "msgtype": "text", "robotCode": "dingdemoappkey"}, ensure_ascii=False).encode()
