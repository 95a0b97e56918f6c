"""Events per second one Redis node takes with the workers' write script.

``python -m benchmarks.redis_writes [--seconds S] [--clients K] [--batch N] [--calls C]``
(needs ``redis-server`` on the PATH and the Redis plugin installed; Linux
only, for ``/proc``).  A ``redis-server`` of its own (loopback, no
persistence, the defaults otherwise) takes the workers' write script, the
fenced and keyed one every event goes through (``Scripts.write_many``:
pipelined ``EVALSHA``, ``--batch`` calls a round trip), from ``--clients``
processes, for ``--seconds`` each of three mixes:

transcript  a Phonic transcript line's record (about 0.3 KB);
snapshot    a ``conversation_updated`` record, the conversation of every
            turn count from 1 to 20 in turn (each turn with every field of
            Phonic's example: 0.8 to 14 KB, 8 KB on average);
phonic      what a Phonic call writes each second: one of each.

Every write is a new key of one of ``--calls`` calls (spread over the
clients), to an events stream trimmed to about 100,000 entries, as the
workers do by default, so trimming is paid for.  Figures: events written a
second (all written, none refused, or the run fails); Redis's own CPU per
event (``/proc/PID/stat``, its whole process) and so the events one fully
busy core takes, which is the node's ceiling whatever the clients can send;
megabytes a second into Redis; the memory of an events stream entry and of
a key in a call's written-keys set (``MEMORY USAGE``).
"""

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import livecall
from livecall.phonic import PHONIC

from . import _payloads
from ._redis import RedisServer
from ._report import Row, number, render

NAME = "redis_writes"
FULL = dict(seconds=5.0, clients=2, batch=100, calls=1000)
QUICK = dict(seconds=0.5, clients=1, batch=20, calls=10)
MIXES = ("transcript", "snapshot", "phonic")
TURNS = 20
REQUESTS, GROUP, EVENTS = "livecall:requests", "livecall-workers", "livecall:events"
DEAD = "livecall:requests:dead"
#: The workers' defaults: the events stream's trim, and how long a call's written keys are kept.
MAXLEN, KEY_TTL = 100_000, 86_400


def records() -> dict[str, list[str]]:
    """The events' JSON as a worker writes them: transcript lines, and snapshots of 1 to 20 turns."""
    call = livecall.Call(provider="phonic", id=_payloads.CONVERSATION_ID)
    received = datetime.now(timezone.utc)
    decoder = PHONIC.new_decoder()
    snapshots = [
        json.dumps(livecall.to_record(call, decoder.decode(frame.encode(), received)))
        for frame in _payloads.snapshots(TURNS)
    ]
    lines = [
        json.dumps(
            livecall.to_record(call, livecall.Transcript(text, role, item_idx=index, received_at=received))
        )
        for index, (role, text) in enumerate(_payloads._LINES)
    ]
    return {"transcript": lines, "snapshot": snapshots}


def _mix(name: str, payloads: dict[str, list[str]]) -> list[str]:
    if name == "phonic":
        return [
            event
            for pair in zip(payloads["snapshot"], _cycle(payloads["transcript"], TURNS))
            for event in pair
        ]
    return payloads[name]


def _cycle(items: list[str], count: int) -> list[str]:
    return [items[index % len(items)] for index in range(count)]


def _request_id(client: int, call: int) -> str:
    return f"1700000000000-{client * 1_000_000 + call}"


def _writer(
    url: str, client: int, calls: int, batch: int, events: list[str], start_at: float, until: float, out: Any
) -> None:
    """One client process: writes from ``start_at`` until ``until`` (wall-clock times), then says
    how many were written and how many refused."""
    import redis

    from livecall_redis import Scripts

    time.sleep(max(0.0, start_at - time.time()))
    connection = redis.Redis.from_url(url, decode_responses=True)
    scripts = Scripts(connection, REQUESTS, GROUP, EVENTS, DEAD)
    written, refused, serial = 0, 0, 0
    while time.time() < until:
        writes = []
        for _ in range(batch):
            call = serial % calls
            request_id = _request_id(client, call)
            event = events[serial % len(events)]
            key = f"item:{client:08x}{serial:024x}"  # as long as a line's key
            writes.append((1, request_id, f"conv_{client}-{call}", key, event, MAXLEN, KEY_TTL, None))
            serial += 1
        for outcome in scripts.write_many(writes):
            if outcome == 1:
                written += 1
            else:
                refused += 1
    connection.close()
    out.put((written, refused))


def _one_mix(
    redis: RedisServer, mix: str, events: list[str], seconds: float, clients: int, batch: int, calls: int
):
    client = redis.client
    client.flushall()
    for writer in range(clients):  # every call's fence, at token 1: every write is taken
        pipe = client.pipeline(transaction=False)
        for call in range(calls):
            pipe.hset(f"{REQUESTS}:fence:{_request_id(writer, call)}", "token", 1)
        pipe.execute()
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 2.0  # every client starts then, once it has imported what it needs
    until = start_at + seconds
    processes = [
        context.Process(
            target=_writer, args=(redis.url, writer, calls, batch, events, start_at, until, results)
        )
        for writer in range(clients)
    ]
    for process in processes:
        process.start()
    time.sleep(max(0.0, start_at - time.time()))
    cpu_before = redis.cpu_s()
    counts = [results.get(timeout=seconds + 60) for _ in processes]
    cpu, wall = redis.cpu_s() - cpu_before, time.time() - start_at
    for process in processes:
        process.join(10)
    written = sum(count[0] for count in counts)
    refused = sum(count[1] for count in counts)
    if refused:
        raise SystemExit(f"{mix}: {refused} writes refused: the benchmark is wrong")
    entries = client.xlen(EVENTS)
    stream_bytes = client.memory_usage(EVENTS, samples=0) or 0
    keys_set = f"{EVENTS}:keys:conv_0-0"
    members = client.scard(keys_set)
    set_bytes = client.memory_usage(keys_set, samples=0) or 0
    event_bytes = sum(len(event) for event in events) / len(events)
    return dict(
        mix=mix,
        events=written,
        seconds=wall,
        events_per_s=written / wall,
        redis_cpu_s=cpu,
        redis_cpu_us_per_event=cpu / written * 1e6,
        events_per_core_s=written / cpu if cpu else 0.0,
        event_kb=event_bytes / 1000,
        mb_per_s=written * event_bytes / wall / 1e6,
        stream_entries=entries,
        stream_bytes_per_entry=stream_bytes / entries if entries else 0.0,
        written_keys_per_call=members,
        written_key_bytes=set_bytes / members if members else 0.0,
    )


def run(seconds: float, clients: int, batch: int, calls: int) -> dict[str, Any]:
    payloads = records()
    folder = Path(tempfile.mkdtemp(prefix="livecall-bench-redis-"))
    redis = RedisServer(folder, "redis_writes")
    try:
        version = redis.client.info("server")["redis_version"]
        mixes = [_one_mix(redis, mix, _mix(mix, payloads), seconds, clients, batch, calls) for mix in MIXES]
    finally:
        redis.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return dict(redis=version, clients=clients, batch=batch, calls=calls, mixes=mixes)


def table(result: dict[str, Any]) -> list[Row]:
    rows = []
    for mix in result["mixes"]:
        name = mix["mix"]
        rows += [
            Row(
                f"{name}: events written a second",
                f"{number(mix['events_per_s'])} ({mix['event_kb']:.2f} KB each)",
            ),
            Row(f"{name}: Redis CPU per event", f"{number(mix['redis_cpu_us_per_event'])} us"),
            Row(f"{name}: events one busy Redis core takes a second", number(mix["events_per_core_s"])),
            Row(f"{name}: into Redis", f"{number(mix['mb_per_s'])} MB/s"),
            Row(
                f"{name}: an events stream entry in memory", f"{number(mix['stream_bytes_per_entry'])} bytes"
            ),
            Row(f"{name}: a written key in memory", f"{number(mix['written_key_bytes'])} bytes"),
        ]
    return rows


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.redis_writes", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--seconds", type=float, default=FULL["seconds"], help="per mix (default: %(default)s)"
    )
    parser.add_argument(
        "--clients", type=int, default=FULL["clients"], help="writing processes (default: %(default)s)"
    )
    parser.add_argument(
        "--batch", type=int, default=FULL["batch"], help="writes a round trip (default: %(default)s)"
    )
    parser.add_argument(
        "--calls", type=int, default=FULL["calls"], help="calls per client (default: %(default)s)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check it runs")
    parser.add_argument("--output", type=Path, help="also write the results here, as JSON")
    args = parser.parse_args(argv)
    sizes = (
        QUICK
        if args.quick
        else dict(seconds=args.seconds, clients=args.clients, batch=args.batch, calls=args.calls)
    )
    result = run(**sizes)
    title = (
        f"redis_writes: Redis {result['redis']}, {result['clients']} client process(es), "
        f"{result['batch']} writes a round trip, {os.cpu_count()} cores"
    )
    print(render(title, {NAME: table(result)}))
    if args.output is not None:
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
