"""livecall-webhook: simulated calls posted to a real local HTTP server that fails on purpose."""

import argparse
import base64
import json
import logging
import os
import pathlib
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest
import requests
import standardwebhooks

import livecall
import livecall_webhook
from livecall.plugins import DISABLE_AUTOLOAD_ENV, create_plugin_manager
from livecall.testing import Exploding, Recorder, Simulator, configure, wait_until
from livecall_webhook import Sender, SigningKey, WebhookForwarder, replay

SECRET = "whsec-SECRET-0123456789"
QUICK = livecall.Backoff(0.01, 0.05)


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


class Waits(list):
    """A Sender's ``wait`` that returns at once, keeping every delay it was asked to wait."""

    def __call__(self, stop, delay):
        self.append(delay)
        return stop.is_set()


def test_events_arrive_signed_in_order_through_503_and_429(tmp_path, receiver_at):
    receiver = receiver_at(script=[503, (429, {"Retry-After": "1"})])
    waits = Waits()
    sender = Sender(receiver.url, SECRET, backoff=QUICK, wait=waits)
    forwarder = WebhookForwarder(sender, str(tmp_path / "dead.jsonl"))
    with Simulator("phonic") as sim:
        call, bodies = watch(sim, forwarder)
    forwarder.close(timeout=10)
    assert bodies and receiver.accepted() == bodies
    first = [r for r in receiver.requests if r.body == bodies[0]]
    assert [r.status for r in first] == [503, 429, 200], "the first event was retried twice"
    assert len(waits) == 2 and waits[0] <= QUICK.cap and waits[1] == 1.0, "Retry-After: 1 was honoured"
    assert all(verified(r) for r in receiver.requests)
    assert {r.headers["Content-Type"] for r in receiver.requests} == {"application/json"}
    assert [json.loads(b)["event"] for b in receiver.accepted()][-1] == "conversation_ended"
    assert forwarder.delivered == len(bodies) and forwarder.undelivered == 0
    assert not (tmp_path / "dead.jsonl").exists()


def test_retry_after_is_honoured(receiver_at):
    receiver = receiver_at(script=[(429, {"Retry-After": "1"})])
    waits = Waits()
    sender = Sender(receiver.url, backoff=QUICK, wait=waits)
    assert sender.send(b'{"n": 1}') is None
    sender.close()
    first, second = receiver.requests
    assert (first.status, second.status) == (429, 200)
    assert waits == [1.0], "it waited the second it was asked to, not its own 0.05 s"


def test_a_retry_after_beyond_the_budget_ends_retrying_at_once(receiver_at):
    receiver = receiver_at(
        answer=lambda body: 503, script=[(503, {"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})]
    )
    sender = Sender(receiver.url, retry_time=5, backoff=QUICK)
    failure = sender.send(b"{}")
    sender.close()
    assert failure is not None and not failure.permanent
    assert "HTTP 503" in failure.reason and "budget" in failure.reason
    assert len(receiver.requests) == 1


def test_connection_refused_until_the_target_comes_up(tmp_path, receiver_at, counting_session):
    receiver = receiver_at(down=True)
    sender = Sender(
        receiver.url, SECRET, retries=1000, backoff=livecall.Backoff(0.01, 0.02), session=counting_session
    )
    forwarder = WebhookForwarder(sender, str(tmp_path / "dead.jsonl"))
    with Simulator("hiya", join_timeout=0.1) as sim:
        call, bodies = watch(sim, forwarder)
    adapter = counting_session.adapter
    with adapter.changed:
        assert adapter.changed.wait_for(lambda: adapter.attempts >= 3, 10), "refused attempts were retried"
    receiver.come_back()
    receiver.wait_for(lambda: len(receiver.accepted()) == len(bodies))
    forwarder.close(timeout=10)
    assert receiver.accepted() == bodies
    assert all(verified(r) for r in receiver.requests)
    assert forwarder.undelivered == 0


def replay_options(*argv):
    parser = argparse.ArgumentParser()
    livecall_webhook.livecall_register_commands(parser.add_subparsers())
    return parser.parse_args(["webhook-replay", *argv])


def test_a_refused_event_is_reported_kept_and_replayed(tmp_path, receiver_at, capsys):
    dead = tmp_path / "dead.jsonl"
    refused = []

    def answer(body):
        if json.loads(body)["event"] == "transcript" and not refused:
            refused.append(body)
        return 400 if body in refused else 200

    receiver = receiver_at(answer=answer)
    config = configure(
        livecall_webhook,
        "--webhook-url",
        receiver.url,
        "--webhook-secret",
        SECRET,
        "--webhook-dead-letter",
        str(dead),
    )
    with Simulator("phonic") as sim:
        call, bodies = watch(sim, plugin_manager=config.plugin_manager)
    config.close()

    assert [r.body for r in receiver.requests].count(refused[0]) == 1, "a 400 is not retried"
    assert receiver.accepted() == [b for b in bodies if b != refused[0]]
    assert dead_bodies(dead) == parsed(refused)
    [(status, message)] = config.failures
    assert status == 5 and "1 events undelivered" in message and str(dead) in message
    assert f"livecall webhook-replay {dead}" in message

    receiver_now_accepts = receiver_at()
    replayed = livecall.Config(
        options=replay_options(
            str(dead), "--webhook-url", receiver_now_accepts.url, "--webhook-secret", SECRET
        ),
        plugin_manager=config.plugin_manager,
    )
    assert replayed.options.func(replayed) == 0
    assert receiver_now_accepts.accepted() == refused
    assert verified(receiver_now_accepts.requests[0])
    assert not dead.exists()
    assert "1 delivered" in capsys.readouterr().out


def test_a_target_that_stays_down_leaves_every_event_in_order(tmp_path, receiver_at):
    dead = tmp_path / "dead.jsonl"
    receiver = receiver_at(down=True)
    config = configure(
        livecall_webhook,
        "--webhook-url",
        receiver.url,
        "--webhook-dead-letter",
        str(dead),
        "--webhook-retries",
        "1",
        "--webhook-drain-timeout",
        "0.5",
    )
    with Simulator("phonic") as sim:
        call, bodies = watch(sim, plugin_manager=config.plugin_manager)
    config.close()
    assert dead_bodies(dead) == parsed(bodies)
    assert config.failures and config.failures[0][0] == 5
    assert f"{len(bodies)} events undelivered" in config.failures[0][1]
    assert dead.stat().st_mode & 0o077 == 0, "only the owner may read transcripts"

    receiver.come_back()
    sender = Sender(receiver.url)
    result = replay(str(dead), sender)
    sender.close()
    assert (result.delivered, result.kept) == (len(bodies), 0)
    assert receiver.accepted() == bodies
    assert not dead.exists()


def test_replay_keeps_what_still_fails(tmp_path, receiver_at):
    dead = tmp_path / "dead.jsonl"
    lines = [sealed(b'{"n": %d}' % n, f"msg_{n}") for n in (1, 2)]
    lines += [b"not a dead-letter line"]
    lines += [sealed(b'{"n": %d}' % n, f"msg_{n}") for n in (3, 4)]
    dead.write_bytes(b"\n".join(lines) + b"\n")
    dead.chmod(0o600)
    answers = {b'{"n": 2}': 422, b'{"n": 3}': 503}
    receiver = receiver_at(answer=lambda body: answers.get(body, 200))
    sender = Sender(receiver.url, SECRET, retries=0)
    result = replay(str(dead), sender)
    sender.close()
    assert (result.delivered, result.kept, result.refused) == (1, 4, 1)
    assert dead.read_bytes().splitlines() == lines[1:], "refused, not a line, unreachable, and untried"
    assert [r.body for r in receiver.requests] == [b'{"n": 1}', b'{"n": 2}', b'{"n": 3}']


def test_replay_of_a_missing_file_is_a_clear_error(tmp_path):
    options = replay_options(str(tmp_path / "none.jsonl"), "--webhook-url", "http://127.0.0.1:9/")
    with pytest.raises(livecall.ConfigurationError, match="no dead-letter file"):
        options.func(livecall.Config(options=options, plugin_manager=create_plugin_manager(autoload=False)))


def test_a_full_queue_sheds_into_the_dead_letter_file(tmp_path, receiver):
    dead = tmp_path / "dead.jsonl"
    forwarder = WebhookForwarder(Sender(receiver.url), str(dead), queue_size=1)
    call = livecall.Call(provider="hiya", id="call_1")
    events = [livecall.Transcript(f"line {n}", "user") for n in range(6)]
    bodies = [livecall.to_json(call, event).encode() for event in events]
    receiver.hold()
    forwarder.livecall_event(call=call, event=events[0])
    receiver.wait_for(lambda: len(receiver.requests) == 1)
    for event in events[1:]:
        forwarder.livecall_event(call=call, event=event)  # returns at once: the hook never waits
    receiver.release()
    forwarder.close(timeout=10)
    assert receiver.accepted() == bodies[:2]
    assert dead_bodies(dead) == parsed(bodies[2:])
    assert (forwarder.delivered, forwarder.undelivered) == (2, 4)


def test_the_drain_timeout_bounds_the_exit(tmp_path, receiver):
    dead = tmp_path / "dead.jsonl"
    forwarder = WebhookForwarder(Sender(receiver.url, timeout=0.5, retries=0), str(dead))
    call = livecall.Call(provider="phonic", id="conv_1")
    events = [livecall.Transcript(f"line {n}", "user") for n in range(3)]
    receiver.hold()
    for event in events:
        forwarder.livecall_event(call=call, event=event)
    receiver.wait_for(lambda: len(receiver.requests) == 1)
    forwarder.close(timeout=0.1)
    assert dead_bodies(dead) == [livecall.to_record(call, e) for e in events]
    assert (forwarder.delivered, forwarder.unsent) == (0, 2)


def test_without_a_url_it_does_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = configure(livecall_webhook)
    with Simulator("phonic") as sim:
        watch(sim, plugin_manager=config.plugin_manager)
    assert config.plugin_manager.hook.livecall_event.get_hookimpls() == []
    config.close()
    assert config.failures == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--webhook-url", "ftp://example.com/hook"], "http:// or https://"),
        (["--webhook-url", "example.com/hook"], "http:// or https://"),
        (["--webhook-url", "http:///nohost"], "http:// or https://"),
        (["--webhook-url", "http://host:port/?token=x"], "malformed"),
        (["--webhook-url", "http://a/", "--webhook-timeout", "0"], "must be positive"),
        (["--webhook-url", "http://a/", "--webhook-timeout", "nan"], "must be positive"),
        (["--webhook-url", "http://a/", "--webhook-timeout", "inf"], "must be positive"),
        (["--webhook-url", "http://a/", "--webhook-drain-timeout", "nan"], "drain-timeout"),
        (["--webhook-url", "http://a/", "--webhook-queue-bytes", "0"], "queue size and bytes"),
        (["--webhook-url", "http://a/", "--webhook-retries", "-1"], "0 or more"),
        (["--webhook-url", "http://a/", "--webhook-queue-size", "0"], "queue size and bytes"),
        (["--webhook-url", "http://a/", "--webhook-drain-timeout", "-1"], "drain-timeout"),
        (["--webhook-url", "http://a/", "--webhook-dead-letter", "/nowhere/dead.jsonl"], "does not exist"),
    ],
)
def test_bad_options_are_refused_up_front(argv, message):
    with pytest.raises(livecall.ConfigurationError, match=message):
        configure(livecall_webhook, *argv)


def test_secrets_stay_out_of_logs_files_and_messages(tmp_path, receiver_at, closed_port, caplog, monkeypatch):
    monkeypatch.setenv(livecall_webhook.SECRET_ENV, SECRET)
    token = "query-token-SECRET-42"
    refusing = receiver_at(answer=lambda body: 400)
    dead = tmp_path / "dead.jsonl"
    outputs = []
    targets = [
        refusing.url.replace("127.0.0.1", f"user:pw-{token}@127.0.0.1"),
        f"http://127.0.0.1:{closed_port}/hook",
    ]
    for target in targets:
        config = configure(
            livecall_webhook,
            "--webhook-url",
            f"{target}?token={token}",
            "--webhook-dead-letter",
            str(dead),
            "--webhook-retries",
            "0",
        )
        [forwarder] = [p for p in config.plugin_manager.get_plugins() if isinstance(p, WebhookForwarder)]
        outputs += [repr(forwarder), repr(forwarder.sender)]
        with caplog.at_level(logging.DEBUG):
            with Simulator("phonic") as sim:
                watch(sim, plugin_manager=config.plugin_manager)
            config.close()
        outputs += [message for _, message in config.failures]
    outputs += [record.getMessage() for record in caplog.records]
    outputs.append(dead.read_text())
    text = "\n".join(outputs)
    assert "HTTP 400" in text and "Connection refused" in text
    assert refusing.requests and all(verified(r) for r in refusing.requests), (
        "the secret from the environment signs"
    )
    assert refusing.requests[0].path == f"/hook?token={token}"
    for secret in (SECRET, token):
        assert secret not in text


def test_a_raising_plugin_costs_the_webhook_nothing(tmp_path, receiver):
    forwarder = WebhookForwarder(Sender(receiver.url), str(tmp_path / "dead.jsonl"))
    with Simulator("hiya", join_timeout=0.1) as sim:
        call, bodies = watch(sim, Exploding(), forwarder)
    forwarder.close(timeout=10)
    assert bodies and receiver.accepted() == bodies


def livecall_command(*arguments, cwd, **environment):
    """The installed ``livecall`` command, run as a user runs it."""
    env = {k: v for k, v in os.environ.items() if k != DISABLE_AUTOLOAD_ENV}
    env.update(environment)
    command = [sys.executable, "-m", "livecall", *arguments]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def watch_phonic(sim, *options, cwd):
    arguments = sim.watch_args("--format", "jsonl", *options)
    return livecall_command(*arguments, cwd=cwd, LIVECALL_WEBHOOK_SECRET=SECRET)


def test_livecall_watch_posts_what_it_prints(tmp_path, receiver, phonic_simulator):
    done = watch_phonic(phonic_simulator, "--webhook-url", receiver.url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert receiver.accepted() == [line.encode() for line in done.stdout.splitlines()]
    assert all(verified(r) for r in receiver.requests)
    assert not (tmp_path / livecall_webhook.DEFAULT_DEAD_LETTER).exists()


def test_livecall_exits_5_and_the_replay_command_delivers(tmp_path, receiver_at, phonic_simulator):
    refusing = receiver_at(answer=lambda body: 400)
    done = watch_phonic(phonic_simulator, "--webhook-url", refusing.url, cwd=tmp_path)
    assert done.returncode == 5, done.stderr
    dead = tmp_path / livecall_webhook.DEFAULT_DEAD_LETTER
    sent = done.stdout.splitlines()
    assert dead_bodies(dead) == parsed(sent)
    assert f"livecall: error: webhook: {len(sent)} events undelivered, written to {dead.name}" in done.stderr

    accepting = receiver_at()
    replayed = livecall_command(
        "webhook-replay",
        dead.name,
        "--webhook-url",
        accepting.url,
        cwd=tmp_path,
        LIVECALL_WEBHOOK_SECRET=SECRET,
    )
    assert replayed.returncode == 0, replayed.stderr
    assert accepting.accepted() == [line.encode() for line in sent]
    assert all(verified(r) for r in accepting.requests)
    assert not dead.exists()
    assert f"{len(sent)} delivered" in replayed.stdout

    again = livecall_command("webhook-replay", dead.name, "--webhook-url", accepting.url, cwd=tmp_path)
    assert again.returncode == 2 and "no dead-letter file" in again.stderr


@pytest.fixture
def readme_receiver(tmp_path, closed_port):
    """The receiver the README documents, run as written."""
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    [code] = [block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "class Hook" in block]
    (tmp_path / "receiver.py").write_text(code)
    env = dict(os.environ, PORT=str(closed_port), LIVECALL_WEBHOOK_SECRET=SECRET)
    process = subprocess.Popen(
        [sys.executable, str(tmp_path / "receiver.py")], env=env, stdout=subprocess.PIPE, text=True
    )

    def listening():
        try:
            socket.create_connection(("127.0.0.1", closed_port), timeout=1).close()
        except OSError:
            return process.poll() is not None  # a receiver that died ends the wait too
        return True

    wait_until(listening)  # a port opening notifies nobody: polled
    assert process.poll() is None, "the receiver exited before listening"
    yield f"http://127.0.0.1:{closed_port}/", process
    process.terminate()
    process.wait(10)
    process.stdout.close()


def test_the_readme_receiver_accepts_signed_bodies_only(readme_receiver):
    url, process = readme_receiver
    body = livecall.to_json(
        livecall.Call(provider="hiya", id="call_7"), livecall.Transcript("hi", "user")
    ).encode()
    signed, forged = Sender(url, SECRET), Sender(url, "not-the-secret")
    assert signed.send(body) is None
    failure = forged.send(body)
    assert failure is not None and failure.permanent and "HTTP 401" in failure.reason
    signed.close()
    forged.close()
    assert process.stdout.readline() == "call_7 transcript hi\n"


def test_the_readme_receiver_refuses_a_captured_request_played_again_later(readme_receiver):
    url, process = readme_receiver
    body = b'{"event": "transcript", "call_id": "call_8", "text": "hi"}'
    headers = {"webhook-id": "msg_captured", "Content-Type": "application/json"}
    for age in (0, 6 * 60):
        timestamp = int(time.time()) - age
        headers.update({"webhook-timestamp": str(timestamp)})
        headers["webhook-signature"] = SigningKey(SECRET).sign("msg_captured", timestamp, body)
        answer = requests.post(url, data=body, headers=headers, timeout=10)
        assert answer.status_code == (204 if age == 0 else 401), f"signed {age} s ago"


def test_a_whsec_secret_is_base64_and_a_plain_one_its_own_bytes(receiver):
    key = os.urandom(24)
    whsec = "whsec_" + base64.b64encode(key).decode()
    for secret, receivers_key in ((whsec, whsec), (SECRET, SECRET.encode())):
        sender = Sender(receiver.url, secret)
        assert sender.send(b'{"n": 1}') is None
        sender.close()
        request = receiver.requests[-1]
        standardwebhooks.Webhook(receivers_key).verify(request.body, request.headers)
        assert request.headers["webhook-id"].startswith("msg_")
    with pytest.raises(livecall.ConfigurationError, match="not base64"):
        Sender(receiver.url, "whsec_not base64!")


# --- hostile targets and hostile files ---------------------------------------------


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


def test_a_secret_the_server_echoes_is_posted_and_dead_lettered_blanked(tmp_path, receiver_at):
    token = "echoed-bearer-TOKEN-5e1f"
    livecall.Credential(token)  # as a client holds its bearer token
    refusing_the_second = receiver_at(answer=lambda body: 400 if b"second" in body else 200)
    dead = tmp_path / "dead.jsonl"
    forwarder = WebhookForwarder(Sender(refusing_the_second.url, SECRET), str(dead))
    call = livecall.Call(provider="hiya", id="call_1")
    for text in (f"first: invalid token {token}", f"second: Bearer {token} refused"):
        forwarder.livecall_event(call=call, event=livecall.Transcript(text, "assistant"))
    forwarder.close(timeout=10)
    posted = b"".join(r.body for r in refusing_the_second.requests)
    assert b"invalid token ***" in posted and token.encode() not in posted
    assert [body["text"] for body in dead_bodies(dead)] == ["second: Bearer *** refused"]
    assert token not in dead.read_text()
    assert all(verified(r) for r in refusing_the_second.requests), "signed as sent, blanked"


def test_the_queue_is_bounded_in_bytes_as_well_as_events(tmp_path, receiver):
    dead = tmp_path / "dead.jsonl"
    call = livecall.Call(provider="phonic", id="conv_1")
    snapshots = [livecall.Transcript(f"{n} " + "words " * 200, "user") for n in range(5)]
    body_size = len(livecall.to_json(call, snapshots[1]).encode())
    queue_bytes = body_size * 5 // 2  # room for two bodies, not three
    forwarder = WebhookForwarder(Sender(receiver.url), str(dead), queue_size=1000, queue_bytes=queue_bytes)
    receiver.hold()
    forwarder.livecall_event(call=call, event=snapshots[0])
    receiver.wait_for(lambda: len(receiver.requests) == 1)
    for event in snapshots[1:]:
        forwarder.livecall_event(call=call, event=event)  # two fit in the queue, the rest do not
    receiver.release()
    forwarder.close(timeout=10)
    assert len(receiver.accepted()) == 3
    assert [body["text"] for body in dead_bodies(dead)] == [e.text for e in snapshots[3:]]


def test_the_queue_bytes_option_reaches_the_forwarder(tmp_path):
    config = configure(
        livecall_webhook,
        "--webhook-url", "http://127.0.0.1:9/", "--webhook-dead-letter", str(tmp_path / "d.jsonl"),
        "--webhook-queue-bytes", "12345",
    )  # fmt: skip
    [forwarder] = [p for p in config.plugin_manager.get_plugins() if isinstance(p, WebhookForwarder)]
    assert forwarder.queue_bytes == 12345
    config.close()


def test_the_dead_letter_file_is_never_written_through_a_planted_symlink(tmp_path, receiver_at):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    dead = tmp_path / "dead.jsonl"
    dead.symlink_to(victim)
    with pytest.raises(livecall.ConfigurationError, match="symbolic link"):
        configure(
            livecall_webhook, "--webhook-url", "http://127.0.0.1:9/", "--webhook-dead-letter", str(dead)
        )

    refusing = receiver_at(answer=lambda body: 400)
    forwarder = WebhookForwarder(Sender(refusing.url), str(dead))  # planted after the check
    call = livecall.Call(provider="hiya", id="call_1")
    forwarder.livecall_event(call=call, event=livecall.Transcript("hello", "other"))
    forwarder.close(timeout=10)
    assert victim.read_text() == "precious\n"
    assert (forwarder.dead_letter.written, forwarder.dead_letter.unwritten) == (0, 1)


def test_the_dead_letter_file_is_created_owner_only_and_an_existing_one_keeps_its_mode(tmp_path, receiver_at):
    refusing = receiver_at(answer=lambda body: 400)
    call = livecall.Call(provider="hiya", id="call_1")
    existing = tmp_path / "existing.jsonl"
    existing.write_bytes(b"")
    existing.chmod(0o640)
    for path in (tmp_path / "new.jsonl", existing):
        forwarder = WebhookForwarder(Sender(refusing.url), str(path))
        forwarder.livecall_event(call=call, event=livecall.Transcript("hello", "other"))
        forwarder.close(timeout=10)
    assert (tmp_path / "new.jsonl").stat().st_mode & 0o777 == 0o600
    assert existing.stat().st_mode & 0o777 == 0o640
    assert len(dead_bodies(existing)) == 1


def replay_command(dead, url, *, secret=SECRET, cwd):
    return livecall_command(
        "webhook-replay", str(dead), "--webhook-url", url, cwd=cwd, LIVECALL_WEBHOOK_SECRET=secret
    )


def test_replay_sends_only_lines_sealed_with_the_secret(tmp_path, receiver):
    dead = tmp_path / "dead.jsonl"
    genuine = [sealed(b'{"n": %d}' % n, f"msg_{n}") for n in range(3)]
    forged = [
        sealed(b'{"n": "forged"}', "msg_forged", secret="a guess at the secret"),
        b'{"event": "transcript", "text": "appended by hand"}',
        genuine[0].replace(b'"n": 0', b'"n": 9'),  # a genuine line, altered
    ]
    dead.write_bytes(b"\n".join([genuine[0], *forged, *genuine[1:]]) + b"\n")
    dead.chmod(0o640)
    done = replay_command(dead, receiver.url, cwd=tmp_path)
    assert done.returncode == livecall.ExitStatus.INCOMPLETE, done.stderr
    assert "3 delivered" in done.stdout and "3 refused" in done.stdout
    assert [json.loads(b) for b in receiver.accepted()] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [r.headers["webhook-id"] for r in receiver.requests] == ["msg_0", "msg_1", "msg_2"]
    assert all(verified(r) for r in receiver.requests)
    assert dead.read_bytes().splitlines() == forged, "refused lines are kept, for a person to look at"
    assert dead.stat().st_mode & 0o777 == 0o640, "the file keeps its mode"


@pytest.mark.parametrize("plant", ["symlink", "world-writable"])
def test_replay_refuses_a_file_others_control(tmp_path, receiver, plant):
    real = tmp_path / "real.jsonl"
    real.write_bytes(sealed(b'{"n": 1}') + b"\n")
    real.chmod(0o600)
    dead = tmp_path / "dead.jsonl"
    if plant == "symlink":
        dead.symlink_to(real)
    else:
        real.rename(dead)
        dead.chmod(0o666)
    done = replay_command(dead, receiver.url, cwd=tmp_path)
    assert done.returncode == livecall.ExitStatus.USAGE
    assert done.stderr.count("\n") == 1 and "refuses" in done.stderr, done.stderr
    assert receiver.requests == []


def test_replay_reads_a_large_file_a_line_at_a_time(tmp_path, closed_port):
    dead = tmp_path / "dead.jsonl"
    line = sealed(b'{"text": "%s"}' % (b"w" * 20_000)) + b"\n"
    with open(dead, "wb") as file:
        for _ in range(2000):  # 40 MB
            file.write(line)
    dead.chmod(0o600)
    sender = Sender(f"http://127.0.0.1:{closed_port}/hook", SECRET, retries=0)
    tracemalloc.start()
    try:
        result = replay(str(dead), sender)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        sender.close()
    assert (result.delivered, result.kept) == (0, 2000)
    assert os.path.getsize(dead) == 2000 * len(line), "the file is kept whole"
    assert peak < 8 * 1024 * 1024, f"{peak} bytes held at once for a {os.path.getsize(dead)}-byte file"


def test_the_signing_key_never_shows(tmp_path):
    key = SigningKey(SECRET)
    sender = Sender("http://127.0.0.1:9/", SECRET)
    assert SECRET not in repr(key) + repr(sender) + repr(vars(sender))
    sender.close()


# --- kills, signals and full disks, with the real command ----------------------------

#: The events of Hiya's screening call before it waits for the user to join.
BEFORE_JOIN = 7


@pytest.fixture
def black_hole():
    """A webhook target that takes connections (the kernel does) and never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"


class Running:
    """``livecall watch hiya`` running in the background, its output lines collected as they come."""

    def __init__(self, sim, *options, cwd, **popen):
        credentials = sim.credentials
        env = {k: v for k, v in os.environ.items() if k != DISABLE_AUTOLOAD_ENV}
        env.update(HIYA_TOKEN=credentials["token"], LIVECALL_WEBHOOK_SECRET=SECRET)
        command = [sys.executable, "-m", "livecall", "-v", "watch", "hiya", "--url", sim.url]
        command += ["--format", "jsonl", "--conversation-token", credentials["conversation_token"]]
        command += ["--user-id", credentials["user_id"], *options]
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._collect, args=(stream, lines), daemon=True)
            for stream, lines in ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr))
        ]
        for reader in self._readers:
            reader.start()

    def _collect(self, stream, lines):
        for line in stream:
            with self.changed:
                lines.append(line)
                self.changed.notify_all()

    def wait_for_stderr(self, text, timeout=30.0):
        with self.changed:
            if not self.changed.wait_for(lambda: any(text in line for line in self.stderr), timeout):
                raise TimeoutError(f"stderr never said {text!r}: {''.join(self.stderr)}")

    def finish(self, timeout=30.0) -> int:
        status = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        return status

    def events(self) -> list:
        return [json.loads(line) for line in self.stdout]


def spooled(directory) -> int:
    """Event lines in the spools under ``directory``."""
    return sum(path.read_bytes().count(b'{"webhook-id"') for path in directory.glob(".*.spool"))


def test_sigkill_mid_call_loses_no_event_the_plugin_accepted(tmp_path, black_hole, receiver):
    dead = tmp_path / "dead.jsonl"
    with Simulator("hiya", join_timeout=60) as sim:
        watch = Running(
            sim, "--webhook-url", black_hole, "--webhook-timeout", "30", "--webhook-dead-letter", str(dead),
            cwd=tmp_path,
        )  # fmt: skip
        wait_until(lambda: spooled(tmp_path) >= BEFORE_JOIN)
        watch.process.kill()
        assert watch.finish() == -9
    [spool] = tmp_path.glob(".*.spool")
    assert spool.stat().st_mode & 0o777 == 0o600
    assert not dead.exists(), "nothing was undelivered when the kill came: all were waiting"

    replayed = livecall_command(
        "webhook-replay",
        str(dead),
        "--webhook-url",
        receiver.url,
        cwd=tmp_path,
        LIVECALL_WEBHOOK_SECRET=SECRET,
    )
    assert replayed.returncode == 0, replayed.stderr
    assert f"{BEFORE_JOIN} delivered" in replayed.stdout
    assert [json.loads(body) for body in receiver.accepted()] == watch.events()
    assert all(verified(r) for r in receiver.requests)
    assert list(tmp_path.glob(".*.spool")) == [] and not dead.exists()


def test_sigkill_after_delivery_sends_nothing_twice(tmp_path, receiver):
    dead = tmp_path / "dead.jsonl"
    with Simulator("hiya", join_timeout=60) as sim:
        watch = Running(sim, "--webhook-url", receiver.url, "--webhook-dead-letter", str(dead), cwd=tmp_path)
        receiver.wait_for(lambda: len(receiver.accepted()) == BEFORE_JOIN)
        [spool] = tmp_path.glob(".*.spool")
        wait_until(lambda: spool.read_bytes().count(b'{"done"') == BEFORE_JOIN)
        watch.process.kill()
        assert watch.finish() == -9
    replayed = livecall_command("webhook-replay", str(dead), "--webhook-url", receiver.url, cwd=tmp_path)
    assert replayed.returncode == livecall.ExitStatus.USAGE and "no dead-letter file" in replayed.stderr
    assert len(receiver.requests) == BEFORE_JOIN and list(tmp_path.glob(".*.spool")) == []


def test_the_spool_of_a_long_run_does_not_grow_without_bound(tmp_path, receiver):
    forwarder = WebhookForwarder(Sender(receiver.url), str(tmp_path / "dead.jsonl"))
    call = livecall.Call(provider="phonic", id="conv_1")
    for n in range(400):  # about 2 MB of events
        forwarder.livecall_event(call=call, event=livecall.Transcript(f"{n} " + "words " * 800, "user"))
    receiver.wait_for(lambda: len(receiver.accepted()) == 400)
    [spool] = tmp_path.glob(".*.spool")
    wait_until(lambda: spool.stat().st_size < 1024 * 1024)  # emptied once idle
    forwarder.close(timeout=10)
    assert not spool.exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_a_second_signal_cuts_the_drain_short(tmp_path, black_hole, signum):
    dead = tmp_path / "dead.jsonl"
    with Simulator("hiya", join_timeout=60) as sim:
        watch = Running(
            sim, "--webhook-url", black_hole, "--webhook-timeout", "30", "--webhook-drain-timeout", "120",
            "--webhook-dead-letter", str(dead), cwd=tmp_path,
        )  # fmt: skip
        wait_until(lambda: spooled(tmp_path) >= BEFORE_JOIN)
        watch.process.send_signal(signum)  # the watch stops, the drain begins
        watch.wait_for_stderr(f"waiting up to 120 s for {BEFORE_JOIN} webhook events")
        watch.process.send_signal(signum)  # ... and is cut short
        status = watch.finish()
    assert status == 128 + signum
    stderr = "".join(watch.stderr)
    assert f"webhook: {BEFORE_JOIN} events undelivered (the wait for them was cut short)" in stderr
    assert "Traceback" not in stderr
    assert dead_bodies(dead) == watch.events()
    assert list(tmp_path.glob(".*.spool")) == []


def no_file_may_grow():
    """In the child: every write to a file fails as on a full disk (EFBIG, the signal ignored)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_a_dead_letter_file_on_a_full_disk_ends_the_run_with_status_5(tmp_path, receiver_at):
    refusing = receiver_at(answer=lambda body: 400)
    dead = tmp_path / "dead.jsonl"
    with Simulator("hiya", join_timeout=0) as sim:
        watch = Running(
            sim, "--webhook-url", refusing.url, "--webhook-dead-letter", str(dead), cwd=tmp_path,
            preexec_fn=no_file_may_grow,
        )  # fmt: skip
        status = watch.finish(60)
    stderr = "".join(watch.stderr)
    assert status == livecall.ExitStatus.INCOMPLETE, stderr
    assert f"webhook: {len(watch.stdout)} undelivered events could not be written to {dead}" in stderr
    assert "Traceback" not in stderr and "OSError" not in stderr


#: How long the target refuses connections in the outage tests, in the sender's seconds.
DOWN = 10.0
FLOOD = 300
EVENTS = FLOOD + 2  # the flood's transcripts, the call's start and end


class Outage:
    """The sender's time, played at once: a wait moves ``now`` on by its delay, and
    the receiver, started down, comes back when ``now`` reaches ``DOWN``."""

    def __init__(self, receiver):
        self.receiver = receiver
        self.now = 0.0
        self.waits = 0

    def clock(self) -> float:
        return self.now

    def wait(self, stop, delay: float) -> bool:
        if self.now < DOWN <= self.now + delay:
            self.receiver.come_back()
        self.now += delay
        self.waits += 1
        return stop.is_set()


def test_a_target_down_for_ten_seconds_gets_every_event_once_in_order(tmp_path, receiver_at, record_property):
    receiver = receiver_at(down=True)
    outage = Outage(receiver)
    dead_letter = tmp_path / "dead-letter.jsonl"
    sender = Sender(
        receiver.url,
        timeout=2.0,
        retries=10_000,
        retry_time=DOWN + 30,
        backoff=livecall.Backoff(0.05, 0.5),
        clock=outage.clock,
        wait=outage.wait,
    )
    forwarder = WebhookForwarder(sender, str(dead_letter))
    recorder = Recorder()
    with Simulator("hiya", "flood", flood_count=FLOOD) as sim:
        call, bodies = watch(sim, forwarder, recorder)
    forwarder.close(timeout=30)
    delivered = receiver.accepted()
    for name, count in dict(
        events_sent=len(bodies), events_received=len(delivered), events_lost=len(bodies) - len(delivered)
    ).items():
        record_property(name, count)
    record_property("faults_injected", 1)
    assert len(bodies) == EVENTS and [livecall.to_json(call, e).encode() for e in recorder.events()] == bodies
    assert outage.now >= DOWN and outage.waits > DOWN / 0.5, "refused for ten seconds, retried all along"
    assert delivered == bodies, "every event once, in order"
    assert len(receiver.requests) == EVENTS, "nothing was sent twice"
    assert forwarder.delivered == EVENTS and not dead_letter.exists()


def test_when_the_run_ends_first_every_undelivered_event_is_in_the_dead_letter_file(
    tmp_path, receiver_at, record_property
):
    receiver = receiver_at(down=True)
    dead_letter = tmp_path / "dead-letter.jsonl"
    webhook = ["--webhook-url", receiver.url, "--webhook-timeout", "1"]
    with Simulator("hiya", "flood", flood_count=FLOOD) as sim:
        watched = livecall_command(
            *sim.watch_args("--format", "jsonl"),
            *webhook,
            "--webhook-dead-letter",
            str(dead_letter),
            "--webhook-drain-timeout",
            "0.5",
            cwd=tmp_path,
        )
    events = watched.stdout.encode().splitlines()
    assert watched.returncode == livecall.ExitStatus.INCOMPLETE, watched.stderr
    assert len(events) == EVENTS and all(json.loads(line)["call_id"] for line in events)
    assert dead_bodies(dead_letter) == [json.loads(line) for line in events], (
        "every undelivered event, in order"
    )

    receiver.come_back()
    replay = livecall_command("webhook-replay", str(dead_letter), *webhook, cwd=tmp_path)
    delivered = receiver.accepted()
    record_property("events_sent", EVENTS)
    record_property("events_received", len(delivered))
    record_property("events_lost", EVENTS - len(delivered))
    record_property("faults_injected", 1)
    assert replay.returncode == 0, replay.stderr
    assert delivered == events and not dead_letter.exists()
