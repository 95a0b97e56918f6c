"""(3) Concurrency: one process watching N calls at once, a transcript per call per second.

Each N runs in a fresh process (``python -m benchmarks.concurrency SIDE N
SECONDS``) so that its memory is its own, against a server in yet another
process.  ``livecall``: N ``HiyaClient`` sharing one plugin manager and the
process's hub, started from one thread with ``start(wait=False)``; the plugin
notes each transcript's delay from the server's send and checks each call's
order.  ``asyncio``: the peer a user would otherwise pick, the ``websockets``
library's asyncio client, N connections in one event loop, a handler that
parses each message and notes the same.  Pacing starts once all N are
connected, spread evenly over the second, so the figures describe the steady
state.  Each N runs ``rounds`` times, the two sides taking turns: a figure
is the median of the rounds with its range, and the CPU ratio the median of
each round's livecall / peer.  ``idle``: N livecall calls that get no event for ``seconds``, pinging
every 20 s: what watching costs between events.  ``tls``: livecall's calls
over ``wss://`` to the same server behind TLS, with a self-signed certificate.
"""

import asyncio
import json
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import livecall
from livecall.plugins import create_plugin_manager
from livecall.testing._tls import self_signed_certificate

from ._report import Row, number, verdict
from ._server import Script, ServerProcess
from ._stats import Usage, percentiles, raise_open_files_limit, rss_mb
from .throughput import hiya_client

NAME = "concurrency"
FULL = dict(
    calls=(1000, 5000, 10000), seconds=10, rounds=3, idle_calls=10000, idle_seconds=30, tls_calls=3000
)
QUICK = dict(calls=(3,), seconds=1, rounds=1, idle_calls=3, idle_seconds=1, tls_calls=3)
SIDES = ("livecall", "asyncio")
#: Targets: the p99 at 5,000 and 10,000 calls, memory and CPU at 10,000, idle CPU.
P99_MS = {5000: 10.0, 10000: 50.0}
TARGET_RSS_MB, TARGET_CPU_PER_S, IDLE_CPU_PER_S = 200, 0.5, 0.05


class Tracker:
    """Each transcript's delay from the server's send, and whether it came in its call's order."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self.reordered = 0
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def note(self, call_id: str, text: str, offset: float) -> None:
        delay = 1000 * (time.time() - offset)
        number = int(text.rsplit(" ", 1)[-1]) if text[-1:].isdigit() else 0
        with self._lock:
            self.ms.append(delay)
            if number < self._last.get(call_id, -1):
                self.reordered += 1
            self._last[call_id] = number

    @livecall.hookimpl
    def livecall_transcript(self, call: livecall.Call, transcript: livecall.Transcript) -> None:
        self.note(call.id, transcript.text, transcript.offset or 0.0)


def watch_livecall(
    calls: int, seconds: int, idle: bool = False, tls: bool = False, metrics: bool = False
) -> dict[str, Any]:
    """Watch ``calls`` calls in this process until each has had ``seconds`` transcripts.

    With ``metrics`` the process serves its metrics endpoint and a scraper
    reads ``/metrics`` once a second meanwhile (a busy Prometheus scrapes every 15).
    """
    raise_open_files_limit()
    scraping = _scrape_every_second() if metrics else None
    baseline_mb = rss_mb()
    tracker = Tracker()
    plugin_manager = create_plugin_manager(autoload=False)
    plugin_manager.register(tracker)
    folder = tempfile.TemporaryDirectory()
    certfile, keyfile = map(str, self_signed_certificate(Path(folder.name))) if tls else (None, None)
    context = ssl.create_default_context(cafile=certfile) if tls else None
    script = Script(
        count=0 if idle else seconds,
        burst=False,
        rate=1.0,
        connections=calls,
        hold=seconds + 2 if idle else 0,  # idle calls outlast the quiet window measured
        certfile=certfile,
        keyfile=keyfile,
    )
    with folder, ServerProcess(script) as server:
        clients = [
            hiya_client(server.url, plugin_manager=plugin_manager, ssl_context=context) for _ in range(calls)
        ]
        started = time.perf_counter()
        for client in clients:
            client.start(wait=False)
        for client in clients:
            client._ready.wait(60)  # all connected: the server's pacing starts now
        connect_s = time.perf_counter() - started
        usage = Usage().start()
        threads = threading.active_count()
        if idle:  # only the quiet time: the calls end after it
            livecall.wait_all(clients, timeout=seconds)
            figures = usage.stop()
        finished = livecall.wait_all(clients, timeout=seconds + 60)
        if not idle:
            figures = usage.stop()
        unfinished = 0 if finished else sum(not client.finished for client in clients)
        for client in clients:
            client.close(timeout=0)
    if scraping is not None:
        scraping.set()
    return _row(calls, threads, baseline_mb, connect_s, unfinished, server.stats, tracker, figures)


def _scrape_every_second() -> threading.Event:
    """Serve metrics, and read them once a second until the returned event is set."""
    from livecall import observability

    endpoint = observability.serve(0)
    done = threading.Event()

    def scrape() -> None:
        while not done.wait(1.0):
            with urllib.request.urlopen(f"{endpoint.url}/metrics", timeout=10) as answer:
                answer.read()
        endpoint.close()

    threading.Thread(target=scrape, name="scraper", daemon=True).start()
    return done


def watch_asyncio(calls: int, seconds: int) -> dict[str, Any]:
    """The same calls through ``websockets``' asyncio client, N connections in one loop."""
    try:
        from websockets.asyncio.client import connect
    except ImportError:  # websockets before 13: the same client, under its older name
        from websockets.client import connect  # type: ignore[no-redef]

    raise_open_files_limit()
    baseline_mb = rss_mb()
    tracker = Tracker()
    measured: dict[str, Any] = {}

    async def one(url: str, index: int, connected: asyncio.Event, all_in: list[int]) -> None:
        async with connect(url, ping_interval=20, ping_timeout=10, max_size=2**24) as ws:
            all_in[0] += 1
            if all_in[0] == calls:
                connected.set()
            async for message in ws:
                data = json.loads(message)
                if data.get("type") == "transcript":
                    tracker.note(str(index), data["msg"], data["offset"])
                elif data.get("type") == "callEnd":
                    return

    async def main(url: str) -> None:
        connected, all_in = asyncio.Event(), [0]
        started = time.perf_counter()
        tasks = [asyncio.create_task(one(url, index, connected, all_in)) for index in range(calls)]
        await asyncio.wait_for(connected.wait(), 120)
        measured["connect_s"] = time.perf_counter() - started
        usage = Usage().start()
        measured["threads"] = threading.active_count()
        done, pending = await asyncio.wait(tasks, timeout=seconds + 60)
        measured["figures"] = usage.stop()
        measured["unfinished"] = len(pending)
        for task in pending:
            task.cancel()

    with ServerProcess(Script(count=seconds, burst=False, rate=1.0, connections=calls)) as server:
        asyncio.run(main(server.url))
    return _row(
        calls,
        measured["threads"],
        baseline_mb,
        measured["connect_s"],
        measured["unfinished"],
        server.stats,
        tracker,
        measured["figures"],
    )


def _row(
    calls: int,
    threads: int,
    baseline_mb: float,
    connect_s: float,
    unfinished: int,
    stats: dict[str, Any],
    tracker: Tracker,
    figures: dict[str, float],
) -> dict[str, Any]:
    received = len(tracker.ms)
    return dict(
        calls=calls,
        threads=threads,
        baseline_rss_mb=baseline_mb,
        connect_s=connect_s,
        unfinished=unfinished,
        sent=stats["frames_sent"],
        received=received,
        reordered=tracker.reordered,
        latency_ms=percentiles(tracker.ms, (50, 99)) if tracker.ms else {},
        cpu_us_per_event=1e6 * figures["cpu_s"] / received if received else None,
        **figures,
    )


def _measure(side: str, calls: int, seconds: int) -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.concurrency", side, str(calls), str(seconds)],
        cwd=root,
        check=True,
        stdout=subprocess.PIPE,
    ).stdout
    return dict(json.loads(output))


def run(
    calls: Sequence[int], seconds: int, rounds: int, idle_calls: int, idle_seconds: int, tls_calls: int
) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    peer: list[dict[str, Any]] = []
    for count in calls:
        pairs = [
            (_measure("livecall", count, seconds), _measure("asyncio", count, seconds)) for _ in range(rounds)
        ]
        runs.append(_over_rounds([watched for watched, _ in pairs]))
        peer.append(_over_rounds([other for _, other in pairs]))
        ratios = [watched["cpu_us_per_event"] / other["cpu_us_per_event"] for watched, other in pairs]
        runs[-1]["cpu_ratio_to_peer"] = dict(
            median=statistics.median(ratios), min=min(ratios), max=max(ratios)
        )
    idle = _measure("idle", idle_calls, idle_seconds)
    tls = _measure("tls", tls_calls, seconds)
    return dict(seconds=seconds, rounds=rounds, runs=runs, peer=peer, idle=idle, tls=tls)


def _over_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One side's figures at one N: medians over the rounds, with the CPU's range; events,
    losses and reorderings added up; the highest memory and the longest stall."""

    def median(name: str) -> float:
        return float(statistics.median(each[name] for each in rounds))

    cpu_per_s = [each["cpu_per_s"] for each in rounds]
    per_event = [each["cpu_us_per_event"] for each in rounds]
    return dict(
        calls=rounds[0]["calls"],
        rounds=len(rounds),
        threads=max(each["threads"] for each in rounds),
        connect_s=median("connect_s"),
        unfinished=sum(each["unfinished"] for each in rounds),
        sent=sum(each["sent"] for each in rounds),
        received=sum(each["received"] for each in rounds),
        reordered=sum(each["reordered"] for each in rounds),
        latency_ms=dict(
            p50=statistics.median(each["latency_ms"]["p50"] for each in rounds),
            p99=statistics.median(each["latency_ms"]["p99"] for each in rounds),
            max=max(each["latency_ms"]["max"] for each in rounds),
        ),
        cpu_per_s=statistics.median(cpu_per_s),
        cpu_per_s_range=[min(cpu_per_s), max(cpu_per_s)],
        cpu_us_per_event=statistics.median(per_event),
        cpu_us_per_event_range=[min(per_event), max(per_event)],
        peak_rss_mb=max(each["peak_rss_mb"] for each in rounds),
        each_round=rounds,
    )


def table(result: dict[str, Any]) -> list[Row]:
    rows = []
    for watched, other in zip(result["runs"], result.get("peer", [None] * len(result["runs"]))):
        calls = watched["calls"]
        lossless = watched["received"] == watched["sent"] == calls * result["seconds"] * watched["rounds"]
        met = lossless and watched["reordered"] == 0
        target = "no loss, in order"
        p99 = watched["latency_ms"].get("p99", float("nan"))
        if calls in P99_MS:
            target += f", p99 < {P99_MS[calls]:g} ms"
            met = met and p99 < P99_MS[calls]
        if calls == max(P99_MS):
            target += f", < {TARGET_RSS_MB} MB, <= {TARGET_CPU_PER_S} CPU s/s"
            met = met and watched["peak_rss_mb"] < TARGET_RSS_MB and watched["cpu_per_s"] <= TARGET_CPU_PER_S
        rows.append(Row(f"{calls} calls, livecall", _figures(watched), target, verdict(met)))
        if other is not None:
            rows.append(Row(f"{calls} calls, websockets asyncio", _figures(other)))
            ratio = watched["cpu_ratio_to_peer"]
            memory = watched["peak_rss_mb"] / other["peak_rss_mb"]
            rows.append(
                Row(
                    f"{calls} calls, livecall / asyncio",
                    f"CPU per event {ratio['median']:.2f}x ({ratio['min']:.2f}-{ratio['max']:.2f}), "
                    f"memory {memory:.2f}x",
                    "CPU <= 1x, memory <= 1.5x",
                    verdict(ratio["median"] <= 1 and memory <= 1.5),
                )
            )
    tls = result.get("tls")
    if tls is not None:
        lossless = tls["received"] == tls["sent"] == tls["calls"] * result["seconds"]
        rows.append(
            Row(f"{tls['calls']} calls over TLS, livecall", _figures(tls), "no loss", verdict(lossless))
        )
    idle = result.get("idle")
    if idle is not None:
        rows.append(
            Row(
                f"{idle['calls']} idle calls",
                f"{idle['threads']} threads, {idle['peak_rss_mb']:.0f} MB, {idle['cpu_per_s']:.3f} CPU s/s",
                f"< {IDLE_CPU_PER_S} CPU s/s",
                verdict(idle["cpu_per_s"] < IDLE_CPU_PER_S),
            )
        )
    return rows


def _figures(watched: dict[str, Any]) -> str:
    p99 = watched["latency_ms"].get("p99")
    per_event = watched["cpu_us_per_event"]
    cpu = f"{watched['cpu_per_s']:.3f} CPU s/s ({number(per_event) if per_event else '-'} us/event)"
    if watched.get("rounds", 1) > 1:  # medians, and the CPU's range over the rounds
        low, high = watched["cpu_per_s_range"]
        cpu = f"{cpu}, {low:.3f}-{high:.3f} in {watched['rounds']} rounds"
    return (
        f"{watched['threads']} threads, {watched['peak_rss_mb']:.0f} MB, {cpu}, "
        f"p99 {number(p99) if p99 else '-'} ms, "
        f"{watched['received']}/{watched['sent']} events, {watched['reordered']} reordered"
    )


if __name__ == "__main__":
    side, count, duration = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if side == "asyncio":
        print(json.dumps(watch_asyncio(count, duration)))
    else:
        print(
            json.dumps(
                watch_livecall(
                    count, duration, idle=side == "idle", tls=side == "tls", metrics=side == "metrics"
                )
            )
        )
