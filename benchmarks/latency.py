"""(2) Latency: from the server's send to the hook call, at a steady rate.

The server stamps each transcript's ``offset`` with ``time.time()`` just
before writing it; the hook subtracts that from its own ``time.time()`` (both
processes read the same wall clock).  The raw loop (recv + json.loads) is
measured the same way, as the floor.
"""

import json
import time
from typing import Any

import websocket

import livecall

from ._report import Row, slashed, verdict
from ._server import Script, ServerProcess
from ._stats import histogram, percentiles
from .throughput import hiya_client

NAME = "latency"
FULL = dict(rate=1000, seconds=10.0)
QUICK = dict(rate=200, seconds=0.5)
EDGES_MS = (0.1, 0.2, 0.5, 1, 2, 5, 10)
POINTS = "p50/p90/p99/p99.9/max"


class Delays:
    """A plugin noting how long each transcript took from the server's send to here."""

    def __init__(self) -> None:
        self.ms: list[float] = []

    @livecall.hookimpl
    def livecall_transcript(self, call: livecall.Call, transcript: livecall.Transcript) -> None:
        self.ms.append(1000 * (time.time() - transcript.offset))


def livecall_delays(url: str) -> list[float]:
    delays = Delays()
    hiya_client(url, plugins=[delays]).run()
    return delays.ms


def raw_delays(url: str) -> list[float]:
    ws = websocket.WebSocket(skip_utf8_validation=True)
    ws.connect(url)
    delays = []
    while True:
        message = json.loads(ws.recv())
        if message["type"] != "transcript":
            break
        delays.append(1000 * (time.time() - message["offset"]))
    ws.close()
    return delays


def _summary(delays: list[float]) -> dict[str, Any]:
    return dict(
        samples=len(delays),
        ms=percentiles(delays, (50, 90, 99, 99.9)),
        histogram=histogram(delays, EDGES_MS),
    )


def run(rate: int, seconds: float) -> dict[str, Any]:
    count = int(rate * seconds)
    with ServerProcess(Script(count=count, burst=False, rate=rate)) as server:
        results = {"livecall": livecall_delays(server.url), "raw": raw_delays(server.url)}
    return dict(
        rate=rate,
        seconds=seconds,
        sent_per_run=count,
        lost={name: count - len(delays) for name, delays in results.items()},
        **{name: _summary(delays) for name, delays in results.items()},
    )


def table(result: dict[str, Any]) -> list[Row]:
    ms = result["livecall"]["ms"]
    met = ms["p50"] < 0.5 and ms["p99"] < 2
    lost = sum(result["lost"].values())
    return [
        Row(f"livecall ms {POINTS}", slashed(ms.values()), "p50 < 0.5, p99 < 2", verdict(met)),
        Row(f"raw loop ms {POINTS}", slashed(result["raw"]["ms"].values())),
        Row(f"lost (of {result['sent_per_run']} per run)", str(lost), "0", verdict(lost == 0)),
    ]


def histograms(result: dict[str, Any]) -> list[str]:
    return [
        "latency, livecall: server send to hook",
        *result["livecall"]["histogram"],
        "latency, raw loop: server send to json.loads done",
        *result["raw"]["histogram"],
    ]
