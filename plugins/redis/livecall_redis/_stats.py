"""What a worker counts, shown beside livecall's own figures on the process's metrics endpoint."""

import threading

import attrs

from livecall.observability import MetricFamily

__all__ = ["METRICS", "Stats"]

#: Prometheus name, type and help of each figure, by the ``Stats`` field it reads.
METRICS = {
    "calls_held": ("livecall_worker_calls_held", "gauge", "Calls this process watches now"),
    "capacity_calls": (
        "livecall_worker_capacity_calls",
        "gauge",
        "Calls this process may watch at once (--calls)",
    ),
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
    "events_trimmed_unread": (
        "livecall_worker_events_trimmed_unread_total",
        "counter",
        "Times a consumer group of the events stream lost entries it had not read to trimming",
    ),
}


@attrs.define
class Stats:
    """Counters of one worker process; ``add()`` and ``set()`` are safe from any thread.

    :meth:`families` is a metrics source: given to
    ``livecall.observability.add_metrics_source``, the figures join livecall's
    on the process's endpoint.
    """

    calls_held: int = 0
    capacity_calls: int = 0
    events_written: int = 0
    events_duplicate: int = 0
    events_unwritten: int = 0
    reconnects: int = 0
    lease_renewals: int = 0
    fenced_writes: int = 0
    queue_depth: int = 0
    events_trimmed_unread: int = 0
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False, eq=False)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def set(self, name: str, value: int) -> None:
        with self._lock:
            setattr(self, name, value)

    def families(self) -> list[MetricFamily]:
        """Every figure as it stands, one metric family each."""
        with self._lock:
            values = {field: getattr(self, field) for field in METRICS}
        return [
            MetricFamily(name, kind, help_text, (({}, values[field]),))
            for field, (name, kind, help_text) in METRICS.items()
        ]
