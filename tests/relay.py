"""A loopback relay for transport tests: a TLS front, or a CONNECT or SOCKS proxy, before a simulator."""

import socket
import ssl
import threading

__all__ = ["Relay"]


def _pipe(source, target):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Relay:
    """Accepts on loopback and relays each connection to ``upstream``.

    ``wrap`` turns the accepted socket into something else first (a TLS
    server side, or a proxy's handshake); what it saw is kept in ``seen``.
    """

    def __init__(self, upstream, wrap):
        self.upstream = upstream
        self.wrap = wrap
        self.seen = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, name="test-relay", daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        try:
            client = self.wrap(self, client)
        except (OSError, ssl.SSLError):
            client.close()
            return
        server = socket.create_connection(self.upstream)
        threading.Thread(target=_pipe, args=(client, server), daemon=True).start()
        _pipe(server, client)

    def close(self):
        self.listener.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
