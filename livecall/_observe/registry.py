"""The process's watches, for its metrics and health: those under way and the sum of those over.

A watch adds its counts here as it starts and folds them into the totals as
it ends, under one lock with every scrape, so a counter never goes back.
Timings (the histograms) are taken only once metrics are switched on, each
into the histograms of the thread taking it (one writer each, no lock on
the hot path); a scrape adds up the threads', and those of threads that
ended join the totals.  Until metrics are on, a watch counts events in a
dict and reads no clock for them.
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
    "thread_timings",
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
        for kind, number in counts.by_kind().items():
            self.events[provider, kind] += number
        for why, number in list(counts.reconnects.items()):
            self.reconnects[provider, why] += number

    def add_timings(self, timings: "Timings") -> None:
        self.lag.add(timings.lag)
        self.handshakes.add(timings.handshakes)
        for plugin, histogram in list(timings.hooks.items()):
            self.hooks.setdefault(plugin, Histogram()).add(histogram)


class Timings:
    """One thread's histograms: event lag (dispatchers), hook durations (dispatchers), handshakes."""

    __slots__ = ("handshakes", "hooks", "lag")

    def __init__(self) -> None:
        self.lag = Histogram()
        self.handshakes = Histogram()
        #: plugin (or callback) -> how long its hooks took
        self.hooks: dict[str, Histogram] = {}


_lock = threading.Lock()
_live: set[WatchCounts] = set()
_over = Totals()
_per_thread = threading.local()
#: Every thread's timings, with the thread: those of a thread that ended join ``_over``.
_timings: list[tuple[threading.Thread, Timings]] = []


def thread_timings() -> Timings:
    """The histograms of the calling thread, made on its first timing."""
    try:
        timings: Timings = _per_thread.timings
        return timings
    except AttributeError:
        timings = _per_thread.timings = Timings()
        with _lock:
            _timings.append((threading.current_thread(), timings))
        return timings


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
        ended = [timings for thread, timings in _timings if not thread.is_alive()]
        if ended:
            for timings in ended:
                _over.add_timings(timings)
            _timings[:] = [(thread, timings) for thread, timings in _timings if thread.is_alive()]
        everything = Totals()
        _merge(everything, _over)
        for _, timings in _timings:
            everything.add_timings(timings)
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
    global _lock, _live, _over, _per_thread, _timings
    _lock = threading.Lock()
    _live = set()
    _over = Totals()
    _per_thread = threading.local()
    _timings = []


os.register_at_fork(after_in_child=_after_fork_in_child)
