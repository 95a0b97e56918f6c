"""The workers page's "Try it on one machine" recipe, run as its reader runs it.

Its commands run as real processes, in order, those ending in ``&`` in the
background, as a shell would; only the ports differ (free ones, so that a
Redis or a simulator already running here is left alone).  The simulator
exits once its call has ended, which is when the page says to look at the
events stream.
"""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from livecall.testing import wait_until

from .conftest import REDIS_SERVER, _free_port

PAGE = Path(__file__).resolve().parents[3] / "docs" / "workers.rst"
TIMEOUT = 60


def recipe_blocks() -> list[list[str]]:
    """The commands of each console block of the recipe's section, continuation lines joined."""
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("Try it on one machine\n---------------------\n", 1)[1]
    section = re.split(r"\n[^\n]+\n-{3,}\n", section, maxsplit=1)[0]
    blocks = []
    for block in section.split(".. code-block:: console")[1:]:
        code = re.sub(r"\\\n\s*", "", block.split("\n\n", 2)[1])
        blocks.append([line.strip()[2:] for line in code.splitlines() if line.strip().startswith("$ ")])
    return blocks


class Shell:
    """Runs commands as the recipe's shell does: jobs in the background, ``kill %N``."""

    def __init__(self, directory: Path, ports: dict[str, str]):
        self.directory = directory
        self.ports = ports
        self.jobs: list[tuple[list[str], Any]] = []

    def run(self, line: str) -> str:
        for documented, free in self.ports.items():
            line = line.replace(documented, free)
        words = shlex.split(line)
        env = dict(os.environ)
        while "=" in words[0]:
            name, value = words.pop(0).split("=", 1)
            env[name] = value
        if words[0] == "kill":
            for job in words[1:]:
                self.stop(int(job.lstrip("%")))
            return ""
        argv = [sys.executable, "-m", "livecall", *words[1:]] if words[0] == "livecall" else words
        if words[-1] == "&":
            log = (self.directory / f"job{len(self.jobs) + 1}.log").open("w")
            process = subprocess.Popen(argv[:-1], env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
            self.jobs.append((words[:-1], process))
            if words[0] == "redis-server":
                self.wait_for_redis()
            return ""
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        assert result.returncode == 0, f"{line}: {result.stdout}{result.stderr}"
        return result.stdout

    def wait_for_redis(self) -> None:
        """Until Redis listens (a reader's shell is slower to start the next command than Redis).

        Polled: every redis-py answers a refused connection alike, whatever its retry options.
        """
        client = redis.Redis(port=int(self.ports["6379"]))

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        try:
            wait_until(answers, TIMEOUT)
        finally:
            client.close()

    def job(self, program: str) -> Any:
        return next(process for words, process in self.jobs if words[:2] == program.split()[:2])

    def stop(self, number: int) -> None:
        process = self.jobs[number - 1][1]
        process.send_signal(signal.SIGTERM)
        process.wait(TIMEOUT)

    def log(self, number: int) -> str:
        return (self.directory / f"job{number}.log").read_text()

    def close(self) -> None:
        for _, process in self.jobs:
            if process.poll() is None:
                process.kill()
                process.wait(TIMEOUT)


@pytest.mark.skipif(REDIS_SERVER is None or shutil.which("redis-cli") is None, reason="no redis-server")
def test_the_recipe_for_one_machine_runs_as_written(tmp_path):
    start, look = recipe_blocks()
    shell = Shell(tmp_path, {"6379": str(_free_port()), "8765": str(_free_port())})
    try:
        printed = [shell.run(line) for line in start if not line.startswith("pip ")]
        request_id = printed[-1].strip()
        assert re.fullmatch(r"\d+-\d+", request_id), printed
        simulator = shell.job("livecall simulate")
        assert simulator.wait(TIMEOUT) == 0, shell.log(2)
        last = shell.run(look[0])
        assert '"event": "conversation_ended"' in last or '"event":"conversation_ended"' in last, last
        shell.run(look[1])
    finally:
        shell.close()
    worker = shell.log(3)
    assert re.search(r"^livecall: worker \S+ takes up to 500 calls from livecall:requests", worker, re.M), (
        worker
    )
    assert re.search(r"^livecall: worker \S+ stopped$", worker, re.M), worker
