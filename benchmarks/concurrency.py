"""(3) Concurrency: one process watching N calls at once, a transcript per call per second.

Each N runs in a fresh process (``python -m benchmarks.concurrency N SECONDS``)
so that its memory is its own.  The clients share one plugin manager, as an
application watching many calls would; the plugin notes each transcript's
delay from the server's send.  Pacing starts once all N are connected, spread
evenly over the second, so the figures describe the steady state.
"""

import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from livecall.plugins import create_plugin_manager

from ._report import Row, number, verdict
from ._server import Script, ServerProcess
from ._stats import Usage, percentiles, raise_open_files_limit, rss_mb
from .latency import Delays
from .throughput import hiya_client

NAME = "concurrency"
FULL = dict(calls=(10, 100, 500, 1000), seconds=15)
QUICK = dict(calls=(3,), seconds=1)
#: The target holds for this many calls; smaller runs show how the figures grow.
TARGET_CALLS, TARGET_RSS_MB = 1000, 400


def watch(calls: int, seconds: int) -> dict[str, Any]:
    """Watch ``calls`` calls in this process until each has had ``seconds`` transcripts."""
    raise_open_files_limit()
    baseline_mb = rss_mb()
    delays = Delays()
    plugin_manager = create_plugin_manager(autoload=False)
    plugin_manager.register(delays)
    with ServerProcess(Script(count=seconds, burst=False, rate=1.0, connections=calls)) as server:
        clients = [hiya_client(server.url, plugin_manager=plugin_manager) for _ in range(calls)]
        started = time.perf_counter()
        for client in clients:
            client.start(timeout=30)
        connect_s = time.perf_counter() - started
        usage = Usage().start()
        threads = threading.active_count()
        unfinished = sum(not client.wait(timeout=seconds + 30) for client in clients)
        figures = usage.stop()
        for client in clients:
            client.close()
    return dict(
        calls=calls,
        threads=threads,
        baseline_rss_mb=baseline_mb,
        connect_s=connect_s,
        unfinished=unfinished,
        sent=server.stats["frames_sent"],
        received=len(delays.ms),
        latency_ms=percentiles(delays.ms, (50, 99)),
        **figures,
    )


def run(calls: Sequence[int], seconds: int) -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent
    rows: list[dict[str, Any]] = []
    for count in calls:
        output = subprocess.run(
            [sys.executable, "-m", "benchmarks.concurrency", str(count), str(seconds)],
            cwd=root,
            check=True,
            stdout=subprocess.PIPE,
        ).stdout
        rows.append(json.loads(output))
    return dict(seconds=seconds, runs=rows)


def table(result: dict[str, Any]) -> list[Row]:
    rows = []
    for watched in result["runs"]:
        lossless = watched["received"] == watched["sent"] == watched["calls"] * result["seconds"]
        value = (
            f"{watched['threads']} threads, {watched['peak_rss_mb']:.0f} MB, "
            f"{watched['cpu_per_s']:.3f} CPU s/s, "
            f"p99 {number(watched['latency_ms']['p99'])} ms, {watched['received']}/{watched['sent']} events"
        )
        target, met = "no loss", lossless
        if watched["calls"] == TARGET_CALLS:
            target, met = (
                f"< {TARGET_RSS_MB} MB, no loss",
                lossless and watched["peak_rss_mb"] < TARGET_RSS_MB,
            )
        rows.append(Row(f"{watched['calls']} calls", value, target, verdict(met)))
    return rows


if __name__ == "__main__":
    print(json.dumps(watch(int(sys.argv[1]), int(sys.argv[2]))))
