"""The plugin's command line options: checked up front, and nothing done without a URL."""

import pytest

import livecall
import livecall_webhook
from livecall.testing import Simulator, configure
from livecall_webhook import WebhookForwarder

from .conftest import watch


def test_without_a_url_it_does_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = configure(livecall_webhook)
    with Simulator("phonic") as sim:
        watch(sim, plugin_manager=config.plugin_manager)
    assert config.plugin_manager.hook.livecall_event.get_hookimpls() == []
    config.close()
    assert config.failures == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--webhook-url", "ftp://example.com/hook"], "http:// or https://"),
        (["--webhook-url", "example.com/hook"], "http:// or https://"),
        (["--webhook-url", "http:///nohost"], "http:// or https://"),
        (["--webhook-url", "http://host:port/?token=x"], "malformed"),
        (["--webhook-url", "http://a/", "--webhook-timeout", "0"], "must be positive"),
        (["--webhook-url", "http://a/", "--webhook-timeout", "nan"], "must be positive"),
        (["--webhook-url", "http://a/", "--webhook-timeout", "inf"], "must be positive"),
        (["--webhook-url", "http://a/", "--webhook-drain-timeout", "nan"], "drain-timeout"),
        (["--webhook-url", "http://a/", "--webhook-queue-bytes", "0"], "queue size and bytes"),
        (["--webhook-url", "http://a/", "--webhook-retries", "-1"], "0 or more"),
        (["--webhook-url", "http://a/", "--webhook-queue-size", "0"], "queue size and bytes"),
        (["--webhook-url", "http://a/", "--webhook-drain-timeout", "-1"], "drain-timeout"),
        (["--webhook-url", "http://a/", "--webhook-dead-letter", "/nowhere/dead.jsonl"], "does not exist"),
    ],
)
def test_bad_options_are_refused_up_front(argv, message):
    with pytest.raises(livecall.ConfigurationError, match=message):
        configure(livecall_webhook, *argv)


def test_the_queue_bytes_option_reaches_the_forwarder(tmp_path):
    config = configure(
        livecall_webhook,
        "--webhook-url", "http://127.0.0.1:9/", "--webhook-dead-letter", str(tmp_path / "d.jsonl"),
        "--webhook-queue-bytes", "12345",
    )  # fmt: skip
    [forwarder] = [p for p in config.plugin_manager.get_plugins() if isinstance(p, WebhookForwarder)]
    assert forwarder.queue_bytes == 12345
    config.close()
