"""DingTalk callback authentication (docs/protocols.md B.1, B.2, B.6.2).

* Event subscription over HTTP: the shared SHA-1/AES scheme of :mod:`bot.crypto`, JSON envelope.
* Robot messages: plain JSON authenticated by ``sign`` = b64(HMAC-SHA256(appSecret, ts + "\\n" + appSecret)).
* Interactive-card callbacks: ``x-ddpaas-signature`` = b64(HMAC-SHA256(apiSecret, str(ts))).

Every comparison is constant-time; every failure is a :class:`bot.errors.CallbackRejected`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping

from bot.crypto import CallbackCrypto, check_timestamp, constant_time_equal
from bot.errors import InvalidSignature, MalformedPayload

ROBOT_MAX_WINDOW_SECONDS = 3600
"""DingTalk documents a one-hour freshness window for robot requests; never accept more."""

SUCCESS = "success"


def _first(params: Mapping[str, str], *names: str) -> str:
    """The first non-empty value among alternative spellings (the docs and samples disagree)."""
    for name in names:
        value = params.get(name)
        if isinstance(value, str) and value:
            return value
    raise MalformedPayload(f"missing query parameter {names[0]}")


def decrypt_event(
    params: Mapping[str, str],
    body: bytes,
    crypto: CallbackCrypto,
    now: Callable[[], float],
    window: int,
) -> tuple[str, str]:
    """Verify and decrypt an HTTP event push; return ``(plaintext_json, receive_id)``.

    The receive id (AppKey or CorpId) is returned so the ``success`` reply uses the same one.
    """
    signature = _first(params, "msg_signature", "signature")
    timestamp = _first(params, "timeStamp", "timestamp")
    nonce = _first(params, "nonce")
    try:
        envelope = json.loads(body)
    except (ValueError, UnicodeError, RecursionError):
        raise MalformedPayload("body is not JSON") from None
    encrypt = envelope.get("encrypt") if isinstance(envelope, dict) else None
    if not isinstance(encrypt, str) or not encrypt:
        raise MalformedPayload('body has no "encrypt" string')
    if not crypto.verify(signature, timestamp, nonce, encrypt):
        raise InvalidSignature()
    check_timestamp(timestamp, now, window)
    return crypto.decrypt(encrypt)


def success_reply(crypto: CallbackCrypto, receive_id: str, timestamp: str, nonce: str) -> dict[str, str]:
    """The JSON body acknowledging an event: DingTalk retries unless it decrypts to ``success``."""
    encrypt = crypto.encrypt(SUCCESS, receive_id)
    return {
        "msg_signature": crypto.sign(timestamp, nonce, encrypt),
        "timeStamp": timestamp,
        "nonce": nonce,
        "encrypt": encrypt,
    }


def _hmac_b64(secret: str, message: str) -> str:
    digest = hmac.new(
        secret.encode("utf-8", "surrogatepass"), message.encode("utf-8", "surrogatepass"), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def robot_sign(timestamp: str, secret: str) -> str:
    """The robot ``sign`` header for ``timestamp`` (ms, as sent) under the app secret."""
    return _hmac_b64(secret, f"{timestamp}\n{secret}")


def verify_robot_sign(
    timestamp_header: str | None,
    sign_header: str | None,
    app_secret: str,
    now: Callable[[], float],
    window_seconds: int = ROBOT_MAX_WINDOW_SECONDS,
) -> None:
    """Raise InvalidSignature or StaleTimestamp unless the robot request is signed and fresh.

    ``window_seconds`` is capped at one hour, the documented limit.
    """
    timestamp = timestamp_header if isinstance(timestamp_header, str) else ""
    sign = sign_header if isinstance(sign_header, str) else ""
    if not sign or not constant_time_equal(robot_sign(timestamp, app_secret), sign):
        raise InvalidSignature()
    check_timestamp(timestamp, now, min(window_seconds, ROBOT_MAX_WINDOW_SECONDS))


def card_signature(timestamp: str, api_secret: str) -> str:
    """The ``x-ddpaas-signature`` value for a card callback timestamp."""
    return _hmac_b64(api_secret, str(timestamp))


def verify_card_signature(
    timestamp_header: str | None,
    signature_header: str | None,
    api_secret: str,
    now: Callable[[], float],
    window: int,
) -> None:
    """Raise InvalidSignature or StaleTimestamp unless the card callback is signed and fresh.

    DingTalk documents no window for cards; ``window`` is our replay guard.
    """
    timestamp = timestamp_header if isinstance(timestamp_header, str) else ""
    signature = signature_header if isinstance(signature_header, str) else ""
    if not signature or not constant_time_equal(card_signature(timestamp, api_secret), signature):
        raise InvalidSignature()
    check_timestamp(timestamp, now, window)
