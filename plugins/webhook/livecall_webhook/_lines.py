"""One undelivered event as one line of the dead-letter file (and of the spool).

A line is a JSON object holding the event's ``webhook-id``, a seal and the
exact request body::

    {"webhook-id": "msg_...", "seal": "<base64 HMAC>", "body": {"event": ...}}

The body is kept byte for byte (it is read back by position, not re-encoded),
so a replay sends, and signs, the very bytes that were first sent, under the
same ``webhook-id`` a receiver can deduplicate on.  The seal is an HMAC of
the id and body made with the webhook secret: a line someone else wrote into
the file does not check, and a replay refuses it.  Without a secret the seal
is empty and nothing can be checked.
"""

import hmac
import re
from typing import Optional

import attrs

from ._signing import SigningKey

__all__ = ["Message", "body_start", "decode", "encode"]

_LINE = re.compile(
    rb'\{"webhook-id": "(msg_[A-Za-z0-9_]{1,100})", "seal": "([A-Za-z0-9+/=]*)", "body": (.+)\}'
)


@attrs.frozen
class Message:
    """An event on its way: its ``webhook-id`` and its request body."""

    id: str
    body: bytes = attrs.field(repr=False)


def encode(message: Message, key: Optional[SigningKey]) -> bytes:
    """The line for ``message``, with its newline."""
    seal = key.seal(message.id, message.body) if key is not None else ""
    return b'{"webhook-id": "%s", "seal": "%s", "body": %s}\n' % (
        message.id.encode("ascii"),
        seal.encode("ascii"),
        message.body,
    )


def body_start(line: bytes, message: Message) -> int:
    """Where ``message``'s body starts in its ``line`` (made by ``encode``): the body can be
    cut out of the line when needed instead of being held beside it."""
    return len(line) - len(message.body) - len(b"}\n")


def decode(line: bytes, key: Optional[SigningKey]) -> Optional[Message]:
    """The message of ``line`` (without its newline); None if it is not one, or its seal fails."""
    match = _LINE.fullmatch(line)
    if match is None:
        return None
    message = Message(match[1].decode("ascii"), match[3])
    if key is not None and not hmac.compare_digest(
        key.seal(message.id, message.body), match[2].decode("ascii")
    ):
        return None
    return message
