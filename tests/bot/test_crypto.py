"""Callback crypto against every vector of docs/protocols.md Part C, plus the C.6 negative cases."""

from __future__ import annotations

import base64
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot.crypto import CallbackCrypto, check_timestamp, decode_aes_key, signature
from bot.dingtalk.crypto import (
    decrypt_event,
    robot_sign,
    success_reply,
    verify_card_signature,
    verify_robot_sign,
)
from bot.errors import (
    CallbackRejected,
    ConfigurationError,
    DecryptError,
    InvalidSignature,
    MalformedPayload,
    ReceiveIdMismatch,
    StaleTimestamp,
)
from bot.wecom.crypto import decrypt_post, encrypt_reply, text_reply_xml, verify_url
from tests.bot import vectors as v

W2_PLAIN = (
    "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName>"
    "<CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content>"
    "<MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>"
)
W5_PLAIN = (
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]>"
    "</FromUserName>\n<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n"
    "<Content><![CDATA[hello]]></Content>\n<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>"
)
W3_PLAIN = (
    '{ "ToUserName": "wx5823bf96d3bd56c7", "FromUserName": :mycreate", "CreateTime": 1409659813, '
    '"MsgType": "text", "Content": "hello", "MsgId": 4561255354251345929, "AgentID": 218}'
)
W8_PLAIN = (
    "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n"
    "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n"
    "<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>"
)


def fixed(value: bytes):
    return lambda n: value[:n]


def wc(receive_ids=(v.WC_CORP,), rnd=None) -> CallbackCrypto:
    return CallbackCrypto(v.WC_TOKEN, v.WC_KEY, receive_ids, **({"random_bytes": rnd} if rnd else {}))


def go(rnd=None) -> CallbackCrypto:
    return CallbackCrypto(v.GO_TOKEN, v.GO_KEY, [v.GO_CORP], **({"random_bytes": rnd} if rnd else {}))


def wp(rnd=None) -> CallbackCrypto:
    return CallbackCrypto(v.WP_TOKEN, v.WP_KEY, [v.WP_CORP], **({"random_bytes": rnd} if rnd else {}))


def d1(rnd=None) -> CallbackCrypto:
    return CallbackCrypto(v.D1_TOKEN, v.D1_KEY, ["dingAppKeyOther", v.D1_OWNER], **({"random_bytes": rnd} if rnd else {}))


def d2(rnd=None) -> CallbackCrypto:
    return CallbackCrypto(v.D2_TOKEN, v.D2_KEY, [v.D2_OWNER], **({"random_bytes": rnd} if rnd else {}))


def at(ts: float):
    return lambda: ts


# (crypto factory, token, signature, timestamp, nonce, encrypt, random16, msg, receive id, pad)
VECTORS = {
    "W1": (wc, v.WC_TOKEN, "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "1476416373", "47744683",
           v.W1_ECHOSTR, "8908d0ff052afda0", "1288432023552776189", v.WC_CORP, 7),
    "W2": (wc, v.WC_TOKEN, "0c3914025cb4b4d68103f6bfc8db550f79dcf48e", "1476422779", "1597212914",
           v.W2_ENCRYPT, "694ce5a83ae07fe3", W2_PLAIN, v.WC_CORP, 22),
    "W3": (wc, v.WC_TOKEN, "e3647471e395139e2308c1fa963f2d648a00b90e", "1409659813", "1372623149",
           v.W3_ENCRYPT, "dDVXRx6kn1gOT43Q", W3_PLAIN, v.WC_CORP, 10),
    "W4": (go, v.GO_TOKEN, "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780",
           v.W4_ECHOSTR, "c41b64491c2468d0", "1616140317555161061", v.GO_CORP, 7),
    "W5": (go, v.GO_TOKEN, "477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149",
           v.W5_ENCRYPT, "0960688932c47ef1", W5_PLAIN, v.GO_CORP, 30),
    "W6": (wp, v.WP_TOKEN, "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780", "437374425",
           v.W6_ECHOSTR, None, "5927782489442352469", v.WP_CORP, None),
    "D1": (d1, v.D1_TOKEN, "03044561471240d4a14bb09372dfcfd4fd0e40cb", "1608001896814", "WL4PK6yA",
           v.D1_ENCRYPT, "l7Y3EcX2CU5w8av3", '{"EventType":"check_url"}', v.D1_OWNER, 31),
    "D2": (d2, v.D2_TOKEN, "5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0", "1445827045067", "nEXhMP4r",
           v.D2_ENCRYPT, "hU3bEfGZZewzhG5a",
           '{"EventType":"check_create_suite_url","Random":"LPIdSnlF","TestSuiteKey":"suite4xxxxxxxxxxxxxxx"}',
           v.D2_OWNER, 22),
}


def raw_plain(factory, encrypt: str) -> bytes:
    """Decrypt without unpadding, to check the vector's pad byte independently of bot.crypto."""
    key = decode_aes_key({wc: v.WC_KEY, go: v.GO_KEY, wp: v.WP_KEY, d1: v.D1_KEY, d2: v.D2_KEY}[factory])
    dec = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    return dec.update(base64.b64decode(encrypt)) + dec.finalize()


@pytest.mark.parametrize("name", VECTORS)
def test_vector_signature_and_decrypt(name):
    factory, token, sig, ts, nonce, enc, _rnd, msg, rid, pad = VECTORS[name]
    assert signature(token, ts, nonce, enc) == sig
    crypto = factory()
    assert crypto.verify(sig, ts, nonce, enc)
    assert crypto.decrypt(enc) == (msg, rid)
    if pad is not None:
        assert raw_plain(factory, enc)[-1] == pad


@pytest.mark.parametrize("name", [n for n in VECTORS if VECTORS[n][6]])
def test_vector_reencrypts_byte_for_byte(name):
    factory, *_, enc, rnd, msg, rid, _pad = VECTORS[name]
    assert factory(rnd=fixed(rnd.encode())).encrypt(msg, rid) == enc


def test_pads_above_16_are_accepted():
    # W2 (pad 22) and W5 (pad 30) are rejected by a stock 16-byte PKCS#7 unpadder.
    assert raw_plain(wc, v.W2_ENCRYPT)[-1] == 22 and wc().decrypt(v.W2_ENCRYPT)[0] == W2_PLAIN
    assert raw_plain(go, v.W5_ENCRYPT)[-1] == 30 and go().decrypt(v.W5_ENCRYPT)[0] == W5_PLAIN


def test_w1_w4_w6_url_verification():
    assert verify_url({"msg_signature": "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "timestamp": "1476416373",
                       "nonce": "47744683", "echostr": v.W1_ECHOSTR}, wc(), at(1476416373), 300) == "1288432023552776189"
    assert verify_url({"msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "timestamp": "1409659589",
                       "nonce": "263014780", "echostr": v.W4_ECHOSTR}, go(), at(1409659600), 300) == "1616140317555161061"
    params = {"msg_signature": "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "timestamp": "1411443780",
              "nonce": "437374425", "echostr": v.W6_ECHOSTR}
    assert verify_url(params, wp(), at(1411443780), 300) == "5927782489442352469"
    with pytest.raises(InvalidSignature):  # C.6: one nonce digit changed
        verify_url(params | {"nonce": "437374424"}, wp(), at(1411443780), 300)


def test_w2_w5_w7_post():
    body = (f"<xml><ToUserName><![CDATA[{v.WC_CORP}]]></ToUserName>\n<Encrypt><![CDATA[{v.W2_ENCRYPT}]]></Encrypt>\n"
            "<AgentID><![CDATA[1000002]]></AgentID>\n</xml>").encode()
    params = {"msg_signature": "0c3914025cb4b4d68103f6bfc8db550f79dcf48e", "timestamp": "1476422779", "nonce": "1597212914"}
    assert decrypt_post(params, body, wc(), at(1476422779), 300) == W2_PLAIN
    with pytest.raises(ReceiveIdMismatch):  # C.6: configured CorpID differs
        decrypt_post(params, body, wc(receive_ids=["ww0000000000000000"]), at(1476422779), 300)
    with pytest.raises(StaleTimestamp):
        decrypt_post(params, body, wc(), at(1476422779 + 301), 300)
    with pytest.raises(MalformedPayload):
        decrypt_post(params, b"<other><Encrypt>x</Encrypt></other>", wc(), at(1476422779), 300)
    body5 = f"<xml><ToUserName><![CDATA[{v.GO_CORP}]]></ToUserName><Encrypt><![CDATA[{v.W5_ENCRYPT}]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>"
    p5 = {"msg_signature": "477715d11cdb4164915debcba66cb864d751f3e6", "timestamp": "1409659813", "nonce": "1372623149"}
    assert decrypt_post(p5, body5.encode(), go(), at(1409659813), 300) == W5_PLAIN
    body7 = f"<xml><ToUserName><![CDATA[{v.WP_CORP}]]></ToUserName><Encrypt><![CDATA[{v.W7_ENCRYPT}]]></Encrypt></xml>"
    p7 = {"msg_signature": "74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "timestamp": "1411525903", "nonce": "461056294"}
    plain = decrypt_post(p7, body7.encode(), wp(), at(1411525903), 300)
    assert "<FromUserName><![CDATA[messense]]></FromUserName>" in plain
    assert "<Content><![CDATA[test]]></Content>" in plain and "4363689963896700987" in plain
    assert raw_plain(wp, v.W7_ENCRYPT)[-1] == 1


def test_w8_encrypt_reply_exact():
    reply = encrypt_reply(W8_PLAIN, wp(rnd=fixed(b"1234567890123456")), v.WP_CORP, "1411525903", "461056294")
    assert reply == (
        f"<xml>\n<Encrypt><![CDATA[{v.W8_ENCRYPT}]]></Encrypt>\n"
        "<MsgSignature><![CDATA[407518b7649e86ef23978113f92d27afa9296533]]></MsgSignature>\n"
        "<TimeStamp>1411525903</TimeStamp>\n<Nonce><![CDATA[461056294]]></Nonce>\n</xml>"
    )


def test_lenient_non_canonical_key():
    assert decode_aes_key(v.WP_KEY) == decode_aes_key(v.WP_KEY[:-1] + "Q")
    with pytest.raises(ConfigurationError):
        decode_aes_key(v.WP_KEY[:-1])
    with pytest.raises(ConfigurationError):
        decode_aes_key(v.WP_KEY[:-1] + "+")


def test_g1_dingtalk_success_reply():
    reply = success_reply(d1(rnd=fixed(b"0123456789abcdef")), v.D1_OWNER, "1608001896814", "WL4PK6yA")
    assert reply == {
        "msg_signature": "ec77e7d4fff9fdfd84e6cf9e46c4af1fb49245a5",
        "timeStamp": "1608001896814",
        "nonce": "WL4PK6yA",
        "encrypt": v.G1_ENCRYPT,
    }
    assert "\n" not in reply["encrypt"]
    assert d1().decrypt(reply["encrypt"]) == ("success", v.D1_OWNER)


def test_g2_wecom_text_reply():
    plain = text_reply_xml("ChenJiaShun", v.WC_CORP, 1476422779, "ok")
    assert plain == (
        "<xml><ToUserName><![CDATA[ChenJiaShun]]></ToUserName><FromUserName><![CDATA[ww1436e0e65a779aee]]>"
        "</FromUserName><CreateTime>1476422779</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[ok]]></Content></xml>"
    )
    reply = encrypt_reply(plain, wc(rnd=fixed(b"0123456789abcdef")), v.WC_CORP, "1476422779", "1597212914")
    assert f"<Encrypt><![CDATA[{v.G2_ENCRYPT}]]></Encrypt>" in reply
    assert "<MsgSignature><![CDATA[547bb2014ce298e1e28c334d7098ddec8921620e]]></MsgSignature>" in reply


def test_g3_robot_sign_and_window():
    good = "DJrE6qdyVGCQz9z5r2MDuNcNAhwYnuAkyj13cx169CA="
    assert robot_sign("1577262236757", "this is a secret") == good
    verify_robot_sign("1577262236757", good, "this is a secret", at(1577262236.757 + 60), 3600)
    with pytest.raises(StaleTimestamp):  # C.6: 61 minutes old, correct sign
        verify_robot_sign("1577262236757", good, "this is a secret", at(1577262236.757 + 61 * 60), 3600)
    with pytest.raises(StaleTimestamp):  # a caller cannot widen the documented one-hour window
        verify_robot_sign("1577262236757", good, "this is a secret", at(1577262236.757 + 61 * 60), 7200)
    with pytest.raises(InvalidSignature):  # C.6: wrong sign
        verify_robot_sign("1577262236757", "A" + good[1:], "this is a secret", at(1577262236.757), 3600)
    with pytest.raises(InvalidSignature):
        verify_robot_sign("1577262236758", good, "this is a secret", at(1577262236.757), 3600)
    with pytest.raises(InvalidSignature):
        verify_robot_sign(None, None, "this is a secret", at(1577262236.757), 3600)


def test_g4_card_signature():
    good = "t3jqwt0WBVsvNpgD+ncljxce56XsNOeEYafngX/BHjc="
    verify_card_signature("1700000000000", good, "mySecret", at(1700000000), 300)
    with pytest.raises(InvalidSignature):
        verify_card_signature("1700000000000", good, "otherSecret", at(1700000000), 300)
    with pytest.raises(StaleTimestamp):
        verify_card_signature("1700000000000", good, "mySecret", at(1700000000 + 301), 300)


def test_dingtalk_decrypt_event_d1_d2_param_spellings():
    body = ('{"encrypt":"%s"}' % v.D1_ENCRYPT).encode()
    for params in (
        {"signature": "03044561471240d4a14bb09372dfcfd4fd0e40cb", "timestamp": "1608001896814", "nonce": "WL4PK6yA"},
        {"msg_signature": "03044561471240d4a14bb09372dfcfd4fd0e40cb", "timeStamp": "1608001896814", "nonce": "WL4PK6yA"},
    ):
        assert decrypt_event(params, body, d1(), at(1608001896.814), 300) == ('{"EventType":"check_url"}', v.D1_OWNER)
    p2 = {"signature": "5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0", "timestamp": "1445827045067", "nonce": "nEXhMP4r"}
    plain, rid = decrypt_event(p2, ('{"encrypt":"%s"}' % v.D2_ENCRYPT).encode(), d2(), at(1445827045), 300)
    assert rid == v.D2_OWNER and '"check_create_suite_url"' in plain
    with pytest.raises(StaleTimestamp):  # 13-digit value read as ms: 301 s later is outside
        decrypt_event(p2, ('{"encrypt":"%s"}' % v.D2_ENCRYPT).encode(), d2(), at(1445827045.067 + 301), 300)
    with pytest.raises(InvalidSignature):
        decrypt_event(p2 | {"nonce": "nEXhMP4s"}, ('{"encrypt":"%s"}' % v.D2_ENCRYPT).encode(), d2(), at(1445827045), 300)
    with pytest.raises(MalformedPayload):
        decrypt_event(p2, b'{"encrypted": "x"}', d2(), at(1445827045), 300)
    with pytest.raises(MalformedPayload):
        decrypt_event({"timestamp": "1445827045067", "nonce": "n"}, body, d2(), at(1445827045), 300)


# --- hand-built ciphertexts for the layout checks ---------------------------------------------------


def aes_raw(plain: bytes, key_text: str = v.WC_KEY) -> str:
    key = decode_aes_key(key_text)
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(plain) + enc.finalize()).decode()


def layout(msg: bytes, rid: bytes = v.WC_CORP.encode(), length: int | None = None) -> bytes:
    return b"R" * 16 + struct.pack(">I", len(msg) if length is None else length) + msg + rid


def test_handbuilt_valid_layout_decrypts():
    body = layout(b"hello")  # 16 + 4 + 5 + 18 = 43 → pad 21
    assert wc().decrypt(aes_raw(body + bytes([21]) * 21)) == ("hello", v.WC_CORP)


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(bytes([20]) * 20 + b"\x00", id="pad-0"),
        pytest.param(bytes(range(1, 21)) + bytes([21]), id="inconsistent"),
    ],
)
def test_bad_padding_rejected(tail):
    with pytest.raises(DecryptError):
        wc().decrypt(aes_raw(layout(b"hello") + tail))


def test_pad_above_32_rejected():
    body = layout(b"hello" + b"x" * 20)  # 63 bytes → pad 33 fills to 96
    assert len(body) == 63
    with pytest.raises(DecryptError):
        wc().decrypt(aes_raw(body + bytes([33]) * 33))


def test_length_prefix_larger_than_buffer_rejected():
    body = layout(b"hello", length=1000)
    with pytest.raises(DecryptError, match="length prefix"):
        wc().decrypt(aes_raw(body + bytes([21]) * 21))


def test_not_base64_or_not_block_multiple():
    with pytest.raises(DecryptError):
        wc().decrypt("not base64!!")
    with pytest.raises(DecryptError):
        wc().decrypt(base64.b64encode(b"x" * 20).decode())
    with pytest.raises(DecryptError):
        wc().decrypt("")


def test_errors_never_leak_secrets_or_plaintext():
    crypto = wc(receive_ids=["ww0000000000000000"])
    with pytest.raises(ReceiveIdMismatch) as info:
        crypto.decrypt(v.W2_ENCRYPT)
    text = str(info.value) + repr(crypto)
    for secret in (v.WC_TOKEN, v.WC_KEY, "ChenJiaShun", v.WC_CORP, "你好"):
        assert secret not in text
    assert isinstance(info.value, CallbackRejected)


# --- timestamps ---------------------------------------------------------------------------------------


def test_timestamp_seconds_and_milliseconds():
    assert check_timestamp("1476416373", at(1476416373), 300) == 1476416373
    assert check_timestamp("1608001896814", at(1608001896.814), 300) == pytest.approx(1608001896.814)
    check_timestamp("1476416373", at(1476416373 + 300), 300)
    with pytest.raises(StaleTimestamp):
        check_timestamp("1476416373", at(1476416373 + 301), 300)  # stale
    with pytest.raises(StaleTimestamp):
        check_timestamp("1476416373", at(1476416373 - 301), 300)  # from the future
    with pytest.raises(StaleTimestamp):  # 13 digits are ms: read as seconds this would be far in the future
        check_timestamp("1476416373000", at(1476416373 + 301), 300)
    check_timestamp("1476416373000", at(1476416373 + 299), 300)


@pytest.mark.parametrize("bad", ["", "abc", "14764163.3", "-1476416373", "１４７６４１６３７３", "1" * 40])
def test_timestamp_non_numeric_rejected(bad):
    with pytest.raises(StaleTimestamp):
        check_timestamp(bad, at(1476416373), 300)
