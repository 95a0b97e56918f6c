"""The process's watches, for its metrics and health: those under way and the sum of those over.

A watch adds its counts here as it starts and folds them into the totals as
it ends, under one lock with every scrape, so a counter never goes back.
Timings (the histograms) are taken only once metrics are switched on:
until then a watch counts events in a dict and reads no clock for them.
"""

import os
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional

import attrs

from .histogram import Histogram
from .watch_counts import WatchCounts

__all__ = [
    "Totals",
    "finished",
    "live_watches",
    "set_tracer",
    "started",
    "switch_timing_on",
    "timing",
    "totals",
    "tracer",
]


@attrs.define
class Totals:
    """What the process's watches counted, by metric label."""

    #: (provider, kind) -> events
    events: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    #: (provider, why) -> reconnects
    reconnects: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    lag: Histogram = attrs.field(factory=Histogram)
    handshakes: Histogram = attrs.field(factory=Histogram)
    #: plugin -> how long its hooks took
    hooks: dict[str, Histogram] = attrs.field(factory=dict)

    def add(self, counts: WatchCounts) -> None:
        provider = counts.provider
        for kind, number in list(counts.events.items()):
            self.events[provider, kind] += number
        for why, number in list(counts.reconnects.items()):
            self.reconnects[provider, why] += number
        if counts.lag is not None:
            self.lag.add(counts.lag)
        if counts.handshakes is not None:
            self.handshakes.add(counts.handshakes)
        for plugin, histogram in list((counts.hooks or {}).items()):
            self.hooks.setdefault(plugin, Histogram()).add(histogram)


_lock = threading.Lock()
_live: set[WatchCounts] = set()
_over = Totals()
_timing = False
#: The OpenTelemetry tracer once tracing is on (``.tracing.WatchTracer``); None: no spans, no import.
_tracer: Optional[Any] = None


def tracer() -> Optional[Any]:
    """The tracer a watch starting now makes its spans with, if tracing is on."""
    return _tracer


def set_tracer(new: Optional[Any]) -> None:
    """The tracer watches starting from now on use; None switches tracing off for them."""
    global _tracer
    _tracer = new


def timing() -> bool:
    """Whether a watch starting now times its events, hooks and handshakes."""
    return _timing


def switch_timing_on() -> None:
    """From now on, watches that start take the timings the metrics show."""
    global _timing
    _timing = True


def started(counts: WatchCounts) -> None:
    with _lock:
        _live.add(counts)


def finished(counts: WatchCounts) -> None:
    """The watch is over: its counts join the totals, in the same step as it leaves the live set."""
    with _lock:
        if counts in _live:
            _live.discard(counts)
            _over.add(counts)


@contextmanager
def totals() -> Iterator[tuple[Totals, list[WatchCounts]]]:
    """Everything counted so far and the watches under way, held still while the caller reads."""
    with _lock:
        everything = Totals()
        _merge(everything, _over)
        live = list(_live)
        for counts in live:
            everything.add(counts)
        yield everything, live


def _merge(into: Totals, other: Totals) -> None:
    into.events.update(other.events)
    into.reconnects.update(other.reconnects)
    into.lag.add(other.lag)
    into.handshakes.add(other.handshakes)
    for plugin, histogram in other.hooks.items():
        into.hooks.setdefault(plugin, Histogram()).add(histogram)


def live_watches() -> list[WatchCounts]:
    """The watches under way now."""
    with _lock:
        return list(_live)


def _after_fork_in_child() -> None:
    """A child starts with no watch of its own and counts from zero; the parent's lock may be held."""
    global _lock, _live, _over
    _lock = threading.Lock()
    _live = set()
    _over = Totals()


os.register_at_fork(after_in_child=_after_fork_in_child)
