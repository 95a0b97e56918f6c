"""The takeover campaign: three ``livecall worker`` processes, one killed, one paused past its lease.

Seeded and bounded.  Simulated calls (Phonic, and Hiya with offsets) play
at a couple of events a second; mid-call one worker gets SIGKILL and another
SIGSTOP for longer than its lease, then SIGCONT.  Afterwards every call's
events on the stream are what the simulator sent, once each and in order;
every request is acknowledged; the figures are printed.
"""

import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis

import livecall
from livecall.testing import Simulator
from livecall_redis import DEFAULT_EVENTS, DEFAULT_GROUP, DEFAULT_REQUESTS, WatchRequest, enqueue
from livecall_redis._handover import TAKEOVER_REASON

SEED = 13
#: Calls per provider: two CPU cores run the simulators and three workers, two threads a call each.
PHONIC_CALLS = int(os.environ.get("LIVECALL_CAMPAIGN_PHONIC", "200"))
HIYA_CALLS = int(os.environ.get("LIVECALL_CAMPAIGN_HIYA", "100"))
LEASE, RENEW = 3.0, 1.0
#: Seconds between messages of one call: a couple of events a second.
PACE = (0.4, 0.6)
HIYA_JOIN_WAIT = 1.0
DEADLINE = 90.0  # the whole campaign, from the first worker to the last acknowledgement
API_KEY, HIYA_TOKEN = "sim-phonic-key", "sim-hiya-token"


class Call:
    def __init__(self, sim: Simulator, request_id: str, call_id: str):
        self.sim = sim
        self.request_id = request_id
        self.call_id = call_id
        self.taken_over_at: float = 0.0  # monotonic, once a new connection came after the disruption


def consumer_of(process: subprocess.Popen) -> str:
    return f"{socket.gethostname()}:{process.pid}"


def start_simulators(rng: random.Random) -> list[tuple[Simulator, WatchRequest]]:
    """Each call's simulator, and the request that names it."""
    started = []
    for index in range(PHONIC_CALLS + HIYA_CALLS):
        pace = rng.uniform(*PACE)
        if index < PHONIC_CALLS:
            conversation_id = f"conv_campaign-{index}"
            sim = Simulator("phonic", pace=pace, conversation_id=conversation_id, api_key=API_KEY).start()
            request = WatchRequest("phonic", conversation_id=conversation_id, url=sim.url)
        else:
            sim = Simulator("hiya", pace=pace, token=HIYA_TOKEN, join_timeout=HIYA_JOIN_WAIT).start()
            token = livecall.Credential(sim.credentials["conversation_token"])
            request = WatchRequest(
                "hiya", conversation_token=token, user_id=sim.credentials["user_id"], url=sim.url
            )
        started.append((sim, request))
    return started


def enqueue_calls(redis_client, started: list[tuple[Simulator, WatchRequest]]) -> list[Call]:
    calls = []
    for sim, request in started:
        request_id = enqueue(redis_client, request)
        calls.append(Call(sim, request_id, sim.credentials.get("conversation_id", request_id)))
    return calls


def start_worker(redis_url: str, log: Path, sims: list[Simulator]) -> subprocess.Popen:
    env = dict(
        os.environ, PHONIC_API_KEY=API_KEY, HIYA_TOKEN=HIYA_TOKEN, LIVECALL_DISABLE_PLUGIN_AUTOLOAD="1"
    )
    argv = [sys.executable, "-m", "livecall", "-v", "-p", "livecall_redis", "worker", "--redis", redis_url]
    argv += ["--calls", str(PHONIC_CALLS + HIYA_CALLS), "--lease", str(LEASE), "--renew", str(RENEW)]
    for sim in sims:  # each call names its own simulator
        argv += ["--allow-url", f"{sim.provider}={sim.url}"]
    with log.open("wb") as output:
        return subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT)


def stopped(process: subprocess.Popen) -> bool:
    """Whether the process is stopped (state ``T`` in /proc)."""
    stat = Path(f"/proc/{process.pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "T"


def held_by(redis_client, consumer: str) -> set[str]:
    pending = redis_client.xpending_range(
        DEFAULT_REQUESTS, DEFAULT_GROUP, "-", "+", 100_000, consumername=consumer
    )
    return {entry["message_id"] for entry in pending}


def pending(redis_client) -> int:
    """Requests delivered and not acknowledged; 0 before a worker made the group."""
    try:
        return redis_client.xpending(DEFAULT_REQUESTS, DEFAULT_GROUP)["pending"]
    except redis.ResponseError:
        return 0


def ready(logs: list[Path]) -> bool:
    """Every worker said it takes calls (its log is written by another process: polled)."""
    return all(log.exists() and b"takes up to" in log.read_bytes() for log in logs)


def last_delivered(redis_client) -> str:
    groups = redis_client.xinfo_groups(DEFAULT_REQUESTS)
    return next((group["last-delivered-id"] for group in groups if group["name"] == DEFAULT_GROUP), "")


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``predicate`` (state in other processes: nothing to block on) until true."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        pause.wait(interval)


class TakeoverWatch:
    """Notes when each orphaned call gets a new connection, polling the simulators."""

    def __init__(self) -> None:
        self._watched: list[tuple[Call, int]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="test-takeover-watch", daemon=True)
        self._thread.start()

    def orphaned(self, calls: list[Call]) -> None:
        with self._lock:
            self._watched += [(call, call.sim.accepted) for call in calls]

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            with self._lock:
                waiting = [(call, seen) for call, seen in self._watched if not call.taken_over_at]
            for call, seen in waiting:
                if call.sim.accepted > seen:
                    call.taken_over_at = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def provider_events(redis_client) -> dict[str, list[dict]]:
    """Each call's events from the stream, in order, lifecycle events (the workers' own: a
    reconnect, an ack, a gap) left out."""
    by_call: dict[str, list[dict]] = {}
    keys: set[tuple[str, str]] = set()
    for _, fields in redis_client.xrange(DEFAULT_EVENTS):
        assert (fields["call_id"], fields["key"]) not in keys, f"key written twice: {fields}"
        keys.add((fields["call_id"], fields["key"]))
        event = json.loads(fields["event"])
        if event["event"] not in ("reconnecting", "ack", "gap"):
            by_call.setdefault(fields["call_id"], []).append(event)
    return by_call


def gaps_by_call(redis_client) -> dict[str, list[dict]]:
    """Each call's gaps on the stream, in order."""
    by_call: dict[str, list[dict]] = {}
    for _, fields in redis_client.xrange(DEFAULT_EVENTS):
        event = json.loads(fields["event"])
        if event["event"] == "gap":
            by_call.setdefault(fields["call_id"], []).append(event)
    return by_call


def sent_messages(sim: Simulator) -> list[tuple[int, dict]]:
    """(connection index, message) for every message the simulator sent, in order."""
    return [
        (index, json.loads(frame))
        for index, record in enumerate(sim.connections)
        for frame in record.sent
        if isinstance(frame, str)
    ]


def phonic_lines(snapshots: list[dict]) -> list[tuple[int, str]]:
    """The lines one watcher of ``snapshots`` derives: each item's words, again when they change."""
    said: dict[object, str] = {}
    lines = []
    for snapshot in snapshots:
        for position, item in enumerate(snapshot["conversation"]["items"]):
            text = item.get("text") or item.get("live_transcript") or item.get("post_call_transcript")
            key = item.get("id") or item.get("item_idx", (position,))
            if text and said.get(key) != text:
                said[key] = text
                lines.append((item.get("item_idx", position), text))
    return lines


def check_phonic(call: Call, events: list[dict], orphaned: bool) -> int:
    """Asserts the call's lines are right; returns how many lines one watcher would have had more."""
    snapshots = [
        message for _, message in sent_messages(call.sim) if message["type"] == "conversation-updated"
    ]
    lines = [(event["item_idx"], event["text"]) for event in events if event["event"] == "transcript"]
    assert len(set(lines)) == len(lines), f"{call.call_id}: a line twice: {lines}"
    assert [event["event"] for event in events].count("conversation_ended") == 1
    assert events[-1]["event"] == "conversation_ended"
    if not orphaned:
        assert lines == phonic_lines(snapshots), call.call_id
        return 0
    # Snapshots sent to the worker that died or paused may never have been read: a line that later
    # words replaced may be missing, but every item's final words are there, in order, and every
    # line was sent.
    final = phonic_lines(snapshots[-1:])
    last_words = {index: text for index, text in lines}
    assert [(index, last_words.get(index)) for index, _ in final] == final, call.call_id
    assert set(lines) <= set(phonic_lines(snapshots)), call.call_id
    assert [index for index, _ in lines] == sorted(index for index, _ in lines), call.call_id
    return len(phonic_lines(snapshots)) - len(lines)


HIYA_KINDS = {"event:start": "call_started", "event:end": "screening_ended", "event:callEnd": "call_ended"}


def hiya_summary(kind: str, text=None, role=None, offset=None) -> tuple:
    return (kind, text, role, offset)


def check_hiya(call: Call, events: list[dict], orphaned: bool) -> int:
    """Asserts the call's events are right; returns how many the failed worker never wrote."""
    sent = []
    for connection, message in sent_messages(call.sim):
        if message["type"] == "transcript":
            sent.append(
                (connection, hiya_summary("transcript", message["msg"], message["role"], message["offset"]))
            )
        elif message["type"] in HIYA_KINDS:
            text = message.get("msg")
            sent.append((connection, hiya_summary(HIYA_KINDS[message["type"]], text)))
    got = [
        hiya_summary(
            event["event"], event.get("text", event.get("message")), event.get("role"), event.get("offset")
        )
        for event in events
    ]
    assert len(set(got)) == len(got), f"{call.call_id}: an event twice"
    expected = [summary for _, summary in sent]
    if not orphaned:
        assert got == expected, call.call_id
        return 0
    # Hiya does not replay: what was sent to the worker that died or paused and that it had
    # not written is lost, and only that.  The rest is there, once each, in order.
    final = max(index for index, record in enumerate(call.sim.connections) if record.accepted)
    replaced = set(range(final))
    positions = [expected.index(summary) for summary in got]
    assert positions == sorted(positions), call.call_id
    missing = [(connection, summary) for connection, summary in sent if summary not in set(got)]
    assert all(connection in replaced for connection, _ in missing), f"{call.call_id}: lost {missing}"
    return len(missing)


def test_takeover_campaign(redis_server, redis_client, tmp_path_factory, capsys):
    tmp_path = tmp_path_factory.mktemp("campaign")
    rng = random.Random(SEED)
    logs = [tmp_path / f"worker-{n}.log" for n in range(3)]
    started = start_simulators(rng)
    sims = [sim for sim, _ in started]
    workers = [start_worker(redis_server.url, log, sims) for log in logs]
    takeovers = TakeoverWatch()
    calls: list[Call] = []
    try:
        # Requests that arrive while all three wait in XREADGROUP are shared out among them.
        wait_for(lambda: ready(logs), 30, "three workers reading")
        began = time.monotonic()
        calls = enqueue_calls(redis_client, started)
        last = calls[-1].request_id
        wait_for(lambda: last_delivered(redis_client) == last, 30, "every call taken")
        killed, paused = workers[0], workers[1]
        by_id = {call.request_id: call for call in calls}
        # The calls each failed worker leaves behind: those it holds once it can no longer act.
        killed.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        killed.wait(10)
        killed_calls = [by_id[i] for i in held_by(redis_client, consumer_of(killed))]
        takeovers.orphaned(killed_calls)
        paused.send_signal(signal.SIGSTOP)
        paused_at = time.monotonic()
        wait_for(lambda: stopped(paused), 10, "the worker stopped")
        paused_ids = held_by(redis_client, consumer_of(paused))
        takeovers.orphaned([by_id[i] for i in paused_ids])
        # Stopped until every call it held is watched by another worker, so past its lease.
        paused_calls = [by_id[i] for i in paused_ids]
        wait_for(
            lambda: all(call.taken_over_at for call in paused_calls),
            DEADLINE,
            "the paused worker's calls taken",
        )
        paused.send_signal(signal.SIGCONT)
        wait_for(lambda: redis_client.xlen(DEFAULT_REQUESTS) == 0, DEADLINE, "every request acknowledged")
        assert pending(redis_client) == 0
        took = time.monotonic() - began
    finally:
        takeovers.stop()
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGCONT)
                worker.terminate()
        for worker in workers:
            worker.wait(20)
        for sim in sims:
            sim.stop(timeout=1)
    events = provider_events(redis_client)
    unseen = {"phonic": 0, "hiya": 0}
    for call in calls:
        check = check_phonic if call.sim.provider == "phonic" else check_hiya
        orphaned = call.request_id in paused_ids or call in killed_calls
        unseen[call.sim.provider] += check(call, events.get(call.call_id, []), orphaned=orphaned)
    interrupted = -signal.SIGTERM, 128 + signal.SIGTERM  # livecall exits with 143 on SIGTERM
    assert workers[1].returncode in interrupted and workers[2].returncode in interrupted
    orphans = [(call, killed_at) for call in killed_calls] + [(by_id[i], paused_at) for i in paused_ids]
    times = [call.taken_over_at - at for call, at in orphans if call.taken_over_at]
    assert len(times) == len(orphans), "an orphaned call never got a new connection"
    fenced = int(redis_client.get(f"{DEFAULT_EVENTS}:fenced") or 0)
    # Each call taken over from a failed worker says once where the stream has its hole (a paused
    # worker that wakes may still connect once, replacing the new one's connection: a reconnect's gap).
    gaps = gaps_by_call(redis_client)
    for call, _ in orphans:
        [gap] = [gap for gap in gaps.get(call.call_id, []) if gap["reason"] == TAKEOVER_REASON]
        assert gap["lost_at"] < gap["reopened_at"]
    other_gaps = sum(map(len, gaps.values())) - len(orphans)
    with capsys.disabled():
        print(
            f"\ncampaign: {PHONIC_CALLS} Phonic + {HIYA_CALLS} Hiya calls, 3 workers, lease {LEASE:g} s, "
            f"renewal {RENEW:g} s; done in {took:.1f} s\n"
            f"  SIGKILLed worker held {len(killed_calls)} calls, SIGSTOPped one {len(paused_ids)}; "
            f"paused worker's late writes fenced: {fenced}\n"
            f"  takeover after the failure: max {max(times):.2f} s, median {statistics.median(times):.2f} s "
            f"(expected: lease + up to a second for a worker's next look + connection); a gap written "
            f"for each taken over, and {other_gaps} after reconnects\n"
            f"  events on the stream: {redis_client.xlen(DEFAULT_EVENTS)}; sent to a failed worker and never "
            f"written: {unseen['hiya']} Hiya events (no replay), {unseen['phonic']} superseded Phonic lines"
        )
    assert killed_calls and paused_ids
