"""A SOCKS proxy's side of the handshake, a ``wrap`` for ``Relay``: SOCKS4/4a and SOCKS5, CONNECT only.

SOCKS5 (RFC 1928) with no authentication or, given credentials, user name and
password (RFC 1929); IPv4 and domain-name addresses.  Whatever address the
client asks for, the relay goes on to its own upstream: a name need not resolve.
"""

import socket
import struct
from typing import NamedTuple, Optional

__all__ = ["Seen", "SocksProxy"]

_NO_AUTH, _USER_PASSWORD, _NO_METHOD = 0x00, 0x02, 0xFF
_IPV4, _DOMAIN = 0x01, 0x03
_SOCKS4_GRANTED, _SOCKS4_REJECTED = 0x5A, 0x5B


class Seen(NamedTuple):
    """One CONNECT request: the SOCKS version, ``"ipv4"`` or ``"domain"``, where to, and who asked."""

    version: int
    address_type: str
    host: str
    port: int
    user: Optional[str] = None


def _read(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the client hung up during the SOCKS handshake")
        data += chunk
    return data


def _read_text(sock):
    """A length-prefixed string (SOCKS5)."""
    return _read(sock, _read(sock, 1)[0]).decode()


def _read_until_nul(sock):
    """A NUL-terminated string (SOCKS4)."""
    data = b""
    while (byte := _read(sock, 1)) != b"\0":
        data += byte
    return data.decode()


class SocksProxy:
    """Answers a SOCKS handshake on the accepted socket and records it in ``relay.seen``.

    ``credentials``: the (user, password) a SOCKS5 client must give; without
    them no authentication is asked.  ``reply``: the SOCKS5 reply code to the
    CONNECT, 0 to grant it (5 is "connection refused"); SOCKS4 is rejected
    for any other value.  A refused client is hung up on.
    """

    def __init__(self, credentials=None, reply=0):
        self.credentials = credentials
        self.reply = reply

    def __call__(self, relay, sock):
        version = _read(sock, 1)[0]
        seen = self._socks5(sock) if version == 5 else self._socks4(sock)
        relay.seen.append(seen)
        if self.reply:
            raise ConnectionRefusedError("the test proxy refused the CONNECT")
        return sock

    def _socks5(self, sock):
        methods = _read(sock, _read(sock, 1)[0])
        wanted = _USER_PASSWORD if self.credentials else _NO_AUTH
        if wanted not in methods:
            sock.sendall(bytes([5, _NO_METHOD]))
            raise ConnectionRefusedError("no acceptable authentication method")
        sock.sendall(bytes([5, wanted]))
        user = None
        if wanted == _USER_PASSWORD:
            _read(sock, 1)  # the sub-negotiation's version, 1
            user, password = _read_text(sock), _read_text(sock)
            granted = (user, password) == tuple(self.credentials)
            sock.sendall(bytes([1, 0 if granted else 1]))
            if not granted:
                raise ConnectionRefusedError("wrong user name or password")
        _version, command, _reserved, address_type = _read(sock, 4)
        assert command == 1, "CONNECT only"
        if address_type == _IPV4:
            seen_type, host = "ipv4", socket.inet_ntoa(_read(sock, 4))
        elif address_type == _DOMAIN:
            seen_type, host = "domain", _read_text(sock)
        else:
            raise ConnectionRefusedError(f"address type {address_type} is not supported here")
        (port,) = struct.unpack("!H", _read(sock, 2))
        sock.sendall(bytes([5, self.reply, 0, _IPV4, 0, 0, 0, 0, 0, 0]))
        return Seen(5, seen_type, host, port, user)

    def _socks4(self, sock):
        command, port, address = struct.unpack("!BH4s", _read(sock, 7))
        assert command == 1, "CONNECT only"
        user = _read_until_nul(sock) or None
        if address.startswith(b"\0\0\0") and address != b"\0\0\0\0":  # SOCKS4a: the name follows
            seen = Seen(4, "domain", _read_until_nul(sock), port, user)
        else:
            seen = Seen(4, "ipv4", socket.inet_ntoa(address), port, user)
        status = _SOCKS4_REJECTED if self.reply else _SOCKS4_GRANTED
        sock.sendall(struct.pack("!BBH4s", 0, status, 0, bytes(4)))
        return seen
