"""Shared test helpers: a plugin that records every hook call, and client factories."""

import threading
from typing import Any

import pytest

import livecall
from livecall.plugins import create_plugin_manager


class Recorder:
    """A plugin that keeps every hook call, so tests can assert on order and content."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.ended = threading.Event()
        self._lock = threading.Lock()

    def _add(self, name: str, value: Any) -> None:
        with self._lock:
            self.calls.append((name, value))

    @livecall.hookimpl
    def livecall_call_start(self, call):
        self._add("call_start", call)

    @livecall.hookimpl
    def livecall_event(self, call, event):
        self._add("event", event)

    @livecall.hookimpl
    def livecall_transcript(self, call, transcript):
        self._add("transcript", transcript)

    @livecall.hookimpl
    def livecall_reconnect(self, call, reconnecting):
        self._add("reconnect", reconnecting)

    @livecall.hookimpl
    def livecall_error(self, call, error):
        self._add("error", error)

    @livecall.hookimpl
    def livecall_call_end(self, call, reason):
        self._add("call_end", reason)
        self.ended.set()

    def of(self, name: str) -> list[Any]:
        with self._lock:
            return [value for kind, value in self.calls if kind == name]

    def events(self, event_type: type = livecall.Event) -> list[Any]:
        return [event for event in self.of("event") if isinstance(event, event_type)]


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def plugin_manager(recorder):
    """A manager with only the recorder: installed plugins stay out of core tests."""
    pm = create_plugin_manager(autoload=False)
    pm.register(recorder, name="recorder")
    return pm


FAST = dict(ping_interval=5.0, ping_timeout=5.0, close_timeout=1.0, backoff=livecall.Backoff(0.01, 0.05))


@pytest.fixture
def client_for(plugin_manager):
    """Build a client for a running simulator, closed at teardown whatever happened."""
    clients = []

    def build(sim, **overrides):
        kwargs = dict(sim.client_kwargs(), plugin_manager=plugin_manager, **FAST)
        kwargs.update(overrides)
        cls = livecall.HiyaClient if sim.provider == "hiya" else livecall.PhonicClient
        client = cls(**kwargs)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close(timeout=5)
