"""Property: hostile input to decrypt and the parsers raises only CallbackRejected subclasses.

Anything else (KeyError, struct.error, UnicodeError, ...) would surface as a 500 and make the
platform retry forever; a CallbackRejected is answered deliberately by the edge.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.crypto import CallbackCrypto, check_timestamp, signature
from bot.dingtalk.crypto import decrypt_event, verify_card_signature, verify_robot_sign
from bot.dingtalk.parse import parse_card_callback, parse_event, parse_instance_detail, parse_robot
from bot.errors import CallbackRejected
from bot.core.events import Event
from bot.wecom.crypto import decrypt_post, verify_url
from bot.wecom.parse import parse, parse_approval_detail
from tests.bot import vectors as v
from tests.bot.test_crypto import aes_raw

NOW = datetime(2026, 11, 23, tzinfo=timezone.utc)
CRYPTO = CallbackCrypto(v.WC_TOKEN, v.WC_KEY, [v.WC_CORP])
FAST = settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def clock() -> float:
    return 1476422779.0


def rejected_or(fn, *args):
    try:
        return fn(*args)
    except CallbackRejected:
        return None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
robot_keys = st.sampled_from(
    ["text", "content", "senderStaffId", "senderNick", "conversationId", "conversationType", "sessionWebhook",
     "sessionWebhookExpiredTime", "atUsers", "chatbotUserId", "msgId", "errorCode", "msgtype", "dingtalkId",
     "staffId", "outTrackId", "userId", "type", "cardPrivateData", "params", "command", "action",
     "result", "status", "formComponentValues", "name", "value", "info", "sp_status", "apply_data", "contents",
     "control", "title", "selector", "options", "date", "applyer", "userid", "sp_no"]
)
shaped_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(robot_keys, children, max_size=6),
    max_leaves=25,
)

xml_tags = st.sampled_from(
    ["MsgType", "Event", "ChangeType", "FromUserName", "Content", "MsgId", "EventKey", "TaskId", "ResponseCode",
     "ApprovalInfo", "SpNo", "SpNoStr", "SpStatus", "StatuChangeEvent", "Applyer", "UserId", "UserID", "Encrypt"]
)
xml_values = st.sampled_from(
    ["text", "event", "template_card_event", "sys_approval_change", "change_contact", "delete_user",
     "create_user", "enter_agent", "", "8", "6", "<", "]]>", "&amp;", "&bogus;"]
) | st.text(max_size=10)


@st.composite
def wecom_xml(draw) -> str:
    def element(depth: int) -> str:
        tag = draw(xml_tags)
        if depth < 2 and draw(st.booleans()):
            inner = "".join(element(depth + 1) for _ in range(draw(st.integers(0, 3))))
        else:
            inner = draw(xml_values)
        return f"<{tag}>{inner}</{tag}>"

    root = draw(st.sampled_from(["xml", "xml", "other"]))
    return f"<{root}>" + "".join(element(0) for _ in range(draw(st.integers(0, 6)))) + f"</{root}>"


@FAST
@given(st.text())
def test_wecom_parse_text(data):
    result = rejected_or(parse, data, NOW)
    assert result is None or isinstance(result, Event)


@settings(max_examples=1000, deadline=None, database=None)
@given(wecom_xml())
def test_wecom_parse_structured(data):
    result = rejected_or(parse, data, NOW)
    assert result is None or isinstance(result, Event)


@FAST
@given(st.text())
def test_dingtalk_parse_event_text(data):
    rejected_or(parse_event, data, NOW)


@settings(max_examples=600, deadline=None, database=None)
@given(shaped_json, st.sampled_from(["check_url", "bpms_instance_change", "user_leave_org", "user_add_org", "x"]))
def test_dingtalk_parse_event_structured(data, event_type):
    payload = data | {"EventType": event_type} if isinstance(data, dict) else data
    rejected_or(parse_event, json.dumps(payload), NOW)


@settings(max_examples=600, deadline=None, database=None)
@given(shaped_json | json_values)
def test_dict_parsers(data):
    for fn in (parse_robot, parse_card_callback):
        rejected_or(fn, data, NOW)
    for fn in (parse_instance_detail, parse_approval_detail):
        rejected_or(fn, data)


@FAST
@given(st.text())
def test_decrypt_text(data):
    rejected_or(CRYPTO.decrypt, data)


@settings(max_examples=1000, deadline=None, database=None)
@given(st.binary(min_size=1, max_size=160))
def test_decrypt_arbitrary_plaintext_layout(data):
    # Encrypt arbitrary bytes (padded to a block) so decrypt's unpadding and layout checks get exercised.
    data += b"\x00" * (-len(data) % 16)
    rejected_or(CRYPTO.decrypt, aes_raw(data))
    rejected_or(CRYPTO.decrypt, base64.b64encode(data).decode())


@FAST
@given(st.binary(), st.text(max_size=20), st.text(max_size=20))
def test_envelopes(body, ts, nonce):
    params = {"msg_signature": "0" * 40, "timestamp": ts, "nonce": nonce, "echostr": ts}
    rejected_or(decrypt_post, params, body, CRYPTO, clock, 300)
    rejected_or(decrypt_event, params, body, CRYPTO, clock, 300)
    rejected_or(verify_url, params, CRYPTO, clock, 300)
    rejected_or(verify_robot_sign, ts, nonce, "secret", clock, 3600)
    rejected_or(verify_card_signature, ts, nonce, "secret", clock, 300)
    rejected_or(check_timestamp, ts, clock, 300)


@FAST
@given(st.binary(max_size=300))
def test_signed_wecom_post_with_garbage_ciphertext(blob):
    # A correctly signed request whose ciphertext is garbage must still fail cleanly after verification.
    encrypt = base64.b64encode(blob).decode()
    body = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()
    params = {"msg_signature": signature(v.WC_TOKEN, "1476422779", "n", encrypt), "timestamp": "1476422779", "nonce": "n"}
    rejected_or(decrypt_post, params, body, CRYPTO, clock, 300)
