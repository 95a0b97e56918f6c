"""The webhook's figures on the process's metrics endpoint: deliveries by outcome, and its queue."""

import urllib.request

import pytest

import livecall
import livecall_webhook
from livecall import observability
from livecall.testing import Simulator, configure, wait_until
from livecall_webhook import Sender, WebhookForwarder

from .conftest import dead_bodies, watch

prometheus_parser = pytest.importorskip(
    "prometheus_client.parser", reason="the optional metrics extra is not installed"
)

QUICK = livecall.Backoff(0.01, 0.05)


def webhook_figures(endpoint) -> dict[str, float]:
    """The webhook's samples, by name and outcome: ``{"delivered": 1.0, ..., "queue": 0.0}``."""
    with urllib.request.urlopen(f"{endpoint.url}/metrics", timeout=5) as response:
        text = response.read().decode()
    figures = {}
    for family in prometheus_parser.text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "livecall_webhook_deliveries_total":
                figures[sample.labels["outcome"]] = sample.value
            elif sample.name == "livecall_webhook_queue_events":
                figures["queue"] = sample.value
    return figures


def test_deliveries_are_counted_by_outcome(tmp_path, receiver_at):
    receiver = receiver_at(script=[200], answer=lambda body: 500)  # 200, then 500 for good
    sender = Sender(receiver.url, retries=1, backoff=QUICK)
    forwarder = WebhookForwarder(sender, str(tmp_path / "dead.jsonl"))
    observability.add_metrics_source(forwarder.metrics)
    try:
        with observability.serve() as endpoint:
            receiver.hold()  # the first request waits: every event queues behind it
            with Simulator("phonic") as sim:
                call, bodies = watch(sim, forwarder)
            receiver.wait_for(lambda: len(receiver.requests) == 1)
            assert webhook_figures(endpoint) == {
                "delivered": 0,
                "retried": 0,
                "failed": 0,
                "dead_lettered": 0,
                "lost": 0,
                "queue": len(bodies),
            }
            receiver.release()
            wait_until(lambda: forwarder.pending == 0, 30)
            figures = webhook_figures(endpoint)
            forwarder.close(timeout=10)
    finally:
        observability.remove_metrics_source(forwarder.metrics)
    failed = len(bodies) - 1
    assert failed >= 2
    assert figures == {
        "delivered": 1,
        "retried": failed,  # one retry each, then given up
        "failed": failed,
        "dead_lettered": failed,
        "lost": 0,
        "queue": 0,
    }
    assert [r.status for r in receiver.requests] == [200] + [500] * 2 * failed
    assert len(dead_bodies(tmp_path / "dead.jsonl")) == failed


def test_the_plugin_shows_its_figures_from_configure_to_the_end_of_the_run(tmp_path, receiver):
    dead = tmp_path / "dead.jsonl"
    config = configure(livecall_webhook, "--webhook-url", receiver.url, "--webhook-dead-letter", str(dead))
    with observability.serve() as endpoint:
        try:
            assert webhook_figures(endpoint)["delivered"] == 0
            with Simulator("phonic") as sim:
                call, bodies = watch(sim, plugin_manager=config.plugin_manager)
            receiver.wait_for(lambda: len(receiver.accepted()) == len(bodies))
            wait_until(lambda: webhook_figures(endpoint)["delivered"] == len(bodies), 10)
            assert webhook_figures(endpoint)["failed"] == 0
        finally:
            config.close()
        assert webhook_figures(endpoint) == {}, "the run is over: its figures went with it"
    assert config.failures == [] and not dead.exists()
