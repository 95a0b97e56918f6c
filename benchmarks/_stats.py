"""Summaries of repeated measurements, and readings of this process's resources.

Machines running benchmarks are noisy, so a figure is a median with its
spread, never one lone run.
"""

import resource
import statistics
import threading
import time
from collections.abc import Iterable, Sequence


def spread(values: Iterable[float]) -> dict[str, float]:
    """Median, quartiles and extremes of repeated runs."""
    values = sorted(values)
    if len(values) > 1:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    else:
        q1 = q3 = values[0]
    return dict(
        median=statistics.median(values), q1=q1, q3=q3, min=values[0], max=values[-1], runs=len(values)
    )


def percentiles(values: Sequence[float], points: Sequence[float] = (50, 90, 99, 99.9)) -> dict[str, float]:
    """Nearest-rank percentiles plus the maximum, keyed ``p50``, ``p99.9``, ``max``."""
    ordered = sorted(values)
    last = len(ordered) - 1
    result = {f"p{point:g}": ordered[min(last, round(point / 100 * last))] for point in points}
    result["max"] = ordered[-1]
    return result


def histogram(
    values: Sequence[float], edges: Sequence[float], unit: str = "ms", width: int = 40
) -> list[str]:
    """A text histogram: one line per bucket below each edge, and one for the rest."""
    counts = [0] * (len(edges) + 1)
    for value in values:
        counts[next((i for i, edge in enumerate(edges) if value < edge), len(edges))] += 1
    labels = [f"< {edge:g} {unit}" for edge in edges] + [f">= {edges[-1]:g} {unit}"]
    biggest = max(counts) or 1
    return [
        f"{label:>12} {count:7d} {'#' * round(width * count / biggest)}".rstrip()
        for label, count in zip(labels, counts)
    ]


def rss_mb() -> float:
    """This process's resident memory now, in MB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the peak, where /proc is missing


def raise_open_files_limit() -> int:
    """Lift the soft limit on open files to the hard one; returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Usage:
    """CPU seconds and wall seconds between ``start()`` and ``stop()``, and the peak RSS meanwhile."""

    def __init__(self, sample_every: float = 0.2):
        self._every = sample_every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.peak_rss_mb = 0.0

    def start(self) -> "Usage":
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        wall, cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu
        self._stop.set()
        self._thread.join()
        return dict(wall_s=wall, cpu_s=cpu, cpu_per_s=cpu / wall, peak_rss_mb=max(self.peak_rss_mb, rss_mb()))

    def _sample(self) -> None:
        while True:
            self.peak_rss_mb = max(self.peak_rss_mb, rss_mb())
            if self._stop.wait(self._every):
                return
