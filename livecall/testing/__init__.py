"""An embedded simulator of both providers' live-call WebSockets, for tests and demos,
a replay of recorded calls, and what a plugin's tests need beside them (a recorder
of events, a failing neighbour, a poll).

``Simulator`` needs the optional ``websockets`` package (``livecall[testing]``);
it is imported on first use so that the pytest plugin, loaded in every pytest
run, and ``scenarios()`` work without it.
"""

from typing import TYPE_CHECKING, Any

from ._configure import configure
from ._hub import wedged_hub
from ._options import ScenarioOptions
from ._plugins import Exploding, Recorder
from ._polling import wait_until
from ._record import ConnectionRecord
from ._recording import Recording, RecordingError, read_recording
from ._replay import Replay
from ._scenarios import ScenarioInfo, scenarios
from ._wire import RawPeer, RawServer

if TYPE_CHECKING:  # pragma: no cover
    from ._server import Simulator

__all__ = [
    "ConnectionRecord",
    "Exploding",
    "RawPeer",
    "RawServer",
    "Recorder",
    "Recording",
    "RecordingError",
    "Replay",
    "ScenarioInfo",
    "ScenarioOptions",
    "Simulator",
    "configure",
    "read_recording",
    "scenarios",
    "wait_until",
    "wedged_hub",
]


def __getattr__(name: str) -> Any:
    if name == "Simulator":
        from ._server import Simulator

        return Simulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
