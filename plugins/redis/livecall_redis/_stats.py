"""What a worker counts, and the optional Prometheus endpoint that shows it."""

import threading
from collections.abc import Iterator
from typing import Any, Callable

import attrs

__all__ = ["METRICS", "Stats", "serve_metrics"]

#: Prometheus name, type and help of each figure, by the ``Stats`` field it reads.
METRICS = {
    "calls_held": ("livecall_worker_calls_held", "gauge", "Calls this process watches now"),
    "events_written": ("livecall_worker_events_written_total", "counter", "Events appended to the stream"),
    "events_duplicate": (
        "livecall_worker_events_duplicate_total",
        "counter",
        "Events skipped because their key was already written for the call",
    ),
    "events_unwritten": (
        "livecall_worker_events_unwritten_total",
        "counter",
        "Events not written because Redis stayed unreachable until the lease lapsed",
    ),
    "reconnects": ("livecall_worker_reconnects_total", "counter", "Reconnects to the providers"),
    "lease_renewals": ("livecall_worker_lease_renewals_total", "counter", "Leases renewed"),
    "fenced_writes": (
        "livecall_worker_fenced_writes_total",
        "counter",
        "Writes refused because another worker took the call over",
    ),
    "queue_depth": (
        "livecall_worker_queue_depth",
        "gauge",
        "Requests on the stream that no worker has taken yet",
    ),
}


@attrs.define
class Stats:
    """Counters of one worker process; ``add()`` is safe from any thread."""

    calls_held: int = 0
    events_written: int = 0
    events_duplicate: int = 0
    events_unwritten: int = 0
    reconnects: int = 0
    lease_renewals: int = 0
    fenced_writes: int = 0
    queue_depth: int = 0
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False, eq=False)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def set(self, name: str, value: int) -> None:
        with self._lock:
            setattr(self, name, value)


def serve_metrics(stats: Stats, port: int, address: str = "127.0.0.1") -> Callable[[], None]:
    """Serve ``stats`` at ``http://address:port/metrics``; returns what stops serving."""
    try:
        from prometheus_client import start_http_server
        from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily
    except ImportError:
        import livecall

        raise livecall.ConfigurationError(
            "--metrics-port needs prometheus_client: pip install 'livecall-redis[metrics]'"
        ) from None

    class Collector:
        def collect(self) -> Iterator[Any]:
            for field, (name, kind, help_text) in METRICS.items():
                value = getattr(stats, field)
                if kind == "counter":
                    yield CounterMetricFamily(name.removesuffix("_total"), help_text, value=value)
                else:
                    yield GaugeMetricFamily(name, help_text, value=value)

    registry = CollectorRegistry()
    registry.register(Collector())
    served = start_http_server(port, addr=address, registry=registry)
    if isinstance(served, tuple):  # prometheus_client >= 0.16: (server, thread)
        server = served[0]

        def stop() -> None:
            server.shutdown()
            server.server_close()

        return stop
    return lambda: None
