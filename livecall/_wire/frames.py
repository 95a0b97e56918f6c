"""WebSocket frames (RFC 6455 section 5) as a client sees them: the header rules, and encoding.

Pure functions over bytes, so the rules can be tested without a socket and
shared by every driver.  A rule broken by the server is a :class:`Violation`
carrying the close code the connection must fail with.
"""

from typing import Optional

__all__ = [
    "BINARY",
    "CLOSE",
    "CONTINUATION",
    "Header",
    "PING",
    "PONG",
    "TEXT",
    "Violation",
    "close_payload",
    "encode_frame",
    "mask",
    "parse_close",
    "parse_header",
]

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_KNOWN_OPCODES = frozenset({CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG})
#: Control frames carry at most this much (RFC 6455 5.5).
MAX_CONTROL_PAYLOAD = 125

PROTOCOL_ERROR = 1002
INVALID_DATA = 1007
POLICY_VIOLATION = 1008
TOO_BIG = 1009


class Violation(Exception):
    """The server broke RFC 6455; ``code`` is the close code to fail the connection with."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Header:
    """One frame's header: whether it ends a message, its opcode, payload length and own size."""

    __slots__ = ("fin", "opcode", "length", "size")

    def __init__(self, fin: bool, opcode: int, length: int, size: int):
        self.fin = fin
        self.opcode = opcode
        self.length = length
        self.size = size


def parse_header(buffer: bytearray, position: int) -> Optional[Header]:
    """The header starting at ``position``; None while it is incomplete.

    Raises :class:`Violation` as soon as the header breaks a rule, before any
    payload is awaited: reserved bits, unknown opcodes, masking by the server,
    oversized or fragmented control frames, a 64-bit length with its top bit set.
    """
    available = len(buffer) - position
    if available < 2:
        return None
    first, second = buffer[position], buffer[position + 1]
    if first & 0x70:
        raise Violation(PROTOCOL_ERROR, "reserved bits set without a negotiated extension")
    opcode = first & 0x0F
    if opcode not in _KNOWN_OPCODES:
        raise Violation(PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")
    if second & 0x80:
        raise Violation(PROTOCOL_ERROR, "the server masked a frame")
    fin = bool(first & 0x80)
    length, size = second & 0x7F, 2
    if opcode >= CLOSE:
        if not fin:
            raise Violation(PROTOCOL_ERROR, "fragmented control frame")
        if length > MAX_CONTROL_PAYLOAD:
            raise Violation(PROTOCOL_ERROR, "control frame longer than 125 bytes")
    elif length == 126:
        if available < 4:
            return None
        length, size = int.from_bytes(buffer[position + 2 : position + 4], "big"), 4
    elif length == 127:
        if available < 10:
            return None
        length, size = int.from_bytes(buffer[position + 2 : position + 10], "big"), 10
        if length >> 63:
            raise Violation(PROTOCOL_ERROR, "64-bit payload length with its top bit set")
    return Header(fin, opcode, length, size)


#: Close codes a server may send (RFC 6455 7.4 and the IANA registry): 1004-1006
#: and 1015 are reserved for local use, 1016-2999 are unassigned.
def _valid_close_code(code: int) -> bool:
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def parse_close(payload: bytes) -> tuple[int, str]:
    """The code and reason of a close frame's payload; 1005 when it has none."""
    if not payload:
        return 1005, ""
    if len(payload) == 1:
        raise Violation(PROTOCOL_ERROR, "close frame with a one-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if not _valid_close_code(code):
        raise Violation(PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise Violation(INVALID_DATA, "close reason is not valid UTF-8") from None
    return code, reason


def close_payload(code: int, reason: str = "") -> bytes:
    """A close frame's payload; the reason is cut to fit a control frame, on a character boundary."""
    if code == 1005:
        return b""
    encoded = reason.encode("utf-8")[: MAX_CONTROL_PAYLOAD - 2].decode("utf-8", "ignore").encode("utf-8")
    return code.to_bytes(2, "big") + encoded


def mask(key: bytes, data: bytes) -> bytes:
    """``data`` XOR the repeated 4-byte ``key``, at C speed (one big-integer XOR)."""
    size = len(data)
    if not size:
        return b""
    repeated = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")).to_bytes(size, "little")


def encode_frame(opcode: int, payload: bytes, mask_key: bytes) -> bytes:
    """One final, masked client frame (clients must mask, RFC 6455 5.3)."""
    size = len(payload)
    if size < 126:
        length = bytes((0x80 | size,))
    elif size < 1 << 16:
        length = b"\xfe" + size.to_bytes(2, "big")
    else:
        length = b"\xff" + size.to_bytes(8, "big")
    return bytes((0x80 | opcode,)) + length + mask_key + mask(mask_key, payload)
