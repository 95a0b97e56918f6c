"""The installed ``livecall`` command, run as a subprocess with only the environment a test gives it."""

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any, Optional

_SCRIPT = shutil.which("livecall", path=os.path.dirname(sys.executable))
#: The console script installed next to this Python; ``-m livecall`` if there is none.
LIVECALL: list[str] = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "livecall"]
#: A bound, never a pause: commands normally finish in a fraction of it.
TIMEOUT = 30


def base_env(**extra: str) -> dict[str, str]:
    """No stray credentials, no third-party plugins: the command sees only what a test gives it."""
    credentials = ("HIYA_TOKEN", "HIYA_CONVERSATION_TOKEN", "PHONIC_API_KEY", "PHONIC_SESSION_TOKEN")
    env = {k: v for k, v in os.environ.items() if k not in credentials}
    env["LIVECALL_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env.update(extra)
    return env


def livecall(*args: str, env: Optional[dict[str, str]] = None, **kwargs: Any) -> subprocess.CompletedProcess:
    kwargs.setdefault("timeout", TIMEOUT)
    return subprocess.run([*LIVECALL, *args], capture_output=True, text=True, env=env or base_env(), **kwargs)


def records(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


class Running:
    """A ``livecall`` process whose stdout lines can be awaited as they come."""

    def __init__(self, args: Sequence[str], env: Optional[dict[str, str]] = None):
        self.process = subprocess.Popen(
            [*LIVECALL, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env or base_env(),
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.stdout, self._lines)),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr, queue.Queue())),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, lines: list[str], announce: "queue.Queue[str]") -> None:
        with stream:
            for line in stream:
                lines.append(line)
                announce.put(line)

    def line(self, containing: str = "") -> str:
        """The next stdout line with ``containing`` in it (``queue.Empty`` if none comes in time)."""
        while True:
            line = self._lines.get(timeout=TIMEOUT)
            if containing in line:
                return line

    def type_line(self) -> None:
        """What a plugin waiting on stdin waits for."""
        self.process.stdin.write("\n")
        self.process.stdin.close()

    def wait(self, timeout: float = TIMEOUT) -> int:
        """The exit status (``subprocess.TimeoutExpired`` if the process outlives ``timeout``)."""
        status = self.process.wait(timeout)
        self.process.stdin.close()
        for reader in self._readers:
            reader.join(TIMEOUT)
        return status

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait()


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: A plugin that logs its hooks to the file named by RECORDER_LOG.
RECORDER = """
    import os
    import livecall

    def log(*words):
        with open(os.environ["RECORDER_LOG"], "a") as log_file:
            log_file.write(" ".join(words) + "\\n")

    @livecall.hookimpl
    def livecall_addoption(parser):
        parser.add_argument("--label", default="none")

    @livecall.hookimpl
    def livecall_configure(config):
        log("configure", config.options.label)

    @livecall.hookimpl
    def livecall_event(call, event):
        log("event", event.kind)

    @livecall.hookimpl
    def livecall_unconfigure(config):
        log("unconfigure")
"""

#: Credentials with SECRET in each, for the simulator to expect: what no output may show.
SECRETS = {
    "hiya": {"token": "tok-SECRET-7f3a", "conversation_token": "lct-SECRET-91bd"},
    "phonic": {"api_key": "key-SECRET-c4e2"},
}
