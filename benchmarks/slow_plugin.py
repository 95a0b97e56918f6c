"""(5) A slow plugin: a hook sleeping 50 ms per event against a faster stream.

The server sends transcripts faster than the plugin takes them, then keeps
the call open (``hold``) while the client works through its backlog, and
pings all along; it records how long each pong took.  The client pings too,
after a short silence.  The reader must answer every ping on time, lose no
event and not reconnect, while the queue absorbs the backlog.

A second run with a queue smaller than the backlog shows what happens when
the queue is full: the reader waits for room, so pongs wait too (TCP then
pushes back on the server); nothing is lost.
"""

import time
from typing import Any

import livecall

from ._report import Row, number, verdict
from ._server import Script, ServerProcess
from .throughput import hiya_client

NAME = "slow_plugin"
FULL = dict(rate=40, seconds=5.0, sleep=0.05, small_queue=20)
QUICK = dict(rate=40, seconds=0.25, sleep=0.05, small_queue=5)
#: A strict server: real ones allow 10 s or more.
PONG_DEADLINE_S = 1.0
PING_EVERY_S = 0.5


class Sleeper:
    """A plugin that takes ``sleep`` seconds over every event, and notes reconnects."""

    def __init__(self, sleep: float) -> None:
        self.sleep = sleep
        self.transcripts = 0
        self.reconnects = 0

    @livecall.hookimpl
    def livecall_event(self, call: livecall.Call, event: livecall.Event) -> None:
        time.sleep(self.sleep)

    @livecall.hookimpl
    def livecall_transcript(self, call: livecall.Call, transcript: livecall.Transcript) -> None:
        self.transcripts += 1

    @livecall.hookimpl
    def livecall_reconnect(self, call: livecall.Call, reconnecting: livecall.Reconnecting) -> None:
        self.reconnects += 1


def watch(rate: int, seconds: float, sleep: float, queue_size: int) -> dict[str, Any]:
    """One call with a plugin ``sleep`` seconds slow per event: what the server and the client saw."""
    count = int(rate * seconds)
    backlog_s = count * sleep - seconds  # how long the plugin lags behind the stream at its end
    script = Script(
        count=count, burst=False, rate=rate, ping_every=PING_EVERY_S, hold=max(0.0, backlog_s) + 0.5
    )
    sleeper = Sleeper(sleep)
    with ServerProcess(script) as server:
        client = hiya_client(
            server.url, plugins=[sleeper], queue_size=queue_size, ping_interval=0.25, ping_timeout=1.0
        )
        started = time.perf_counter()
        client.run()
        elapsed = time.perf_counter() - started
    pongs: list[float] = server.stats["pong_ms"]
    return dict(
        queue_size=queue_size,
        sent=count,
        received=sleeper.transcripts,
        reconnects=sleeper.reconnects,
        connections=server.stats["connections"],
        queue_high_water=client.stats.queue_high_water,
        pings=server.stats["pings"],
        unanswered_pings=server.stats["unanswered_pings"],
        pong_max_ms=max(pongs, default=0.0),
        late_pongs=sum(delay > 1000 * PONG_DEADLINE_S for delay in pongs),
        end_reason=str(client.call.end_reason),
        elapsed_s=elapsed,
    )


def run(rate: int, seconds: float, sleep: float, small_queue: int) -> dict[str, Any]:
    return dict(
        rate=rate,
        seconds=seconds,
        sleep_ms=1000 * sleep,
        pong_deadline_ms=1000 * PONG_DEADLINE_S,
        default_queue=watch(rate, seconds, sleep, queue_size=10_000),
        small_queue=watch(rate, seconds, sleep, queue_size=small_queue),
    )


def _row(watched: dict[str, Any], with_target: bool) -> Row:
    lossless = watched["received"] == watched["sent"]
    value = (
        f"high water {watched['queue_high_water']}, pong max {number(watched['pong_max_ms'])} ms "
        f"({watched['late_pongs']}/{watched['pings']} late), "
        f"{watched['received']}/{watched['sent']} events, {watched['reconnects']} reconnects"
    )
    figure = f"queue_size {watched['queue_size']}"
    if not with_target:
        return Row(figure + " (backpressure)", value, "no loss", verdict(lossless))
    met = lossless and not watched["late_pongs"] and not watched["unanswered_pings"]
    met = met and not watched["reconnects"] and watched["connections"] == 1
    return Row(figure, value, "no late pong, loss, reconnect", verdict(met))


def table(result: dict[str, Any]) -> list[Row]:
    return [_row(result["default_queue"], True), _row(result["small_queue"], False)]
