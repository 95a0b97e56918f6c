"""One ``livecall worker`` process holding N paced Phonic calls, beside plain clients doing the same.

``python -m benchmarks.worker [--calls N ...] [--seconds S]`` (needs
``redis-server`` on the PATH and the Redis plugin installed).  For each N:

(worker) a real ``livecall worker`` process (``--calls N``, the other
         settings their defaults) takes N requests from a real
         ``redis-server`` started here, watches the N calls, renews their
         leases and writes every event, fenced and keyed, to the events
         stream;
(plain)  N ``PhonicClient``\\ s in one process, on the hub, with one plugin
         writing every event (``livecall.to_json``) with ``XADD``,
         pipelined by a thread of its own: the least a user could write.

The calls are played by a server in another process (``_server.py``'s,
sending Phonic snapshots): one ``conversation-updated`` per call per second,
the conversation growing by one turn a snapshot to 20 turns (each with
every field of the spec's example, 13 KB at 20), for ``--seconds``
snapshots, then ``conversation-ended``.  Pacing starts once all N are
connected, spread evenly over the second.  Each snapshot carries its send
time (a key of the conversation no field holds, which the events stream
keeps), so the latency of each ``conversation_updated`` entry is its stream
id's time less that.

Figures, over the paced window (first snapshot to every call over): the
process's CPU seconds per second (``/proc/PID/stat``), Redis's too; event
latency p50/p99/max; leases renewed in time (every pending entry's idle
time, sampled each second, never above ``--renew`` + 2 s) and the longest
idle time; events lost and written twice (every call's lines, snapshots
and end on the stream, each key once); "taken over" lines in the worker's
log (there is no other worker: any is false).  Linux only (``/proc``).
"""

import argparse
import heapq
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

import attrs

from . import _payloads
from ._redis import RedisServer, cpu_seconds
from ._report import Row, number, render, verdict
from ._server import Script, Server
from ._stats import percentiles, raise_open_files_limit

NAME = "worker"
FULL = dict(calls=(250, 500, 1000), seconds=30)
QUICK = dict(calls=(5,), seconds=3)
SIDES = ("worker", "plain")
TURNS = 20
#: Seconds from the first snapshot after which the latency is the steady state's.
SETTLING = 5
#: The worker's defaults, which the run keeps: a lease renewed later than ``RENEW + 2`` s is late.
LEASE, RENEW = 30.0, 10.0
EVENTS, REQUESTS, GROUP = "livecall:events", "livecall:requests", "livecall-workers"
#: Targets at 1,000 calls: latency p99, and the worker's CPU against plain clients'; at every N,
#: nothing lost or written twice and every lease renewed in time, whatever the latency.
TARGETS_AT, P99_MS, CPU_RATIO = 1000, 250.0, 1.2
_ROOT = Path(__file__).resolve().parent.parent
_SENT = '"bench_sent_at": 0.0'
_API_KEY = "bench-phonic-key"


# --- the server: paced Phonic snapshots -----------------------------------------------------


class PhonicServer(Server):
    """``_server.Server`` sending paced Phonic snapshots, each stamped with its send time;
    prints ``paced`` once the pacing starts."""

    def __init__(self, script: Script):
        super().__init__(script)
        items = [_payloads._item(index) for index in range(TURNS)]
        self.templates = []
        for count in range(1, TURNS + 1):
            message = json.loads(_payloads.snapshot(items[:count]))
            message["conversation"]["bench_sent_at"] = 0.0
            self.templates.append(json.dumps(message))

    def _start_pacing(self) -> None:
        super()._start_pacing()
        print("paced", flush=True)

    def _send_due(self) -> None:
        from livecall.testing._wire import TEXT, frame

        now = time.monotonic()
        while self.schedule and self.schedule[0][0] <= now:
            due, _, peer = heapq.heappop(self.schedule)
            if peer.ended:
                continue
            if peer.sent == self.script.count:
                self._send(peer, self.ending)
                peer.ended = True
                continue
            template = self.templates[min(peer.sent, TURNS - 1)]
            payload = template.replace(_SENT, f'"bench_sent_at": {time.time()!r}', 1)
            self._send(peer, frame(TEXT, payload.encode()))
            peer.sent += 1
            self.counts["frames_sent"] += 1
            heapq.heappush(self.schedule, (due + 1.0 / self.script.rate, next(self.order), peer))


class Child:
    """A process of this benchmark (``python -m benchmarks.worker ROLE ...``) or any command, whose
    output lines are read on a thread as they come."""

    def __init__(self, argv: list[str], env: Optional[dict[str, str]] = None, log: Optional[Path] = None):
        self.lines: queue.Queue[str] = queue.Queue()
        output = log.open("wb") if log is not None else subprocess.PIPE
        self.process = subprocess.Popen(
            argv,
            cwd=_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=output,
            stderr=None if log is None else output,
        )
        if log is None:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.decode().strip())

    def line(self, timeout: float) -> str:
        return self.lines.get(timeout=timeout)

    def cpu_s(self) -> float:
        return cpu_seconds(self.process.pid)

    def close(self, timeout: float = 60) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _serve(calls: int, seconds: int) -> Child:
    script = Script(count=seconds, provider="phonic", burst=False, rate=1.0, connections=calls)
    config = json.dumps(attrs.asdict(script))
    return Child([sys.executable, "-m", "benchmarks.worker", "serve", config])


class LeaseWatch:
    """Every pending request's idle time, read once a second; the most each reached."""

    def __init__(self, client: Any):
        self._client = client
        self.idle_ms: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                entries = self._client.xpending_range(REQUESTS, GROUP, "-", "+", 1_000_000)
            except Exception:  # the group is not there yet
                continue
            for entry in entries:
                request = entry["message_id"]
                self.idle_ms[request] = max(self.idle_ms.get(request, 0), entry["time_since_delivered"])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# --- one run ----------------------------------------------------------------------------------


def measure(side: str, calls: int, seconds: int, folder: Path) -> dict[str, Any]:
    """One side at ``calls`` calls, against its own server and an emptied Redis."""
    server = _serve(calls, seconds)
    port = int(server.line(30))
    url = f"ws://127.0.0.1:{port}"
    redis_server = RedisServer(folder, "worker")
    client = redis_server.client
    log = folder / f"{side}-{calls}.log"
    env = dict(os.environ, PHONIC_API_KEY=_API_KEY, LIVECALL_DISABLE_PLUGIN_AUTOLOAD="1")
    leases: Optional[LeaseWatch] = None
    maxlen = str(2 * calls * (seconds + TURNS + 1))  # the stream keeps every event of the run
    try:
        if side == "worker":
            pipe = client.pipeline(transaction=False)
            for number in range(calls):
                pipe.xadd(REQUESTS, {"provider": "phonic", "conversation_id": f"conv_bench-{number}"})
            pipe.execute()
            argv = [
                sys.executable,
                "-m",
                "livecall",
                "-p",
                "livecall_redis",
                "worker",
                "--redis",
                redis_server.url,
            ]
            argv += ["--calls", str(calls), "--phonic-url", url, "--events-maxlen", maxlen]
            measured = Child(argv, env=env, log=log)
            leases = LeaseWatch(client)
        else:
            argv = [
                sys.executable,
                "-m",
                "benchmarks.worker",
                "plain",
                url,
                str(calls),
                redis_server.url,
                maxlen,
            ]
            measured = Child(argv, env=env)
        if server.line(300) != "paced":
            raise RuntimeError("the server did not start pacing")
        began, cpu, redis_cpu = time.monotonic(), measured.cpu_s(), redis_server.cpu_s()
        if side == "worker":
            _wait(lambda: client.xlen(REQUESTS) == 0 or measured.process.poll() is not None, seconds + 600)
        else:
            if measured.line(seconds + 600) != "done":
                raise RuntimeError("the plain clients did not finish")
        wall = time.monotonic() - began
        cpu, redis_cpu = measured.cpu_s() - cpu, redis_server.cpu_s() - redis_cpu
        if leases is not None:
            leases.stop()
        if measured.process.poll() is not None:
            raise RuntimeError(f"the {side} process exited early: see {log}")
        if side == "worker":
            measured.process.send_signal(signal.SIGTERM)
        measured.close()
        server.close()
        figures = _read_stream(client, calls, seconds, keyed=side == "worker")
        figures.update(
            side=side,
            calls=calls,
            wall_s=wall,
            cpu_per_s=cpu / wall,
            redis_cpu_per_s=redis_cpu / wall,
            cpu_us_per_snapshot=1e6 * cpu / (calls * seconds),
        )
        if leases is not None:
            late = [idle for idle in leases.idle_ms.values() if idle > 1000 * (RENEW + 2)]
            figures.update(
                leases=len(leases.idle_ms),
                leases_late=len(late),
                longest_idle_s=max(leases.idle_ms.values(), default=0) / 1000,
            )
            text = log.read_text()
            figures.update(taken_over_lines=text.count("taken over"), lost_lines=text.count("lost call"))
        return figures
    finally:
        for child in (server,):
            if child.process.poll() is None:
                child.process.kill()
        redis_server.stop()


def _wait(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the calls did not end")
        time.sleep(0.2)  # state in other processes: polled


def _read_stream(client: Any, calls: int, seconds: int, keyed: bool) -> dict[str, Any]:
    """Latency of every snapshot's entry, and what is missing or twice on the stream."""
    latency_ms: list[float] = []
    at_ms: list[int] = []
    keys: set[tuple[str, str]] = set()
    twice = 0
    by_call: dict[str, dict[str, int]] = {}
    last = "-"
    while True:
        entries = client.xrange(EVENTS, last, "+", count=2000)
        if last != "-":
            entries = entries[1:]
        if not entries:
            break
        for entry_id, fields in entries:
            last = entry_id
            text = fields["event"]
            kind = text[11 : text.index('"', 11)]  # '{"event": "KIND", ...'
            counts = by_call.setdefault(fields["call_id"], {})
            counts[kind] = counts.get(kind, 0) + 1
            if keyed:
                key = (fields["call_id"], fields["key"])
                twice += key in keys
                keys.add(key)
            if kind == "conversation_updated":
                sent = json.loads(text)["conversation"]["bench_sent_at"]
                at_ms.append(int(entry_id.split("-")[0]))
                latency_ms.append(at_ms[-1] - 1000 * sent)
    expected = {"conversation_updated": seconds, "transcript": min(seconds, TURNS), "conversation_ended": 1}
    lost = 0
    for index in range(calls):
        counts = by_call.get(f"conv_bench-{index}", {})
        lost += sum(max(0, want - counts.get(kind, 0)) for kind, want in expected.items())
    # The first seconds, when every call's first snapshots come, apart: the steady state after them.
    steady = [late for at, late in zip(at_ms, latency_ms) if at >= min(at_ms, default=0) + 1000 * SETTLING]
    return dict(
        events=sum(sum(counts.values()) for counts in by_call.values()),
        expected=calls * sum(expected.values()),
        lost=lost,
        written_twice=twice,
        latency_ms=percentiles(latency_ms, (50, 99)) if latency_ms else {},
        steady_latency_ms=percentiles(steady, (50, 99)) if steady else {},
    )


# --- the plain side: clients in one process, pipelined XADD -----------------------------------


def plain(url: str, calls: int, redis_url: str, maxlen: int) -> None:
    """N Phonic clients in this process writing each event with a pipelined ``XADD``; prints
    ``done`` once every call is over, then waits for stdin to close."""
    import redis

    import livecall
    from livecall.plugins import create_plugin_manager

    raise_open_files_limit()
    client = redis.Redis.from_url(redis_url)
    pending: queue.Queue[Optional[tuple[str, str]]] = queue.Queue(1000)

    def write() -> None:
        while True:
            batch = [pending.get()]
            while len(batch) < 100:
                try:
                    batch.append(pending.get_nowait())
                except queue.Empty:
                    break
            pipe = client.pipeline(transaction=False)
            for item in batch:
                if item is None:
                    pipe.execute()
                    return
                pipe.xadd(EVENTS, {"call_id": item[0], "event": item[1]}, maxlen=maxlen, approximate=True)
            pipe.execute()

    class Writer:
        @livecall.hookimpl
        def livecall_event(self, call: livecall.Call, event: livecall.Event) -> None:
            pending.put((call.id, livecall.to_json(call, event)))

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    plugin_manager = create_plugin_manager(autoload=False)
    plugin_manager.register(Writer())
    clients = [
        livecall.PhonicClient(
            f"conv_bench-{number}", api_key=_API_KEY, url=url, plugin_manager=plugin_manager
        )
        for number in range(calls)
    ]
    for each in clients:
        each.start(wait=False)
    livecall.wait_all(clients)
    pending.put(None)
    writer.join()
    print("done", flush=True)
    sys.stdin.read()


# --- the whole benchmark ------------------------------------------------------------------------


def run(calls: tuple[int, ...], seconds: int) -> dict[str, Any]:
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for count in calls:
            for side in SIDES:
                print(f"  {side}, {count} calls ...", file=sys.stderr, flush=True)
                runs.append(measure(side, count, seconds, Path(folder)))
    return dict(seconds=seconds, turns=TURNS, runs=runs)


def table(result: dict[str, Any]) -> list[Row]:
    rows = []
    by = {(each["side"], each["calls"]): each for each in result["runs"]}
    for calls in sorted({calls for _, calls in by}):
        worker, plain_clients = by.get(("worker", calls)), by.get(("plain", calls))
        if worker is not None:
            rows.append(_worker_row(calls, worker))
        if plain_clients is not None:
            rows.append(Row(f"{calls} calls, plain clients", _figures(plain_clients)))
        if worker is not None and plain_clients is not None:
            ratio = worker["cpu_per_s"] / plain_clients["cpu_per_s"]
            target = f"<= {CPU_RATIO:g}x" if calls == TARGETS_AT else ""
            met = verdict(ratio <= CPU_RATIO) if target else ""
            rows.append(Row(f"{calls} calls, worker / plain CPU", f"{ratio:.2f}x", target, met))
    return rows


def _worker_row(calls: int, each: dict[str, Any]) -> Row:
    figure = (
        f"{_figures(each)}, {each['written_twice']} twice, "
        f"{each['leases'] - each['leases_late']}/{each['leases']} leases in time "
        f"(longest idle {each['longest_idle_s']:.1f} s), {each['taken_over_lines']} 'taken over' lines"
    )
    met = each["lost"] == 0 and each["written_twice"] == 0 and each["leases_late"] == 0
    met = met and each["taken_over_lines"] == 0
    target = "0 lost, 0 twice, leases in time"
    if calls == TARGETS_AT:
        target += f", p99 < {P99_MS:g} ms"
        met = met and each["latency_ms"].get("p99", float("nan")) < P99_MS
    return Row(f"{calls} calls, livecall worker", figure, target, verdict(met))


def _figures(each: dict[str, Any]) -> str:
    latency, steady = each["latency_ms"], each["steady_latency_ms"]
    nan = float("nan")
    return (
        f"{each['cpu_per_s']:.3f} CPU s/s ({number(each['cpu_us_per_snapshot'])} us/snapshot), "
        f"Redis {each['redis_cpu_per_s']:.3f}, p50/p99/max {number(latency.get('p50', nan))} / "
        f"{number(latency.get('p99', nan))} / {number(latency.get('max', nan))} ms "
        f"(p99 after {SETTLING} s {number(steady.get('p99', nan))} ms), "
        f"{each['events']}/{each['expected']} events, {each['lost']} lost"
    )


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--calls", type=int, nargs="+", default=list(FULL["calls"]), help="N calls, each a run"
    )
    parser.add_argument(
        "--seconds", type=int, default=FULL["seconds"], help="snapshots per call (1 a second)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the benchmark runs")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else dict(calls=tuple(args.calls), seconds=args.seconds)
    started = time.perf_counter()
    result = run(**settings)  # type: ignore[arg-type]
    title = f"livecall worker benchmark: {os.cpu_count()} cores, {time.perf_counter() - started:.0f} s"
    print(render(title, {NAME: table(result)}))
    if args.output is not None:
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role == "serve":
        raise_open_files_limit()
        stats = PhonicServer(Script(**json.loads(sys.argv[2]))).serve()
        print(json.dumps(stats), flush=True)
        os._exit(0)
    elif role == "plain":
        plain(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
    else:
        sys.exit(main())
