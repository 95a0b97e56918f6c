"""(1) Single-stream throughput: livecall against the raw websocket-client loop.

The server sends ``messages`` Hiya transcripts as fast as the socket takes
them, then ``event:callEnd``.  The readers take turns (a, b, c, d, a, b, ...)
so that noise from the machine falls on all of them alike:

(a) raw loop: ``recv()`` + ``json.loads``, UTF-8 validation off;
(b) the same loop with websocket-client's defaults (UTF-8 checked in Python);
(c) livecall: ``HiyaClient`` decoding into events, one plugin counting them;
(d) the raw loop again, reading with livecall's own protocol core instead of
    websocket-client's: what parsing alone costs when frames are read the way
    livecall reads them, so (c) / (d) is what decoding, dispatch and the
    thread hand-off cost.
"""

import importlib.util
import json
import time
from typing import Any, Callable, Optional

import websocket

import livecall
from livecall._wire.protocol import Protocol

from ._report import Row, spread_text, verdict
from ._server import Script, ServerProcess
from ._stats import spread

NAME = "throughput"
FULL = dict(messages=100_000, rounds=5)
QUICK = dict(messages=2_000, rounds=1)
VARIANTS = ("raw", "raw_utf8", "livecall", "raw_frames")
#: livecall must beat the hand-written loop it replaces, not merely come close.
TARGET_VS_RAW = 1.1


def raw_loop(url: str, skip_utf8_validation: bool, final: str = "event:callEnd") -> dict[str, float]:
    """Receive and parse until the ``final`` message; what a hand-written loop does."""
    ws = websocket.WebSocket(skip_utf8_validation=skip_utf8_validation)
    started = time.perf_counter()
    ws.connect(url)
    count = 0
    while True:
        message = json.loads(ws.recv())
        count += 1
        if message["type"] == final:
            break
    seconds = time.perf_counter() - started
    ws.close()
    return dict(messages=count, seconds=seconds)


def frames_loop(url: str) -> dict[str, float]:
    """The raw loop with websocket-client's frame reading swapped for livecall's."""
    ws = websocket.WebSocket(skip_utf8_validation=True)
    started = time.perf_counter()
    ws.connect(url)
    protocol = Protocol(time.monotonic())
    count = 0
    while True:
        protocol.receive_data(ws.sock.recv(65536), time.monotonic())
        for payload in protocol.messages_received():
            message = json.loads(payload)
            count += 1
            if message["type"] == "event:callEnd":
                seconds = time.perf_counter() - started
                ws.shutdown()  # the server's close frame may already be read: do not wait for it
                return dict(messages=count, seconds=seconds)


class Counter:
    """A plugin counting events; notes the time the call's last one arrived."""

    def __init__(self) -> None:
        self.count = 0
        self.finished_at: Optional[float] = None

    @livecall.hookimpl
    def livecall_event(self, call: livecall.Call, event: livecall.Event) -> None:
        self.count += 1
        if type(event) is livecall.CallEnded:
            self.finished_at = time.perf_counter()


def hiya_client(url: str, **options: Any) -> livecall.HiyaClient:
    """A Hiya client for the benchmark server, which takes any credentials."""
    return livecall.HiyaClient(
        token="bench-token", conversation_token="bench-conversation", user_id="bench", url=url, **options
    )


def livecall_run(url: str) -> dict[str, float]:
    count, seconds = counted_run(lambda counter: hiya_client(url, plugins=[counter]))
    return dict(messages=count, seconds=seconds)


def counted_run(new_client: Callable[[Counter], livecall.LiveClient]) -> tuple[int, float]:
    """Watch a call to its end with a ``Counter``; its events, and the seconds until the last."""
    counter = Counter()
    client = new_client(counter)
    started = time.perf_counter()
    client.run()
    if counter.finished_at is None:
        raise RuntimeError(f"the call did not end; {counter.count} events arrived")
    return counter.count, counter.finished_at - started


def _one(variant: str, url: str) -> dict[str, float]:
    if variant == "livecall":
        return livecall_run(url)
    if variant == "raw_frames":
        return frames_loop(url)
    return raw_loop(url, skip_utf8_validation=variant == "raw")


def run(messages: int, rounds: int) -> dict[str, Any]:
    runs: dict[str, list] = {variant: [] for variant in VARIANTS}
    with ServerProcess(Script(count=messages)) as server:
        for _ in range(rounds):
            for variant in VARIANTS:
                runs[variant].append(_one(variant, server.url))
    expected = messages + 1  # the transcripts and event:callEnd
    rates = {
        variant: spread(result["messages"] / result["seconds"] for result in results)
        for variant, results in runs.items()
    }
    return dict(
        messages=messages,
        rounds=rounds,
        wsaccel_installed=importlib.util.find_spec("wsaccel") is not None,
        lost={variant: sum(expected - r["messages"] for r in results) for variant, results in runs.items()},
        messages_per_s=rates,
        livecall_vs_raw=rates["livecall"]["median"] / rates["raw"]["median"],
        livecall_vs_raw_utf8=rates["livecall"]["median"] / rates["raw_utf8"]["median"],
        livecall_vs_raw_frames=rates["livecall"]["median"] / rates["raw_frames"]["median"],
        server=server.stats,
    )


LABELS = {
    "raw": "(a) raw loop",
    "raw_utf8": "(b) raw loop, UTF-8 checked",
    "livecall": "(c) livecall",
    "raw_frames": "(d) raw loop, livecall's frame reader",
}


def table(result: dict[str, Any]) -> list[Row]:
    rates = result["messages_per_s"]
    rows = [Row(LABELS[variant], spread_text(rates[variant], "msg/s")) for variant in VARIANTS]
    to_raw, to_utf8 = result["livecall_vs_raw"], result["livecall_vs_raw_utf8"]
    lost = sum(result["lost"].values())
    return rows + [
        Row("c / a", f"{to_raw:.2f}", f">= {TARGET_VS_RAW}", verdict(to_raw >= TARGET_VS_RAW)),
        Row("c / b", f"{to_utf8:.2f}", "> 1", verdict(to_utf8 > 1)),
        Row("c / d (decode, dispatch, threads)", f"{result['livecall_vs_raw_frames']:.2f}"),
        Row("messages lost", str(lost), "0", verdict(lost == 0)),
    ]
