"""``make conformance``: the Autobahn fuzzing server against livecall and two other clients.

Usage: python conformance/run.py SERVER_PYTHON [AGENT ...]

Starts the fuzzing server (its ported package beside SERVER_PYTHON's venv,
see setup.sh) on a free loopback port, runs each agent (default: livecall,
websocket-client, websockets) in a process of its own with a time limit,
stops the server and prints the per-category table.  Exits 1 if livecall
FAILED a case, or if anything did not finish in time: it never hangs.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import summarize

HERE = Path(__file__).resolve().parent
AGENTS = ("livecall", "websocket-client", "websockets")
#: Per agent: the suite takes livecall 20-50 s, websockets 45-80 s, websocket-client
#: 1-5 minutes (it checks UTF-8 in pure Python) on a shared 2-core machine.
AGENT_TIMEOUT = 15 * 60
REPORTS = HERE / "reports" / "clients"


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def wait_listening(port: int, server: subprocess.Popen, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the fuzzing server exited with {server.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the fuzzing server did not listen within {seconds:g} s")


def main() -> int:
    server_python, agents = os.path.abspath(sys.argv[1]), sys.argv[2:] or list(AGENTS)
    ported = Path(server_python).parent.parent / "ported"  # not resolve(): the venv's python is a link
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ported))
    server = subprocess.Popen(
        [server_python, "-W", "ignore", str(HERE / "fuzzingserver.py"), str(HERE / "fuzzingserver.json")]
        + ["--port", str(port)],
        cwd=HERE,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    status = 0
    try:
        wait_listening(port, server)
        for agent in agents:
            try:
                subprocess.run(
                    [sys.executable, str(HERE / "agent.py"), f"ws://127.0.0.1:{port}", agent],
                    check=True,
                    timeout=AGENT_TIMEOUT,
                )
            except (subprocess.TimeoutExpired, subprocess.CalledProcessError) as error:
                print(f"{agent}: {error}", file=sys.stderr)
                status = 1
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    print(summarize.summary(REPORTS, failures_of="livecall"))
    failed = summarize.failed_cases(REPORTS, "livecall")
    if failed:
        print(f"livecall FAILED {len(failed)} cases: {', '.join(failed)}", file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
