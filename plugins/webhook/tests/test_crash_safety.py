"""Kills, signals and full disks, with the real command: no event the plugin accepted is lost."""

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading

import pytest

import livecall
from livecall.plugins import DISABLE_AUTOLOAD_ENV
from livecall.testing import Simulator, wait_until
from livecall_webhook import Sender, WebhookForwarder

from .conftest import SECRET, dead_bodies, livecall_command, verified

#: The events of Hiya's screening call before it waits for the user to join.
BEFORE_JOIN = 7


@pytest.fixture
def black_hole():
    """A webhook target that takes connections (the kernel does) and never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"


class Running:
    """``livecall watch hiya`` running in the background, its output lines collected as they come."""

    def __init__(self, sim, *options, cwd, **popen):
        credentials = sim.credentials
        env = {k: v for k, v in os.environ.items() if k != DISABLE_AUTOLOAD_ENV}
        env.update(HIYA_TOKEN=credentials["token"], LIVECALL_WEBHOOK_SECRET=SECRET)
        command = [sys.executable, "-m", "livecall", "-v", "watch", "hiya", "--url", sim.url]
        command += ["--format", "jsonl", "--conversation-token", credentials["conversation_token"]]
        command += ["--user-id", credentials["user_id"], *options]
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._collect, args=(stream, lines), daemon=True)
            for stream, lines in ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr))
        ]
        for reader in self._readers:
            reader.start()

    def _collect(self, stream, lines):
        for line in stream:
            with self.changed:
                lines.append(line)
                self.changed.notify_all()

    def wait_for_stderr(self, text, timeout=30.0):
        with self.changed:
            if not self.changed.wait_for(lambda: any(text in line for line in self.stderr), timeout):
                raise TimeoutError(f"stderr never said {text!r}: {''.join(self.stderr)}")

    def finish(self, timeout=30.0) -> int:
        status = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        return status

    def events(self) -> list:
        return [json.loads(line) for line in self.stdout]


def spooled(directory) -> int:
    """Event lines in the spools under ``directory``."""
    return sum(path.read_bytes().count(b'{"webhook-id"') for path in directory.glob(".*.spool"))


def test_sigkill_mid_call_loses_no_event_the_plugin_accepted(tmp_path, black_hole, receiver):
    dead = tmp_path / "dead.jsonl"
    with Simulator("hiya", join_timeout=60) as sim:
        watch = Running(
            sim, "--webhook-url", black_hole, "--webhook-timeout", "30", "--webhook-dead-letter", str(dead),
            cwd=tmp_path,
        )  # fmt: skip
        wait_until(lambda: spooled(tmp_path) >= BEFORE_JOIN)
        watch.process.kill()
        assert watch.finish() == -9
    [spool] = tmp_path.glob(".*.spool")
    assert spool.stat().st_mode & 0o777 == 0o600
    assert not dead.exists(), "nothing was undelivered when the kill came: all were waiting"

    replayed = livecall_command(
        "webhook-replay",
        str(dead),
        "--webhook-url",
        receiver.url,
        cwd=tmp_path,
        LIVECALL_WEBHOOK_SECRET=SECRET,
    )
    assert replayed.returncode == 0, replayed.stderr
    assert f"{BEFORE_JOIN} delivered" in replayed.stdout
    assert [json.loads(body) for body in receiver.accepted()] == watch.events()
    assert all(verified(r) for r in receiver.requests)
    assert list(tmp_path.glob(".*.spool")) == [] and not dead.exists()


def test_sigkill_after_delivery_sends_nothing_twice(tmp_path, receiver):
    dead = tmp_path / "dead.jsonl"
    with Simulator("hiya", join_timeout=60) as sim:
        watch = Running(sim, "--webhook-url", receiver.url, "--webhook-dead-letter", str(dead), cwd=tmp_path)
        receiver.wait_for(lambda: len(receiver.accepted()) == BEFORE_JOIN)
        [spool] = tmp_path.glob(".*.spool")
        wait_until(lambda: spool.read_bytes().count(b'{"done"') == BEFORE_JOIN)
        watch.process.kill()
        assert watch.finish() == -9
    replayed = livecall_command("webhook-replay", str(dead), "--webhook-url", receiver.url, cwd=tmp_path)
    assert replayed.returncode == livecall.ExitStatus.USAGE and "no dead-letter file" in replayed.stderr
    assert len(receiver.requests) == BEFORE_JOIN and list(tmp_path.glob(".*.spool")) == []


def test_the_spool_of_a_long_run_does_not_grow_without_bound(tmp_path, receiver):
    forwarder = WebhookForwarder(Sender(receiver.url), str(tmp_path / "dead.jsonl"))
    call = livecall.Call(provider="phonic", id="conv_1")
    for n in range(400):  # about 2 MB of events
        forwarder.livecall_event(call=call, event=livecall.Transcript(f"{n} " + "words " * 800, "user"))
    receiver.wait_for(lambda: len(receiver.accepted()) == 400)
    [spool] = tmp_path.glob(".*.spool")
    wait_until(lambda: spool.stat().st_size < 1024 * 1024)  # emptied once idle
    forwarder.close(timeout=10)
    assert not spool.exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_a_second_signal_cuts_the_drain_short(tmp_path, black_hole, signum):
    dead = tmp_path / "dead.jsonl"
    with Simulator("hiya", join_timeout=60) as sim:
        watch = Running(
            sim, "--webhook-url", black_hole, "--webhook-timeout", "30", "--webhook-drain-timeout", "120",
            "--webhook-dead-letter", str(dead), cwd=tmp_path,
        )  # fmt: skip
        wait_until(lambda: spooled(tmp_path) >= BEFORE_JOIN)
        watch.process.send_signal(signum)  # the watch stops, the drain begins
        watch.wait_for_stderr(f"waiting up to 120 s for {BEFORE_JOIN} webhook events")
        watch.process.send_signal(signum)  # ... and is cut short
        status = watch.finish()
    assert status == 128 + signum
    stderr = "".join(watch.stderr)
    assert f"webhook: {BEFORE_JOIN} events undelivered (the wait for them was cut short)" in stderr
    assert "Traceback" not in stderr
    assert dead_bodies(dead) == watch.events()
    assert list(tmp_path.glob(".*.spool")) == []


def no_file_may_grow():
    """In the child: every write to a file fails as on a full disk (EFBIG, the signal ignored)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_a_dead_letter_file_on_a_full_disk_ends_the_run_with_status_5(tmp_path, receiver_at):
    refusing = receiver_at(answer=lambda body: 400)
    dead = tmp_path / "dead.jsonl"
    with Simulator("hiya", join_timeout=0) as sim:
        watch = Running(
            sim, "--webhook-url", refusing.url, "--webhook-dead-letter", str(dead), cwd=tmp_path,
            preexec_fn=no_file_may_grow,
        )  # fmt: skip
        status = watch.finish(60)
    stderr = "".join(watch.stderr)
    assert status == livecall.ExitStatus.INCOMPLETE, stderr
    assert f"webhook: {len(watch.stdout)} undelivered events could not be written to {dead}" in stderr
    assert "Traceback" not in stderr and "OSError" not in stderr
