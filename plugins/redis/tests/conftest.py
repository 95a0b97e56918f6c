"""A real redis-server per test session: loopback, a free port, a temporary directory, no persistence.

Without ``redis-server`` on the PATH the Redis tests are skipped, saying so;
under ``CI=true`` they fail instead, so CI never passes without them.
"""

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable, Optional

import pytest
import redis

from livecall.plugins import create_plugin_manager
from livecall_redis import DEFAULT_REQUESTS, Scripts, Worker, WorkerSettings

from ._cluster import cluster_client, redis_cluster  # noqa: F401  (fixtures: a local Redis Cluster)

REDIS_SERVER = shutil.which("redis-server")
_START_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """One redis-server process; ``stop()`` and ``start()`` again keep its data (a dump on shutdown)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = _free_port()
        self.process: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> "redis.Redis":
        return redis.Redis.from_url(self.url, decode_responses=True)

    def start(self) -> None:
        assert REDIS_SERVER is not None
        # save "": no snapshots while running; appendonly no: no log.  stop() saves once, by hand.
        argv = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        argv += ["--dir", str(self.directory), "--logfile", str(self.directory / "redis.log")]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = self.client()
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(
                        f"redis-server did not start; see {self.directory / 'redis.log'}"
                    ) from None
                time.sleep(0.05)  # polling a server that is starting: nothing to wait on
            finally:
                client.close()

    def stop(self, save: bool = False) -> None:
        """Shut the server down; with ``save``, its data comes back on the next ``start()``."""
        if self.process is None:
            return
        client = self.client()
        try:
            client.shutdown(save=save, nosave=not save)
        except redis.ConnectionError:
            pass
        finally:
            client.close()
        self.process.wait(10)
        self.process = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        reason = (
            "redis-server is not installed (Debian: apt-get install redis-server): "
            "the Redis tests need a real one"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason + "; under CI=true they must run", pytrace=False)
        pytest.skip(reason)
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator["redis.Redis"]:
    """A client on an emptied database."""
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


#: The streams of the scripts' own tests (test_scripts.py, test_handover_scripts.py).
GROUP = "workers"
EVENTS = "test:events"
DEAD = "test:dead"


@pytest.fixture
def scripts(redis_client) -> Scripts:
    """The Lua scripts on a requests stream with its group, for the scripts' own tests."""
    redis_client.xgroup_create(DEFAULT_REQUESTS, GROUP, id="0", mkstream=True)
    return Scripts(redis_client, DEFAULT_REQUESTS, GROUP, EVENTS, DEAD)


def deliver(redis_client, consumer: str) -> str:
    """A new request, read by ``consumer``: it is pending with it."""
    request_id = redis_client.xadd(DEFAULT_REQUESTS, {"provider": "phonic", "conversation_id": "conv_1"})
    redis_client.xreadgroup(GROUP, consumer, {DEFAULT_REQUESTS: ">"}, count=1)
    return request_id


def worker_argv(redis_url: str) -> list[str]:
    """``livecall worker`` as a test runs it in a process of its own: the Redis plugin, ``-v``."""
    return [sys.executable, "-m", "livecall", "-v", "-p", "livecall_redis", "worker", "--redis", redis_url]


def worker_env(**variables: str) -> dict[str, str]:
    """A worker process's environment: no other installed plugin, and ``variables``."""
    return dict(os.environ, LIVECALL_DISABLE_PLUGIN_AUTOLOAD="1", **variables)


def allowing(*sims) -> tuple[str, ...]:
    """The ``allowed_urls`` of a worker whose requests name these simulators (each on its own port)."""
    return tuple(f"{sim.provider}={sim.url}" for sim in sims)


@pytest.fixture
def settings(redis_server, redis_client, monkeypatch) -> WorkerSettings:
    monkeypatch.setenv("PHONIC_API_KEY", "sim-phonic-key")
    monkeypatch.setenv("HIYA_TOKEN", "sim-hiya-token")
    # drain="release": a test that stops a worker holding calls gets them back at once; the
    # drain's own tests (test_drain.py) choose their mode.
    return WorkerSettings(redis_url=redis_server.url, calls=4, lease=3.0, renew=1.0, drain="release")


@pytest.fixture
def running_worker() -> Iterator[Callable[[WorkerSettings], Worker]]:
    """``running_worker(settings)``: a worker running until the test ends, which must find it stopped."""
    running: list[tuple[threading.Event, threading.Thread]] = []

    def start(settings: WorkerSettings) -> Worker:
        worker = Worker(settings, create_plugin_manager(autoload=False))
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), name="test-worker", daemon=True)
        thread.start()
        running.append((stop, thread))
        return worker

    yield start
    for stop, thread in running:
        stop.set()
        thread.join(15)
        assert not thread.is_alive()
