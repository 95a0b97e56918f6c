"""Shared test helpers: a recording plugin, a manager holding only it, client factories, a hang guard,
and ``livecall`` processes with plugins of a test's own."""

import os
import shutil
import ssl
import textwrap
import threading
from collections.abc import Sequence
from typing import Optional

import pytest
from cli_process import Running, base_env
from relay import Relay

import livecall
from livecall.plugins import create_plugin_manager
from livecall.testing import Recorder
from livecall.testing._tls import self_signed_certificate


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def plugin_manager(recorder):
    """A manager with only the recorder: installed plugins stay out of core tests."""
    pm = create_plugin_manager(autoload=False)
    pm.register(recorder, name="recorder")
    return pm


#: Seconds before a call that should return is declared hung.  Only a hang
#: fails against it: it is a guard, not a speed target (those live in benchmarks/).
HANG_GUARD = 30.0


@pytest.fixture
def returns():
    """Run ``function(*args, **kwargs)`` on a helper thread and give back its result.

    Fails the test if the call is still blocked after :data:`HANG_GUARD`
    seconds, and re-raises what it raised: the test waits on the call's end,
    never on the clock.
    """

    def call(function, *args, **kwargs):
        outcome = {}

        def target():
            try:
                outcome["result"] = function(*args, **kwargs)
            except BaseException as error:  # handed back to the test's thread
                outcome["error"] = error

        worker = threading.Thread(target=target, name="hang-guarded call", daemon=True)
        worker.start()
        worker.join(HANG_GUARD)
        name = getattr(function, "__qualname__", repr(function))
        assert not worker.is_alive(), f"{name} still blocked after {HANG_GUARD:g} s"
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("result")

    return call


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


@pytest.fixture(scope="session")
def certificate(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.fail("these tests need the openssl command to make a self-signed certificate")
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_front(certificate):
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def wrap(relay, sock):
        return context.wrap_socket(sock, server_side=True)

    relays = []

    def front(sim):
        relay = Relay(("127.0.0.1", sim.port), wrap)
        relays.append(relay)
        return f"wss://127.0.0.1:{relay.port}"

    yield front
    for relay in relays:
        relay.close()


@pytest.fixture
def running():
    """Start ``livecall`` processes that are killed at teardown if a test left them running."""
    started: list[Running] = []

    def start(args: Sequence[str], env: Optional[dict[str, str]] = None) -> Running:
        started.append(Running(args, env))
        return started[-1]

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def plugin_env(tmp_path):
    """Write a plugin module into ``tmp_path``; returns the env that lets ``-p`` import it."""

    def write(name: str, source: str, **extra: str) -> dict[str, str]:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
        return base_env(PYTHONPATH=path, **extra)

    return write
