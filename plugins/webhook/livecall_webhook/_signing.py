"""Standard Webhooks signatures, and the seal that keeps dead-letter lines honest.

A request is signed as the Standard Webhooks specification says
(standardwebhooks.com): ``webhook-signature: v1,<base64 HMAC-SHA256>`` of
``<webhook-id>.<webhook-timestamp>.<body>``, so a receiver can check it with
any of the published ``standardwebhooks`` libraries and refuse a captured
request replayed later by its timestamp.  The key is the secret's bytes, or,
for a secret in the specification's ``whsec_<base64>`` form, the decoded
base64.

The key lives in a :class:`SigningKey`, whose repr shows nothing, so that no
traceback printing its frames' locals shows it either.
"""

import base64
import binascii
import hashlib
import hmac
import uuid

import livecall

__all__ = [
    "ID_HEADER",
    "SECRET_PREFIX",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "SigningKey",
    "new_message_id",
]

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"

#: Sets the dead-letter seal's key apart from the request signing key, so
#: that no seal is ever a valid request signature.
_SEAL_CONTEXT = b"livecall-webhook dead-letter seal v1"


def new_message_id() -> str:
    """A ``webhook-id``: unique per event, and the same on every try and replay of it."""
    return "msg_" + uuid.uuid4().hex


class SigningKey:
    """The HMAC key made from a webhook secret; its repr never shows it."""

    __slots__ = ("_key", "_seal_key")

    def __init__(self, secret: str):
        livecall.Credential(secret)  # from now on blanked wherever livecall redacts
        self._key = _key_bytes(secret)
        self._seal_key = hmac.new(self._key, _SEAL_CONTEXT, hashlib.sha256).digest()

    def sign(self, message_id: str, timestamp: int, body: bytes) -> str:
        """The ``webhook-signature`` value for one request."""
        signed = f"{message_id}.{timestamp}.".encode("ascii") + body
        return "v1," + _b64_hmac(self._key, signed)

    def seal(self, message_id: str, body: bytes) -> str:
        """A dead-letter line's MAC: only a holder of the secret can make one that checks."""
        return _b64_hmac(self._seal_key, message_id.encode("ascii") + b"\n" + body)

    def __repr__(self) -> str:
        return "SigningKey(***)"


def _b64_hmac(key: bytes, data: bytes) -> str:
    return base64.b64encode(hmac.new(key, data, hashlib.sha256).digest()).decode("ascii")


def _key_bytes(secret: str) -> bytes:
    """``whsec_`` + base64 is decoded, as the specification says; any other secret is its UTF-8."""
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode("utf-8")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise livecall.ConfigurationError(
            f"the webhook secret starts with {SECRET_PREFIX!r} but the rest is not base64"
        ) from None
    if not key:
        raise livecall.ConfigurationError("the webhook secret is empty after its prefix")
    return key
