"""A webhook target that refuses connections for a while: no event is lost, none twice.

If the target comes back while the forwarder still retries, every event is
delivered once, in order.  If the run ends first, every undelivered event is
in the dead-letter file, and ``livecall webhook-replay`` delivers them later.
"""

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import livecall
from livecall.testing import Simulator

livecall_webhook = pytest.importorskip("livecall_webhook")

#: How long the target refuses connections, as the issue describes the outage.
DOWN = 10.0
EVENTS = 300 + 2  # the flood's transcripts, the call's start and end


class Target:
    """A webhook receiver on loopback: its port refuses connections until ``come_back()``."""

    def __init__(self):
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}/hook"
        self.bodies = []
        self.changed = threading.Condition()
        self._server = None

    def come_back(self):
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with target.changed:
                    target.bodies.append(body)
                    target.changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(self._socket.getsockname(), Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = self._socket
        server.server_activate()
        server.daemon_threads = True
        threading.Thread(
            target=server.serve_forever, args=(0.05,), name="webhook-target", daemon=True
        ).start()
        self._server = server

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
        self._socket.close()


@pytest.fixture
def target():
    down = Target()
    yield down
    down.stop()


def test_a_target_down_for_ten_seconds_gets_every_event_once_in_order(
    target, client_for, plugin_manager, recorder, tmp_path, figures
):
    dead_letter = tmp_path / "dead-letter.jsonl"
    sender = livecall_webhook.Sender(
        target.url, timeout=2.0, retries=10_000, retry_time=DOWN + 30, backoff=livecall.Backoff(0.05, 0.5)
    )
    forwarder = livecall_webhook.WebhookForwarder(sender, str(dead_letter))
    plugin_manager.register(forwarder, name="webhook")
    comes_back = threading.Timer(DOWN, target.come_back)
    comes_back.start()
    try:
        with Simulator("hiya", "flood", flood_count=EVENTS - 2) as sim:
            client = client_for(sim)
            client.run()
        forwarder.close(timeout=DOWN + 30)
    finally:
        comes_back.cancel()
    sent = [livecall.to_json(client.call, event).encode() for event in recorder.events()]
    delivered = len(target.bodies)
    figures(
        events_sent=len(sent), events_received=delivered, events_lost=len(sent) - delivered, faults_injected=1
    )
    assert len(sent) == EVENTS
    assert target.bodies == sent, "every event once, in order"
    assert forwarder.delivered == EVENTS and not dead_letter.exists()


def _livecall(*arguments, **environment):
    return subprocess.run(
        [sys.executable, "-m", "livecall", *arguments],
        env=dict(os.environ, **environment),
        capture_output=True,
        timeout=60,
    )


def test_when_the_run_ends_first_every_undelivered_event_is_in_the_dead_letter_file(
    target, tmp_path, figures
):
    dead_letter = tmp_path / "dead-letter.jsonl"
    webhook = ["--webhook-url", target.url, "--webhook-timeout", "1"]
    with Simulator("hiya", "flood", flood_count=EVENTS - 2) as sim:
        credentials = sim.credentials
        watch = _livecall(
            "watch",
            "hiya",
            "--url",
            sim.url,
            "--format",
            "jsonl",
            *webhook,
            "--conversation-token",
            credentials["conversation_token"],
            "--user-id",
            credentials["user_id"],
            "--webhook-dead-letter",
            str(dead_letter),
            "--webhook-drain-timeout",
            "0.5",
            HIYA_TOKEN=credentials["token"],
        )
    events = watch.stdout.splitlines()
    assert watch.returncode == livecall.ExitStatus.INCOMPLETE, watch.stderr.decode()
    assert len(events) == EVENTS and all(json.loads(line)["call_id"] for line in events)
    dead = [json.loads(line)["body"] for line in dead_letter.read_bytes().splitlines()]
    assert dead == [json.loads(line) for line in events], "every undelivered event, in order"

    target.come_back()
    replay = _livecall("webhook-replay", str(dead_letter), *webhook)
    delivered = len(target.bodies)
    figures(events_sent=EVENTS, events_received=delivered, events_lost=EVENTS - delivered, faults_injected=1)
    assert replay.returncode == 0, replay.stderr.decode()
    assert target.bodies == events and not dead_letter.exists()
