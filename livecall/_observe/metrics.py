"""livecall's figures in Prometheus' terms: one collector, read at scrape time.

Imported only when metrics are asked for, so ``prometheus_client`` is only
needed then (``pip install 'livecall[metrics]'``).  Gauges are worked out
from the watches under way at each scrape; counters and histograms add the
watches under way to those already over.  Labels take few values: a
provider, an event kind, a reconnect's cause, a plugin's name.
"""

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, Callable, Optional

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from .._version import __version__
from .histogram import Histogram
from .registry import totals
from .sources import MetricFamily, sources

__all__ = ["LivecallCollector"]

log = logging.getLogger("livecall.metrics")


class LivecallCollector:
    """Every livecall metric of this process, and those the plugins' sources add.

    ``hub_turn_age`` says how long ago the hub's I/O thread last turned (None:
    no hub); ``provider_names`` names every provider, so that each has its
    ``livecall_calls_active`` sample, 0 included.
    """

    def __init__(
        self, hub_turn_age: Callable[[], Optional[float]], provider_names: Callable[[], Iterable[str]]
    ):
        self._hub_turn_age = hub_turn_age
        self._provider_names = provider_names

    def collect(self) -> Iterator[Any]:
        now = time.monotonic()
        with totals() as (everything, live):
            active: Counter[str] = Counter(dict.fromkeys(self._provider_names(), 0))
            active.update(counts.provider for counts in live)
            connected = [counts for counts in live if counts.connected]
            oldest_frame = max(
                (now - counts.last_frame_at for counts in connected if counts.last_frame_at is not None),
                default=0.0,
            )
            queued = sum(counts.queued() for counts in live)
            paused = sum(1 for counts in connected if counts.paused)
            events, reconnects = everything.events, everything.reconnects
            lag, handshakes, hooks = everything.lag, everything.handshakes, everything.hooks

        build = GaugeMetricFamily("livecall_build_info", "livecall's version", labels=["version"])
        build.add_metric([__version__], 1)
        yield build
        calls = GaugeMetricFamily("livecall_calls_active", "Calls watched now", labels=["provider"])
        for provider, number in sorted(active.items()):
            calls.add_metric([provider], number)
        yield calls
        received = CounterMetricFamily(
            "livecall_events_received", "Events handed to the plugins", labels=["provider", "event"]
        )
        for (provider, kind), number in sorted(events.items()):
            received.add_metric([provider, kind], number)
        yield received
        lost = CounterMetricFamily(
            "livecall_reconnects",
            "Connections lost and tried again, by cause",
            labels=["provider", "reason"],
        )
        for (provider, why), number in sorted(reconnects.items()):
            lost.add_metric([provider, why], number)
        yield lost
        yield _histogram(
            "livecall_event_lag_seconds", "From a frame's arrival to its last hook's return", lag
        )
        yield _histogram(
            "livecall_handshake_duration_seconds",
            "Opening handshakes, from connecting to HTTP 101",
            handshakes,
        )
        hook_family = HistogramMetricFamily(
            "livecall_hook_duration_seconds", "Time in each plugin's hooks and callbacks", labels=["plugin"]
        )
        for plugin, histogram in sorted(hooks.items()):
            hook_family.add_metric([plugin], histogram.cumulative(), histogram.total)
        yield hook_family
        yield GaugeMetricFamily(
            "livecall_last_frame_age_seconds",
            "Seconds since the quietest open connection heard a frame of any kind",
            value=oldest_frame,
        )
        yield GaugeMetricFamily(
            "livecall_mailbox_messages", "Messages read and waiting for the plugins", value=queued
        )
        yield GaugeMetricFamily(
            "livecall_paused_calls",
            "Calls whose socket is not read until their plugins catch up",
            value=paused,
        )
        yield GaugeMetricFamily(
            "livecall_hub_turn_age_seconds",
            "Seconds since the hub's I/O thread last turned (0 with no hub)",
            value=self._hub_turn_age() or 0.0,
        )
        yield from _from_sources()


def _histogram(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    return HistogramMetricFamily(
        name, documentation, buckets=histogram.cumulative(), sum_value=histogram.total
    )


def _from_sources() -> Iterator[Any]:
    """The plugins' figures; a source that fails is logged and skipped, never the scrape."""
    for source in sources():
        try:
            families = list(source())
        except Exception:
            log.exception("a metrics source failed: %r", source)
            continue
        for family in families:
            yield _family(family)


def _family(family: MetricFamily) -> Any:
    names = sorted({name for labels, _ in family.samples for name in labels})
    made: Optional[Any]
    if family.kind == "counter":
        made = CounterMetricFamily(family.name.removesuffix("_total"), family.help, labels=names)
    else:
        made = GaugeMetricFamily(family.name, family.help, labels=names)
    for labels, value in family.samples:
        made.add_metric([labels.get(name, "") for name in names], value)
    return made
