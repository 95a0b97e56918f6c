"""A real HTTP receiver on loopback, scripted to fail, and helpers to reach it; what the tests share:
a whole watch, the receiver's signature check, dead-letter lines, the installed command."""

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional

import attrs
import pytest
import requests
import standardwebhooks

import livecall
from livecall.plugins import DISABLE_AUTOLOAD_ENV
from livecall_webhook import SigningKey

Answer = tuple[int, dict[str, str]]

#: The signing secret; SECRET in it is what no output may show.
SECRET = "whsec-SECRET-0123456789"


@attrs.frozen
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        receiver: Receiver = self.server.receiver  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, headers = receiver.arrived(self.path, dict(self.headers), body)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class Receiver:
    """Answers POSTs from ``script`` (statuses, or ``(status, headers)``), then with ``answer``.

    Every request is recorded with the status it got.  ``hold()`` makes
    requests wait, once recorded, until ``release()``.  A receiver started
    ``down`` holds its port without listening, so connections to it are
    refused, until ``come_back()``: a target that is down, then up again at
    the same URL.
    """

    def __init__(self, script=(), answer: Optional[Callable[[bytes], int]] = None, down: bool = False):
        self.requests: list[Request] = []
        self._script = [item if isinstance(item, tuple) else (item, {}) for item in script]
        self._answer = answer or (lambda body: 200)
        self._changed = threading.Condition()
        self._released = threading.Event()
        self._released.set()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler, bind_and_activate=False)
        self._server.daemon_threads = True
        self._server.receiver = self  # type: ignore[attr-defined]
        self._server.server_bind()
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="test-receiver", daemon=True
        )
        if not down:
            self.come_back()

    def come_back(self) -> None:
        """Listen and serve (a receiver started ``down`` refused connections until now)."""
        self._server.server_activate()
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def arrived(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        with self._changed:
            status, extra = self._script.pop(0) if self._script else (self._answer(body), {})
            self.requests.append(Request(path, headers, body, status))
            self._changed.notify_all()
        self._released.wait(30)
        return status, extra

    def accepted(self) -> list[bytes]:
        with self._changed:
            return [r.body for r in self.requests if 200 <= r.status < 300]

    def wait_for(self, predicate: Callable[[], object], timeout: float = 10.0):
        with self._changed:
            if not self._changed.wait_for(predicate, timeout):
                raise TimeoutError(f"the receiver did not see it within {timeout} s")

    def hold(self) -> None:
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def stop(self) -> None:
        self.release()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver_at():
    """Factory: ``receiver_at(script=(), answer=None, down=False)`` starts a Receiver, stopped at teardown."""
    started: list[Receiver] = []

    def start(**kwargs) -> Receiver:
        receiver = Receiver(**kwargs)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def receiver(receiver_at):
    return receiver_at()


@pytest.fixture
def closed_port():
    """A loopback port with nothing listening: connections to it are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class CountingAdapter(requests.adapters.HTTPAdapter):
    """requests' own adapter, counting the attempts it makes, refused ones included."""

    def __init__(self):
        super().__init__()
        self.attempts = 0
        self.changed = threading.Condition()

    def send(self, *args, **kwargs):
        with self.changed:
            self.attempts += 1
            self.changed.notify_all()
        return super().send(*args, **kwargs)


@pytest.fixture
def counting_session():
    session = requests.Session()
    adapter = CountingAdapter()
    session.mount("http://", adapter)
    session.adapter = adapter
    yield session
    session.close()


def watch(sim, *plugins, **options):
    """A whole watch of ``sim``; returns the call and the body of every event, in order."""
    cls = livecall.HiyaClient if sim.provider == "hiya" else livecall.PhonicClient
    client = cls(**sim.client_kwargs(), plugins=plugins, **options)
    bodies = []
    client.on(livecall.Event, lambda call, event: bodies.append(livecall.to_json(call, event).encode()))
    client.run()
    return client.call, bodies


def verified(request, secret=SECRET) -> bool:
    """What a receiver does: check the Standard Webhooks signature with the published library."""
    try:
        standardwebhooks.Webhook(secret.encode()).verify(request.body, request.headers)
    except standardwebhooks.WebhookVerificationError:
        return False
    return True


def dead_bodies(path) -> list:
    """The events held in a dead-letter file, parsed."""
    return [json.loads(line)["body"] for line in path.read_bytes().splitlines()]


def parsed(bodies) -> list:
    return [json.loads(body) for body in bodies]


def sealed(body: bytes, message_id: str = "msg_0", secret: str = SECRET) -> bytes:
    """A dead-letter line as the plugin writes it, sealed with ``secret``."""
    seal = SigningKey(secret).seal(message_id, body)
    return f'{{"webhook-id": "{message_id}", "seal": "{seal}", "body": '.encode() + body + b"}"


def livecall_command(*arguments, cwd, **environment):
    """The installed ``livecall`` command, run as a user runs it."""
    env = {k: v for k, v in os.environ.items() if k != DISABLE_AUTOLOAD_ENV}
    env.update(environment)
    command = [sys.executable, "-m", "livecall", *arguments]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def watch_phonic(sim, *options, cwd):
    arguments = sim.watch_args("--format", "jsonl", *options)
    return livecall_command(*arguments, cwd=cwd, LIVECALL_WEBHOOK_SECRET=SECRET)
