"""Delivery: every event posted once, signed, in order, through refusals, retries, full queues and
an outage, within the time the run allows."""

import json
import tracemalloc

import livecall
import livecall_webhook
from livecall.testing import Exploding, Recorder, Simulator
from livecall_webhook import Sender, WebhookForwarder

from .conftest import SECRET, dead_bodies, livecall_command, parsed, verified, watch, watch_phonic

QUICK = livecall.Backoff(0.01, 0.05)


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


def test_a_raising_plugin_costs_the_webhook_nothing(tmp_path, receiver):
    forwarder = WebhookForwarder(Sender(receiver.url), str(tmp_path / "dead.jsonl"))
    with Simulator("hiya", join_timeout=0.1) as sim:
        call, bodies = watch(sim, Exploding(), forwarder)
    forwarder.close(timeout=10)
    assert bodies and receiver.accepted() == bodies


def test_livecall_watch_posts_what_it_prints(tmp_path, receiver, phonic_simulator):
    done = watch_phonic(phonic_simulator, "--webhook-url", receiver.url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert receiver.accepted() == [line.encode() for line in done.stdout.splitlines()]
    assert all(verified(r) for r in receiver.requests)
    assert not (tmp_path / livecall_webhook.DEFAULT_DEAD_LETTER).exists()


# --- bounds: the queue and the drain --------------------------------------------------


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


def test_the_queue_is_bounded_in_bytes_as_well_as_events(tmp_path, receiver):
    dead = tmp_path / "dead.jsonl"
    call = livecall.Call(provider="phonic", id="conv_1")
    snapshots = [livecall.Transcript(f"{n} " + "words " * 200, "user") for n in range(5)]
    body_size = len(livecall.to_json(call, snapshots[1]).encode())
    queue_bytes = body_size * 5 // 2  # room for two events (the one being sent counts), not three
    forwarder = WebhookForwarder(Sender(receiver.url), str(dead), queue_size=1000, queue_bytes=queue_bytes)
    receiver.hold()
    forwarder.livecall_event(call=call, event=snapshots[0])
    receiver.wait_for(lambda: len(receiver.requests) == 1)
    for event in snapshots[1:]:
        forwarder.livecall_event(call=call, event=event)  # one fits beside the first, the rest do not
    receiver.release()
    forwarder.close(timeout=10)
    assert len(receiver.accepted()) == 2
    assert [body["text"] for body in dead_bodies(dead)] == [e.text for e in snapshots[2:]]


def test_the_queue_holds_each_event_once_and_counts_the_one_being_sent(tmp_path, receiver):
    """``queue_bytes`` bounds the memory the queue holds: an event is not kept twice (its body
    beside its dead-letter line), and the event being sent counts until it is done."""
    call = livecall.Call(provider="phonic", id="conv_1")
    snapshot = livecall.Transcript("words " * 170_000, "user")  # a 1 MB snapshot
    size = len(livecall.to_json(call, snapshot).encode())
    dead = tmp_path / "dead.jsonl"
    forwarder = WebhookForwarder(Sender(receiver.url), str(dead), queue_size=1000, queue_bytes=8 * size)
    receiver.hold()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(20):
            forwarder.livecall_event(call=call, event=snapshot)
        receiver.wait_for(lambda: receiver.requests)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        receiver.release()
    forwarder.close(timeout=10)
    assert held < 10 * size, f"{held} bytes held for a queue of {8 * size} (the receiver has one body)"
    assert forwarder.delivered == 7, "seven lines, a little longer than their bodies, fit in 8 bodies' bytes"
    assert len(dead_bodies(dead)) == 13


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


# --- a target down for a while --------------------------------------------------------


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
