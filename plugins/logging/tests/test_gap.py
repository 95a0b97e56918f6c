"""livecall-logging: a reconnect's gap is one warning, saying when and whether anything comes back."""

import logging

import pytest

import livecall
from livecall.testing import Simulator
from livecall_logging import EventLogger


class Collector(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def collected():
    handler = Collector()
    logger = logging.getLogger("livecall.events.gap")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler.records
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


@pytest.mark.parametrize(
    ("provider", "options", "resent"),
    [
        ("hiya", {"join_timeout": 0.1}, "what was said meanwhile is lost"),
        ("phonic", {}, "the provider sends what was missed again"),
    ],
)
def test_a_gap_is_one_warning_record(collected, provider, options, resent):
    with Simulator(provider, "drop", **options) as sim:
        cls = livecall.HiyaClient if provider == "hiya" else livecall.PhonicClient
        client = cls(**sim.client_kwargs(), plugins=[EventLogger()], backoff=livecall.Backoff(0.01, 0.05))
        client.run()
    [gap] = client.call.gaps
    [record] = collected
    assert record.levelno == logging.WARNING
    assert (record.event, record.call_id, record.provider) == ("gap", client.call.id, provider)
    lost, reopened = gap.lost_at.isoformat(), gap.reopened_at.isoformat()
    assert record.getMessage() == f"gap: lost {lost}, reopened {reopened} ({gap.reason}); {resent}"
