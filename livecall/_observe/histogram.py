"""A histogram one thread fills cheaply and a scrape reads: bucket counts and a sum.

prometheus_client's own histogram takes a lock and walks its buckets on every
observation, a few microseconds: too much for every event of a stream that
brings a hundred thousand a second.  Each watch fills histograms of its own
(a watch's items run on one dispatcher at a time, so no lock is needed), and
the scrape adds them up.
"""

from bisect import bisect_left
from collections.abc import Iterable, Sequence

__all__ = ["LATENCY_BOUNDS", "Histogram"]

#: Upper bounds, in seconds, from a tenth of a millisecond (one event's hooks) to a minute (a wedged plugin).
LATENCY_BOUNDS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


class Histogram:
    """Counts of observations at most each bound (and past the last), and their sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float] = LATENCY_BOUNDS):
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def add(self, other: "Histogram") -> None:
        """Add ``other``'s observations, of the same bounds, to these."""
        counts = self.counts
        for index, count in enumerate(other.counts):
            counts[index] += count
        self.total += other.total

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus' buckets: ``(le, observations at most le)``, ending with ``+Inf``."""
        buckets, running = [], 0
        for bound, count in zip((*map(repr, self.bounds), "+Inf"), self.counts):
            running += count
            buckets.append((bound, running))
        return buckets


def merged(histograms: Iterable[Histogram]) -> Histogram:
    """One histogram holding the observations of all ``histograms``."""
    total = Histogram()
    for histogram in histograms:
        total.add(histogram)
    return total
