"""The fault campaign's shared parts: its figures, and a WebSocket peer written by hand.

Tests add to the figures with the ``figures`` fixture (or ``record_property``
with the same names, as ``tests/test_fuzz.py`` does); the totals are printed
at the end of the run, so a CI log shows how much was thrown at the client.

``raw_server`` serves WebSocket written byte by byte (``livecall.testing._wire``):
it can cut a frame anywhere, fragment messages, slip pings between the
pieces, and see exactly what the client sends back.
"""

from collections import Counter
from collections.abc import Iterator
from typing import Callable

import pytest

from livecall.testing._wire import RawPeer, RawServer

#: Figure names, as recorded, and how the summary labels them.
FIGURES = {
    "events_sent": "events sent",
    "events_received": "events received",
    "events_lost": "events lost",
    "faults_injected": "faults injected",
    "fuzz_cases": "fuzz cases",
}


@pytest.fixture
def figures(record_property) -> Callable[..., None]:
    """``figures(events_sent=200, events_received=200, events_lost=0, faults_injected=20)``."""

    def add(**counts: int) -> None:
        for name, count in counts.items():
            if name not in FIGURES:
                raise ValueError(f"unknown figure {name!r}: one of {sorted(FIGURES)}")
            record_property(name, count)

    return add


def pytest_terminal_summary(terminalreporter) -> None:
    per_module: dict[str, Counter] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) == "call":
                module = per_module.setdefault(report.nodeid.split("::")[0], Counter())
                module.update({name: value for name, value in report.user_properties if name in FIGURES})
    per_module = {module: counts for module, counts in per_module.items() if counts}
    if not per_module:
        return
    terminalreporter.write_sep("=", "livecall fault campaign")
    total: Counter = Counter()
    for module, counts in sorted(per_module.items()):
        total.update(counts)
        terminalreporter.write_line(f"{module}: {_describe(counts)}")
    terminalreporter.write_line(f"total: {_describe(total)}", bold=True)


def _describe(counts: Counter) -> str:
    return ", ".join(f"{label} {counts[name]}" for name, label in FIGURES.items() if name in counts)


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[RawPeer], None]], RawServer]]:
    """Factory: ``raw_server(play)`` serves ``play`` on loopback until the test ends."""
    servers: list[RawServer] = []

    def start(play: Callable[[RawPeer], None]) -> RawServer:
        server = RawServer(play)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
    errors = [error for server in servers for error in server.errors]
    if errors:
        raise errors[0]
