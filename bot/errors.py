"""Exceptions shared by the platform edge.

Why a separate module: the HTTP clients, the crypto layer and the outbox all need to
raise and catch the same error types without importing each other.
"""

from __future__ import annotations


class PlatformApiError(Exception):
    """A WeCom or DingTalk API call failed.

    ``retryable`` tells the outbox whether trying again later can help (busy, throttled,
    timeouts, 5xx) or whether the request itself is wrong (bad user id, quota exhausted).
    """

    def __init__(self, platform: str, code: str | int, message: str, retryable: bool = False) -> None:
        super().__init__(f"{platform} API error {code}: {message}")
        self.platform = platform
        self.code = code
        self.message = message
        self.retryable = retryable


class ConfigurationError(Exception):
    """A configured value (e.g. an app secret) is wrong; retrying cannot fix it."""


# The crypto engineer adds more classes (signature / decryption errors) below.


class CallbackRejected(Exception):
    """An inbound callback failed verification or could not be read.

    Why one base class: the HTTP edge maps every rejection to the same kind of response
    (and the fuzz tests assert nothing else escapes). Messages name the check that failed
    and never include tokens, keys, ciphertext or decrypted plaintext.
    """

    default_message = "callback rejected"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)


class InvalidSignature(CallbackRejected):
    """The signature (SHA-1 msg_signature, robot ``sign`` or card signature) does not match."""

    default_message = "signature mismatch"


class StaleTimestamp(CallbackRejected):
    """The request timestamp is missing, not a number, or outside the accepted window (replay guard)."""

    default_message = "timestamp outside the accepted window"


class DecryptError(CallbackRejected):
    """The ciphertext is not valid Base64/AES-CBC or its padding/length layout is wrong."""

    default_message = "cannot decrypt callback payload"


class ReceiveIdMismatch(CallbackRejected):
    """The decrypted payload was addressed to another corp/app (WeCom -40005, DingTalk 900010)."""

    default_message = "receive id does not match this app"


class MalformedPayload(CallbackRejected):
    """The request or decrypted payload is not in the platform's documented format."""

    default_message = "malformed callback payload"
