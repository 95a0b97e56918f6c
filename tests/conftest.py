"""Shared test helpers: a recording plugin, a manager holding only it, and client factories."""

import pytest

import livecall
from livecall.plugins import create_plugin_manager
from livecall.testing import Recorder


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
