"""Plugins for tests: one that records every call hook, one that raises from them.

A plugin's test usually needs a witness (what did the client hand the
plugins, in what order?) and a bad neighbour (does this plugin keep working
when another one fails?); these are both, written once.
"""

import threading
from typing import Any

from ..call import Call, EndReason
from ..events import Event, Reconnecting, Transcript
from ..hookspecs import hookimpl

__all__ = ["Exploding", "Recorder"]


class Recorder:
    """A plugin that keeps every call hook it receives, in order, for assertions.

    ``calls`` holds ``(name, value)`` pairs: ``("call_start", call)``,
    ``("event", event)``, ``("transcript", transcript)``,
    ``("reconnect", reconnecting)``, ``("error", error)`` and
    ``("call_end", reason)``.  ``ended`` is set by ``livecall_call_end``, so a
    test can wait for the end of a call run in the background.  Safe to read
    while the client's dispatcher thread is still adding to it.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.ended = threading.Event()
        self._lock = threading.Lock()

    def of(self, name: str) -> list[Any]:
        """The values recorded under ``name`` (``"event"``, ``"error"``, ...), in order."""
        with self._lock:
            return [value for kind, value in self.calls if kind == name]

    def events(self, event_type: type[Event] = Event) -> list[Any]:
        """The events of ``event_type`` (a subclass matches), in arrival order."""
        return [event for event in self.of("event") if isinstance(event, event_type)]

    def _add(self, name: str, value: Any) -> None:
        with self._lock:
            self.calls.append((name, value))

    @hookimpl
    def livecall_call_start(self, call: Call) -> None:
        self._add("call_start", call)

    @hookimpl
    def livecall_event(self, call: Call, event: Event) -> None:
        self._add("event", event)

    @hookimpl
    def livecall_transcript(self, call: Call, transcript: Transcript) -> None:
        self._add("transcript", transcript)

    @hookimpl
    def livecall_reconnect(self, call: Call, reconnecting: Reconnecting) -> None:
        self._add("reconnect", reconnecting)

    @hookimpl
    def livecall_error(self, call: Call, error: Exception) -> None:
        self._add("error", error)

    @hookimpl
    def livecall_call_end(self, call: Call, reason: EndReason) -> None:
        self._add("call_end", reason)
        self.ended.set()


_EXPLOSIVE = ("livecall_event", "livecall_transcript")


class Exploding:
    """A plugin whose ``livecall_event`` and ``livecall_transcript`` raise ``RuntimeError("boom")``.

    ``Exploding("livecall_event")`` raises from that hook only (the other
    returns quietly), for a test that counts the failures one hook causes.
    livecall reports each failure through ``livecall_error`` and goes on:
    a plugin under test should not lose anything to its neighbour's bug.
    """

    def __init__(self, *hooks: str) -> None:
        unknown = sorted(set(hooks) - set(_EXPLOSIVE))
        if unknown:
            raise ValueError(f"Exploding can raise from {list(_EXPLOSIVE)}, not {unknown}")
        self.hooks = frozenset(hooks or _EXPLOSIVE)

    def _explode(self, hook: str) -> None:
        if hook in self.hooks:
            raise RuntimeError("boom")

    @hookimpl
    def livecall_event(self, call: Call, event: Event) -> None:
        self._explode("livecall_event")

    @hookimpl
    def livecall_transcript(self, call: Call, transcript: Transcript) -> None:
        self._explode("livecall_transcript")
