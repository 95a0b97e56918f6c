"""livecall-webhook: simulated calls posted to a real local HTTP server that fails on purpose."""

import argparse
import hashlib
import hmac
import json
import logging
import os
import pathlib
import re
import socket
import subprocess
import sys
import time

import pytest

import livecall
import livecall_webhook
from livecall.plugins import DISABLE_AUTOLOAD_ENV, create_plugin_manager
from livecall.testing import Exploding, Recorder, Simulator, configure
from livecall_webhook import SIGNATURE_HEADER, Sender, WebhookForwarder, replay

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


def verified(request) -> bool:
    """What a receiver does: recompute the HMAC of the raw body, compare in constant time."""
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, request.headers.get(SIGNATURE_HEADER, ""))


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
    assert dead.read_bytes() == refused[0] + b"\n"
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
    assert dead.read_bytes().splitlines() == bodies
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
    lines = [b'{"n": 1}', b'{"n": 2}', b"not json", b'{"n": 3}', b'{"n": 4}']
    dead.write_bytes(b"\n".join(lines) + b"\n")
    answers = {b'{"n": 2}': 422, b'{"n": 3}': 503}
    receiver = receiver_at(answer=lambda body: answers.get(body, 200))
    sender = Sender(receiver.url, retries=0)
    result = replay(str(dead), sender)
    sender.close()
    assert (result.delivered, result.kept) == (1, 4)
    assert dead.read_bytes().splitlines() == lines[1:], "refused, not JSON, unreachable, and untried"
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
    assert dead.read_bytes().splitlines() == bodies[2:]
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
    assert dead.read_bytes().splitlines() == [livecall.to_json(call, e).encode() for e in events]
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
        (["--webhook-url", "http://a/", "--webhook-retries", "-1"], "0 or more"),
        (["--webhook-url", "http://a/", "--webhook-queue-size", "0"], "queue size"),
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
    assert dead.read_text().splitlines() == sent
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
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", closed_port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise
            time.sleep(0.05)  # polling for the port to open, not synchronising on time
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
    assert dead_letter.read_bytes().splitlines() == events, "every undelivered event, in order"

    receiver.come_back()
    replay = livecall_command("webhook-replay", str(dead_letter), *webhook, cwd=tmp_path)
    delivered = receiver.accepted()
    record_property("events_sent", EVENTS)
    record_property("events_received", len(delivered))
    record_property("events_lost", EVENTS - len(delivered))
    record_property("faults_injected", 1)
    assert replay.returncode == 0, replay.stderr
    assert delivered == events and not dead_letter.exists()
