"""pytest fixtures serving a simulated provider or a recorded call, for livecall's tests and plugin authors'.

Loaded in every pytest run through the ``pytest11`` entry point, so it imports
nothing heavy: websockets is only imported when a fixture is used.

    def test_my_plugin(hiya_simulator):
        client = HiyaClient(**hiya_simulator.client_kwargs(), plugins=[MyPlugin()])
        client.run()
        assert hiya_simulator.call_ended
"""

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable, Optional

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from livecall.testing import Replay, Simulator


@pytest.fixture
def livecall_simulator() -> Iterator[Callable[..., "Simulator"]]:
    """Factory: ``livecall_simulator(provider, scenario=None, **kwargs)`` starts a
    :class:`~livecall.testing.Simulator` (kwargs: credentials, scenario options,
    ``pace``) and stops it when the test ends."""
    from livecall.testing import Simulator

    started: list[Simulator] = []

    def start(provider: str, scenario: Optional[str] = None, **kwargs: Any) -> Simulator:
        simulator = Simulator(provider, scenario, **kwargs).start()
        started.append(simulator)
        return simulator

    yield start
    for simulator in reversed(started):
        simulator.stop()


@pytest.fixture
def hiya_simulator(livecall_simulator: Callable[..., "Simulator"]) -> "Simulator":
    """A running Hiya simulator playing the default ``screening`` call."""
    return livecall_simulator("hiya")


@pytest.fixture
def phonic_simulator(livecall_simulator: Callable[..., "Simulator"]) -> "Simulator":
    """A running Phonic simulator playing the default ``conversation``."""
    return livecall_simulator("phonic")


@pytest.fixture
def livecall_replay() -> Iterator[Callable[..., "Replay"]]:
    """Factory: ``livecall_replay(path, **kwargs)`` starts a :class:`~livecall.testing.Replay`
    of the recording at ``path`` (kwargs: ``speed``, ``loop``, ``chaos``...) and stops it
    when the test ends."""
    from livecall.testing import Replay

    started: list[Replay] = []

    def start(path: Any, **kwargs: Any) -> Replay:
        replay = Replay(path, **kwargs).start()
        started.append(replay)
        return replay

    yield start
    for replay in reversed(started):
        replay.stop()


@pytest.fixture
def livecall_spans() -> Iterator[Any]:
    """livecall's spans, into an OpenTelemetry in-memory exporter of the test's own, from watches
    started during the test (the global tracer provider is left alone); tracing is off again after.
    Skips the test where the OpenTelemetry SDK is not installed."""
    pytest.importorskip("opentelemetry.sdk", reason="the OpenTelemetry SDK is not installed")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from livecall import observability

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observability.enable_tracing(provider)
    yield exporter
    observability.disable_tracing()
    provider.shutdown()
