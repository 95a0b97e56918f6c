"""Hostile targets: an answer that never ends, one that drips, a reason phrase with control characters."""

import socket
import threading

import pytest

from livecall_webhook import Sender


class RawTarget:
    """A loopback HTTP target written by hand: it reads a request, then ``answer(connection)``.

    ``answer`` runs in the target's thread; whatever it records is read
    once ``finished()`` says that thread is done.
    """

    def __init__(self, answer):
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/hook"
        self.answer = answer
        self._thread = threading.Thread(target=self._serve, name="raw-target", daemon=True)
        self._thread.start()

    def _serve(self):
        connection, _ = self._listener.accept()
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(65536)
            head, _, body = request.partition(b"\r\n\r\n")
            length = int(
                next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1]
            )
            while len(body) < length:
                body += connection.recv(65536)
            try:
                self.answer(connection)
            except OSError:
                pass  # the client hung up: what the answer recorded says how far it got

    def finished(self, timeout: float = 30.0) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def close(self):
        self._listener.close()


@pytest.fixture
def raw_target():
    started = []

    def start(answer):
        target = RawTarget(answer)
        started.append(target)
        return target

    yield start
    for target in started:
        target.close()


def test_a_huge_answer_is_not_read_whole(raw_target):
    size = 64 * 1024 * 1024
    sent = [0]

    def endless_body(connection):
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        chunk = b"x" * 65536
        while sent[0] < size:
            connection.sendall(chunk)
            sent[0] += len(chunk)

    target = raw_target(endless_body)
    sender = Sender(target.url, retries=0)
    assert sender.send(b"{}") is None, "a 2xx delivers, whatever follows it"
    sender.close()
    assert target.finished()
    assert sent[0] < size // 4, f"the client read {sent[0]} bytes of a {size}-byte answer"


def test_a_dripping_target_cannot_hold_an_attempt_past_its_deadline(raw_target):
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    dripped = []
    hung_up = threading.Event()

    def drip(connection):
        for byte in answer:
            hung_up.wait(0.25)  # the drip's pace: a byte each quarter second, well within the timeout
            connection.sendall(bytes([byte]))  # once the client hung up, this fails soon
            dripped.append(byte)

    target = raw_target(drip)
    sender = Sender(target.url, timeout=1.0, retries=0)
    failure = sender.send(b"{}")
    hung_up.set()
    sender.close()
    assert failure is not None and "no full answer within 1 s" in failure.reason
    assert target.finished()
    assert len(dripped) < len(answer), "the attempt ended before the target finished dripping"


def test_the_reason_phrase_reaches_messages_as_printable_ascii_only(raw_target):
    def forged_reason(connection):
        connection.sendall(b"HTTP/1.1 400 Bad\x1b]52;c;ZXZpbA==\x07\rERROR fake\r\nContent-Length: 0\r\n\r\n")

    target = raw_target(forged_reason)
    sender = Sender(target.url, retries=0)
    failure = sender.send(b"{}")
    sender.close()
    assert failure is not None and failure.reason.startswith("HTTP 400 Bad")
    assert all(" " <= c <= "~" for c in failure.reason), repr(failure.reason)
