"""The forwarder's figures, for the process's metrics endpoint when it serves one.

The forwarder counts in plain integers, each written by one thread or under
a lock, and they are read at each scrape: no metrics library is imported,
and nothing is spent when no metrics are served.
"""

from typing import TYPE_CHECKING

from livecall.observability import MetricFamily

if TYPE_CHECKING:  # pragma: no cover
    from ._forwarder import WebhookForwarder

__all__ = ["OUTCOMES", "families"]

#: The values of ``livecall_webhook_deliveries_total``'s ``outcome`` label.
OUTCOMES = ("delivered", "retried", "failed", "dead_lettered", "lost")


def families(forwarder: "WebhookForwarder") -> list[MetricFamily]:
    """What ``forwarder`` has counted so far, as metric families."""
    counts = {
        "delivered": forwarder.delivered,
        "retried": forwarder.sender.retried,
        "failed": forwarder.failed,
        "dead_lettered": forwarder.dead_letter.written,
        "lost": forwarder.dead_letter.unwritten,
    }
    return [
        MetricFamily(
            "livecall_webhook_deliveries_total",
            "counter",
            "Events delivered, attempts retried, events failed (refused or out of retries), "
            "written to the dead-letter file, or lost (not even written there)",
            tuple(({"outcome": outcome}, counts[outcome]) for outcome in OUTCOMES),
        ),
        MetricFamily(
            "livecall_webhook_queue_events",
            "gauge",
            "Events accepted and neither delivered nor in the dead-letter file yet",
            (({}, forwarder.pending),),
        ),
    ]
