"""One HTTP endpoint per process: ``/metrics``, ``/healthz`` and ``/readyz``.

A thread of its own, with the standard library's HTTP server: a scrape or a
probe never waits on the hub, and a wedged hub is exactly what ``/healthz``
must still be able to say.  Every answer is small and built at once; a
request for another path gets 404, another method 501.
"""

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

from .health import Health

__all__ = ["Endpoint", "ReadyCheck"]

log = logging.getLogger("livecall.metrics")

#: Whether the process takes work now; with the reason when not.
ReadyCheck = Callable[[], tuple[bool, str]]


class Endpoint:
    """The running endpoint; :meth:`close` stops it (idempotent, from any thread)."""

    def __init__(
        self,
        host: str,
        port: int,
        exposition: Callable[[], tuple[bytes, str]],
        ready: ReadyCheck,
        health: Callable[[], Health],
    ):
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "livecall"
            sys_version = ""

            def do_GET(self) -> None:
                endpoint._answer(self)

            def do_HEAD(self) -> None:
                endpoint._answer(self, body=False)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s %s", self.address_string(), format % args)

        self._exposition = exposition
        self._ready = ready
        self._health = health
        self._server = _Server(host, port, Handler)
        bound_host, bound_port = self._server.server_address[:2]
        self.host, self.port = str(bound_host), int(bound_port)
        self._closed = threading.Lock()
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="livecall-metrics", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in str(self.host) else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        """Stop serving and free the port; waits for the serving thread unless called from it."""
        if not self._closed.acquire(blocking=False):
            return
        self._server.shutdown()
        self._server.server_close()
        if threading.current_thread() is not self._thread:
            self._thread.join(5.0)

    def __enter__(self) -> "Endpoint":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _answer(self, request: BaseHTTPRequestHandler, body: bool = True) -> None:
        path = request.path.split("?", 1)[0]
        status: int
        content_type = "application/json"
        payload: bytes
        try:
            if path == "/metrics":
                payload, content_type = self._exposition()
                status = 200
            elif path == "/healthz":
                health = self._health()
                status, payload = (200 if health.ok else 503), _json(health.as_json())
            elif path == "/readyz":
                ready, why = self._ready()
                status = 200 if ready else 503
                payload = _json({"status": "ready"} if ready else {"status": "not ready", "reason": why})
            else:
                status, payload = (
                    404,
                    _json({"status": "not found", "paths": ["/metrics", "/healthz", "/readyz"]}),
                )
        except Exception:  # a failing check must answer, not drop the probe's connection
            log.exception("answering %s failed", path)
            status, payload = 500, _json({"status": "error"})
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(payload)))
        request.send_header("Cache-Control", "no-store")
        request.end_headers()
        if body:
            request.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    """The standard server, on IPv6 as well as IPv4: the family of the address given."""

    daemon_threads = True

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler]):
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        self.address_family = found[0][0]
        super().__init__((host, port), handler)


def _json(value: Optional[dict[str, Any]]) -> bytes:
    return json.dumps(value, sort_keys=True).encode() + b"\n"
