"""A ``redis-server`` of a benchmark's own, and a process's CPU time: for the Redis benchmarks."""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["RedisServer", "cpu_seconds"]


def cpu_seconds(pid: int) -> float:
    """The process's user and system CPU seconds so far (Linux: ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RedisServer:
    """Loopback, a free port, no persistence; ``benchmark`` names who needs it, for the error."""

    def __init__(self, folder: Path, benchmark: str):
        import redis

        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit(f"the {benchmark} benchmark needs redis-server on the PATH")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--dir", str(folder), "--logfile", str(folder / "redis.log")]
        self.process = subprocess.Popen(argv)
        self.client = redis.Redis.from_url(self.url, decode_responses=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # a server starting: nothing to wait on

    def cpu_s(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.client.shutdown(nosave=True)
        self.process.wait(10)
