"""WeCom callback envelope: URL check, POST unwrapping, encrypted passive replies (docs/protocols.md A.2–A.6).

Thin layer over :mod:`bot.crypto`: it knows WeCom's parameter names and XML wrappers, nothing about
Flask. Order of checks is always signature → timestamp → decrypt, so nothing unsigned is decrypted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from bot.crypto import CallbackCrypto, check_timestamp
from bot.errors import InvalidSignature, MalformedPayload
from cards.text import truncate_bytes

TEXT_REPLY_MAX_BYTES = 2048
"""WeCom's limit for a text reply's Content (A.6)."""

# Characters XML 1.0 does not allow at all; they would make the reply unparseable.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _param(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise MalformedPayload(f"missing query parameter {name}")
    return value


def _verified(
    params: Mapping[str, str],
    encrypt: str,
    crypto: CallbackCrypto,
    now: Callable[[], float],
    window: int,
) -> str:
    timestamp = _param(params, "timestamp")
    nonce = _param(params, "nonce")
    if not crypto.verify(_param(params, "msg_signature"), timestamp, nonce, encrypt):
        raise InvalidSignature()
    check_timestamp(timestamp, now, window)
    msg, _receive_id = crypto.decrypt(encrypt)
    return msg


def verify_url(params: Mapping[str, str], crypto: CallbackCrypto, now: Callable[[], float], window: int) -> str:
    """GET verification: return the decrypted ``echostr`` that must be echoed as the raw body.

    ``params`` must already be URL-decoded (Flask's ``request.args`` is).
    """
    return _verified(params, _param(params, "echostr"), crypto, now, window)


def decrypt_post(
    params: Mapping[str, str],
    body: bytes,
    crypto: CallbackCrypto,
    now: Callable[[], float],
    window: int,
) -> str:
    """POST: unwrap ``<xml><ToUserName/><Encrypt/><AgentID/></xml>`` and return the inner XML text."""
    try:
        root = SafeET.fromstring(body)
    except (ParseError, DefusedXmlException, ValueError, UnicodeError, LookupError):
        raise MalformedPayload("body is not well-formed XML") from None
    node = root.find("Encrypt") if root.tag == "xml" else None
    encrypt = (node.text or "").strip() if node is not None else ""
    if not encrypt:
        raise MalformedPayload("body has no <xml><Encrypt> element")
    return _verified(params, encrypt, crypto, now, window)


def cdata(value: str) -> str:
    """Wrap ``value`` in CDATA; a ``]]>`` inside is split so it cannot close the section early."""
    clean = _XML_INVALID.sub("", value)
    return "<![CDATA[" + clean.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _digits(value: str | int) -> str:
    text = str(value)
    if not (text.isascii() and text.isdigit()):
        raise ValueError("timestamp must be decimal digits")
    return text


def encrypt_reply(
    plaintext_xml: str,
    crypto: CallbackCrypto,
    receive_id: str,
    timestamp: str,
    nonce: str,
) -> str:
    """The encrypted passive reply body of A.6 (layout identical to the official samples)."""
    encrypt = crypto.encrypt(plaintext_xml, receive_id)
    ts = _digits(timestamp)
    return (
        "<xml>\n"
        f"<Encrypt>{cdata(encrypt)}</Encrypt>\n"
        f"<MsgSignature>{cdata(crypto.sign(ts, nonce, encrypt))}</MsgSignature>\n"
        f"<TimeStamp>{ts}</TimeStamp>\n"
        f"<Nonce>{cdata(nonce)}</Nonce>\n"
        "</xml>"
    )


def _reply_head(to_user: str, from_corp: str, create_time: int, msg_type: str) -> str:
    return (
        f"<ToUserName>{cdata(to_user)}</ToUserName>"
        f"<FromUserName>{cdata(from_corp)}</FromUserName>"
        f"<CreateTime>{_digits(create_time)}</CreateTime>"
        f"<MsgType>{cdata(msg_type)}</MsgType>"
    )


def text_reply_xml(to_user: str, from_corp: str, create_time: int, content: str) -> str:
    """Plaintext of a passive text reply; To/From are swapped relative to the incoming message."""
    body = truncate_bytes(_XML_INVALID.sub("", content), TEXT_REPLY_MAX_BYTES)  # the one careful cut
    return f"<xml>{_reply_head(to_user, from_corp, create_time, 'text')}<Content>{cdata(body)}</Content></xml>"


def update_button_reply_xml(to_user: str, from_corp: str, create_time: int, replace_name: str) -> str:
    """Plaintext of the ``update_button`` reply to a ``template_card_event`` click (greys the button)."""
    head = _reply_head(to_user, from_corp, create_time, "update_button")
    return f"<xml>{head}<Button><ReplaceName>{cdata(replace_name)}</ReplaceName></Button></xml>"
