"""A local Redis Cluster for the tests: three masters on loopback, one session long.

Three ``redis-server --cluster-enabled yes`` processes, each in a temporary
directory of its own (its ``nodes.conf`` there), joined by ``redis-cli
--cluster create`` with no replicas, so each master holds a third of the
slots.  The tests need ``redis-server`` with cluster support (Redis 3 and
later) and ``redis-cli`` (5 and later, for ``--cluster``); without either
they are skipped, saying why, except under ``CI=true``, where they fail once
a ``redis-server`` is installed.
"""

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest
import redis
from redis.cluster import RedisCluster

from livecall.testing import wait_until

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
#: A node's cluster bus listens on its port plus this.
_BUS_OFFSET = 10000
_MAX_PORT = 65535
_NODES = 3
_START_TIMEOUT = 20.0


class ClusterUnavailable(Exception):
    """This machine cannot run the cluster (the message says why)."""


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _node_port() -> int:
    """A free port whose cluster bus port (plus 10,000) is free too."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + _BUS_OFFSET <= _MAX_PORT and _bindable(port + _BUS_OFFSET):
            return port
    raise RuntimeError("no free port with a free cluster bus port")


class LocalCluster:
    """Three cluster nodes and the cluster they form; ``url`` names the first (any node will do)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.ports: list[int] = []
        self._processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def client(self, decode: bool = True) -> RedisCluster:
        return RedisCluster.from_url(self.url, decode_responses=decode)

    def start(self) -> None:
        if REDIS_CLI is None:
            raise ClusterUnavailable("redis-cli is not installed: the cluster is made with it")
        assert REDIS_SERVER is not None
        while len(self.ports) < _NODES:
            port = _node_port()
            if port not in self.ports:
                self.ports.append(port)
        for port in self.ports:
            self._start_node(port)
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        create = subprocess.run(
            [REDIS_CLI, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT,
        )
        if create.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {create.stdout}{create.stderr}")
        wait_until(self._ready, timeout=_START_TIMEOUT)

    def _start_node(self, port: int) -> None:
        assert REDIS_SERVER is not None
        directory = self.directory / str(port)
        directory.mkdir()
        argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        argv += ["--dir", str(directory), "--logfile", str(directory / "redis.log")]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._processes.append(process)
        client = redis.Redis(port=port)
        try:
            wait_until(lambda: self._answers(client) or process.poll() is not None, timeout=_START_TIMEOUT)
        finally:
            client.close()
        if process.poll() is not None:  # an old redis-server refuses the option, and says so at once
            said = process.stdout.read().decode(errors="replace") if process.stdout else ""
            log = directory / "redis.log"
            said += log.read_text(errors="replace") if log.exists() else ""
            raise ClusterUnavailable(f"redis-server cannot run a cluster node: {said.strip()[-300:]}")

    @staticmethod
    def _answers(client: "redis.Redis") -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    def _ready(self) -> bool:
        """Every node says the cluster is up, with every slot served."""
        for port in self.ports:
            client = redis.Redis(port=port, decode_responses=True)
            try:
                info = client.cluster("info")
            finally:
                client.close()
            if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_ok", 0)) != 16384:
                return False
        return True

    def stop(self) -> None:
        for port, process in zip(self.ports, self._processes):
            if process.poll() is None:
                client = redis.Redis(port=port)
                try:
                    client.shutdown(nosave=True)
                except redis.ConnectionError:
                    pass  # gone as it answered
                finally:
                    client.close()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
            if process.stdout is not None:
                process.stdout.close()


def _unavailable(reason: str) -> None:
    """Skip, saying why; under ``CI=true`` fail instead, once a redis-server is installed."""
    if os.environ.get("CI") == "true" and REDIS_SERVER is not None:
        pytest.fail(reason + "; under CI=true the cluster tests must run", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    if REDIS_SERVER is None:
        reason = (
            "redis-server is not installed (Debian: apt-get install redis-server): "
            "the cluster tests need a real one"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason + "; under CI=true they must run", pytrace=False)
        pytest.skip(reason)
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"))
    unavailable: Optional[str] = None
    try:
        cluster.start()
    except ClusterUnavailable as error:
        unavailable = str(error)
    except BaseException:
        cluster.stop()
        raise
    if unavailable is not None:
        cluster.stop()
        _unavailable(unavailable)
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_client(redis_cluster: LocalCluster) -> Iterator[RedisCluster]:
    """A client of the cluster, every node emptied."""
    client = redis_cluster.client()
    client.flushall()  # every primary
    yield client
    client.close()
